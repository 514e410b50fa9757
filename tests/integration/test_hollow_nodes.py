"""Hollow nodes against a real server: registration, heartbeats, running pods, jobs,
graceful deletion, restarts, and the ``setpoint sim`` command."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from typing import Any

import pytest

from setpoint.client.api import LEASES, NODES, PODS, ApiClient, ApiError
from setpoint.client.nodes import NODE_LEASE_DURATION_SECONDS
from setpoint.meta.timestamps import parse_epoch
from setpoint.sim.hollow import KUBELET_VERSION, HollowNodes
from tests import objects
from tests.support import SETPOINT, Kubectl, Server, eventually, wait_for

Obj = dict[str, Any]


@pytest.fixture
def prefix() -> str:
    return f"hollow-{uuid.uuid4().hex[:8]}"


class Running:
    """HollowNodes running in a background task, stopped on exit."""

    def __init__(self, nodes: HollowNodes) -> None:
        self.nodes = nodes
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HollowNodes:
        self.task = asyncio.create_task(self.nodes.run())
        ready = asyncio.create_task(self.nodes.wait_ready())
        await asyncio.wait([self.task, ready], return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            ready.cancel()
            self.task.result()  # raises what made run() fail
        return self.nodes

    async def __aexit__(self, *exc: object) -> None:
        await self.nodes.stop()
        assert self.task is not None
        await self.task


def hollow(client: ApiClient, prefix: str, count: int = 2, **kwargs: Any) -> Running:
    return Running(HollowNodes(client, count=count, name_prefix=prefix, **kwargs))


def condition(obj: Obj, kind: str) -> Obj:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def create_bound_pod(
    client: ApiClient,
    namespace: str,
    name: str,
    node: str,
    *,
    restart_policy: str = "Always",
    annotations: dict[str, str] | None = None,
) -> Obj:
    pod = objects.pod(
        name,
        annotations=annotations or {},
        containers=[objects.container("main", "busybox:1.36", command=["true"])],
        restartPolicy=restart_policy,
    )
    created = await client.create(PODS, pod, namespace)
    binding = objects.binding(name, node)
    await client.request("POST", PODS.path(namespace, name, "binding"), body=binding)
    return created


async def test_nodes_register_ready_with_capacity_and_renew_leases(
    client: ApiClient, prefix: str
) -> None:
    async with hollow(client, prefix, cpu="8", memory="32Gi", pods=50, heartbeat_seconds=0.2):
        for i in range(2):
            node = await client.get(NODES, f"{prefix}-{i}")
            labels = node["metadata"]["labels"]
            assert labels["kubernetes.io/hostname"] == f"{prefix}-{i}"
            assert labels["kubernetes.io/os"] == "linux"
            assert labels["kubernetes.io/arch"] == "amd64"
            status = node["status"]
            for key in ("capacity", "allocatable"):
                assert status[key]["cpu"] == "8"
                assert status[key]["memory"] == "32Gi"
                assert status[key]["pods"] == "50"
                assert status[key]["ephemeral-storage"]
            ready = condition(node, "Ready")
            assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
                pressure = condition(node, kind)
                assert pressure["status"] == "False"
                assert pressure["lastHeartbeatTime"] and pressure["lastTransitionTime"]
            assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
            assert {"type": "Hostname", "address": f"{prefix}-{i}"} in status["addresses"]
            assert status["nodeInfo"]["kubeletVersion"] == KUBELET_VERSION
            assert status["nodeInfo"]["containerRuntimeVersion"] == "hollow://0"

        lease = await client.get(LEASES, f"{prefix}-0", "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == f"{prefix}-0"
        assert lease["spec"]["leaseDurationSeconds"] == NODE_LEASE_DURATION_SECONDS
        first = lease["spec"]["renewTime"]
        assert first.endswith("Z") and "." in first  # MicroTime
        assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"

        async def renewed() -> bool:
            again = await client.get(LEASES, f"{prefix}-0", "kube-node-lease")
            return bool(again["spec"]["renewTime"] > first)

        await eventually(renewed, timeout=10, what="lease renewal")


async def test_node_status_is_reposted_periodically(client: ApiClient, prefix: str) -> None:
    async with hollow(client, prefix, count=1, node_status_report_seconds=0.5):
        first = condition(await client.get(NODES, f"{prefix}-0"), "Ready")

        async def reposted() -> bool:
            ready = condition(await client.get(NODES, f"{prefix}-0"), "Ready")
            return bool(ready["lastHeartbeatTime"] > first["lastHeartbeatTime"])

        await eventually(reposted, timeout=10, what="a newer lastHeartbeatTime")


async def test_bound_pod_becomes_running_and_ready(
    client: ApiClient, namespace: str, prefix: str
) -> None:
    async with hollow(client, prefix):
        created = await create_bound_pod(client, namespace, "web", f"{prefix}-1")

        async def running() -> Obj | None:
            pod = await client.get(PODS, "web", namespace)
            return pod if pod["status"].get("phase") == "Running" else None

        pod = await eventually(running, what="pod Running")
        status = pod["status"]
        assert status["podIP"] == "127.0.0.1" and status["hostIP"] == "127.0.0.1"
        assert parse_epoch(status["startTime"]) is not None
        for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            assert condition(pod, kind)["status"] == "True", kind
        (cs,) = status["containerStatuses"]
        assert cs["name"] == "main" and cs["image"] == "busybox:1.36" and cs["imageID"]
        assert cs["containerID"] == f"hollow://{created['metadata']['uid']}/main"
        assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
        assert parse_epoch(cs["state"]["running"]["startedAt"]) is not None
        assert status["qosClass"] == "BestEffort"  # fields the node does not own are kept


async def test_pod_waits_for_its_start_delay(
    client: ApiClient, namespace: str, prefix: str
) -> None:
    async with hollow(client, prefix, count=1):
        # long enough that a loaded machine still sees the waiting state before it ends
        annotations = {"sim.setpoint.dev/start-delay-seconds": "4"}
        await create_bound_pod(client, namespace, "slow", f"{prefix}-0", annotations=annotations)

        async def creating() -> bool:
            pod = await client.get(PODS, "slow", namespace)
            waiting = pod["status"].get("containerStatuses", [{}])[0].get("state", {})
            return waiting.get("waiting", {}).get("reason") == "ContainerCreating"

        await eventually(creating, what="ContainerCreating")

        async def ready() -> bool:
            pod = await client.get(PODS, "slow", namespace)
            return bool(condition(pod, "Ready")["status"] == "True")

        await eventually(ready, what="pod Ready after its delay")


async def test_job_pod_with_exit_code_fails(client: ApiClient, namespace: str, prefix: str) -> None:
    async with hollow(client, prefix, count=1):
        await create_bound_pod(
            client,
            namespace,
            "job-3",
            f"{prefix}-0",
            restart_policy="Never",
            annotations={"sim.setpoint.dev/exit-code": "3"},
        )
        await create_bound_pod(client, namespace, "job-0", f"{prefix}-0", restart_policy="Never")

        async def finished(name: str) -> Obj | None:
            pod = await client.get(PODS, name, namespace)
            return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

        failed = await eventually(lambda: finished("job-3"), what="job-3 finished")
        assert failed["status"]["phase"] == "Failed"
        (cs,) = failed["status"]["containerStatuses"]
        terminated = cs["state"]["terminated"]
        assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
        assert terminated["startedAt"] and terminated["finishedAt"]
        assert cs["ready"] is False
        assert condition(failed, "Ready")["status"] == "False"

        succeeded = await eventually(lambda: finished("job-0"), what="job-0 finished")
        assert succeeded["status"]["phase"] == "Succeeded"
        terminated = succeeded["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"


async def test_deleted_pod_disappears_after_graceful_deletion(
    client: ApiClient, namespace: str, prefix: str
) -> None:
    async with hollow(client, prefix, count=1):
        await create_bound_pod(client, namespace, "doomed", f"{prefix}-0")

        async def running() -> bool:
            pod = await client.get(PODS, "doomed", namespace)
            return bool(pod["status"].get("phase") == "Running")

        await eventually(running, what="pod Running")
        marked = await client.delete(PODS, "doomed", namespace)
        assert marked["metadata"].get("deletionTimestamp")  # graceful: the node confirms

        async def gone() -> bool:
            try:
                await client.get(PODS, "doomed", namespace)
            except ApiError as exc:
                return exc.is_not_found
            return False

        await eventually(gone, what="pod deleted")


async def pod_phase(client: ApiClient, namespace: str, name: str) -> str:
    pod = await client.get(PODS, name, namespace)
    return str(pod["status"].get("phase", ""))


async def test_restart_with_same_prefix_keeps_the_nodes_and_pods(
    client: ApiClient, namespace: str, prefix: str
) -> None:
    async with hollow(client, prefix, count=1):
        before = await client.get(NODES, f"{prefix}-0")
        await create_bound_pod(client, namespace, "kept", f"{prefix}-0")

        async def running() -> bool:
            return await pod_phase(client, namespace, "kept") == "Running"

        await eventually(running, what="pod Running")
        kept = await client.get(PODS, "kept", namespace)
    async with hollow(client, prefix, count=1, labels={"tier": "sim"}):
        after = await client.get(NODES, f"{prefix}-0")
        # a pod bound after the restart runs; the one already running was left alone
        await create_bound_pod(client, namespace, "later", f"{prefix}-0")

        async def later_running() -> bool:
            return await pod_phase(client, namespace, "later") == "Running"

        await eventually(later_running, what="pod bound after restart Running")
        again = await client.get(PODS, "kept", namespace)
        assert again["metadata"]["resourceVersion"] == kept["metadata"]["resourceVersion"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["labels"]["tier"] == "sim"
    assert condition(after, "Ready")["status"] == "True"
    assert (
        condition(after, "Ready")["lastTransitionTime"]
        == condition(before, "Ready")["lastTransitionTime"]
    )


def test_sim_command_registers_ready_nodes(server: Server) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [
            SETPOINT,
            "sim",
            "--nodes",
            "3",
            "--kubeconfig",
            str(server.kubeconfig),
            "--name-prefix",
            prefix,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    kubectl = Kubectl(server)
    try:

        def ready_nodes() -> bool:
            assert process.poll() is None, "setpoint sim exited"
            nodes = kubectl("get", "nodes", "-o", "json").json()["items"]
            ours = [n for n in nodes if n["metadata"]["name"].startswith(prefix + "-")]
            return len(ours) == 3 and all(condition(n, "Ready")["status"] == "True" for n in ours)

        wait_for(ready_nodes, timeout=30, what="3 Ready hollow nodes")
        table = kubectl("get", "nodes").stdout
        assert f"{prefix}-2" in table
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"Traceback" not in output, output.decode(errors="replace")
