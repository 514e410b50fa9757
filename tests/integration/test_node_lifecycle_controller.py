"""The node lifecycle, taint eviction and PodGC controllers (and the Job controller where
Jobs meet lost nodes) in-process against a real server of their own. Nodes and their Leases
are created through the API and renewed by the test; a "lost" node is one whose Lease the
test simply stops renewing. Grace periods are short (2 s) so the scenarios take seconds."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from setpoint.client.api import JOBS, NAMESPACES, NODES, PODS, ApiClient, ApiError, ClientConfig
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.nodes import NODE_LEASE_DURATION_SECONDS, node_conditions, renew_lease
from setpoint.controllers.job import JobController
from setpoint.controllers.nodelifecycle import NodeLifecycleController, NodeLifecycleSettings
from setpoint.controllers.podgc import PodGCController
from setpoint.controllers.tainteviction import TaintEvictionController
from setpoint.meta.clock import REAL_CLOCK
from setpoint.meta.timestamps import rfc3339
from tests import objects
from tests.support import Server, eventually, start_server

Obj = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"
SETTINGS = NodeLifecycleSettings(
    monitor_period=0.2, grace_period=2.0, startup_grace_period=2.0, eviction_rate=10.0
)


@pytest.fixture(scope="module")
def nl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(Path(tmp_path_factory.mktemp("nodelifecycle")) / "data")
    yield srv
    assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
async def client(nl_server: Server) -> AsyncIterator[ApiClient]:
    api = ApiClient(ClientConfig.from_kubeconfig(nl_server.kubeconfig))
    yield api
    # Nodes are cluster-wide and count in zone states: leave none behind.
    for node in (await api.list(NODES)).get("items") or []:
        await api.delete(NODES, node["metadata"]["name"])
    await api.close()


@pytest.fixture
async def ns(client: ApiClient) -> str:
    name = f"nl-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, objects.namespace(name))
    return name


@pytest.fixture
async def controllers(client: ApiClient) -> AsyncIterator[NodeLifecycleController]:
    informers = SharedInformers(client)
    recorder = EventRecorder(client, "test")
    lifecycle = NodeLifecycleController(informers, recorder, settings=SETTINGS)
    components = [
        lifecycle,
        TaintEvictionController(informers, recorder),
        PodGCController(informers, recorder, quarantine=0.5, period=0.2),
        JobController(informers, recorder, backoff_initial=0.05, backoff_max=0.2),
    ]
    informers.start()
    await informers.wait_synced()
    tasks = [asyncio.create_task(c.run()) for c in components]
    yield lifecycle
    for component in components:
        await component.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await informers.stop()


@dataclass
class FakeKubelet:
    """A Node whose Lease (and, on demand, status) the test renews, until it is stopped."""

    client: ApiClient
    name: str
    node: Obj
    lease: Obj | None = None
    task: asyncio.Task[None] | None = None

    async def renew(self) -> None:
        self.lease = await renew_lease(
            self.client,
            self.node,
            self.lease,
            duration_seconds=NODE_LEASE_DURATION_SECONDS,
            now=REAL_CLOCK.time(),
        )

    async def _loop(self) -> None:
        while True:
            await self.renew()
            await asyncio.sleep(0.3)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def post_ready(self) -> None:
        """Report Ready again, with a fresh heartbeat (a returning agent)."""
        status = {"conditions": node_conditions(REAL_CLOCK.time())}
        await self.client.patch(NODES, self.name, {"status": status}, subresource="status")


@pytest.fixture
async def kubelets(client: ApiClient) -> AsyncIterator[list[FakeKubelet]]:
    started: list[FakeKubelet] = []
    yield started
    for kubelet in started:
        await kubelet.stop()


async def add_node(
    client: ApiClient, kubelets: list[FakeKubelet], prefix: str, **labels: str
) -> FakeKubelet:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    body = objects.node(name, labels=labels or None)
    body["status"]["conditions"] = node_conditions(REAL_CLOCK.time())
    node = await client.create(NODES, body)
    kubelet = FakeKubelet(client, name, node)
    await kubelet.renew()
    kubelet.start()
    kubelets.append(kubelet)
    return kubelet


async def run_pod_on(client: ApiClient, ns: str, node: str, name: str, **spec: Any) -> Obj:
    """A pod bound to ``node`` and reported Running and Ready, as its agent would."""
    pod = await client.create(
        PODS,
        objects.pod(name, nodeName=node, terminationGracePeriodSeconds=1, **spec),
        ns,
    )
    return await report_running(client, pod)


async def report_running(client: ApiClient, pod: Obj) -> Obj:
    stamp = rfc3339(REAL_CLOCK.time())
    pod["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": stamp}
            for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
    }
    return await client.update_status(PODS, pod)


async def get_or_none(client: ApiClient, resource: Any, name: str, ns: str | None) -> Obj | None:
    try:
        return await client.get(resource, name, ns)
    except ApiError as exc:
        if exc.is_not_found:
            return None
        raise


def condition(obj: Obj, kind: str) -> Obj:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def taint_keys(node: Obj) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}


def tolerate_unreachable(seconds: int) -> list[Obj]:
    return [
        {
            "key": UNREACHABLE,
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": seconds,
        }
    ]


async def test_a_silent_node_is_marked_lost_tainted_and_its_pods_evicted(
    client: ApiClient,
    ns: str,
    kubelets: list[FakeKubelet],
    controllers: NodeLifecycleController,
) -> None:
    await add_node(client, kubelets, "alive")
    lost = await add_node(client, kubelets, "lost")
    pod = await run_pod_on(client, ns, lost.name, "doomed", tolerations=tolerate_unreachable(1))
    stays = await run_pod_on(
        client, ns, lost.name, "stays", tolerations=[{"key": UNREACHABLE, "operator": "Exists"}]
    )
    await lost.stop()

    async def marked_lost() -> Obj | None:
        node = await client.get(NODES, lost.name)
        return node if condition(node, "Ready").get("status") == "Unknown" else None

    node = await eventually(marked_lost, timeout=15, what="the node to be marked lost")
    ready = condition(node, "Ready")
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    assert condition(node, "MemoryPressure")["status"] == "Unknown"

    async def tainted() -> Obj | None:
        node = await client.get(NODES, lost.name)
        wanted = {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
        return node if wanted <= taint_keys(node) else None

    await eventually(tainted, timeout=10, what="the unreachable taints")

    async def not_ready() -> Obj | None:
        current = await client.get(PODS, "stays", ns)
        return current if condition(current, "Ready").get("status") == "False" else None

    await eventually(not_ready, timeout=10, what="the pod to be marked not ready")

    async def evicted() -> Obj | None:
        current = await get_or_none(client, PODS, "doomed", ns)
        if current is None or not current["metadata"].get("deletionTimestamp"):
            return None
        return current

    evicting = await eventually(evicted, timeout=10, what="the intolerant pod to be evicted")
    disruption = condition(evicting, "DisruptionTarget")
    assert disruption["reason"] == "DeletionByTaintManager"

    async def gone() -> bool:
        return await get_or_none(client, PODS, "doomed", ns) is None

    # the lost node never confirms; PodGC removes it once its grace period is over
    await eventually(gone, timeout=15, what="PodGC to force-delete the pod")
    kept = await client.get(PODS, "stays", ns)
    assert not kept["metadata"].get("deletionTimestamp")
    assert kept["metadata"]["uid"] == stays["metadata"]["uid"]
    assert pod["metadata"]["uid"] != kept["metadata"]["uid"]


async def test_a_node_that_reports_ready_again_loses_its_taints(
    client: ApiClient, kubelets: list[FakeKubelet], controllers: NodeLifecycleController
) -> None:
    await add_node(client, kubelets, "alive")
    flaky = await add_node(client, kubelets, "flaky")
    await flaky.stop()

    async def tainted() -> bool:
        return (UNREACHABLE, "NoExecute") in taint_keys(await client.get(NODES, flaky.name))

    await eventually(tainted, timeout=15, what="the node to be tainted")
    flaky.start()
    await flaky.post_ready()

    async def healed() -> bool:
        node = await client.get(NODES, flaky.name)
        return condition(node, "Ready")["status"] == "True" and not taint_keys(node)

    await eventually(healed, timeout=10, what="the taints to be removed")


async def test_when_every_node_is_lost_nothing_is_tainted_no_execute(
    client: ApiClient, kubelets: list[FakeKubelet], controllers: NodeLifecycleController
) -> None:
    nodes = [await add_node(client, kubelets, "cut-off") for _ in range(2)]
    for kubelet in nodes:
        await kubelet.stop()

    async def all_lost() -> bool:
        items = (await client.list(NODES))["items"]
        return all(condition(n, "Ready").get("status") == "Unknown" for n in items)

    await eventually(all_lost, timeout=15, what="every node to be marked lost")
    await asyncio.sleep(1.0)  # several monitor and tainting passes
    for item in (await client.list(NODES))["items"]:
        assert (UNREACHABLE, "NoSchedule") in taint_keys(item)
        assert (UNREACHABLE, "NoExecute") not in taint_keys(item)
    assert controllers.all_disrupted


async def test_a_manual_no_execute_taint_evicts_only_pods_that_do_not_tolerate_it(
    client: ApiClient,
    ns: str,
    kubelets: list[FakeKubelet],
    controllers: NodeLifecycleController,
) -> None:
    node = await add_node(client, kubelets, "tainted")
    await run_pod_on(client, ns, node.name, "intolerant")
    tolerant = [{"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}]
    await run_pod_on(client, ns, node.name, "tolerant", tolerations=tolerant)
    current = await client.get(NODES, node.name)
    current["spec"]["taints"] = [{"key": "maintenance", "value": "now", "effect": "NoExecute"}]
    await client.update(NODES, current)

    async def evicted() -> bool:
        pod = await get_or_none(client, PODS, "intolerant", ns)
        return pod is not None and bool(pod["metadata"].get("deletionTimestamp"))

    await eventually(evicted, timeout=10, what="the intolerant pod to be evicted")
    await asyncio.sleep(0.5)
    assert not (await client.get(PODS, "tolerant", ns))["metadata"].get("deletionTimestamp")


async def test_pods_of_a_deleted_node_are_marked_failed_and_force_deleted(
    client: ApiClient,
    ns: str,
    kubelets: list[FakeKubelet],
    controllers: NodeLifecycleController,
) -> None:
    node = await add_node(client, kubelets, "deleted")
    await run_pod_on(client, ns, node.name, "orphan")
    await node.stop()
    await client.delete(NODES, node.name)

    async def gone() -> bool:
        return await get_or_none(client, PODS, "orphan", ns) is None

    await eventually(gone, timeout=15, what="PodGC to delete the orphaned pod")


def job_manifest(name: str, **spec: Any) -> Obj:
    """A Job whose pods tolerate an unreachable node for 1 s and stop within 1 s."""
    template = objects.pod_template(
        containers=[objects.container("main", command=["sleep", "60"])],
        restartPolicy="Never",
        terminationGracePeriodSeconds=1,
        tolerations=tolerate_unreachable(1),
    )
    return objects.job(name, template=template, backoffLimit=3, **spec)


async def job_pods(client: ApiClient, ns: str, job: str) -> list[Obj]:
    selector = f"batch.kubernetes.io/job-name={job}"
    return list((await client.list(PODS, ns, label_selector=selector))["items"])


async def start_job_pod_on(client: ApiClient, ns: str, job: str, node: str) -> Obj:
    """Bind the Job's pending pod to ``node`` and report it running (no scheduler here)."""

    async def pending() -> Obj | None:
        fresh = [p for p in await job_pods(client, ns, job) if not p["spec"].get("nodeName")]
        return fresh[0] if fresh else None

    pod = await eventually(pending, what="the Job's pod")
    name = pod["metadata"]["name"]
    await client.request("POST", PODS.path(ns, name, "binding"), body=objects.binding(name, node))
    return await report_running(client, await client.get(PODS, name, ns))


async def replaced(client: ApiClient, ns: str, job: str, first: Obj) -> Obj:
    async def another() -> Obj | None:
        pods = await job_pods(client, ns, job)
        fresh = [p for p in pods if p["metadata"]["uid"] != first["metadata"]["uid"]]
        return fresh[0] if fresh else None

    return await eventually(another, timeout=20, what="a replacement pod")


async def test_a_job_pod_on_a_lost_node_counts_as_failed_and_is_retried(
    client: ApiClient,
    ns: str,
    kubelets: list[FakeKubelet],
    controllers: NodeLifecycleController,
) -> None:
    await add_node(client, kubelets, "alive")
    lost = await add_node(client, kubelets, "lost")
    await client.create(JOBS, job_manifest("retried"), ns)
    first = await start_job_pod_on(client, ns, "retried", lost.name)
    await lost.stop()
    await replaced(client, ns, "retried", first)

    async def failed_once() -> Obj | None:
        job = await client.get(JOBS, "retried", ns)
        return job if (job.get("status") or {}).get("failed") == 1 else None

    job = await eventually(failed_once, timeout=20, what="the failure to be counted")
    assert not condition(job, "Failed")


async def test_a_disruption_ignored_by_the_pod_failure_policy_does_not_count(
    client: ApiClient,
    ns: str,
    kubelets: list[FakeKubelet],
    controllers: NodeLifecycleController,
) -> None:
    await add_node(client, kubelets, "alive")
    lost = await add_node(client, kubelets, "lost")
    policy = {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            }
        ]
    }
    await client.create(JOBS, job_manifest("ignored", podFailurePolicy=policy), ns)
    first = await start_job_pod_on(client, ns, "ignored", lost.name)
    await lost.stop()

    # it is replaced only once Failed (a Job with a podFailurePolicy waits for that): PodGC
    # marks it so, with DisruptionTarget, which the policy ignores
    await replaced(client, ns, "ignored", first)

    async def first_gone() -> bool:
        return await get_or_none(client, PODS, first["metadata"]["name"], ns) is None

    await eventually(first_gone, timeout=10, what="the first pod to be released and deleted")
    job = await client.get(JOBS, "ignored", ns)
    assert (job.get("status") or {}).get("failed", 0) == 0
    assert not condition(job, "Failed")
