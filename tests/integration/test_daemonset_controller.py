"""The DaemonSet controller with the scheduler and hollow nodes, in-process, against a server
of its own (nodes are cluster-wide, so these tests do not share the session server).

Each test's nodes carry a label of their own (``ds-test: <id>``) that its DaemonSet selects,
so a test sees only its nodes even while another test's are still going."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.client.api import (
    CONTROLLERREVISIONS,
    DAEMONSETS,
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    ApiClient,
    ClientConfig,
)
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.daemonset import HASH_LABEL, DaemonSetController
from setpoint.scheduler.scheduler import Scheduler
from setpoint.sim.hollow import ANNOTATION_START_DELAY, HollowNodes
from tests import objects
from tests.support import Server, eventually, start_server

Obj = dict[str, Any]
TEST_LABEL = "ds-test"
SMP = "application/strategic-merge-patch+json"


@pytest.fixture(scope="module")
def ds_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(Path(tmp_path_factory.mktemp("daemonset")) / "data")
    yield srv
    assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
async def client(ds_server: Server) -> AsyncIterator[ApiClient]:
    api = ApiClient(ClientConfig.from_kubeconfig(ds_server.kubeconfig))
    yield api
    for node in (await api.list(NODES)).get("items") or []:
        await api.delete(NODES, node["metadata"]["name"])
    await api.close()


@pytest.fixture
async def ns(client: ApiClient) -> str:
    name = f"ds-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, objects.namespace(name))
    return name


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def controllers(client: ApiClient) -> AsyncIterator[DaemonSetController]:
    informers = SharedInformers(client)
    dsc = DaemonSetController(informers, EventRecorder(client, "daemonset-controller"))
    sched = Scheduler(informers, EventRecorder(client, "default-scheduler"), seed=7)
    informers.start()
    await informers.wait_synced()
    tasks = [asyncio.create_task(dsc.run()), asyncio.create_task(sched.run())]
    yield dsc
    await dsc.stop()
    await sched.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await informers.stop()


class Hollow:
    """HollowNodes running in a background task while the ``async with`` lasts."""

    def __init__(self, client: ApiClient, prefix: str, count: int, labels: dict[str, str]):
        self.nodes = HollowNodes(client, count=count, name_prefix=prefix, labels=labels)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HollowNodes:
        self.task = asyncio.create_task(self.nodes.run())
        await self.nodes.wait_ready()
        return self.nodes

    async def __aexit__(self, *exc: object) -> None:
        await self.nodes.stop()
        assert self.task is not None
        await self.task


def hollow(client: ApiClient, tag: str, count: int, suffix: str = "n") -> Hollow:
    return Hollow(client, f"{tag}-{suffix}", count, {TEST_LABEL: tag})


def daemon_set(tag: str, *, image: str = "v1", name: str = "agent", **spec: Any) -> Obj:
    containers = [objects.container("c", image, command=["sleep", "3600"])]
    template = objects.pod_template({"app": name}, containers=containers)
    template["spec"]["nodeSelector"] = {TEST_LABEL: tag}
    return objects.daemon_set(name, containers=containers, template=template, **spec)


async def live_pods(client: ApiClient, ns: str) -> list[Obj]:
    items = (await client.list(PODS, ns))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def pods_by_node(client: ApiClient, ns: str) -> dict[str, list[Obj]]:
    grouped: dict[str, list[Obj]] = {}
    for pod in await live_pods(client, ns):
        grouped.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
    return grouped


async def status(client: ApiClient, ns: str, name: str = "agent") -> Obj:
    return (await client.get(DAEMONSETS, name, ns)).get("status") or {}


async def settled(client: ApiClient, ns: str, count: int, name: str = "agent") -> Obj | None:
    """The DaemonSet's status once ``count`` nodes run an available, current pod."""
    ds = await client.get(DAEMONSETS, name, ns)
    st = ds.get("status") or {}
    want = {
        "desiredNumberScheduled": count,
        "currentNumberScheduled": count,
        "numberReady": count,
        "updatedNumberScheduled": count,
        "numberAvailable": count,
    }
    if any(st.get(k, 0) != v for k, v in want.items()):
        return None
    if st.get("observedGeneration") != ds["metadata"]["generation"]:
        return None
    if len(await live_pods(client, ns)) != count:
        return None
    return st


async def test_every_node_runs_one_pod_pinned_to_it(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 12) as nodes:
        await client.create(DAEMONSETS, daemon_set(tag), ns)
        st = await eventually(lambda: settled(client, ns, 12), timeout=60, what="12 pods")
        assert st["numberMisscheduled"] == 0 and st["numberUnavailable"] == 0
        grouped = await pods_by_node(client, ns)
        assert sorted(grouped) == sorted(nodes.names)
        for node, pods in grouped.items():
            (pod,) = pods
            terms = pod["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]["nodeSelectorTerms"]
            assert terms == [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
            keys = {(t.get("key"), t.get("effect")) for t in pod["spec"]["tolerations"]}
            assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
            assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
            assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
            assert pod["metadata"]["labels"][HASH_LABEL]
        revisions = (await client.list(CONTROLLERREVISIONS, ns))["items"]
        assert [r["revision"] for r in revisions] == [1]


async def test_added_node_gets_a_pod_and_labelled_out_node_loses_it(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 3):
        await client.create(DAEMONSETS, daemon_set(tag), ns)
        await eventually(lambda: settled(client, ns, 3), timeout=60, what="3 pods")
        async with hollow(client, tag, 1, suffix="late") as late:
            await eventually(lambda: settled(client, ns, 4), timeout=60, what="a 4th pod")
            assert late.names[0] in await pods_by_node(client, ns)
            label_out = {"metadata": {"labels": {TEST_LABEL: "elsewhere"}}}
            await client.patch(NODES, late.names[0], label_out)

            async def gone() -> bool:
                return late.names[0] not in await pods_by_node(client, ns)

            await eventually(gone, timeout=30, what="the labelled-out node's pod to go")
            await eventually(lambda: settled(client, ns, 3), timeout=30, what="3 desired")


async def test_deleted_node_loses_its_pod(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 2) as nodes:
        await client.create(DAEMONSETS, daemon_set(tag), ns)
        await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 pods")
        await client.delete(NODES, nodes.names[1])

        async def gone() -> bool:
            return nodes.names[1] not in await pods_by_node(client, ns)

        await eventually(gone, timeout=30, what="the deleted node's pod to go")
        await eventually(lambda: settled(client, ns, 1), timeout=30, what="1 desired")


async def test_tainted_node_gets_no_pod_while_cordoned_and_not_ready_ones_keep_theirs(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 3) as nodes:
        tainted, cordoned, not_ready = nodes.names
        taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
        await client.patch(NODES, tainted, {"spec": {"taints": [taint]}})
        await client.create(DAEMONSETS, daemon_set(tag), ns)
        await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 pods")
        assert tainted not in await pods_by_node(client, ns)

        await client.patch(NODES, cordoned, {"spec": {"unschedulable": True}})
        # what the node lifecycle controller puts on a node that is not ready
        not_ready_taints = [
            {"key": "node.kubernetes.io/not-ready", "effect": effect}
            for effect in ("NoSchedule", "NoExecute")
        ]
        await client.patch(NODES, not_ready, {"spec": {"taints": not_ready_taints}})
        await asyncio.sleep(1)  # give the controller a chance to act wrongly
        assert sorted(await pods_by_node(client, ns)) == sorted([cordoned, not_ready])

        tolerant = daemon_set(tag, name="tolerant")
        tolerant["spec"]["template"]["spec"]["tolerations"] = [
            {"key": "dedicated", "operator": "Exists"}
        ]
        await client.create(DAEMONSETS, tolerant, ns)

        async def tolerant_everywhere_schedulable() -> Obj | None:
            st = await status(client, ns, "tolerant")
            # the cordoned node gets one (daemon pods tolerate unschedulable); the node
            # tainted not-ready keeps what it has but gets nothing new
            return st if st.get("numberAvailable") == 2 else None

        st = await eventually(tolerant_everywhere_schedulable, timeout=60, what="2 pods")
        assert st["desiredNumberScheduled"] == 2


async def test_failed_daemon_pod_is_deleted_and_replaced(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 1):
        await client.create(DAEMONSETS, daemon_set(tag), ns)
        await eventually(lambda: settled(client, ns, 1), timeout=60, what="1 pod")
        (pod,) = await live_pods(client, ns)
        pod["status"]["phase"] = "Failed"
        await client.update_status(PODS, pod)

        async def replaced() -> bool:
            pods = await live_pods(client, ns)
            return len(pods) == 1 and pods[0]["metadata"]["uid"] != pod["metadata"]["uid"]

        await eventually(replaced, timeout=30, what="a new pod")
        events = (await client.list(EVENTS, ns))["items"]
        assert any(e["reason"] == "FailedDaemonPod" for e in events)


async def test_rolling_update_keeps_within_max_unavailable(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 4):
        ds = daemon_set(tag)
        ds["spec"]["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 2},
        }
        await client.create(DAEMONSETS, ds, ns)
        await eventually(lambda: settled(client, ns, 4), timeout=60, what="4 pods")
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}}
        await client.patch(DAEMONSETS, "agent", patch, ns, patch_type=SMP)
        worst = 4

        async def updated() -> Obj | None:
            nonlocal worst
            running = [
                p
                for p in await live_pods(client, ns)
                if (p.get("status") or {}).get("phase") == "Running"
            ]
            worst = min(worst, len(running))
            return await settled(client, ns, 4)

        await eventually(updated, timeout=60, what="the rollout")
        assert worst >= 2
        images = {p["spec"]["containers"][0]["image"] for p in await live_pods(client, ns)}
        assert images == {"v2"}
        revisions = (await client.list(CONTROLLERREVISIONS, ns))["items"]
        assert sorted(r["revision"] for r in revisions) == [1, 2]
        ds_now = await client.get(DAEMONSETS, "agent", ns)
        assert ds_now["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"


async def test_surge_starts_the_new_pod_before_the_old_one_goes(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 2):
        ds = daemon_set(tag)
        ds["spec"]["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
        await client.create(DAEMONSETS, ds, ns)
        await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 pods")
        # the new pods take a second to become ready, so old and new run side by side
        patch = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {ANNOTATION_START_DELAY: "1"}},
                    "spec": {"containers": [{"name": "c", "image": "v2"}]},
                }
            }
        }
        await client.patch(DAEMONSETS, "agent", patch, ns, patch_type=SMP)
        doubled = False

        async def updated() -> Obj | None:
            nonlocal doubled
            doubled |= any(len(p) > 1 for p in (await pods_by_node(client, ns)).values())
            st = await status(client, ns)
            assert st.get("numberAvailable", 2) == 2 or st.get("updatedNumberScheduled", 0) < 2
            return await settled(client, ns, 2)

        await eventually(updated, timeout=60, what="the surge rollout")
        assert doubled


async def test_on_delete_replaces_only_deleted_pods(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 2):
        ds = daemon_set(tag)
        ds["spec"]["updateStrategy"] = {"type": "OnDelete"}
        await client.create(DAEMONSETS, ds, ns)
        await eventually(lambda: settled(client, ns, 2), timeout=60, what="2 pods")
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}}
        await client.patch(DAEMONSETS, "agent", patch, ns, patch_type=SMP)

        async def observed() -> Obj | None:
            ds_now = await client.get(DAEMONSETS, "agent", ns)
            st = ds_now.get("status") or {}
            return st if st.get("observedGeneration") == ds_now["metadata"]["generation"] else None

        st = await eventually(observed, what="the new generation observed")
        assert st["updatedNumberScheduled"] == 0
        victim = (await live_pods(client, ns))[0]
        await client.delete(PODS, victim["metadata"]["name"], ns)

        async def one_updated() -> Obj | None:
            st = await status(client, ns)
            return st if st.get("updatedNumberScheduled") == 1 else None

        await eventually(one_updated, timeout=30, what="one new pod")
        await asyncio.sleep(0.5)
        assert (await status(client, ns))["updatedNumberScheduled"] == 1


async def test_old_revisions_beyond_the_limit_are_deleted(
    client: ApiClient, ns: str, tag: str, controllers: DaemonSetController
) -> None:
    async with hollow(client, tag, 1):
        await client.create(DAEMONSETS, daemon_set(tag, revisionHistoryLimit=1), ns)
        for image in ("v2", "v3"):
            await eventually(lambda: settled(client, ns, 1), timeout=60, what="1 pod")
            patch = {
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}
            }
            await client.patch(DAEMONSETS, "agent", patch, ns, patch_type=SMP)
        await eventually(lambda: settled(client, ns, 1), timeout=60, what="the last rollout")

        async def two_left() -> list[int] | None:
            revisions = (await client.list(CONTROLLERREVISIONS, ns))["items"]
            numbers = sorted(r["revision"] for r in revisions)
            return numbers if numbers == [2, 3] else None

        await eventually(two_left, timeout=30, what="revision 1 to be deleted")
