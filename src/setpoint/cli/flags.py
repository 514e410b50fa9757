"""Flag values as ``setpoint``'s commands read them: the default data dir, Go-style
durations, ``key=value`` labels, and how a component reaches the API server (a kubeconfig,
or k3s agent's ``--server`` with ``--token-file`` and ``--ca-file``) under its own
User-Agent."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import click

from setpoint.client.api import ClientConfig


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/setpoint")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "setpoint"


def parse_duration(text: str) -> float:
    """A Go-style duration (``1h``, ``30m``, ``1h30m``, ``90s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    match = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", text.strip())
    if not match:
        raise click.BadParameter(f"not a duration: {text!r} (use e.g. 1h, 30m, 90s)")
    return sum(
        float(number) * units[unit]
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    )


def parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not key=value", param_hint="--node-labels")
        labels[key] = val
    return labels


def client_config(
    *,
    kubeconfig: Path | None,
    server: str | Sequence[str] | None,
    token_file: Path | None,
    ca_file: Path | None,
    user_agent: str,
) -> ClientConfig:
    """How this component reaches the API server, and who it says it is (the User-Agent
    names its field manager in every object it writes)."""
    try:
        return ClientConfig.from_flags(
            kubeconfig=kubeconfig,
            server=server,
            token_file=token_file,
            ca_file=ca_file,
            user_agent=user_agent,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
