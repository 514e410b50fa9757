"""``setpoint token create``: a bootstrap token a new node joins with (k3s's and kubeadm's
``token create``).

It writes the Secret ``bootstrap-token-<id>`` (type ``bootstrap.kubernetes.io/token``) in
``kube-system`` through the API, as the admin of the kubeconfig given (the server's own by
default), with ``expiration`` ``--ttl`` from now (``0``: never), and prints the join token
in k3s's form ``K10<sha256 of the CA>::<id>.<secret>``, which ``setpoint agent
--token-file`` takes. The token authenticates as ``system:bootstrap:<id>`` in
``system:bootstrappers`` and may only ask for a node credential; deleting the Secret (or
its expiry) ends it, and nodes that joined with it keep their own credentials.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from setpoint.api.auth.bootstraptokens import new_token, token_secret
from setpoint.cli.flags import default_data_dir, parse_duration
from setpoint.client.api import SECRETS, ApiClient, ApiError, ClientConfig
from setpoint.meta.timestamps import rfc3339
from setpoint.pki import ca_hash


@click.group()
def token() -> None:
    """Bootstrap tokens nodes join with."""


@token.command()
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An admin's kubeconfig [default: <data dir>/kubeconfig.yaml].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The server's data dir (for its kubeconfig).",
)
@click.option("--ttl", default="24h", show_default=True, help="Lifetime (Go duration; 0: none).")
@click.option("--description", default="", help="A human-readable note kept with the token.")
def create(kubeconfig: Path | None, data_dir: Path | None, ttl: str, description: str) -> None:
    """Create a bootstrap token and print the join token for it."""
    seconds = 0.0 if ttl.strip() in ("0", "0s") else parse_duration(ttl)
    path = kubeconfig or (data_dir or default_data_dir()) / "kubeconfig.yaml"
    if not path.exists():
        raise click.UsageError(f"no kubeconfig at {path}; give --kubeconfig or --data-dir")
    config = ClientConfig.from_kubeconfig(path, user_agent="setpoint-token")
    value = new_token()
    secret = token_secret(
        value,
        expiration=rfc3339(time.time() + seconds) if seconds else "",
        description=description or "setpoint token create",
    )

    async def write() -> None:
        async with ApiClient(config) as client:
            await client.create(SECRETS, secret)

    try:
        asyncio.run(write())
    except ApiError as exc:
        raise click.ClickException(f"cannot create the token: {exc}") from None
    click.echo(f"K10{ca_hash(config.ca_pem)}::{value}")
