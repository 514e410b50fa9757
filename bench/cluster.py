"""What the control-plane benchmarks share: hollow nodes, the controller manager, CPU.

``scheduler``, ``deployment`` and ``job`` run a fresh ``setpoint server`` with its
controller manager and scheduler (a child process, ``setpoint controller-manager``) and a
``setpoint sim --nodes N`` child of the benchmark, and measure through the API how fast the
control plane drives pods. CPU is read from ``/proc`` for the server, the controller
manager (found as the server's child process), the sim process and this client.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.common import (
    Context,
    Figure,
    Phase,
    Server,
    info,
    process_cpu_seconds,
    require_loopback,
    spawn,
)
from setpoint.client.api import NODES, ApiClient, ClientConfig

T = TypeVar("T")


class Sim:
    """A ``setpoint sim --nodes N`` child process against ``server``."""

    def __init__(self, server: Server, nodes: int, log_path: Path) -> None:
        self.server = server
        self.nodes = nodes
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("sim not running")
        return self.proc.pid

    async def start(self, client: ApiClient, *, timeout: float = 120.0) -> float:
        """Start the hollow nodes and wait until all ``nodes`` Nodes are Ready; returns the
        time that took."""
        data_dir = self.server.data_dir
        command = [sys.executable, "-m", "setpoint.cli.main", "sim", "--nodes", str(self.nodes)]
        # hollow nodes join as nodes do, with the node token (their own priority level)
        command += ["--server", self.server.url, "--token-file", str(data_dir / "node-token")]
        command += ["--ca-file", str(data_dir / "tls" / "ca.crt")]
        started = time.perf_counter()
        self.proc = spawn(command, self.log_path)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sim exited with {self.proc.returncode}; see {self.log_path}")
            nodes = await client.list(NODES)
            ready = sum(1 for node in nodes.get("items", []) if node_ready(node))
            if ready >= self.nodes:
                return time.perf_counter() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {ready} of {self.nodes} hollow nodes Ready")
            await asyncio.sleep(0.25)

    async def stop(self, *, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def node_ready(node: dict[str, object]) -> bool:
    status = node.get("status")
    conditions = status.get("conditions", []) if isinstance(status, dict) else []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def client_for(server: Server, *, connections: int = 32) -> ApiClient:
    require_loopback(server.url)
    config = ClientConfig(server.url, server.token, server.ca_pem, "setpoint-bench")
    return ApiClient(config, connections=connections)


async def controller_manager_pid(server: Server, *, timeout: float = 30.0) -> int:
    """The server's ``setpoint controller-manager`` child process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in server.children():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"controller-manager" in f.read():
                    return pid
        await asyncio.sleep(0.1)
    raise RuntimeError("no controller-manager child process found")


@contextlib.asynccontextmanager
async def cluster(
    ctx: Context, name: str, nodes: int, *, start_nodes: bool = True
) -> AsyncIterator[Cluster]:
    """A fresh server (with controllers and scheduler) and ``nodes`` Ready hollow nodes
    (with ``start_nodes=False``, the caller starts them with :meth:`Cluster.start_nodes`)."""
    async with ctx.server(name) as server:
        cm_pid = await controller_manager_pid(server)
        ctx.say(f"controller manager pid {cm_pid}")
        async with client_for(server) as client:
            sim = Sim(server, nodes, server.log_path.with_name("sim.log"))
            c = Cluster(ctx, server, cm_pid, sim, client)
            try:
                if start_nodes:
                    await c.start_nodes()
                yield c
            finally:
                await sim.stop()


@dataclass
class ClusterPhase:
    """A measured phase with the CPU of the controller manager and the sim as well."""

    phase: Phase
    cm_cpu: float = 0.0
    sim_cpu: float = 0.0

    @property
    def wall(self) -> float:
        return self.phase.wall

    def figures(self, bench: str, label: str = "") -> list[Figure]:
        p = self.phase
        wall = p.wall or 1.0
        suffix = f" ({label})" if label else ""
        others = max(0.0, p.machine_cpu - p.server_cpu - self.cm_cpu - self.sim_cpu - p.client_cpu)

        def cores(name: str, seconds: float) -> Figure:
            return info(bench, f"{name}{suffix}", seconds / wall * 100, "% of a core", digits=0)

        return [
            cores("server CPU", p.server_cpu),
            cores("controller-manager CPU", self.cm_cpu),
            cores("sim CPU", self.sim_cpu),
            cores("client CPU", p.client_cpu),
            cores("other processes' CPU", others),
        ]


@dataclass
class Cluster:
    ctx: Context
    server: Server
    cm_pid: int
    sim: Sim
    client: ApiClient
    sim_start: float = 0.0

    async def start_nodes(self) -> None:
        self.ctx.say(f"starting {self.sim.nodes} hollow nodes ...")
        self.sim_start = await self.sim.start(self.client)
        self.ctx.say(
            f"sim pid {self.sim.pid}: {self.sim.nodes} nodes Ready in {self.sim_start:.1f}s"
        )

    @contextlib.asynccontextmanager
    async def measure(self, label: str) -> AsyncIterator[ClusterPhase]:
        async with self.ctx.measure(self.server, label) as phase:
            out = ClusterPhase(phase)
            cm0 = _cpu_or_zero(self.cm_pid)
            sim0 = _cpu_or_zero(self.sim.pid) if self.sim.proc else 0.0
            try:
                yield out
            finally:
                out.cm_cpu = _cpu_or_zero(self.cm_pid) - cm0
                out.sim_cpu = _cpu_or_zero(self.sim.pid) - sim0 if self.sim.proc else 0.0

    def rss_mib(self, pid: int) -> float:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        return 0.0


def _cpu_or_zero(pid: int) -> float:
    try:
        return process_cpu_seconds(pid)
    except OSError:
        return 0.0


async def create_all(
    make: Callable[[int], Awaitable[object]], count: int, *, concurrency: int, time_limit: float
) -> dict[str, int]:
    """Run ``make(i)`` for ``i`` in ``range(count)`` from ``concurrency`` workers; returns
    failures by kind."""
    failures: dict[str, int] = {}
    next_index = 0
    deadline = time.monotonic() + time_limit

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            try:
                await make(i)
            except Exception as exc:  # counted and reported, not fatal
                key = type(exc).__name__ + (f" {exc}"[:60] if str(exc) else "")
                failures[key] = failures.get(key, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures
