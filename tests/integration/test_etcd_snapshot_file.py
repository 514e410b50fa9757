"""etcd snapshot files, read without etcd (``store.etcd_snapshot``), checked against what a
real member says it holds; and the bulk loads of ``store.etcd_load`` on a real member."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from setpoint.store import etcd_load, etcd_snapshot
from setpoint.store.endpoint import EtcdTLS
from setpoint.store.etcd import EtcdStore
from setpoint.store.interface import KeyValue
from setpoint.store.snapshot import SnapshotError
from setpoint.store.sqlite_files import StoreInUseError
from tests.etcd import make_certs, running_etcd

pytestmark = pytest.mark.xdist_group("etcd")


async def everything(store: EtcdStore) -> list[KeyValue]:
    return (await store.scan("")).items


async def test_a_saved_snapshot_holds_exactly_the_live_keys_at_its_revision(
    tmp_path: Path,
) -> None:
    with running_etcd(tmp_path / "etcd") as etcd:
        store = await EtcdStore.open(etcd.hosts)
        try:
            # enough keys for branch pages, values larger than a page, deletions, updates,
            # history compacted away, and keys outside /registry
            await store.write_batch([(f"/registry/big/{i}", os.urandom(9000)) for i in range(3)])
            for start in range(0, 1500, 100):
                await store.write_batch(
                    [(f"/registry/k/{i:05}", b"v%d" % i) for i in range(start, start + 100)]
                )
            await store.write_batch(
                [("/elsewhere", b"x")], [f"/registry/k/{i:05}" for i in range(50)]
            )
            kv = await store.get("/registry/k/00100")
            assert kv is not None
            await store.update("/registry/k/00100", b"changed", expected_revision=kv.mod_revision)
            await store.compact(await store.current_revision())
            await store.delete("/registry/k/00101")

            info = await etcd_snapshot.save(store, tmp_path / "snap")
            snapshot = etcd_snapshot.read(tmp_path / "snap")
            assert snapshot.keys == await everything(store)
            assert snapshot.revision == info.revision == await store.current_revision()
            assert info.keys == 3 + 1500 - 50 - 1 + 1
            assert (tmp_path / "snap").stat().st_mode & 0o777 == 0o600
            assert not list(tmp_path.glob(".snap*"))  # no temporary file left behind
        finally:
            await store.close()


async def test_restore_into_a_younger_cluster_continues_past_the_snapshot(
    tmp_path: Path,
) -> None:
    with running_etcd(tmp_path / "old") as old:
        store = await EtcdStore.open(old.hosts)
        try:
            for i in range(300):  # a history longer than the new cluster's
                await store.write_batch([("/registry/counter", b"%d" % i)])
            await store.write_batch([("/registry/a", b"a"), ("/registry/b", b"b")])
            await etcd_snapshot.save(store, tmp_path / "snap")
        finally:
            await store.close()
    snapshot = etcd_snapshot.read(tmp_path / "snap")

    with running_etcd(tmp_path / "new") as new:
        store = await EtcdStore.open(new.hosts)
        try:
            await store.create("/registry/stray", b"not in the snapshot")
            loaded = await etcd_load.restore(store, snapshot)
            assert loaded.deleted == 1
            restored = await everything(store)
            assert [(kv.key, kv.value) for kv in restored] == [
                (kv.key, kv.value) for kv in snapshot.keys
            ]
            assert min(kv.mod_revision for kv in restored) > snapshot.revision
            assert loaded.revision == await store.current_revision()
            with pytest.raises(Exception, match="compacted"):
                await store.scan("", revision=loaded.revision - 1)
        finally:
            await store.close()


async def test_restore_and_migrate_refuse_a_cluster_somebody_watches(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    tls = EtcdTLS(certs.ca, certs.client_cert, certs.client_key)
    with running_etcd(tmp_path / "etcd", certs=certs) as etcd:
        store = await EtcdStore.open(etcd.hosts, tls)
        await etcd_load.refuse_if_watched(store)  # nobody watches yet: no error
        watching = asyncio.ensure_future(anext(aiter(store.watch("/registry/", after_revision=0))))
        try:

            async def refused() -> bool:
                try:
                    await etcd_load.refuse_if_watched(store)
                except StoreInUseError as exc:
                    assert "etcd is in use: watch streams open on 127.0.0.1:" in str(exc)
                    return True
                return False

            async with asyncio.timeout(10):
                while not await refused():
                    await asyncio.sleep(0.05)
        finally:
            watching.cancel()
            await store.close()


def test_a_file_that_is_not_a_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"\0" * 4096 + b"h" * 32)
    with pytest.raises(SnapshotError, match="is corrupt: its sha256 does not match"):
        etcd_snapshot.read(path)
    database = b"\0" * 4096
    path.write_bytes(database + hashlib.sha256(database).digest())
    with pytest.raises(SnapshotError, match="is not a readable etcd snapshot: no valid meta"):
        etcd_snapshot.read(path)
    path.write_bytes(b"\0" * 100)
    with pytest.raises(SnapshotError, match="is not an etcd snapshot"):
        etcd_snapshot.read(path)
