"""Flag values as ``setpoint``'s commands read them: the default data dir, Go-style
durations, ``key=value`` labels, how a component reaches the API server (a kubeconfig,
or k3s agent's ``--server`` with ``--token-file`` and ``--ca-file``) under its own
User-Agent, and the flags that name the store (k3s's ``--datastore-*``), shared by
``setpoint server`` and ``setpoint datastore``."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from setpoint.client.api import ClientConfig
from setpoint.store.endpoint import EtcdTLS

F = TypeVar("F", bound=Callable[..., Any])


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


datastore_endpoint_option = click.option(
    "--datastore-endpoint",
    default=None,
    metavar="URL",
    help="The store, as k3s spells it: sqlite:///absolute/path/state.db, or an etcd v3 "
    "cluster etcd://host:port,host:port,... [default: the SQLite file db/state.db in the "
    "data dir].",
)


def datastore_tls_options(func: F) -> F:
    """k3s's ``--datastore-cafile/-certfile/-keyfile``, handed to ``func`` as one
    ``datastore_tls: EtcdTLS`` argument."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tls = EtcdTLS(
            kwargs.pop("datastore_cafile"),
            kwargs.pop("datastore_certfile"),
            kwargs.pop("datastore_keyfile"),
        )
        return func(*args, datastore_tls=tls, **kwargs)

    options = [
        click.option(
            "--datastore-cafile",
            type=click.Path(path_type=Path),
            default=None,
            help="TLS to etcd (etcds://): the CA that signed the members' certificates "
            "[default: the system's].",
        ),
        click.option(
            "--datastore-certfile",
            type=click.Path(path_type=Path),
            default=None,
            help="TLS to etcd (etcds://): the client certificate etcd asks for "
            "(--client-cert-auth).",
        ),
        click.option(
            "--datastore-keyfile",
            type=click.Path(path_type=Path),
            default=None,
            help="TLS to etcd (etcds://): the client certificate's key.",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated
