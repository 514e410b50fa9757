"""The namespace controller in-process against a real server: a deleted namespace is
emptied, reports what remains in its conditions, and is then finalized away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest

from setpoint.client.api import (
    CONFIGMAPS,
    NAMESPACES,
    PODS,
    ApiClient,
    ApiError,
    Resource,
)
from setpoint.client.discovery import Discovered, server_preferred_resources
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.namespace import NamespaceController, namespace_content
from tests import objects
from tests.integration.samples import sample
from tests.support import Kubectl, Server, eventually

Obj = dict[str, Any]
T = TypeVar("T")


@pytest.fixture
async def controller(client: ApiClient) -> AsyncIterator[NamespaceController]:
    informers = SharedInformers(client)
    ctrl = NamespaceController(
        informers, EventRecorder(client, "test-namespace"), recheck_interval=0.2
    )
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(ctrl.run())
    yield ctrl
    await ctrl.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await informers.stop()


@pytest.fixture
async def doomed(client: ApiClient) -> str:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, objects.namespace(name))
    return name


async def namespace_or_none(client: ApiClient, name: str) -> Obj | None:
    try:
        return await client.get(NAMESPACES, name)
    except ApiError as exc:
        if exc.is_not_found:
            return None
        raise


def condition(ns: Obj, kind: str) -> Obj:
    for cond in (ns.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


async def bind(client: ApiClient, namespace: str, name: str) -> None:
    await client.request(
        "POST", PODS.path(namespace, name, "binding"), body=objects.binding(name, "node-a")
    )


async def test_kubectl_delete_namespace_removes_content_then_namespace(
    controller: NamespaceController, client: ApiClient, server: Server, doomed: str
) -> None:
    for i in range(3):
        await client.create(CONFIGMAPS, objects.configmap(f"cm-{i}"), doomed)
    kubectl = Kubectl(server)
    await asyncio.to_thread(kubectl, "delete", "namespace", doomed, "--timeout=30s")
    assert await namespace_or_none(client, doomed) is None
    listing = await client.list(CONFIGMAPS, doomed)
    assert listing["items"] == []


async def test_remaining_content_is_reported_in_conditions_until_it_is_gone(
    controller: NamespaceController, client: ApiClient, doomed: str
) -> None:
    # two pods bound to a node terminate gracefully: they stay until their node confirms
    for name in ("p-0", "p-1"):
        pod = objects.pod(name, containers=[objects.container("c", command=["sleep", "9"])])
        await client.create(PODS, pod, doomed)
        await bind(client, doomed, name)
    await client.create(CONFIGMAPS, objects.configmap("cm"), doomed)
    await client.delete(NAMESPACES, doomed)

    async def pods_reported() -> Obj | None:
        ns = await namespace_or_none(client, doomed)
        assert ns is not None
        cond = condition(ns, "NamespaceContentRemaining")
        return cond if cond.get("status") == "True" else None

    cond = await eventually(pods_reported, what="NamespaceContentRemaining=True")
    assert cond["reason"] == "SomeResourcesRemain"
    assert cond["message"] == "Some resources are remaining: pods. has 2 resource instances"
    ns = await client.get(NAMESPACES, doomed)
    assert ns["status"]["phase"] == "Terminating"
    assert condition(ns, "NamespaceDeletionContentFailure")["status"] == "False"
    assert condition(ns, "NamespaceDeletionDiscoveryFailure")["status"] == "False"
    assert condition(ns, "NamespaceDeletionGroupVersionParsingFailure")["status"] == "False"
    # pods go first: the configmap waits for them
    assert (await client.get(CONFIGMAPS, "cm", doomed))["metadata"]["name"] == "cm"
    for name in ("p-0", "p-1"):
        pending = await client.get(PODS, name, doomed)
        assert pending["metadata"]["deletionTimestamp"]

    # the node confirms the pods are gone (what an agent does after SIGKILL)
    for name in ("p-0", "p-1"):
        await client.delete(PODS, name, doomed, grace_period_seconds=0)

    async def namespace_gone() -> bool:
        return await namespace_or_none(client, doomed) is None

    await eventually(namespace_gone, what="the namespace to be removed")
    assert (await client.list(CONFIGMAPS, doomed))["items"] == []


async def test_finalizers_on_content_hold_the_namespace(
    controller: NamespaceController, client: ApiClient, doomed: str
) -> None:
    holding = objects.configmap("held", metadata={"finalizers": ["example.com/hold"]})
    await client.create(CONFIGMAPS, holding, doomed)
    await client.delete(NAMESPACES, doomed)

    async def finalizers_reported() -> Obj | None:
        ns = await namespace_or_none(client, doomed)
        assert ns is not None
        cond = condition(ns, "NamespaceFinalizersRemaining")
        return cond if cond.get("status") == "True" else None

    cond = await eventually(finalizers_reported, what="NamespaceFinalizersRemaining=True")
    assert cond["reason"] == "SomeFinalizersRemain"
    assert cond["message"] == (
        "Some content in the namespace has finalizers remaining: "
        "example.com/hold in 1 resource instances"
    )
    held = await client.get(CONFIGMAPS, "held", doomed)
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == ["example.com/hold"]

    await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, doomed)

    async def namespace_gone() -> bool:
        return await namespace_or_none(client, doomed) is None

    await eventually(namespace_gone, what="the namespace to be removed")


async def test_namespace_not_being_deleted_is_left_alone(
    controller: NamespaceController, client: ApiClient, doomed: str
) -> None:
    await client.create(CONFIGMAPS, objects.configmap("keep"), doomed)
    await asyncio.sleep(0.5)
    ns = await client.get(NAMESPACES, doomed)
    assert not (ns.get("status") or {}).get("conditions")
    assert (await client.get(CONFIGMAPS, "keep", doomed))["metadata"]["name"] == "keep"


# ------------------------------------------------------------- what discovery names


def sample_name(resource: Resource) -> str:
    return f"s-{resource.plural}-{resource.group.replace('.', '-') or 'core'}"


async def test_every_served_namespaced_kind_is_emptied(
    controller: NamespaceController, client: ApiClient, doomed: str
) -> None:
    """No hand list: whatever namespaced kind the server serves (here Leases, both kinds of
    Events, Secrets, ServiceAccounts, ConfigMaps, Pods and the workload kinds) is emptied."""
    discovered = await server_preferred_resources(client)
    content = [r.resource for r in namespace_content(discovered.resources)]
    assert {(r.group, r.plural) for r in content} >= {
        ("", "pods"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("", "events"),
        ("events.k8s.io", "events"),
        ("coordination.k8s.io", "leases"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    }
    for resource in content:
        await client.create(resource, sample(resource, sample_name(resource), doomed))
    await client.delete(NAMESPACES, doomed)

    async def namespace_gone() -> bool:
        return await namespace_or_none(client, doomed) is None

    await eventually(namespace_gone, what="the namespace to be removed")
    for resource in content:
        assert (await client.list(resource, doomed))["items"] == [], resource


async def test_a_namespace_is_not_finalized_while_discovery_fails(
    client: ApiClient, doomed: str
) -> None:
    """A group discovery cannot read may hide content: the namespace says so and waits; the
    next pass reads discovery again and, once it answers in full, empties and finalizes."""
    broken = True

    async def discover() -> Discovered:
        found = await server_preferred_resources(client)
        if not broken:
            return found
        kept = tuple(r for r in found.resources if r.resource.group != "")
        return Discovered(kept, {"v1": "503 ServiceUnavailable: unavailable"})

    informers = SharedInformers(client)
    ctrl = NamespaceController(
        informers, EventRecorder(client, "test-namespace"), recheck_interval=0.2, discover=discover
    )
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(ctrl.run())
    try:
        await client.create(CONFIGMAPS, objects.configmap("hidden"), doomed)
        await client.delete(NAMESPACES, doomed)

        async def discovery_failure_reported() -> Obj | None:
            ns = await namespace_or_none(client, doomed)
            assert ns is not None
            cond = condition(ns, "NamespaceDeletionDiscoveryFailure")
            return cond if cond.get("status") == "True" else None

        cond = await eventually(discovery_failure_reported, what="DiscoveryFailure=True")
        assert cond["reason"] == "DiscoveryFailed"
        assert cond["message"] == (
            "Discovery failed for some groups, 1 failing: unable to retrieve the complete "
            "list of server APIs: v1: 503 ServiceUnavailable: unavailable"
        )
        await asyncio.sleep(0.5)  # several passes: still there, and so is its content
        assert await namespace_or_none(client, doomed) is not None
        assert (await client.get(CONFIGMAPS, "hidden", doomed))["metadata"]["name"] == "hidden"

        broken = False

        async def namespace_gone() -> bool:
            return await namespace_or_none(client, doomed) is None

        await eventually(namespace_gone, what="the namespace to be removed")
        assert (await client.list(CONFIGMAPS, doomed))["items"] == []
    finally:
        await ctrl.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
