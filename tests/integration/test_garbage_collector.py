"""The garbage collector in-process against a real server: the three propagation policies
and dangling ownerReferences, with ConfigMaps as owners and dependents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from setpoint.client.api import (
    CONFIGMAPS,
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    ApiClient,
    ApiError,
)
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.garbagecollector import GarbageCollector
from tests.support import eventually

Obj = dict[str, Any]


@pytest.fixture
async def gc(client: ApiClient) -> AsyncIterator[GarbageCollector]:
    informers = SharedInformers(client)
    collector = GarbageCollector(
        informers,
        EventRecorder(client, "test-gc"),
        resources=[CONFIGMAPS, PODS, REPLICASETS, DEPLOYMENTS],
    )
    informers.start()
    task = asyncio.create_task(collector.run())
    yield collector
    await collector.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await informers.stop()


async def make_cm(
    client: ApiClient, namespace: str, name: str, owners: list[Obj] | None = None
) -> Obj:
    meta: Obj = {"name": name}
    if owners:
        meta["ownerReferences"] = owners
    return await client.create(
        CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}, namespace
    )


def owned_by(owner: Obj, *, block: bool = True) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }


async def exists(client: ApiClient, namespace: str, name: str) -> Obj | None:
    try:
        return await client.get(CONFIGMAPS, name, namespace)
    except ApiError as exc:
        if exc.is_not_found:
            return None
        raise


async def gone(client: ApiClient, namespace: str, *names: str) -> bool:
    return all([await exists(client, namespace, n) is None for n in names])


async def test_background_deletion_removes_dependents(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    owner = await make_cm(client, namespace, "owner")
    for i in range(3):
        await make_cm(client, namespace, f"dep-{i}", [owned_by(owner)])
    await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Background")

    async def dependents_gone() -> bool:
        return await gone(client, namespace, "dep-0", "dep-1", "dep-2")

    await eventually(dependents_gone, what="dependents to be collected")


async def test_dependent_with_another_live_owner_survives_and_loses_the_dead_reference(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    first = await make_cm(client, namespace, "first")
    second = await make_cm(client, namespace, "second")
    await make_cm(client, namespace, "shared", [owned_by(first), owned_by(second)])
    await client.delete(CONFIGMAPS, "first", namespace, propagation_policy="Background")

    async def only_second_left() -> bool:
        live = await exists(client, namespace, "shared")
        assert live is not None, "a dependent with a live owner was deleted"
        refs = live["metadata"].get("ownerReferences") or []
        return [r["uid"] for r in refs] == [second["metadata"]["uid"]]

    await eventually(only_second_left, what="the dangling reference to be removed")


async def test_foreground_deletion_waits_for_blocking_dependents(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    owner = await make_cm(client, namespace, "owner")
    # the dependent is held by someone else's finalizer, so the owner must wait for it
    await client.create(
        CONFIGMAPS,
        {
            "metadata": {
                "name": "held",
                "ownerReferences": [owned_by(owner)],
                "finalizers": ["example.com/hold"],
            }
        },
        namespace,
    )
    await make_cm(client, namespace, "free", [owned_by(owner)])
    await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Foreground")

    async def held_is_deleting() -> bool:
        live = await exists(client, namespace, "held")
        return bool(live and live["metadata"].get("deletionTimestamp"))

    await eventually(held_is_deleting, what="the blocking dependent to be deleted")
    await eventually(lambda: gone(client, namespace, "free"), what="the free dependent to go")
    # the owner waits, marked, while a blocking dependent remains
    await asyncio.sleep(0.3)
    live_owner = await exists(client, namespace, "owner")
    assert live_owner is not None
    assert live_owner["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert live_owner["metadata"]["deletionTimestamp"]

    # whoever owns the other finalizer lets go: then the owner follows
    await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, namespace)
    await eventually(lambda: gone(client, namespace, "held", "owner"), what="the owner to go")


async def test_foreground_deletion_cascades_through_grandchildren(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    root = await make_cm(client, namespace, "root")
    child = await make_cm(client, namespace, "child", [owned_by(root)])
    await make_cm(client, namespace, "grandchild", [owned_by(child)])
    await client.delete(CONFIGMAPS, "root", namespace, propagation_policy="Foreground")
    await eventually(
        lambda: gone(client, namespace, "root", "child", "grandchild"),
        what="the whole tree to be deleted",
    )


async def test_foreground_owner_without_blocking_dependents_goes_at_once(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    owner = await make_cm(client, namespace, "owner")
    await make_cm(client, namespace, "loose", [owned_by(owner, block=False)])
    await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Foreground")
    await eventually(lambda: gone(client, namespace, "owner", "loose"), what="both to go")


async def test_orphan_deletion_keeps_dependents_without_the_reference(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    owner = await make_cm(client, namespace, "owner")
    other = await make_cm(client, namespace, "other")
    await make_cm(client, namespace, "dep-0", [owned_by(owner)])
    await make_cm(client, namespace, "dep-1", [owned_by(owner), owned_by(other)])
    await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Orphan")

    await eventually(lambda: gone(client, namespace, "owner"), what="the owner to go")
    dep0 = await exists(client, namespace, "dep-0")
    dep1 = await exists(client, namespace, "dep-1")
    assert dep0 is not None and dep1 is not None
    assert not dep0["metadata"].get("ownerReferences")
    assert [r["uid"] for r in dep1["metadata"]["ownerReferences"]] == [other["metadata"]["uid"]]
    # and they stay
    await asyncio.sleep(0.3)
    assert await exists(client, namespace, "dep-0") is not None


async def test_collector_never_removes_finalizers_it_does_not_own(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    await client.create(
        CONFIGMAPS,
        {"metadata": {"name": "owner", "finalizers": ["example.com/hold"]}},
        namespace,
    )
    await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Orphan")

    async def orphan_finalizer_removed() -> bool:
        live = await exists(client, namespace, "owner")
        return live is not None and live["metadata"]["finalizers"] == ["example.com/hold"]

    await eventually(orphan_finalizer_removed, what="only the orphan finalizer to be removed")


async def test_reference_to_an_owner_that_never_existed_is_collected(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "ghost",
        "uid": "00000000-0000-0000-0000-000000000000",
    }
    await make_cm(client, namespace, "haunted", [ghost])
    await eventually(lambda: gone(client, namespace, "haunted"), what="the dependent to go")


async def test_reference_to_a_recreated_owner_with_another_uid_is_dangling(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    await make_cm(client, namespace, "owner")
    stale = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": "11111111-1111-1111-1111-111111111111",
    }
    await make_cm(client, namespace, "dep", [stale])
    await eventually(lambda: gone(client, namespace, "dep"), what="the dependent to go")
    assert await exists(client, namespace, "owner") is not None


async def test_owner_of_unfollowed_kind_keeps_its_dependents(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    await make_cm(
        client,
        namespace,
        "dep",
        [{"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w-uid"}],
    )
    await asyncio.sleep(0.5)
    assert await exists(client, namespace, "dep") is not None


async def test_dependents_of_an_owner_deleted_while_collector_was_down_are_collected(
    client: ApiClient, namespace: str
) -> None:
    owner = await make_cm(client, namespace, "owner")
    await make_cm(client, namespace, "dep", [owned_by(owner)])
    await client.delete(CONFIGMAPS, "owner", namespace)
    assert await exists(client, namespace, "dep") is not None
    informers = SharedInformers(client)
    collector = GarbageCollector(
        informers, EventRecorder(client, "test-gc"), resources=[CONFIGMAPS]
    )
    informers.start()
    task = asyncio.create_task(collector.run())
    try:
        await eventually(lambda: gone(client, namespace, "dep"), what="the dependent to go")
    finally:
        await collector.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
