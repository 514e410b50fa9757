"""``podstartup``: how long a bound pod takes from creation to Running on a real node.

Method: a fresh server and one real ``setpoint agent`` (:mod:`bench.realnode`). A watch on
the namespace's pods is opened first; then 100 pods (one ``sleep 600`` container each,
``spec.nodeName`` already set, so no scheduler is involved) are created at once from 32
concurrent requests. Each pod's latency runs from just before its create request is sent
to the moment the watch delivers it with ``status.phase: Running`` -- Kubernetes' pod
startup SLI, measured from the client's side (which includes the create's own round trip).
The agent's CPU over the run is reported alongside. Then the same is run against a hollow
node (``setpoint sim``), which marks a bound pod Running with one status write and does
nothing else: its p50/p99 are the API server's and the client's share of the latency, the
floor under what any agent can reach on this machine.

Target: p99 < 500 ms (Kubernetes' SLO is 5 s for stateless pods, p99 over a cluster).
Standalone: ``python -m bench podstartup``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.cluster import Sim, client_for
from bench.common import (
    NAMESPACE,
    Context,
    Figure,
    below,
    exactly,
    info,
    percentiles,
    process_cpu_seconds,
)
from bench.realnode import NODE, SERVER_ARGS, real_node
from setpoint.client.api import PODS, ApiClient, ApiError

NAME = "podstartup"
PODS_COUNT = 100
CLIENTS = 32
TIME_LIMIT = 120.0


def pod(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": NAME}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "none", "command": ["sleep", "600"]}],
        },
    }


async def watch_running(
    client: ApiClient, resource_version: str, running: dict[str, float], expected: int
) -> None:
    """Note when each pod is first seen Running, until ``expected`` are."""
    rv = resource_version
    while len(running) < expected:
        async for _, obj in client.watch(
            PODS, NAMESPACE, resource_version=rv, timeout_seconds=int(TIME_LIMIT)
        ):
            meta = obj.get("metadata", {})
            rv = meta.get("resourceVersion", rv)
            name = meta.get("name", "")
            if (obj.get("status") or {}).get("phase") == "Running" and name not in running:
                running[name] = time.perf_counter()
                if len(running) >= expected:
                    return


async def run(ctx: Context) -> list[Figure]:
    async with real_node(ctx, NAME) as node:
        figures = await _run(ctx, node.client, NODE, node.agent_pid)
    # The same on a hollow node, which marks a bound pod Running with one status write and
    # nothing else, against a server configured the same way: the API server's and the
    # client's share of the latency.
    async with (
        ctx.server(f"{NAME}-hollow", extra_args=SERVER_ARGS) as server,
        client_for(server) as client,
    ):
        sim = Sim(server, 1, server.log_path.with_name("sim.log"))
        try:
            await sim.start(client)
            floor = await _run(ctx, client, "hollow-node-0", sim.pid)
        finally:
            await sim.stop()
    by_name = {f.name: f for f in floor}
    return [
        *figures,
        info(NAME, "hollow node p50 (API floor)", by_name["creation to Running p50"].value, "ms"),
        info(NAME, "hollow node p99 (API floor)", by_name["creation to Running p99"].value, "ms"),
    ]


async def _run(ctx: Context, client: ApiClient, node_name: str, node_pid: int) -> list[Figure]:
    names = [f"start-{i:03d}" for i in range(PODS_COUNT)]
    listed = await client.list(PODS, NAMESPACE)
    running: dict[str, float] = {}
    watcher = asyncio.create_task(
        watch_running(client, str(listed["metadata"]["resourceVersion"]), running, PODS_COUNT)
    )
    sent: dict[str, float] = {}
    failures = 0
    queue = list(reversed(names))

    async def worker() -> None:
        nonlocal failures
        while queue:
            name = queue.pop()
            sent[name] = time.perf_counter()
            try:
                await client.create(PODS, pod(name, node_name), NAMESPACE)
            except ApiError:
                failures += 1

    ctx.say(f"{PODS_COUNT} bound pods created at once from {CLIENTS} clients ...")
    cpu0 = process_cpu_seconds(node_pid)
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        created = time.perf_counter() - t0
        async with asyncio.timeout(TIME_LIMIT):
            await watcher
    finally:
        watcher.cancel()
    wall = time.perf_counter() - t0
    agent_cpu = process_cpu_seconds(node_pid) - cpu0
    latencies = [(running[n] - sent[n]) * 1000 for n in names if n in running]
    p50, p99 = percentiles(latencies, (50, 99))
    return [
        exactly(NAME, "pods Running", len(latencies), "", PODS_COUNT),
        exactly(NAME, "create failures", failures, "", 0),
        info(NAME, "creation to Running p50", p50, "ms"),
        below(NAME, "creation to Running p99", p99, "ms", 500),
        info(NAME, "creation to Running max", max(latencies, default=0.0), "ms"),
        info(NAME, f"all {PODS_COUNT} created", created, "s", digits=2),
        info(NAME, f"all {PODS_COUNT} Running", wall, "s", digits=2),
        info(NAME, "agent CPU over the run", agent_cpu / wall * 100, "% of a core", digits=0),
    ]
