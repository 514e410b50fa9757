"""What SIGTERM does to a ``setpoint agent``: with ``--shutdown-grace-period`` a graceful
node shutdown (the node not ready, its pods terminated in order and failed as the kubelet
reports them, their processes gone), without it nothing but the agent's own exit (the
workloads keep running and the next agent re-attaches to them).

Each test runs the real ``setpoint agent`` command against the session's server, with a
node and data dir of its own, and wipes that node (``kill_node_processes``) at the end."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.runtime import Runtime
from setpoint.agent.shutdown import SHUTDOWN_MESSAGE
from setpoint.agent.supervisor import proc_start_time
from setpoint.client.api import LEASES, NODES, PODS, ApiClient, ApiError
from tests import objects
from tests.support import SETPOINT, Server, eventually, kill_node_processes

Obj = dict[str, Any]


@dataclass
class CliNode:
    """A node run by ``setpoint agent`` child processes, one at a time."""

    name: str
    data_dir: Path
    server: Server
    client: ApiClient
    namespace: str
    process: subprocess.Popen[bytes] | None = None

    async def start_agent(self, *flags: str) -> None:
        """Start the agent and wait until it has renewed the node's lease."""
        before = await self.lease_renewed()
        self.process = subprocess.Popen(
            [
                *(SETPOINT, "agent", "--kubeconfig", str(self.server.kubeconfig)),
                *("--node-name", self.name, "--data-dir", str(self.data_dir)),
                *("--kubelet-port", "0", *flags),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def renewed() -> bool:
            return await self.lease_renewed() > before

        await eventually(renewed, what="node lease renewed")

    async def lease_renewed(self) -> str:
        with contextlib.suppress(ApiError):
            lease = await self.client.get(LEASES, self.name, "kube-node-lease")
            renewed: str = lease["spec"]["renewTime"]
            return renewed
        return ""

    async def sigterm(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 60)

    async def create_pod(self, name: str, command: list[str], **spec: Any) -> str:
        container = objects.container("app", "none", command=command)
        pod = objects.pod(name, namespace=self.namespace, containers=[container], **spec)
        created = await self.client.create(PODS, pod)
        binding = objects.binding(name, self.name)
        await self.client.request("POST", PODS.path(self.namespace, name, "binding"), body=binding)
        await eventually(lambda: self.phase_is(name, "Running"), what=f"{name} running")
        uid: str = created["metadata"]["uid"]
        return uid

    async def pod(self, name: str) -> Obj:
        return await self.client.get(PODS, name, self.namespace)

    async def phase_is(self, name: str, phase: str) -> Obj | None:
        pod = await self.pod(name)
        return pod if pod.get("status", {}).get("phase") == phase else None

    async def processes(self) -> dict[str, tuple[int, int]]:
        """The running container processes, ``(pid, start time)`` by container id."""
        async with await Runtime.connect(self.data_dir / "supervisor") as runtime:
            return {
                s.id: (s.pid, s.pid_start_time)
                for s in await runtime.list()
                if s.pid is not None and s.pid_start_time is not None
            }


@pytest.fixture
async def cli_node(server: Server, client: ApiClient, namespace: str) -> AsyncIterator[CliNode]:
    data_dir = Path(tempfile.mkdtemp(prefix="sp-shutdown-"))
    n = CliNode(f"shutdown-{uuid.uuid4().hex[:8]}", data_dir, server, client, namespace)
    try:
        yield n
    finally:
        if n.process is not None and n.process.poll() is None:
            n.process.kill()
            n.process.wait()
        kill_node_processes(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
        with contextlib.suppress(ApiError):
            await client.delete(NODES, n.name)


def recorder(marks: Path, name: str) -> list[str]:
    """A container that notes ``name`` in ``marks`` when it gets SIGTERM, then exits."""
    return ["sh", "-c", f"trap 'echo {name} >> {marks}; exit 0' TERM; while :; do sleep 0.05; done"]


def condition(obj: Obj, kind: str) -> Obj:
    found: Obj = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    return found


def gone(process: tuple[int, int]) -> bool:
    return proc_start_time(process[0]) != process[1]


async def test_sigterm_with_a_shutdown_grace_period_shuts_the_node_down(
    cli_node: CliNode, shared_dir: Path
) -> None:
    marks = shared_dir / "terminated"
    marks.touch(0o666)  # both pods append, each as a user of its own
    marks.chmod(0o666)
    await cli_node.start_agent(
        "--shutdown-grace-period", "6s", "--shutdown-grace-period-critical-pods", "3s"
    )
    await cli_node.create_pod(
        "critical", recorder(marks, "critical"), priorityClassName="system-node-critical"
    )
    await cli_node.create_pod("regular", recorder(marks, "regular"))
    processes = await eventually(lambda: _both(cli_node.processes), what="both containers running")

    assert await cli_node.sigterm() == 0

    assert marks.read_text().split() == ["regular", "critical"]  # critical pods last
    assert all(gone(p) for p in processes.values())
    for name in ("regular", "critical"):
        status = (await cli_node.pod(name))["status"]
        assert (status["phase"], status["reason"], status["message"]) == (
            "Failed",
            "Terminated",
            SHUTDOWN_MESSAGE,
        )
        target = condition(await cli_node.pod(name), "DisruptionTarget")
        assert (target["status"], target["reason"]) == ("True", "TerminationByKubelet")
    ready = condition(await cli_node.client.get(NODES, cli_node.name), "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "KubeletNotReady",
        "node is shutting down",
    )


async def _both(processes: Callable[[], Any]) -> dict[str, tuple[int, int]] | None:
    found: dict[str, tuple[int, int]] = await processes()
    return found if len(found) == 2 else None


async def test_plain_sigterm_leaves_the_workloads_running_for_the_next_agent(
    cli_node: CliNode,
) -> None:
    await cli_node.start_agent()
    uid = await cli_node.create_pod("steady", ["sleep", "1000"])
    before = await cli_node.processes()

    assert await cli_node.sigterm() == 0

    assert not any(gone(p) for p in before.values())
    await cli_node.start_agent()
    assert await cli_node.processes() == before  # re-attached: the same processes
    status = (await cli_node.pod("steady"))["status"]
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["restartCount"] == 0
    assert status["containerStatuses"][0]["containerID"].endswith(f"{uid}/app")
    assert await cli_node.sigterm() == 0
