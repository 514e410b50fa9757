"""The ResourceQuota admission charge is a compare-and-swap on the quota: two API servers
sharing one store (each with its own watch cache and its own admission plugins, so neither
the per-namespace lock nor a shared cache helps) cannot both spend the last unit of a quota.

Both servers run in this test's event loop over one SQLite store; pods are created through
their storages directly, as their HTTP handlers would, by an authenticated user.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from setpoint.api.admission import AdmissionChain
from setpoint.api.admission_plugins import core_storages, default_plugins
from setpoint.api.auth.authn import StaticTokens
from setpoint.api.auth.user import UserInfo
from setpoint.api.errors import APIError
from setpoint.api.server import APIServer
from setpoint.api.storage import ResourceStorage, WriteOptions
from setpoint.resources.catalog import default_registry
from setpoint.store.sqlite import SQLiteStore

USER = UserInfo("alice", ("system:authenticated",))


async def start(store: SQLiteStore) -> APIServer:
    registry = default_registry()
    chain = AdmissionChain()
    api = APIServer(store, registry, authenticator=StaticTokens([]), admission=chain)
    for plugin in default_plugins(core_storages(api.storages, registry)):
        chain.add(plugin)
    await api.start()
    return api


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[APIServer, APIServer]]:
    store = await SQLiteStore.open(tmp_path / "db" / "state.db")
    first = await start(store)
    second = await start(store)
    try:
        yield first, second
    finally:
        for api in (first, second):
            api.close_watches()
            await api.stop()
        await store.close()


def storage(api: APIServer, plural: str) -> ResourceStorage:
    found = core_storages(api.storages, api.registry)(plural)
    assert found is not None
    return found


def pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


async def test_two_servers_cannot_both_spend_the_last_unit(
    servers: tuple[APIServer, APIServer],
) -> None:
    first, second = servers
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "3"}},
    }
    quotas = storage(first, "resourcequotas")
    created = await quotas.create("default", quota, WriteOptions())
    status = {**created.obj, "status": {"hard": {"pods": "3"}, "used": {"pods": "0"}}}
    await quotas.update("default", "q", status, WriteOptions(), subresource="status")

    async def create(api: APIServer, name: str) -> bool:
        try:
            await storage(api, "pods").create("default", pod(name), WriteOptions(user=USER))
        except APIError as exc:
            assert exc.code == 403, exc.message
            assert "exceeded quota: q" in exc.message
            return False
        return True

    results = await asyncio.gather(
        *(create(first if i % 2 else second, f"p{i}") for i in range(10))
    )
    assert sum(results) == 3
    stored = await storage(second, "resourcequotas").get("default", "q")
    assert stored.obj["status"]["used"] == {"pods": "3"}


async def test_the_servers_own_writes_are_not_charged(
    servers: tuple[APIServer, APIServer],
) -> None:
    first, _ = servers
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"configmaps": "0"}},
    }
    quotas = storage(first, "resourcequotas")
    created = await quotas.create("default", quota, WriteOptions())
    status = {**created.obj, "status": {"hard": {"configmaps": "0"}, "used": {"configmaps": "0"}}}
    await quotas.update("default", "q", status, WriteOptions(), subresource="status")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    await storage(first, "configmaps").create("default", config, WriteOptions())
    with pytest.raises(APIError, match="exceeded quota: q"):
        config["metadata"] = {"name": "d"}
        await storage(first, "configmaps").create("default", config, WriteOptions(user=USER))
