"""``setpoint datastore``: operations on a server's store from outside the server.

``setpoint datastore rewrite-secrets`` writes every Secret again through the running server,
so it is stored with the encryption configuration's first provider (see
``api.encryption``). ``setpoint datastore snapshot save FILE`` takes a consistent snapshot
of the embedded store, also (usually) while the server runs; ``setpoint datastore snapshot
restore FILE`` puts one back into a stopped server's data dir, with revisions continuing
above every one handed out there (``store.snapshot`` has the how and why). ``--data-dir``
names the server's data dir, as for ``setpoint server``. With ``--datastore-endpoint
etcd://...`` (and ``--datastore-cafile/-certfile/-keyfile``, as for ``setpoint server``) the
snapshots are etcd's (``store.etcd_snapshot``, ``store.etcd_load``); ``setpoint datastore
migrate --to etcd://...`` copies a stopped server's embedded store into an empty etcd.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import click

from setpoint.cli.flags import datastore_endpoint_option, datastore_tls_options, default_data_dir
from setpoint.client.api import SECRETS, ApiClient, ApiError, ClientConfig
from setpoint.store.endpoint import (
    SQLITE,
    Endpoint,
    EndpointError,
    EtcdTLS,
    default_endpoint,
    open_store,
    parse_endpoint,
)
from setpoint.store.interface import BackendError, StoreError
from setpoint.store.snapshot import restore, save

if TYPE_CHECKING:  # grpc is loaded only when a command talks to etcd
    from setpoint.store.etcd import EtcdStore

T = TypeVar("T")

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
    """Save and restore snapshots of the store (embedded, or etcd)."""


def _endpoint(given: str | None, data_dir: Path | None) -> Endpoint:
    try:
        return parse_endpoint(given or default_endpoint(_data_dir(data_dir)))
    except EndpointError as exc:
        raise click.ClickException(str(exc)) from None


def _on_etcd(endpoint: str, tls: EtcdTLS, work: Callable[[EtcdStore], Awaitable[T]]) -> T:
    """Run ``work`` on the etcd cluster ``endpoint`` names; its failures as one line."""

    from setpoint.store.etcd import EtcdStore

    async def run() -> T:
        store = await open_store(endpoint, etcd_tls=tls)
        assert isinstance(store, EtcdStore)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (StoreError, EndpointError) as exc:
        raise click.ClickException(str(exc)) from None


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_data_dir_option
@datastore_endpoint_option
@datastore_tls_options
def save_command(
    file: Path, data_dir: Path | None, datastore_endpoint: str | None, datastore_tls: EtcdTLS
) -> None:
    """Write a consistent snapshot of the store to FILE (mode 0600), while the servers run or
    not: of the embedded store, or with --datastore-endpoint etcd://... of an etcd cluster
    (etcd's own snapshot, as etcdctl snapshot save writes it)."""
    target = _endpoint(datastore_endpoint, data_dir)
    path = file.resolve()
    if target.scheme == SQLITE:
        assert target.path is not None
        try:
            info = save(target.path, path)
        except BackendError as exc:
            raise click.ClickException(str(exc)) from None
    else:
        from setpoint.store import etcd_snapshot

        assert datastore_endpoint is not None
        info = _on_etcd(
            datastore_endpoint, datastore_tls, lambda store: etcd_snapshot.save(store, path)
        )
    click.echo(
        f"Saved snapshot {info.path}: revision {info.revision}, {info.keys} keys, {info.size} bytes"
    )


@snapshot.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_data_dir_option
@datastore_endpoint_option
@datastore_tls_options
def restore_command(
    file: Path, data_dir: Path | None, datastore_endpoint: str | None, datastore_tls: EtcdTLS
) -> None:
    """Make the snapshot FILE the store, with the servers stopped. Revisions continue above
    every one handed out before, and older ones are compacted, so clients re-list. Into a
    data dir's embedded store, the database it replaces is kept beside it; with
    --datastore-endpoint etcd://..., the cluster (the snapshot's own or a new, empty one)
    ends up holding exactly the snapshot's keys."""
    target = _endpoint(datastore_endpoint, data_dir)
    if target.scheme != SQLITE:
        from setpoint.store import etcd_load, etcd_snapshot

        assert datastore_endpoint is not None
        try:
            contents = etcd_snapshot.read(file.resolve())
        except BackendError as exc:
            raise click.ClickException(str(exc)) from None
        loaded = _on_etcd(
            datastore_endpoint, datastore_tls, lambda store: etcd_load.restore(store, contents)
        )
        click.echo(
            f"Restored {loaded.keys} keys from {file} (snapshot revision {contents.revision}) "
            f"into etcd, {loaded.deleted} keys not in it deleted; revisions continue at "
            f"{loaded.revision}, earlier ones are compacted (clients re-list)."
        )
        return
    assert target.path is not None
    try:
        restored = restore(file.resolve(), target.path)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Restored {restored.snapshot.keys} keys from {file} (snapshot revision "
        f"{restored.snapshot.revision}) into {target.path.parent.parent}; revisions continue "
        f"at {restored.revision}, earlier ones are compacted (clients re-list)."
    )
    if restored.previous is not None:
        click.echo(f"The database it replaced is kept as {restored.previous}.")


@datastore.command("migrate")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="The etcd cluster to copy the store into, etcd://host:port,... (etcds:// for TLS); "
    "it must be empty.",
)
@_data_dir_option
@datastore_tls_options
def migrate_command(to: str, data_dir: Path | None, datastore_tls: EtcdTLS) -> None:
    """Copy every key of a stopped server's embedded store into an empty etcd cluster, as
    it is (same objects, same UIDs, in the order they were written). The data dir (CA,
    tokens, encryption key) stays as it is; then start the server on etcd."""
    directory = _data_dir(data_dir)
    target = _endpoint(to, data_dir)
    if target.scheme == SQLITE:
        raise click.ClickException(f"--to {to}: migrate copies the store into etcd://...")
    from setpoint.store import etcd_load

    loaded = _on_etcd(to, datastore_tls, lambda store: etcd_load.migrate(store, directory / DB))
    click.echo(f"Copied {loaded.keys} keys from {directory / DB} into etcd ({to}).")
    tls_flags = "".join(
        f" --datastore-{name} {path}"
        for name, path in (
            ("cafile", datastore_tls.ca_file),
            ("certfile", datastore_tls.cert_file),
            ("keyfile", datastore_tls.key_file),
        )
        if path is not None
    )
    click.echo(
        "Now start the server on it (its data dir stays as it is; the SQLite database is "
        f"left untouched):\n  setpoint server --datastore-endpoint {to}{tls_flags} "
        f"--data-dir {directory}"
    )


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
