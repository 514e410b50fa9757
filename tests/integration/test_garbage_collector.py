"""The garbage collector in-process against a real server: the three propagation policies
and dangling ownerReferences, with ConfigMaps as owners and dependents; then every kind
discovery names, as an owner and as a dependent, and a kind discovered later."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from setpoint.client.api import (
    CONFIGMAPS,
    NODES,
    SECRETS,
    ApiClient,
    ApiError,
    Resource,
)
from setpoint.client.discovery import Discovered, server_preferred_resources
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.garbagecollector import GarbageCollector, followed_resources
from setpoint.controllers.namespace import NamespaceController
from tests.integration.samples import reference_to, sample
from tests.support import eventually

Obj = dict[str, Any]


@pytest.fixture
async def gc(client: ApiClient) -> AsyncIterator[GarbageCollector]:
    informers = SharedInformers(client)
    collector = GarbageCollector(informers, EventRecorder(client, "test-gc"))
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
    collector = GarbageCollector(informers, EventRecorder(client, "test-gc"))
    informers.start()
    task = asyncio.create_task(collector.run())
    try:
        await eventually(lambda: gone(client, namespace, "dep"), what="the dependent to go")
    finally:
        await collector.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()


# ------------------------------------------------------------- what discovery names


async def being_deleted_or_gone(client: ApiClient, resource: Resource, obj: Obj) -> bool:
    meta = obj["metadata"]
    try:
        live = await client.get(resource, meta["name"], meta.get("namespace"))
    except ApiError as exc:
        if exc.is_not_found:
            return True
        raise
    return live["metadata"].get("uid") != meta["uid"] or bool(
        live["metadata"].get("deletionTimestamp")
    )


async def followed(client: ApiClient) -> list[Resource]:
    discovered = await server_preferred_resources(client)
    resources = followed_resources(discovered.resources)
    assert {(r.group, r.plural) for r in resources} >= {
        ("", "pods"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("coordination.k8s.io", "leases"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    }
    return resources


def unique(resource: Resource, role: str) -> str:
    group = resource.group.replace(".", "-") or "core"
    return f"{role}-{resource.plural}-{group}-{uuid.uuid4().hex[:6]}"


async def test_dependents_of_every_followed_kind_are_collected(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    """Whatever kind a dependent is, the collector follows it (no hand list) and deletes it
    once its owner is gone: namespaced ones owned by a ConfigMap, cluster-scoped ones (a
    namespaced owner cannot own them) by a Node."""
    cm_owner = await make_cm(client, namespace, "owner")
    node_owner = await client.create(NODES, sample(NODES, unique(NODES, "owner")))
    dependents = []
    for resource in await followed(client):
        owner, owner_resource = (
            (cm_owner, CONFIGMAPS) if resource.namespaced else (node_owner, NODES)
        )
        body = sample(
            resource,
            unique(resource, "dep"),
            namespace,
            owners=[reference_to(owner_resource, owner)],
        )
        dependents.append((resource, await client.create(resource, body)))
    await client.delete(CONFIGMAPS, "owner", namespace)
    await client.delete(NODES, node_owner["metadata"]["name"])

    async def all_collected() -> list[str] | None:
        left = [
            f"{resource.plural}/{obj['metadata']['name']}"
            for resource, obj in dependents
            if not await being_deleted_or_gone(client, resource, obj)
        ]
        return None if left else ["done"]

    await eventually(all_collected, what="every dependent to be deleted")


async def test_dependents_of_an_owner_of_every_followed_kind_are_collected(
    gc: GarbageCollector, client: ApiClient, namespace: str
) -> None:
    """Whatever kind an owner is, its dependents go once it is gone (a Namespace owner is
    gone once the namespace controller has emptied and finalized it)."""
    namespaces = NamespaceController(
        gc.informers, EventRecorder(client, "test-namespace"), recheck_interval=0.2
    )
    task = asyncio.create_task(namespaces.run())
    try:
        owners = []
        for resource in await followed(client):
            name = unique(resource, "owner")
            owner = await client.create(resource, sample(resource, name, namespace))
            dependent = await make_cm(
                client, namespace, unique(resource, "dep"), [reference_to(resource, owner)]
            )
            owners.append((resource, owner, dependent))
        for resource, owner, _ in owners:
            meta = owner["metadata"]
            await client.delete(resource, meta["name"], meta.get("namespace"))

        async def all_collected() -> list[str] | None:
            left = [
                f"dependent of {resource.plural}"
                for resource, _, dependent in owners
                if not await being_deleted_or_gone(client, CONFIGMAPS, dependent)
            ]
            return None if left else ["done"]

        await eventually(all_collected, what="the dependents of every owner to be deleted")
    finally:
        await namespaces.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_kind_discovered_later_is_followed(client: ApiClient, namespace: str) -> None:
    """Discovery is read again every resync period: a kind the server starts serving (here:
    one discovery did not report at first) is followed from then on."""
    visible = {"configmaps"}

    async def discover() -> Discovered:
        found = await server_preferred_resources(client)
        return Discovered(
            tuple(r for r in found.resources if r.resource.plural in visible), found.failed
        )

    informers = SharedInformers(client)
    collector = GarbageCollector(
        informers, EventRecorder(client, "test-gc"), discover=discover, resync_period=0.2
    )
    informers.start()
    task = asyncio.create_task(collector.run())
    try:
        owner = await make_cm(client, namespace, "owner")
        secret = sample(SECRETS, "dep", namespace, owners=[owned_by(owner)])
        await client.create(SECRETS, secret)
        await client.delete(CONFIGMAPS, "owner", namespace)
        await asyncio.sleep(0.6)  # several resyncs: secrets are not served (as far as it knows)
        assert (await client.get(SECRETS, "dep", namespace))["metadata"]["name"] == "dep"

        visible.add("secrets")

        async def secret_gone() -> bool:
            try:
                await client.get(SECRETS, "dep", namespace)
            except ApiError as exc:
                return exc.is_not_found
            return False

        await eventually(secret_gone, what="the dependent Secret to be deleted")
        assert SECRETS in collector.followed
    finally:
        await collector.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
