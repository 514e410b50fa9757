"""What the node benchmarks share: a real ``setpoint agent`` joining a benchmark's server.

``podstartup`` and ``agentoverhead`` run a fresh ``setpoint server`` without controllers,
scheduler or local agent, and one ``setpoint agent`` child of the benchmark as node
``bench-node`` (data dir under the benchmark's work dir), so the benchmark knows the agent's
pid and reads its CPU and memory from ``/proc``. Pods are created bound
(``spec.nodeName``): nothing but the API server and the agent is measured. On the way out
the agent is stopped and its per-node supervisor and every workload it recorded are
killed, so a benchmark leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import unused_cluster_cidr

from bench.cluster import client_for, node_ready
from bench.common import Context, Server, spawn
from setpoint.agent.killall import kill_node
from setpoint.client.api import NODES, ApiClient

NODE = "bench-node"
SERVER_ARGS = ("--disable-controller-manager", "--disable-scheduler")


@dataclass
class RealNode:
    """A ``setpoint agent`` process and the client the benchmark drives the server with."""

    server: Server
    client: ApiClient
    agent_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def agent_pid(self) -> int:
        return self.proc.pid

    def supervisor_pid(self) -> int:
        return int((self.agent_dir / "supervisor" / "supervisor.pid").read_text())


def agent_command(server: Server, agent_dir: Path) -> list[str]:
    argv = [sys.executable, "-m", "setpoint.cli.main", "agent", "--server", server.url]
    argv += ["--token-file", str(server.data_dir / "node-token")]
    argv += ["--ca-file", str(server.data_dir / "tls" / "ca.crt")]
    argv += ["--node-name", NODE, "--data-dir", str(agent_dir)]
    helped = subprocess.run([*argv[:4], "--help"], capture_output=True, check=False).stdout
    if b"--kubelet-port" in helped:  # the agent's own HTTPS port: any free one
        argv += ["--kubelet-port", "0"]
    return argv


@contextlib.asynccontextmanager
async def real_node(ctx: Context, name: str, *, timeout: float = 60.0) -> AsyncIterator[RealNode]:
    """A fresh server and one real agent whose Node is Ready."""
    async with ctx.server(name, extra_args=SERVER_ARGS) as server:
        agent_dir = server.data_dir.parent / "agent"
        log_path = server.log_path.with_name("agent.log")
        proc = spawn(agent_command(server, agent_dir), log_path)
        try:
            async with client_for(server) as client:
                node = RealNode(server, client, agent_dir, proc)
                deadline = time.monotonic() + timeout
                pod_cidr = unused_cluster_cidr().replace(".0.0/16", ".0.0/24")
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"agent exited with {proc.returncode}; see {log_path}")
                    with contextlib.suppress(Exception):
                        found = await client.get(NODES, NODE)
                        if not (found.get("spec") or {}).get("podCIDR"):
                            # node IPAM's part (the controller manager is off): the agent
                            # gives its pods networks of their own from it at once
                            spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
                            await client.patch(NODES, NODE, {"spec": spec})
                        elif node_ready(found):
                            break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"node {NODE} not Ready within {timeout:.0f}s")
                    await asyncio.sleep(0.1)
                ctx.say(f"agent pid {proc.pid}, supervisor pid {node.supervisor_pid()}")
                yield node
        finally:
            await stop_agent(proc)
            kill_node(agent_dir)


async def stop_agent(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0
