"""A node that comes back stops, at once, the pods that went away while it was gone.

A real ``setpoint agent`` process is frozen with SIGSTOP (a hung host, a network cut) while
its pod is force-deleted through the API (or made anew elsewhere under the same name), then
thawed with SIGCONT: as soon as its watch (or a relist) shows the pod gone, it kills the
pod's processes with the kubelet's 1 s grace for such orphans, even ones that ignore
SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from setpoint.agent.supervisor import proc_start_time
from setpoint.client.api import PODS, ApiClient
from tests import objects
from tests.integration.test_agent import wait_registered
from tests.support import SETPOINT, Server, eventually, kill_node_processes

STUBBORN = ["sh", "-c", "trap '' TERM; sleep 1000"]  # SIGTERM does not stop it


@dataclass
class AgentProcess:
    name: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def pids(self) -> set[tuple[int, int]]:
        """(pid, start time) of every container instance its supervisor runs."""
        found = set()
        for state_file in (self.data_dir / "supervisor").glob("containers/*/state.json"):
            with contextlib.suppress(OSError, ValueError):
                saved = json.loads(state_file.read_text())
                if saved.get("pid"):
                    found.add((saved["pid"], saved["pid_start_time"]))
        return found


@pytest.fixture
async def agent(server: Server, client: ApiClient) -> AsyncIterator[AgentProcess]:
    name = f"agent-stale-{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="sp-agent-stale-"))
    process = subprocess.Popen(
        [
            *(SETPOINT, "agent", "--kubeconfig", str(server.kubeconfig)),
            *("--node-name", name, "--data-dir", str(data_dir), "--kubelet-port", "0"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_registered(client, name)
        yield AgentProcess(name, data_dir, process)
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()
        kill_node_processes(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


async def run_pod(client: ApiClient, namespace: str, name: str, node_name: str) -> None:
    containers = [{**objects.container("app", "none"), "command": STUBBORN}]
    await client.create(PODS, objects.pod(name, namespace=namespace, containers=containers))
    binding = objects.binding(name, node_name)
    await client.request("POST", PODS.path(namespace, name, "binding"), body=binding)


async def running(agent: AgentProcess) -> tuple[int, int]:
    async def started() -> tuple[int, int] | None:
        found = agent.pids()
        return next(iter(found)) if found else None

    return await eventually(started, timeout=30, what="the pod's process")


async def returns_and_kills(agent: AgentProcess, pid: int, started: int) -> None:
    """SIGCONT the agent: the stale pod's process must be gone within a few seconds."""
    agent.process.send_signal(signal.SIGCONT)

    async def gone() -> bool:
        return proc_start_time(pid) != started

    await eventually(gone, timeout=10, what="the stale pod's process killed")


async def test_pod_force_deleted_while_the_node_was_stopped_is_killed_when_it_returns(
    agent: AgentProcess, client: ApiClient, namespace: str
) -> None:
    await run_pod(client, namespace, "stale", agent.name)
    pid, started = await running(agent)
    agent.process.send_signal(signal.SIGSTOP)
    await client.delete(PODS, "stale", namespace, grace_period_seconds=0)  # --force
    await asyncio.sleep(1)  # the node stays away a while (the test's point, not a wait)
    await returns_and_kills(agent, pid, started)


async def test_pod_made_anew_on_another_node_while_the_node_was_stopped_is_killed(
    agent: AgentProcess, client: ApiClient, namespace: str
) -> None:
    await run_pod(client, namespace, "moved", agent.name)
    pid, started = await running(agent)
    agent.process.send_signal(signal.SIGSTOP)
    await client.delete(PODS, "moved", namespace, grace_period_seconds=0)
    await run_pod(client, namespace, "moved", f"elsewhere-{uuid.uuid4().hex[:6]}")
    await asyncio.sleep(1)
    await returns_and_kills(agent, pid, started)
