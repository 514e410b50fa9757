"""``setpoint server``'s flags for encryption at rest, the audit log and per-client limits,
spelled as kube-apiserver spells them, and how they become the API server's parts."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from setpoint.api.audit import Auditor, PolicyError, auditor_from_flags
from setpoint.api.encryption import (
    DEFAULT_CONFIG_FILE,
    ConfigError,
    EncryptionConfig,
    generate_config_text,
)
from setpoint.api.ratelimit import ClientLimits
from setpoint.meta.privatefiles import tighten


@dataclass(frozen=True)
class SecurityConfig:
    encryption_provider_config: Path | None = None  # None: the data dir's, made if missing
    audit_log_path: Path | None = None
    audit_policy_file: Path | None = None
    audit_log_maxsize: int = 100  # megabytes; 0: never rotated
    audit_log_maxbackup: int = 10  # 0: every rotated file is kept
    client_limits: ClientLimits = field(default_factory=ClientLimits)


class SecuritySetupError(Exception):
    """A flag's file cannot be used; the message says which and why."""


def encryption_config(config: SecurityConfig, data_dir: Path) -> EncryptionConfig:
    """The encryption configuration to serve with: the flag's file, else the data dir's
    (written on first start: a random AES-GCM key for Secrets, private to the server)."""
    path = config.encryption_provider_config
    if path is None:
        path = data_dir / DEFAULT_CONFIG_FILE
        tighten(path, 0o600)  # a copy or an older hand edit left it readable
        if not path.exists():
            text = generate_config_text()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
    try:
        return EncryptionConfig.load(path)
    except ConfigError as exc:
        raise SecuritySetupError(str(exc)) from None


def auditor(config: SecurityConfig) -> Auditor | None:
    try:
        return auditor_from_flags(
            config.audit_log_path,
            config.audit_policy_file,
            max_size_mb=config.audit_log_maxsize,
            max_backups=config.audit_log_maxbackup,
        )
    except PolicyError as exc:
        raise SecuritySetupError(str(exc)) from None


F = TypeVar("F", bound=Callable[..., Any])

_PATH = click.Path(dir_okay=False, path_type=Path)
_DEFAULTS = ClientLimits()


def _groups(text: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in text.split(",") if g.strip())


def security_options(func: F) -> F:
    """The flags, handed to ``func`` as one ``security: SecurityConfig`` argument."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        security = SecurityConfig(
            encryption_provider_config=kwargs.pop("encryption_provider_config"),
            audit_log_path=kwargs.pop("audit_log_path"),
            audit_policy_file=kwargs.pop("audit_policy_file"),
            audit_log_maxsize=kwargs.pop("audit_log_maxsize"),
            audit_log_maxbackup=kwargs.pop("audit_log_maxbackup"),
            client_limits=ClientLimits(
                qps=kwargs.pop("client_qps"),
                burst=kwargs.pop("client_burst"),
                max_watches_per_user=kwargs.pop("max_watches_per_user"),
                exempt_groups=_groups(kwargs.pop("client_limit_exempt_groups")),
            ),
        )
        return func(*args, security=security, **kwargs)

    options = [
        click.option(
            "--encryption-provider-config",
            type=_PATH,
            default=None,
            help="EncryptionConfiguration (apiserver.config.k8s.io/v1) saying how resources "
            "are encrypted in the store [default: encryption-config.yaml in the data dir, "
            "made on first start with a new AES-GCM key for Secrets].",
        ),
        click.option(
            "--audit-log-path",
            type=_PATH,
            default=None,
            help="Write an audit log (audit.k8s.io/v1 Events, JSON lines) to this file.",
        ),
        click.option(
            "--audit-policy-file",
            type=_PATH,
            default=None,
            help="Audit Policy (audit.k8s.io/v1) [default: Metadata for every change and "
            "every 401/403, nothing for reads].",
        ),
        click.option(
            "--audit-log-maxsize",
            type=click.IntRange(0),
            default=100,
            show_default=True,
            help="Megabytes the audit log grows to before it is rotated (0: never).",
        ),
        click.option(
            "--audit-log-maxbackup",
            type=click.IntRange(0),
            default=10,
            show_default=True,
            help="Rotated audit logs kept (0: all).",
        ),
        click.option(
            "--client-qps",
            type=click.FloatRange(0),
            default=_DEFAULTS.qps,
            show_default=True,
            help="Requests a second each user may make, on average (node agents, the "
            "controller manager and --client-limit-exempt-groups exempt; 0: no limit); "
            "more get 429.",
        ),
        click.option(
            "--client-burst",
            type=click.IntRange(1),
            default=_DEFAULTS.burst,
            show_default=True,
            help="Requests a user may make at once above --client-qps.",
        ),
        click.option(
            "--max-watches-per-user",
            type=click.IntRange(0),
            default=_DEFAULTS.max_watches_per_user,
            show_default=True,
            help="Watches one user may hold open at once (0: no limit); more get 429.",
        ),
        click.option(
            "--client-limit-exempt-groups",
            default=",".join(_DEFAULTS.exempt_groups),
            show_default=True,
            help="Comma-separated groups whose members --client-qps and "
            "--max-watches-per-user do not limit (node agents and the controller manager "
            "never are); empty: limit the administrators too.",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated
