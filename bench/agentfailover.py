"""``agentfailover``: how long a node goes without a heartbeat when the API server its
agent talks to dies.

Method: one etcd member and two ``setpoint server`` processes on it (:mod:`bench.ha`; no
controllers or scheduler), and one real ``setpoint agent`` told of both (``--server A
--server B``) with its default node Lease (15 s, renewed every 3.75 s) and the node's
network. ``ROUNDS`` times: a watch of the node's Lease through the server the agent does
*not* use; SIGKILL of the one it uses; timed from the kill until that watch delivers a
``renewTime`` written after it: the agent's next heartbeat, sent to the dead server, moved
to the other. The killed server is started again (on the port it had) before the next
round, which kills the other one.

The figure is mostly where in its renew interval the kill falls (0 to 3.75 s); the failover
itself (a refused connection, then the request sent again) is in the last figure, from the
``renewTime`` the agent stamped to the watch delivering it (same machine, same clock). A
heartbeat stamped just before the kill and cut on its way moves over too but is not counted
(it is not *after* the kill), so a round may take up to one interval plus the failover.
Target: kill -> heartbeat through the other server, max < 5 s.
Standalone: ``python -m bench agentfailover``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from urllib.parse import urlsplit

from bench.cluster import client_for, node_ready
from bench.common import Context, Figure, Server, below, info, percentile, spawn
from bench.ha import etcd_member, servers_on_etcd
from bench.realnode import NODE, agent_command, stop_agent
from setpoint.agent.killall import kill_node
from setpoint.client.api import LEASES, NODES
from setpoint.client.nodes import NODE_LEASE_DURATION_SECONDS, renew_interval
from setpoint.client.servers import ServerList
from setpoint.meta.timestamps import parse_epoch

NAME = "agentfailover"
ROUNDS = 6
SERVER_ARGS = ("--disable-controller-manager", "--disable-scheduler")


async def start_again(server: Server) -> None:
    """Start a killed server again on its data dir and on the port it had (the URL the agent
    was told)."""
    port = urlsplit(server.url).port
    server.extra_args = (*server.extra_args, "--https-listen-port", str(port))
    await server.start()


async def wait_ready(server: Server, agent: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the node is Ready and its Lease exists."""
    async with client_for(server) as client:
        deadline = time.monotonic() + timeout
        while True:
            if agent.poll() is not None:
                raise RuntimeError(f"agent exited with {agent.returncode}")
            with contextlib.suppress(Exception):
                ready = node_ready(await client.get(NODES, NODE))
                if ready and await client.get(LEASES, NODE, "kube-node-lease"):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {NODE} not Ready within {timeout:.0f}s")
            await asyncio.sleep(0.1)


async def next_heartbeat(survivor: Server, victim: Server) -> tuple[float, float]:
    """SIGKILL ``victim``; seconds until ``survivor`` delivers a Lease renewed after it, and
    of those the ones from the agent stamping that renewal to its delivery."""
    async with client_for(survivor) as client:
        selector = f"metadata.name={NODE}"
        listed = await client.list(LEASES, "kube-node-lease", field_selector=selector)
        arrived: asyncio.Queue[tuple[float, float]] = asyncio.Queue()
        killed_at = 0.0

        async def follow() -> None:
            async for _, obj in client.watch(
                LEASES,
                "kube-node-lease",
                field_selector=selector,
                resource_version=listed["metadata"]["resourceVersion"],
            ):
                renewed = parse_epoch((obj.get("spec") or {}).get("renewTime")) or 0.0
                if killed_at and renewed > killed_at:
                    arrived.put_nowait((time.perf_counter(), time.time() - renewed))

        watcher = asyncio.create_task(follow())
        try:
            await asyncio.sleep(0.2)  # the watch is open
            start = time.perf_counter()
            killed_at = time.time()
            await victim.kill()
            at, in_flight = await asyncio.wait_for(arrived.get(), timeout=60)
            return at - start, in_flight
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def run(ctx: Context) -> list[Figure]:
    times, flights = [], []
    with etcd_member(ctx, NAME) as etcd:
        async with servers_on_etcd(ctx, NAME, etcd, 2, extra_args=SERVER_ARGS) as (a, b):
            agent_dir = ctx.work_dir / NAME / "agent"
            argv = agent_command(a, agent_dir)
            argv += ["--server", b.url, "--pod-network", "host", "--proxy-mode", "none"]
            agent = spawn(argv, ctx.work_dir / NAME / "agent.log")
            try:
                await wait_ready(a, agent)
                by_url = {a.url: a, b.url: b}
                used = by_url[ServerList([a.url, b.url], key=NODE).current]
                for round_ in range(ROUNDS):
                    survivor = b if used is a else a
                    seconds, in_flight = await next_heartbeat(survivor, used)
                    times.append(seconds)
                    flights.append(in_flight)
                    ctx.say(
                        f"round {round_ + 1}: {used.url} killed, next heartbeat {seconds:.2f} s"
                    )
                    if agent.poll() is not None:
                        raise RuntimeError(f"agent exited with {agent.returncode}")
                    await start_again(used)  # for the next round, which kills the other
                    used = survivor
            finally:
                await stop_agent(agent)
                kill_node(agent_dir)
    interval = renew_interval(NODE_LEASE_DURATION_SECONDS)
    return [
        info(NAME, "node Lease renew interval (agent default)", interval, "s", digits=2),
        info(NAME, "kill -> heartbeat via other server p50", percentile(times, 50), "s", digits=2),
        below(NAME, "kill -> heartbeat via other server max", max(times), "s", 5.0, digits=2),
        info(
            NAME, "heartbeat stamped -> delivered (failover in it) max", max(flights), "s", digits=3
        ),
    ]


if __name__ == "__main__":
    from bench.common import run_standalone

    sys.exit(run_standalone(run))
