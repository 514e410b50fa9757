"""Loading an etcd cluster with keys from elsewhere: restoring an etcd snapshot, and
migrating the embedded SQLite store to etcd.

Both write the keys as they are — the stored bytes of every object, so UIDs, creation
timestamps and everything else survive — in the order of their revisions where they came
from, in batched Txns (at most etcd's default ``--max-txn-ops`` of 128 keys and about a MiB
each), so objects keep their relative resourceVersion order; the keys of one batch share a
revision. Both need the cluster to themselves: no API server may be watching it (every
setpoint server does; etcd counts watch streams in its ``/metrics``).

**Restore** makes a cluster exactly the snapshot's keys — the one the snapshot came from or
a new, empty one, as after losing a majority of members — and keeps resourceVersions going
up, as ``etcdutl snapshot restore --bump-revision --mark-compacted`` does (etcd 3.4 has
neither): the cluster's revision is first raised past the snapshot's (with empty writes,
needed only in a cluster younger than the snapshot), then the snapshot's keys are written and
every other key deleted, and then everything before is compacted. Every restored object so
has a resourceVersion above any the snapshot knew, and a client resuming from an older one
gets 410 Gone and re-lists.

**Migrate** copies every key of a stopped SQLite store into an empty cluster and refuses a
cluster that has any key.
"""

from __future__ import annotations

import asyncio
import sqlite3
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from setpoint.store.endpoint import EtcdTLS
from setpoint.store.etcd import EtcdStore
from setpoint.store.etcd_snapshot import EtcdSnapshot
from setpoint.store.interface import BackendError, KeyValue
from setpoint.store.sqlite_files import StoreInUseError, StoreLock

BATCH_KEYS = 128  # etcd's default --max-txn-ops
BATCH_BYTES = 1 << 20  # under etcd's default --max-request-bytes (1.5 MiB)
BUMP_WRITERS = 64  # concurrent empty writes raising the revision (etcd batches their commits)
BUMP_KEY = "/registry/setpoint/restore-revision"
PAGE = 1000
WATCH_STREAMS = "etcd_debugging_mvcc_watch_stream_total"


@dataclass(frozen=True)
class Loaded:
    keys: int  # written
    deleted: int  # keys the cluster had that the source did not
    revision: int  # the cluster's revision afterwards (everything before is compacted)


async def restore(store: EtcdStore, snapshot: EtcdSnapshot) -> Loaded:
    """Make the cluster hold exactly the snapshot's keys, at revisions above the snapshot's,
    with all history before compacted."""
    await refuse_if_watched(store)
    existing = {kv.key async for kv in _all_keys(store)}
    revision = await store.current_revision()
    if revision <= snapshot.revision:
        revision = await _raise_revision(store, revision, snapshot.revision)
    wanted = {kv.key for kv in snapshot.keys}
    revision = max(revision, await _write(store, snapshot.keys))
    gone = sorted(existing - wanted)
    for start in range(0, len(gone), BATCH_KEYS):
        revision = await store.write_batch((), gone[start : start + BATCH_KEYS])
    await store.compact(revision)
    return Loaded(len(snapshot.keys), len(gone), revision)


class NotEmptyError(BackendError):
    """The etcd cluster to migrate into already holds keys."""


async def migrate(store: EtcdStore, db_path: Path) -> Loaded:
    """Copy every key of the SQLite store at ``db_path`` into the cluster, which must have
    none. The SQLite store stays locked meanwhile, so no server starts on it."""
    if not db_path.exists() or not db_path.stat().st_size:
        raise BackendError(f"there is no database at {db_path}", path=str(db_path))
    count = await store.count("")
    if count:
        raise NotEmptyError(
            f"etcd ({','.join(store.hosts)}) is not empty ({count} keys): migrate into a new, "
            "empty etcd cluster"
        )
    await refuse_if_watched(store)
    lock = StoreLock(db_path.parent)
    lock.acquire(purpose="setpoint datastore migrate")
    try:
        keys = _sqlite_keys(db_path)
        revision = await _write(store, keys)
    finally:
        lock.release()
    return Loaded(len(keys), 0, revision or await store.current_revision())


def _sqlite_keys(db_path: Path) -> list[KeyValue]:
    try:
        conn = sqlite3.connect(db_path)
        try:
            rows = conn.execute("SELECT key, value, create_rev, mod_rev FROM kv").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read {db_path}: {exc}", path=str(db_path)) from exc
    return [KeyValue(key, bytes(value), create, mod) for key, value, create, mod in rows]


async def refuse_if_watched(store: EtcdStore) -> None:
    """StoreInUseError if any member that answers has watch streams open: an API server
    (every one watches the store) is using the cluster."""
    streams = await asyncio.gather(
        *(asyncio.to_thread(_watch_streams, host, store.tls) for host in store.hosts)
    )
    using = [f"{host} ({n})" for host, n in zip(store.hosts, streams, strict=True) if n]
    if using:
        raise StoreInUseError(
            f"etcd is in use: watch streams open on {', '.join(using)}; stop every setpoint "
            "server using it first"
        )


def _watch_streams(host: str, tls: EtcdTLS | None) -> int:
    """The watch streams open on member ``host`` (0 when it does not answer)."""
    context = None
    if tls is not None:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file and tls.key_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    url = f"{'https' if tls is not None else 'http'}://{host}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ConnectionError | TimeoutError):
            return 0  # a member that is down serves nobody
        raise BackendError(f"cannot tell whether etcd is in use: {url}: {reason}") from None
    for line in text.splitlines():
        if line.startswith(WATCH_STREAMS + " "):
            return int(float(line.split()[1]))
    return 0


async def _all_keys(store: EtcdStore) -> AsyncIterator[KeyValue]:
    after = ""
    while True:
        page = await store.scan("", start_after=after, limit=PAGE)
        for kv in page.items:
            yield kv
        if not page.more:
            return
        after = page.items[-1].key


async def _raise_revision(store: EtcdStore, revision: int, floor: int) -> int:
    """Write (and then delete) a scratch key until the revision is past ``floor``."""
    remaining = floor - revision

    async def writer(share: int) -> None:
        for _ in range(share):
            await store.write_batch([(BUMP_KEY, b"")])

    shares = [
        remaining // BUMP_WRITERS + (i < remaining % BUMP_WRITERS) for i in range(BUMP_WRITERS)
    ]
    await asyncio.gather(*(writer(share) for share in shares if share))
    return await store.write_batch((), [BUMP_KEY])


async def _write(store: EtcdStore, keys: Iterable[KeyValue]) -> int:
    """Put ``keys`` in the order of their revisions, in batches; the last revision (0 if
    there were none)."""
    revision = 0
    for batch in _batches(sorted(keys, key=lambda kv: (kv.mod_revision, kv.key))):
        revision = await store.write_batch([(kv.key, kv.value) for kv in batch])
    return revision


def _batches(keys: list[KeyValue]) -> Iterator[list[KeyValue]]:
    batch: list[KeyValue] = []
    size = 0
    for kv in keys:
        if batch and (len(batch) == BATCH_KEYS or size + len(kv.value) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(kv)
        size += len(kv.value) + len(kv.key)
    if batch:
        yield batch
