"""The scheduler, in-process, against a real server of its own (nodes are cluster-wide, so
these tests do not share the session server with tests that leave pods Pending)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from setpoint.client.api import EVENTS, NAMESPACES, NODES, PODS, ApiClient, ClientConfig
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.scheduler.scheduler import Scheduler
from tests import objects
from tests.support import Server, eventually, start_server

Obj = dict[str, Any]
T = TypeVar("T")


@pytest.fixture(scope="module")
def sched_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(Path(tmp_path_factory.mktemp("scheduler")) / "data")
    yield srv
    assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
async def client(sched_server: Server) -> AsyncIterator[ApiClient]:
    api = ApiClient(ClientConfig.from_kubeconfig(sched_server.kubeconfig))
    yield api
    # Nodes are cluster-wide: leave none behind for the next test.
    for node in (await api.list(NODES)).get("items") or []:
        await api.delete(NODES, node["metadata"]["name"])
    await api.close()


@pytest.fixture
async def ns(client: ApiClient) -> AsyncIterator[str]:
    name = f"s-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, objects.namespace(name))
    yield name
    # Pods left Pending would compete for the next test's nodes.
    for pod in (await client.list(PODS, name)).get("items") or []:
        await client.delete(PODS, pod["metadata"]["name"], name, grace_period_seconds=0)


@pytest.fixture
async def scheduler(client: ApiClient) -> AsyncIterator[Scheduler]:
    informers = SharedInformers(client)
    sched = Scheduler(informers, EventRecorder(client, "default-scheduler"), seed=7)
    task = asyncio.create_task(sched.run())
    yield sched
    await sched.stop()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await informers.stop()


def node_obj(
    name: str, *, cpu: str = "4", memory: str = "8Gi", labels: dict[str, str] | None = None
) -> Obj:
    """A Ready node offering ``cpu`` and ``memory``."""
    return objects.node(
        name,
        labels=labels,
        allocatable={"cpu": cpu, "memory": memory, "pods": "110"},
        conditions=[{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    )


def pod_obj(name: str, *, cpu: str = "100m", **spec: Any) -> Obj:
    """A pod whose one container requests ``cpu``."""
    requests = {"requests": {"cpu": cpu}}
    containers = [objects.container("c", resources=requests)]
    return objects.pod(name, containers=containers, **spec)


async def make_nodes(client: ApiClient, *nodes: Obj) -> list[str]:
    prefix = uuid.uuid4().hex[:6]
    names = []
    for node in nodes:
        node["metadata"]["name"] = f"{prefix}-{node['metadata']['name']}"
        node["metadata"]["labels"]["kubernetes.io/hostname"] = node["metadata"]["name"]
        await client.create(NODES, node)
        names.append(node["metadata"]["name"])
    return names


async def node_of(client: ApiClient, ns: str, name: str) -> str:
    return str((await client.get(PODS, name, ns)).get("spec", {}).get("nodeName") or "")


async def failed_scheduling(client: ApiClient, ns: str, pod: str) -> str | None:
    """The message of the pod's Warning FailedScheduling event, if there is one."""
    for event in (await client.list(EVENTS, ns)).get("items") or []:
        if event["involvedObject"].get("name") == pod and event["reason"] == "FailedScheduling":
            assert event["type"] == "Warning"
            return str(event["message"])
    return None


async def test_pods_are_bound_to_ready_nodes(
    client: ApiClient, ns: str, scheduler: Scheduler
) -> None:
    nodes = await make_nodes(client, node_obj("a"), node_obj("b"), node_obj("c"))
    for i in range(6):
        await client.create(PODS, pod_obj(f"p{i}"), ns)

    async def all_bound() -> list[str] | None:
        placed = [await node_of(client, ns, f"p{i}") for i in range(6)]
        return placed if all(placed) else None

    placed = await eventually(all_bound)
    assert set(placed) <= set(nodes)
    pod = await client.get(PODS, "p0", ns)
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "True"


async def test_cordoned_node_gets_nothing(client: ApiClient, ns: str, scheduler: Scheduler) -> None:
    cordoned = node_obj("cordoned")
    cordoned["spec"] = {"unschedulable": True}
    names = await make_nodes(client, cordoned, node_obj("a"), node_obj("b"))
    for i in range(9):
        await client.create(PODS, pod_obj(f"p{i}"), ns)

    async def all_bound() -> list[str] | None:
        placed = [await node_of(client, ns, f"p{i}") for i in range(9)]
        return placed if all(placed) else None

    placed = await eventually(all_bound)
    assert names[0] not in placed


async def test_pod_with_node_selector_lands_on_the_matching_node(
    client: ApiClient, ns: str, scheduler: Scheduler
) -> None:
    names = await make_nodes(
        client, node_obj("a"), node_obj("ssd", labels={"disk": "ssd"}), node_obj("c")
    )
    await client.create(PODS, pod_obj("fast", nodeSelector={"disk": "ssd"}), ns)
    assert await eventually(lambda: node_of(client, ns, "fast")) == names[1]


async def test_impossible_request_waits_with_failed_scheduling_until_a_node_fits(
    client: ApiClient, ns: str, scheduler: Scheduler
) -> None:
    await make_nodes(client, node_obj("a", cpu="2"), node_obj("b", cpu="2"), node_obj("c", cpu="2"))
    await client.create(PODS, pod_obj("huge", cpu="16"), ns)
    expected = (
        "0/3 nodes are available: 3 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    )

    async def condition() -> Obj | None:
        pod = await client.get(PODS, "huge", ns)
        for c in pod.get("status", {}).get("conditions") or []:
            if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                return c
        return None

    cond = await eventually(condition)
    assert cond["status"] == "False" and cond["message"] == expected
    assert await node_of(client, ns, "huge") == ""

    [big] = await make_nodes(client, node_obj("big", cpu="32"))
    assert await eventually(lambda: node_of(client, ns, "huge")) == big


async def test_consecutive_decisions_see_the_pods_just_placed(
    client: ApiClient, ns: str, scheduler: Scheduler
) -> None:
    await make_nodes(client, node_obj("a", cpu="1"), node_obj("b", cpu="1"))
    for i in range(3):
        await client.create(PODS, pod_obj(f"p{i}", cpu="600m"), ns)

    async def two_bound() -> list[str] | None:
        placed = [await node_of(client, ns, f"p{i}") for i in range(3)]
        return placed if sum(1 for p in placed if p) == 2 else None

    placed = await eventually(two_bound)
    assert len({p for p in placed if p}) == 2
    [waiting] = [f"p{i}" for i in range(3) if not placed[i]]
    message = await eventually(lambda: failed_scheduling(client, ns, waiting))
    assert message.startswith("0/2 nodes are available: 2 Insufficient cpu.")


async def test_pod_for_another_scheduler_stays_unbound(
    client: ApiClient, ns: str, scheduler: Scheduler
) -> None:
    await make_nodes(client, node_obj("a"))
    await client.create(PODS, pod_obj("theirs", schedulerName="other-scheduler"), ns)
    await client.create(PODS, pod_obj("ours"), ns)
    await eventually(lambda: node_of(client, ns, "ours"))
    await asyncio.sleep(0.3)
    pod = await client.get(PODS, "theirs", ns)
    assert not pod["spec"].get("nodeName")
    assert not any(
        c["type"] == "PodScheduled" for c in pod.get("status", {}).get("conditions") or []
    )


async def test_deleting_a_pod_makes_room_for_a_waiting_one(
    client: ApiClient, ns: str, scheduler: Scheduler
) -> None:
    await make_nodes(client, node_obj("a", cpu="1"))
    await client.create(PODS, pod_obj("first", cpu="800m"), ns)
    await eventually(lambda: node_of(client, ns, "first"))
    await client.create(PODS, pod_obj("second", cpu="800m"), ns)
    await eventually(lambda: failed_scheduling(client, ns, "second"))
    assert await node_of(client, ns, "second") == ""
    await client.delete(PODS, "first", ns, grace_period_seconds=0)
    assert await eventually(lambda: node_of(client, ns, "second"))
