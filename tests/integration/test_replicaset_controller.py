"""The ReplicaSet controller, in-process, against a real server (no other controllers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from setpoint.client.api import EVENTS, PODS, REPLICASETS, REPLICATIONCONTROLLERS, ApiClient, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.replicaset import (
    REPLICA_SET,
    REPLICATION_CONTROLLER,
    ReplicaSetController,
    ReplicatedKind,
)
from tests import objects
from tests.support import eventually

T = TypeVar("T")


async def running(
    client: ApiClient, kind: ReplicatedKind, component: str
) -> AsyncIterator[ReplicaSetController]:
    informers = SharedInformers(client)
    ctrl = ReplicaSetController(informers, EventRecorder(client, component), kind=kind)
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(ctrl.run())
    yield ctrl
    await ctrl.stop()
    task.cancel()
    await informers.stop()


@pytest.fixture
async def controller(client: ApiClient) -> AsyncIterator[ReplicaSetController]:
    async for ctrl in running(client, REPLICA_SET, "replicaset-controller"):
        yield ctrl


def replica_set(name: str, replicas: int) -> Obj:
    """A ReplicaSet of ``replicas`` pods labelled ``app: web`` and annotated ``note: x``."""
    template = objects.pod_template(
        {"app": "web"},
        annotations={"note": "x"},
        containers=[objects.container("c", command=["sleep"])],
    )
    return objects.replica_set(
        name, pod_labels={"app": "web"}, template=template, replicas=replicas
    )


async def active_pods(client: ApiClient, namespace: str) -> list[Obj]:
    items = (await client.list(PODS, namespace))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def mark_ready(client: ApiClient, pod: Obj) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pod = await client.get(PODS, pod["metadata"]["name"], pod["metadata"]["namespace"])
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }
    await client.update_status(PODS, pod)


async def test_creates_pods_with_owner_references(
    client: ApiClient, namespace: str, controller: ReplicaSetController
) -> None:
    rs = await client.create(REPLICASETS, replica_set("web", 3), namespace)

    async def three() -> list[Obj] | None:
        pods = await active_pods(client, namespace)
        return pods if len(pods) == 3 else None

    pods = await eventually(three, what="3 pods")
    for pod in pods:
        assert pod["metadata"]["name"].startswith("web-")
        assert len(pod["metadata"]["name"]) == len("web-") + 5
        assert pod["metadata"]["labels"] == {"app": "web"}
        assert pod["metadata"]["annotations"] == {"note": "x"}
        (ref,) = pod["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": rs["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    await asyncio.sleep(0.5)  # expectations: no over-creation once the cache catches up
    assert len(await active_pods(client, namespace)) == 3

    async def status() -> bool:
        live = await client.get(REPLICASETS, "web", namespace)
        st = live.get("status") or {}
        return st.get("replicas") == 3 and st.get("observedGeneration") == 1

    await eventually(status, what="status replicas 3")
    events = (await client.list(EVENTS, namespace))["items"]
    assert sum(e["reason"] == "SuccessfulCreate" for e in events) == 3


async def test_ready_pods_are_counted_in_status(
    client: ApiClient, namespace: str, controller: ReplicaSetController
) -> None:
    await client.create(REPLICASETS, replica_set("web", 2), namespace)
    pods = await eventually(lambda: _count(client, namespace, 2), what="2 pods")
    for pod in pods:
        await mark_ready(client, pod)

    async def ready() -> bool:
        st = (await client.get(REPLICASETS, "web", namespace)).get("status") or {}
        return (
            st.get("readyReplicas") == 2
            and st.get("availableReplicas") == 2
            and st.get("fullyLabeledReplicas") == 2
        )

    await eventually(ready, what="ready/available 2")


async def _count(client: ApiClient, namespace: str, n: int) -> list[Obj] | None:
    pods = await active_pods(client, namespace)
    return pods if len(pods) == n else None


async def test_deleted_pod_is_replaced_with_new_name(
    client: ApiClient, namespace: str, controller: ReplicaSetController
) -> None:
    await client.create(REPLICASETS, replica_set("web", 2), namespace)
    pods = await eventually(lambda: _count(client, namespace, 2), what="2 pods")
    victim = pods[0]["metadata"]["name"]
    await client.delete(PODS, victim, namespace)

    async def replaced() -> bool:
        names = {p["metadata"]["name"] for p in await active_pods(client, namespace)}
        return len(names) == 2 and victim not in names

    await eventually(replaced, what="replacement pod")


async def test_scale_down_deletes_unready_pods_first(
    client: ApiClient, namespace: str, controller: ReplicaSetController
) -> None:
    await client.create(REPLICASETS, replica_set("web", 3), namespace)
    pods = await eventually(lambda: _count(client, namespace, 3), what="3 pods")
    ready_names = {p["metadata"]["name"] for p in pods[:2]}
    for pod in pods[:2]:
        await mark_ready(client, pod)
    await eventually(lambda: _ready_count(client, namespace, 2), what="2 ready in status")
    await client.patch(REPLICASETS, "web", {"spec": {"replicas": 2}}, namespace)

    async def scaled() -> bool:
        names = {p["metadata"]["name"] for p in await active_pods(client, namespace)}
        return names == ready_names

    await eventually(scaled, what="unready pod deleted")


async def _ready_count(client: ApiClient, namespace: str, n: int) -> bool:
    st = (await client.get(REPLICASETS, "web", namespace)).get("status") or {}
    return bool(st.get("readyReplicas") == n)


async def test_adopts_orphans_and_releases_non_matching(
    client: ApiClient, namespace: str, controller: ReplicaSetController
) -> None:
    await client.create(PODS, objects.pod("stray", labels={"app": "web"}), namespace)
    rs = await client.create(REPLICASETS, replica_set("web", 2), namespace)

    async def adopted() -> bool:
        pod = await client.get(PODS, "stray", namespace)
        refs = pod["metadata"].get("ownerReferences") or []
        return any(r["uid"] == rs["metadata"]["uid"] and r.get("controller") for r in refs)

    await eventually(adopted, what="orphan adopted")
    await eventually(lambda: _count(client, namespace, 2), what="only one pod created")
    await client.patch(PODS, "stray", {"metadata": {"labels": {"app": "other"}}}, namespace)

    async def released() -> bool:
        pod = await client.get(PODS, "stray", namespace)
        return not pod["metadata"].get("ownerReferences")

    await eventually(released, what="pod released")
    await eventually(lambda: _count(client, namespace, 3), what="a replacement for the release")


# ------------------------------------------------------------ ReplicationControllers


@pytest.fixture
async def rc_controller(client: ApiClient) -> AsyncIterator[ReplicaSetController]:
    async for ctrl in running(client, REPLICATION_CONTROLLER, "replication-controller"):
        yield ctrl


async def test_replication_controller_runs_its_pods_like_a_replica_set(
    client: ApiClient, namespace: str, rc_controller: ReplicaSetController
) -> None:
    template = objects.pod_template(
        {"app": "old"}, containers=[objects.container("c", command=["sleep"])]
    )
    rc = {"kind": "ReplicationController", "metadata": {"name": "old"}}
    rc["spec"] = {"replicas": 2, "template": template}  # selector and labels defaulted
    created = await client.create(REPLICATIONCONTROLLERS, rc, namespace)
    assert created["spec"]["selector"] == {"app": "old"}
    assert created["metadata"]["labels"] == {"app": "old"}

    pods = await eventually(lambda: _count(client, namespace, 2), what="2 pods")
    for pod in pods:
        (ref,) = pod["metadata"]["ownerReferences"]
        assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
            "v1",
            "ReplicationController",
            "old",
        )
        await mark_ready(client, pod)

    async def ready() -> bool:
        live = await client.get(REPLICATIONCONTROLLERS, "old", namespace)
        st = live.get("status") or {}
        return st.get("readyReplicas") == 2 and st.get("observedGeneration") == 1

    await eventually(ready, what="RC status: 2 ready")
    await client.patch(REPLICATIONCONTROLLERS, "old", {"spec": {"replicas": 1}}, namespace)
    await eventually(lambda: _count(client, namespace, 1), what="scaled down to 1")
    events = (await client.list(EVENTS, namespace))["items"]
    sources = {e["source"].get("component") for e in events if e["reason"] == "SuccessfulCreate"}
    assert sources == {"replication-controller"}
