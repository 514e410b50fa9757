"""Fixtures shared by the unit tests of the store's users: ``store``, each test run once on
the embedded SQLite store and once on a real etcd member (one per module, its keyspace
emptied for each test), so that a second backend is held to the same tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from setpoint.store.etcd import EtcdStore
from setpoint.store.interface import Store
from setpoint.store.sqlite import SQLiteStore
from tests.etcd import Etcd, running_etcd


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    """One etcd for the module's etcd cases; each case starts from an empty keyspace."""
    with running_etcd(tmp_path_factory.mktemp("etcd")) as etcd:
        yield etcd


async def empty_keyspace(etcd: Etcd) -> None:
    async with grpc.aio.insecure_channel(etcd.hosts[0]) as channel:
        await rpc_pb2_grpc.KVStub(channel).DeleteRange(
            rpc_pb2.DeleteRangeRequest(key=b"\x00", range_end=b"\x00"), timeout=5
        )


@pytest.fixture(params=["sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "etcd":
        etcd: Etcd = request.getfixturevalue("etcd_member")
        await empty_keyspace(etcd)
        backend = await EtcdStore.open(etcd.hosts)
    else:
        backend = await SQLiteStore.open(tmp_path / "state.db")
    yield backend
    await backend.close()
