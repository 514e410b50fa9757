"""The StatefulSet controller with the scheduler and hollow nodes, in-process, against a server
of its own: ordered creation and removal, recreation under the same name, claims from
templates, rolling updates from the top down to the partition, OnDelete, Parallel, history.

Pods start ``START_DELAY`` seconds after they are bound (a hollow node's start delay), so
that the order in which they appear is the controller's, not the scheduler's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.client.api import (
    CONTROLLERREVISIONS,
    EVENTS,
    NAMESPACES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    STATEFULSETS,
    ApiClient,
    ClientConfig,
)
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.statefulset import StatefulSetController
from setpoint.controllers.util.history import HASH_LABEL
from setpoint.meta.timestamps import parse_time
from setpoint.scheduler.scheduler import Scheduler
from setpoint.sim.hollow import ANNOTATION_START_DELAY, HollowNodes
from tests import objects
from tests.support import Server, eventually, start_server

Obj = dict[str, Any]
START_DELAY = "0.3"


@pytest.fixture(scope="module")
def sts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(Path(tmp_path_factory.mktemp("statefulset")) / "data")
    yield srv
    assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
async def client(sts_server: Server) -> AsyncIterator[ApiClient]:
    api = ApiClient(ClientConfig.from_kubeconfig(sts_server.kubeconfig))
    yield api
    await api.close()


@pytest.fixture
async def ns(client: ApiClient) -> str:
    name = f"sts-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, objects.namespace(name))
    return name


@pytest.fixture
async def nodes(client: ApiClient) -> AsyncIterator[HollowNodes]:
    hollow = HollowNodes(client, count=2, name_prefix=f"sts-{uuid.uuid4().hex[:6]}")
    task = asyncio.create_task(hollow.run())
    await hollow.wait_ready()
    yield hollow
    await hollow.stop()
    await task
    for name in hollow.names:
        await client.delete(NODES, name)


@pytest.fixture
async def controllers(
    client: ApiClient, nodes: HollowNodes
) -> AsyncIterator[StatefulSetController]:
    informers = SharedInformers(client)
    ssc = StatefulSetController(informers, EventRecorder(client, "statefulset-controller"))
    sched = Scheduler(informers, EventRecorder(client, "default-scheduler"), seed=7)
    informers.start()
    await informers.wait_synced()
    tasks = [asyncio.create_task(ssc.run()), asyncio.create_task(sched.run())]
    yield ssc
    await ssc.stop()
    await sched.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await informers.stop()


def stateful_set(name: str = "web", *, image: str = "v1", **spec: Any) -> Obj:
    containers = [objects.container("c", image, command=["sleep", "3600"])]
    template = objects.pod_template({"app": name}, containers=containers)
    template["metadata"]["annotations"] = {ANNOTATION_START_DELAY: START_DELAY}
    spec.setdefault("serviceName", name)
    return objects.stateful_set(name, template=template, **spec)


async def live_pods(client: ApiClient, ns: str) -> dict[str, Obj]:
    items = (await client.list(PODS, ns))["items"]
    return {p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")}


async def settled(client: ApiClient, ns: str, count: int, name: str = "web") -> Obj | None:
    """The set's status once ``count`` pods are ready and of the update revision."""
    sts = await client.get(STATEFULSETS, name, ns)
    st = sts.get("status") or {}
    if st.get("observedGeneration") != sts["metadata"]["generation"]:
        return None
    want = ("replicas", "readyReplicas", "updatedReplicas", "currentReplicas")
    if any(st.get(k, 0) != count for k in want) or st.get("currentRevision") != st.get(
        "updateRevision"
    ):
        return None
    if len(await live_pods(client, ns)) != count:
        return None
    return st


def created_at(pod: Obj) -> float:
    moment = parse_time(pod["metadata"]["creationTimestamp"])
    assert moment is not None
    return moment.timestamp()


async def event_messages(client: ApiClient, ns: str, reason: str) -> list[str]:
    items = (await client.list(EVENTS, ns))["items"]
    ordered = sorted(items, key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [e["message"] for e in ordered if e["reason"] == reason]


async def test_pods_come_up_in_ordinal_order_with_their_identity(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    await client.create(STATEFULSETS, stateful_set(replicas=3), ns)
    st = await eventually(lambda: settled(client, ns, 3), timeout=60, what="3 ready pods")
    pods = await live_pods(client, ns)
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    assert created_at(pods["web-0"]) <= created_at(pods["web-1"]) <= created_at(pods["web-2"])
    for index, name in enumerate(["web-0", "web-1", "web-2"]):
        pod = pods[name]
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == str(index)
        assert labels[HASH_LABEL] == st["updateRevision"]
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "web"
        # each pod was created only once its predecessor was ready
        if index:
            before = pods[f"web-{index - 1}"]
            ready = next(c for c in before["status"]["conditions"] if c["type"] == "Ready")
            assert parse_time(ready["lastTransitionTime"]).timestamp() <= created_at(pod)
    created = await event_messages(client, ns, "SuccessfulCreate")
    assert created == [f"create Pod web-{i} in StatefulSet web successful" for i in range(3)]
    assert st["availableReplicas"] == 3 and st["collisionCount"] == 0


async def test_scale_down_removes_the_highest_ordinal_first(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    await client.create(STATEFULSETS, stateful_set(replicas=3), ns)
    await eventually(lambda: settled(client, ns, 3), timeout=60, what="3 ready pods")
    await client.patch(STATEFULSETS, "web", {"spec": {"replicas": 1}}, ns)
    await eventually(lambda: settled(client, ns, 1), timeout=60, what="1 pod left")
    assert sorted(await live_pods(client, ns)) == ["web-0"]
    deleted = await event_messages(client, ns, "SuccessfulDelete")
    assert deleted == [
        "delete Pod web-2 in StatefulSet web successful",
        "delete Pod web-1 in StatefulSet web successful",
    ]


async def test_a_deleted_pod_comes_back_with_its_name(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    await client.create(STATEFULSETS, stateful_set(replicas=2), ns)
    await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 ready pods")
    old_uid = (await live_pods(client, ns))["web-1"]["metadata"]["uid"]
    await client.delete(PODS, "web-1", ns)

    async def replaced() -> bool:
        pod = (await live_pods(client, ns)).get("web-1")
        return pod is not None and pod["metadata"]["uid"] != old_uid

    await eventually(replaced, timeout=60, what="web-1 recreated")
    await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 ready pods again")


async def test_claims_are_created_from_templates_before_their_pods(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    template = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    await client.create(STATEFULSETS, stateful_set(replicas=2, volumeClaimTemplates=[template]), ns)
    await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 ready pods")
    claims = {
        c["metadata"]["name"]: c for c in (await client.list(PERSISTENTVOLUMECLAIMS, ns))["items"]
    }
    assert sorted(claims) == ["data-web-0", "data-web-1"]
    assert claims["data-web-0"]["status"]["phase"] == "Pending"
    assert claims["data-web-0"]["metadata"]["labels"] == {"app": "web"}
    assert not claims["data-web-0"]["metadata"].get("ownerReferences")  # Retain
    pod = (await live_pods(client, ns))["web-1"]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
    assert volume["persistentVolumeClaim"] == {"claimName": "data-web-1"}
    for name in ("data-web-0", "data-web-1"):
        assert created_at(claims[name]) <= created_at((await live_pods(client, ns))[name[5:]])


async def test_rolling_update_replaces_pods_from_the_highest_ordinal(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    await client.create(STATEFULSETS, stateful_set(replicas=3), ns)
    first = await eventually(lambda: settled(client, ns, 3), timeout=60, what="3 ready pods")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}}
    await client.patch(
        STATEFULSETS, "web", patch, ns, patch_type="application/strategic-merge-patch+json"
    )
    st = await eventually(lambda: settled(client, ns, 3), timeout=90, what="all updated")
    assert st["updateRevision"] != first["updateRevision"]
    pods = await live_pods(client, ns)
    assert all(p["spec"]["containers"][0]["image"] == "v2" for p in pods.values())
    assert created_at(pods["web-2"]) <= created_at(pods["web-1"]) <= created_at(pods["web-0"])
    revisions = (await client.list(CONTROLLERREVISIONS, ns))["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]


async def test_a_partition_keeps_lower_ordinals_on_the_old_revision(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    await client.create(STATEFULSETS, stateful_set(replicas=3, updateStrategy=strategy), ns)
    first = await eventually(lambda: settled(client, ns, 3), timeout=60, what="3 ready pods")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}}
    await client.patch(
        STATEFULSETS, "web", patch, ns, patch_type="application/strategic-merge-patch+json"
    )

    async def partitioned() -> Obj | None:
        st = (await client.get(STATEFULSETS, "web", ns)).get("status") or {}
        ok = st.get("updatedReplicas") == 1 and st.get("readyReplicas") == 3
        return st if ok and st.get("currentRevision") == first["currentRevision"] else None

    st = await eventually(partitioned, timeout=60, what="web-2 updated only")
    pods = await live_pods(client, ns)
    assert pods["web-2"]["metadata"]["labels"][HASH_LABEL] == st["updateRevision"]
    assert pods["web-0"]["metadata"]["labels"][HASH_LABEL] == first["currentRevision"]
    assert st["currentReplicas"] == 2


async def test_on_delete_updates_only_pods_deleted_by_hand(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    await client.create(
        STATEFULSETS, stateful_set(replicas=2, updateStrategy={"type": "OnDelete"}), ns
    )
    await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 ready pods")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}}
    await client.patch(
        STATEFULSETS, "web", patch, ns, patch_type="application/strategic-merge-patch+json"
    )

    async def observed() -> bool:
        sts = await client.get(STATEFULSETS, "web", ns)
        return (sts.get("status") or {}).get("observedGeneration") == 2

    await eventually(observed, timeout=30, what="the new template observed")
    await asyncio.sleep(1.0)
    images = {
        n: p["spec"]["containers"][0]["image"] for n, p in (await live_pods(client, ns)).items()
    }
    assert images == {"web-0": "v1", "web-1": "v1"}
    await client.delete(PODS, "web-0", ns)

    async def updated() -> dict[str, str] | None:
        pods = await live_pods(client, ns)
        found = {n: p["spec"]["containers"][0]["image"] for n, p in pods.items()}
        return found if found == {"web-0": "v2", "web-1": "v1"} else None

    await eventually(updated, timeout=60, what="web-0 recreated on v2")


async def test_parallel_creates_every_pod_at_once(
    client: ApiClient, ns: str, controllers: StatefulSetController
) -> None:
    sts = stateful_set(replicas=3, podManagementPolicy="Parallel")
    sts["spec"]["template"]["metadata"]["annotations"][ANNOTATION_START_DELAY] = "3"
    await client.create(STATEFULSETS, sts, ns)

    async def three_pending() -> bool:
        pods = await live_pods(client, ns)
        return len(pods) == 3 and all(p["status"].get("phase") == "Pending" for p in pods.values())

    await eventually(three_pending, timeout=20, what="3 pods before any is ready")
    await eventually(lambda: settled(client, ns, 3), timeout=60, what="3 ready pods")
