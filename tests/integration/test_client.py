"""setpoint's own API client and informers against a real server."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from setpoint.client.api import CONFIGMAPS, ApiClient, ApiError, ClientConfig
from setpoint.client.informer import EventHandler, Informer, by_namespace
from tests.support import start_server


def cm(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


async def test_crud_and_status_errors(client: ApiClient, namespace: str) -> None:
    created = await client.create(CONFIGMAPS, cm("a"), namespace)
    assert created["metadata"]["uid"]
    with pytest.raises(ApiError) as caught:
        await client.create(CONFIGMAPS, cm("a"), namespace)
    assert caught.value.is_already_exists
    stale = dict(created)
    await client.patch(CONFIGMAPS, "a", {"data": {"x": "1"}}, namespace)
    with pytest.raises(ApiError) as caught:
        await client.update(CONFIGMAPS, stale)
    assert caught.value.is_conflict
    await client.delete(CONFIGMAPS, "a", namespace)
    with pytest.raises(ApiError) as caught:
        await client.get(CONFIGMAPS, "a", namespace)
    assert caught.value.is_not_found


async def test_retry_on_conflict_rereads_and_wins(client: ApiClient, namespace: str) -> None:
    await client.create(CONFIGMAPS, cm("counter"), namespace)

    async def bump() -> None:
        async def attempt() -> dict[str, object]:
            live = await client.get(CONFIGMAPS, "counter", namespace)
            count = int((live.get("data") or {}).get("n", "0"))
            live["data"] = {"n": str(count + 1)}
            return await client.update(CONFIGMAPS, live)

        await client.retry_on_conflict(attempt, retries=50)

    await asyncio.gather(*(bump() for _ in range(10)))
    live = await client.get(CONFIGMAPS, "counter", namespace)
    assert live["data"] == {"n": "10"}


async def test_informer_follows_adds_updates_and_deletes(client: ApiClient, namespace: str) -> None:
    await client.create(CONFIGMAPS, cm("before"), namespace)
    informer = Informer(
        client, CONFIGMAPS, namespace=namespace, indexers={"namespace": by_namespace}
    )
    seen: list[tuple[str, str]] = []
    informer.add_handler(
        EventHandler(
            on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
            on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
            on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])),
        )
    )
    informer.start()
    try:
        await informer.wait_synced()
        assert informer.get(f"{namespace}/before") is not None
        await client.create(CONFIGMAPS, cm("after"), namespace)
        await client.patch(CONFIGMAPS, "after", {"data": {"k": "v"}}, namespace)
        await client.delete(CONFIGMAPS, "before", namespace)

        async def settled() -> None:
            while ("delete", "before") not in seen or ("update", "after") not in seen:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 10)
        assert seen[:2] == [("add", "before"), ("add", "after")]
        assert [o["metadata"]["name"] for o in informer.by_index("namespace", namespace)] == [
            "after"
        ]
    finally:
        await informer.stop()


async def test_informer_outlives_a_server_killed_mid_watch(tmp_path: Path) -> None:
    """A watch stream that breaks off in the middle of a chunked response (the server was
    SIGKILLed) is a connection error like any other: the informer re-lists once the server
    is back, and the program that runs it goes on (an agent once died of exactly this)."""
    server = start_server(tmp_path / "data")
    try:
        api = ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig))
        informer = Informer(api, CONFIGMAPS, namespace="default")
        informer.start()
        try:
            await informer.wait_synced()
            await asyncio.sleep(0.2)  # the watch request is open and streaming
            server.stop(signal.SIGKILL)
            server = await asyncio.to_thread(start_server, server.data_dir, port=server.port)
            await api.create(CONFIGMAPS, cm("after-restart"), "default")

            async def seen() -> None:
                while informer.get("default/after-restart") is None:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(seen(), 30)
        finally:
            await informer.stop()
            await api.close()
    finally:
        server.stop()
