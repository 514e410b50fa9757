"""``setpoint datastore``: operations on a server's store from outside the server.

``setpoint datastore rewrite-secrets`` writes every Secret again through the running server,
so it is stored with the encryption configuration's first provider (see
``api.encryption``). ``setpoint datastore snapshot save FILE`` takes a consistent snapshot
of the embedded store, also (usually) while the server runs; ``setpoint datastore snapshot
restore FILE`` puts one back into a stopped server's data dir, with revisions continuing
above every one handed out there (``store.snapshot`` has the how and why). ``--data-dir``
names the server's data dir, as for ``setpoint server``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import click

from setpoint.cli.flags import default_data_dir
from setpoint.client.api import SECRETS, ApiClient, ApiError, ClientConfig
from setpoint.store.interface import BackendError
from setpoint.store.snapshot import restore, save

DB = Path("db") / "state.db"


def _data_dir_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The setpoint server's data dir [default: the server's default data dir].",
    )(func)


def _data_dir(given: Path | None) -> Path:
    return (given or default_data_dir()).resolve()


@click.group()
def datastore() -> None:
    """Operations on the server's store (snapshots, rewriting Secrets)."""


@datastore.group()
def snapshot() -> None:
    """Save and restore snapshots of the embedded store."""


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_data_dir_option
def save_command(file: Path, data_dir: Path | None) -> None:
    """Write a consistent snapshot of the store to FILE (mode 0600), while the server runs
    or not."""
    db = _data_dir(data_dir) / DB
    try:
        info = save(db, file.resolve())
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Saved snapshot {info.path}: revision {info.revision}, {info.keys} keys, {info.size} bytes"
    )


@snapshot.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_data_dir_option
def restore_command(file: Path, data_dir: Path | None) -> None:
    """Make the snapshot FILE the store of a stopped server. Revisions continue above every
    one handed out before, and older ones are compacted, so clients re-list; the database it
    replaces is kept beside it."""
    directory = _data_dir(data_dir)
    try:
        restored = restore(file.resolve(), directory / DB)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Restored {restored.snapshot.keys} keys from {file} (snapshot revision "
        f"{restored.snapshot.revision}) into {directory}; revisions continue at "
        f"{restored.revision}, earlier ones are compacted (clients re-list)."
    )
    if restored.previous is not None:
        click.echo(f"The database it replaced is kept as {restored.previous}.")


@datastore.command("rewrite-secrets")
@_data_dir_option
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Talk to the server with this kubeconfig [default: the data dir's admin one].",
)
def rewrite_secrets_command(data_dir: Path | None, kubeconfig: Path | None) -> None:
    """Write every Secret again, unchanged, through the running server, so that each is
    stored with the first provider of the encryption configuration (after a key was added,
    or encryption turned on). The same as ``kubectl get secrets -A -o json | kubectl
    replace -f -``, one Secret at a time and retried on conflicts."""
    path = kubeconfig or _data_dir(data_dir) / "kubeconfig.yaml"
    if not path.exists():
        raise click.ClickException(f"no kubeconfig at {path}: is the server running?")
    try:
        rewritten = asyncio.run(_rewrite_secrets(path))
    except (OSError, aiohttp.ClientError) as exc:
        raise click.ClickException(f"cannot reach the server: {exc}") from None
    click.echo(f"Rewrote {rewritten} Secrets.")


async def _rewrite_secrets(kubeconfig: Path) -> int:
    config = ClientConfig.from_kubeconfig(kubeconfig, user_agent="setpoint-datastore")
    rewritten = 0
    async with ApiClient(config) as client:
        token = ""
        while True:
            try:
                page = await client.list(SECRETS, limit=500, continue_token=token)
            except ApiError as exc:
                raise click.ClickException(f"cannot list Secrets: {exc}") from None
            for item in page.get("items") or []:
                meta = item["metadata"]
                secret = {"apiVersion": "v1", "kind": "Secret", **item}
                for _ in range(5):  # a conflict: somebody wrote it meanwhile; read it again
                    try:
                        await client.update(SECRETS, secret)
                        rewritten += 1
                        break
                    except ApiError as exc:
                        if exc.code == 404:
                            break  # deleted meanwhile: nothing to rewrite
                        if exc.code != 409:
                            raise click.ClickException(
                                f"cannot rewrite Secret {meta.get('namespace')}/{meta['name']}: "
                                f"{exc}"
                            ) from None
                        fresh = await client.get(SECRETS, meta["name"], meta.get("namespace"))
                        secret = {"apiVersion": "v1", "kind": "Secret", **fresh}
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return rewritten
