"""The Deployment and ReplicaSet controllers together, in-process, against a real server.

Nothing runs pods here: tests play the node's part by writing pod status (Running + Ready)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from setpoint.client.api import (
    DEPLOYMENTS,
    EVENTS,
    PODS,
    REPLICASETS,
    ApiClient,
    Obj,
)
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.deployment import REVISION, DeploymentController
from setpoint.controllers.replicaset import ReplicaSetController
from tests import objects
from tests.support import eventually


@pytest.fixture
async def controllers(client: ApiClient) -> AsyncIterator[None]:
    informers = SharedInformers(client)
    rsc = ReplicaSetController(informers, EventRecorder(client, "replicaset-controller"))
    dc = DeploymentController(informers, EventRecorder(client, "deployment-controller"))
    informers.start()
    await informers.wait_synced()
    tasks = [asyncio.create_task(rsc.run()), asyncio.create_task(dc.run())]
    yield
    await rsc.stop()
    await dc.stop()
    for task in tasks:
        task.cancel()
    await informers.stop()


def deployment(name: str, replicas: int, *, image: str = "v1", strategy: Obj | None = None) -> Obj:
    """A Deployment of ``replicas`` pods whose container ``c`` runs ``image``."""
    rollout = {} if strategy is None else {"strategy": strategy}
    containers = [objects.container("c", image, command=["sleep"])]
    return objects.deployment(name, containers=containers, replicas=replicas, **rollout)


async def active_pods(client: ApiClient, namespace: str) -> list[Obj]:
    items = (await client.list(PODS, namespace))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def mark_all_ready(client: ApiClient, namespace: str) -> int:
    """Play the node: every active pod not yet Ready becomes Running + Ready."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    marked = 0
    for pod in await active_pods(client, namespace):
        if (pod.get("status") or {}).get("phase") == "Running":
            continue
        pod["status"] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }
        try:
            await client.update_status(PODS, pod)
            marked += 1
        except Exception:
            pass
    return marked


async def get_deploy(client: ApiClient, namespace: str, name: str = "web") -> Obj:
    return await client.get(DEPLOYMENTS, name, namespace)


async def replica_sets(client: ApiClient, namespace: str) -> list[Obj]:
    return list((await client.list(REPLICASETS, namespace))["items"])


def condition(d: Obj, kind: str) -> Obj:
    for c in (d.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


async def wait_available(client: ApiClient, namespace: str, replicas: int) -> Obj:
    async def check() -> Obj | None:
        await mark_all_ready(client, namespace)
        d = await get_deploy(client, namespace)
        st = d.get("status") or {}
        done = (
            st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("replicas") == replicas
            and st.get("updatedReplicas") == replicas
            and st.get("availableReplicas") == replicas
            and condition(d, "Available").get("status") == "True"
            and condition(d, "Progressing").get("reason") == "NewReplicaSetAvailable"
        )
        return d if done else None

    return await eventually(check, timeout=30, what=f"deployment available with {replicas}")


async def test_deployment_creates_owned_replica_set_and_pods(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    created = await client.create(DEPLOYMENTS, deployment("web", 3), namespace)

    async def three() -> list[Obj] | None:
        pods = await active_pods(client, namespace)
        return pods if len(pods) == 3 else None

    pods = await eventually(three, what="3 pods")
    (rs,) = await replica_sets(client, namespace)
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "4"
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["metadata"]["labels"]["pod-template-hash"] == pod_hash
    d = await wait_available(client, namespace, 3)
    assert d["metadata"]["annotations"][REVISION] == "1"
    assert d["status"]["readyReplicas"] == 3
    events = (await client.list(EVENTS, namespace))["items"]
    assert any(
        e["reason"] == "ScalingReplicaSet"
        and e["message"] == f"Scaled up replica set {rs['metadata']['name']} from 0 to 3"
        for e in events
    )


async def test_deleted_pod_is_replaced(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await wait_available(client, namespace, 2)
    victim = (await active_pods(client, namespace))[0]["metadata"]["name"]
    await client.delete(PODS, victim, namespace)

    async def replaced() -> bool:
        names = {p["metadata"]["name"] for p in await active_pods(client, namespace)}
        return len(names) == 2 and victim not in names

    await eventually(replaced, what="replacement pod")
    await wait_available(client, namespace, 2)


async def test_scale_up_and_down(client: ApiClient, namespace: str, controllers: None) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await wait_available(client, namespace, 2)
    await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, namespace)
    await wait_available(client, namespace, 5)
    await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 1}}, namespace)
    await wait_available(client, namespace, 1)
    assert len(await active_pods(client, namespace)) == 1
    (rs,) = await replica_sets(client, namespace)
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"


async def test_template_change_rolls_within_surge_and_unavailable(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    await client.create(DEPLOYMENTS, deployment("web", 3, strategy=strategy), namespace)
    await wait_available(client, namespace, 3)
    await client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}},
        namespace,
        patch_type="application/strategic-merge-patch+json",
    )
    # Never more than replicas + maxSurge pods, never fewer than replicas - maxUnavailable
    # available, while we let pods become ready one step at a time.
    deadline = time.monotonic() + 30
    while True:
        pods = await active_pods(client, namespace)
        assert len(pods) <= 4, [p["metadata"]["name"] for p in pods]
        ready = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        assert len(ready) >= 3
        d = await get_deploy(client, namespace)
        st = d.get("status") or {}
        if (
            st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("updatedReplicas") == 3
            and st.get("replicas") == 3
            and st.get("availableReplicas") == 3
            and condition(d, "Progressing").get("reason") == "NewReplicaSetAvailable"
        ):
            break
        assert time.monotonic() < deadline, st
        await mark_all_ready(client, namespace)
        await asyncio.sleep(0.1)
    sets = await replica_sets(client, namespace)
    assert len(sets) == 2
    by_rev = {rs["metadata"]["annotations"][REVISION]: rs for rs in sets}
    assert by_rev["1"]["spec"]["replicas"] == 0
    assert by_rev["2"]["spec"]["replicas"] == 3
    assert by_rev["2"]["spec"]["template"]["spec"]["containers"][0]["image"] == "v2"
    assert d["metadata"]["annotations"][REVISION] == "2"


async def test_rollback_by_template_patch_reuses_old_replica_set(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await wait_available(client, namespace, 2)
    (first,) = await replica_sets(client, namespace)
    template_v1 = first["spec"]["template"]
    await client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}},
        namespace,
        patch_type="application/strategic-merge-patch+json",
    )
    await wait_available(client, namespace, 2)
    # what `kubectl rollout undo` does: put revision 1's template back (without the hash)
    restored = {**template_v1, "metadata": {"labels": {"app": "web"}}}
    await client.patch(
        DEPLOYMENTS,
        "web",
        [{"op": "replace", "path": "/spec/template", "value": restored}],
        namespace,
        patch_type="application/json-patch+json",
    )
    d = await wait_available(client, namespace, 2)
    sets = {rs["metadata"]["name"]: rs for rs in await replica_sets(client, namespace)}
    assert len(sets) == 2
    reused = sets[first["metadata"]["name"]]
    assert reused["metadata"]["uid"] == first["metadata"]["uid"]
    assert reused["spec"]["replicas"] == 2
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert d["metadata"]["annotations"][REVISION] == "3"


async def test_recreate_scales_old_to_zero_before_new(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 2, strategy={"type": "Recreate"}), namespace)
    await wait_available(client, namespace, 2)
    old_names = {p["metadata"]["name"] for p in await active_pods(client, namespace)}
    await client.patch(
        DEPLOYMENTS,
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}},
        namespace,
        patch_type="application/strategic-merge-patch+json",
    )
    deadline = time.monotonic() + 30
    while True:
        pods = await active_pods(client, namespace)
        names = {p["metadata"]["name"] for p in pods}
        # old and new pods never coexist
        assert not (names & old_names and names - old_names), names
        if len(names) == 2 and not names & old_names:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await wait_available(client, namespace, 2)


async def test_paused_deployment_does_not_roll_but_scales(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 2), namespace)
    await wait_available(client, namespace, 2)
    await client.patch(DEPLOYMENTS, "web", {"spec": {"paused": True}}, namespace)

    async def paused() -> bool:
        d = await get_deploy(client, namespace)
        return condition(d, "Progressing").get("reason") == "DeploymentPaused"

    await eventually(paused, what="paused condition")
    await client.patch(
        DEPLOYMENTS,
        "web",
        {
            "spec": {
                "replicas": 3,
                "template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}},
            }
        },
        namespace,
        patch_type="application/strategic-merge-patch+json",
    )

    async def scaled() -> bool:
        sets = await replica_sets(client, namespace)
        return len(sets) == 1 and sets[0]["spec"]["replicas"] == 3

    await eventually(scaled, what="scaled while paused, no new ReplicaSet")
    await client.patch(DEPLOYMENTS, "web", {"spec": {"paused": False}}, namespace)
    await wait_available(client, namespace, 3)
    assert len(await replica_sets(client, namespace)) == 2
