"""``scheduler``: 5,000 bare pods onto 500 hollow nodes; the binding rate.

Method: a fresh server with its controller manager and scheduler. 5,000 bare pods (one
container, requests 10m CPU / 16Mi) are created from 32 concurrent creates (untimed) while
there are no nodes, so they all wait as unschedulable. A pod watch is opened from a list's
resourceVersion and ``setpoint sim --nodes 500`` is started; the node additions release the
pods. The watch records, for each pod, when it is first seen with ``spec.nodeName`` set.
The binding rate is the number of bound pods minus one over the time from the first bind
to the last. (Creating pods while nodes exist would measure the create rate instead: with
the scheduler and the sim writing at the same time the server accepts only ~220 pod
creates/s on this machine.)

Target: >= 1,000 pods bound/s; 5,000 of 5,000 bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.cluster import Cluster, cluster, create_all
from bench.common import NAMESPACE, Context, Figure, at_least, exactly, info
from setpoint.client.api import PODS, ApiClient, ApiError

NAME = "scheduler"
NODES = 500
PODS_COUNT = 5_000
CLIENTS = 32
TIME_LIMIT = 240.0


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-sched"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.invalid/pause",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


class BindWatch:
    """Watches the namespace's pods and notes when each is first seen bound."""

    def __init__(self, client: ApiClient, expected: int) -> None:
        self.client = client
        self.expected = expected
        self.bound: dict[str, float] = {}
        self.nodes: dict[str, str] = {}
        self.done = asyncio.Event()
        self.error: BaseException | None = None

    async def run(self, resource_version: str) -> None:
        rv = resource_version
        try:
            while not self.done.is_set():
                async for _, obj in self.client.watch(
                    PODS, NAMESPACE, resource_version=rv, timeout_seconds=int(TIME_LIMIT)
                ):
                    meta = obj.get("metadata", {})
                    rv = meta.get("resourceVersion", rv)
                    node = (obj.get("spec") or {}).get("nodeName")
                    name = meta.get("name", "")
                    if node and name and name not in self.bound:
                        self.bound[name] = time.perf_counter()
                        self.nodes[name] = node
                        if len(self.bound) >= self.expected:
                            self.done.set()
                            return
        except ApiError as exc:  # e.g. 410 Gone: counted as a failure of the run
            self.error = exc
            self.done.set()


async def run(ctx: Context) -> list[Figure]:
    async with cluster(ctx, NAME, NODES, start_nodes=False) as c:
        return await _run(ctx, c)


async def _run(ctx: Context, c: Cluster) -> list[Figure]:
    names = [f"sched-{i:05d}" for i in range(PODS_COUNT)]
    bodies = [pod(n) for n in names]
    ctx.say(f"{PODS_COUNT:,} pods from {CLIENTS} concurrent creates, no nodes yet ...")
    created = 0

    async def make(i: int) -> None:
        nonlocal created
        await c.client.create(PODS, bodies[i], NAMESPACE)
        created += 1

    t0 = time.perf_counter()
    failures = await create_all(make, PODS_COUNT, concurrency=CLIENTS, time_limit=TIME_LIMIT)
    create_wall = time.perf_counter() - t0
    ctx.say(f"created {created:,} in {create_wall:.1f}s; failures: {failures or 0}")

    listed = await c.client.list(PODS, NAMESPACE)
    early = sum(1 for p in listed.get("items", []) if (p.get("spec") or {}).get("nodeName"))
    watch = BindWatch(c.client, created - early)
    watcher = asyncio.create_task(watch.run(str(listed["metadata"]["resourceVersion"])))
    await asyncio.sleep(0.5)  # let the scheduler settle its unschedulable attempts
    reached = True
    async with c.measure(NAME) as phase:
        t1 = time.perf_counter()
        await c.start_nodes()
        try:
            async with asyncio.timeout(TIME_LIMIT):
                await watch.done.wait()
        except TimeoutError:
            reached = False
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    times = sorted(watch.bound.values())
    bound = len(times) + early
    if not reached or watch.error:
        ctx.say(f"stopped with {bound:,} bound: {watch.error or 'time limit'}")
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    rate = (len(times) - 1) / span if span > 0 else 0.0
    used = len(set(watch.nodes.values()))
    ctx.say(f"bound {bound:,} in {span:.2f}s ({rate:,.0f}/s) on {used} nodes")
    return [
        at_least(NAME, "pods bound/s (first to last bind)", rate, "pods/s", 1000, digits=0),
        exactly(NAME, "pods bound", bound, "", PODS_COUNT),
        info(NAME, "first to last bind", span, "s", digits=2),
        info(NAME, "sim start to last bind", (times[-1] - t1) if times else 0.0, "s", digits=2),
        info(NAME, "hollow nodes Ready after sim start", c.sim_start, "s", digits=1),
        info(NAME, "nodes used", used, digits=0),
        info(
            NAME,
            "pod creates/s (32 concurrent, untimed)",
            created / create_wall,
            "creates/s",
            digits=0,
        ),
        info(NAME, "controller-manager RSS after run", c.rss_mib(c.cm_pid), "MiB"),
        *phase.figures(NAME),
    ]
