"""``agentoverhead``: what a real node agent costs with 100 idle pods that have probes.

Method: a fresh server and one real ``setpoint agent`` (:mod:`bench.realnode`). 100 bound
pods, each one ``sleep 600`` container with a readiness probe every 10 s (half ``exec``
``true``, half ``tcpSocket`` on the API server's port, which is always open), are created
and awaited Ready -- or, on an agent that does not run probes, Running with none Ready
after 30 s. After one more probe period, for 60 s of steady state, the
agent process's CPU time (``utime + stime`` from ``/proc/<pid>/stat``) and its RSS are
sampled; the supervisor's PSS (``/proc/<pid>/smaps_rollup``) is read at the end.

Targets: agent CPU < 2% of one core, agent RSS < 100 MiB.
Standalone: ``python -m bench agentoverhead``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from bench.common import NAMESPACE, Context, Figure, below, exactly, info, process_cpu_seconds
from bench.realnode import NODE, RealNode, pss_kib, real_node
from setpoint.client.api import PODS

NAME = "agentoverhead"
PODS_COUNT = 100
SAMPLE_SECONDS = 60.0
PROBE_PERIOD = 10
SETTLE_TIMEOUT = 180.0


def pod(name: str, index: int, api_port: int) -> dict[str, Any]:
    if index % 2:
        probe: dict[str, Any] = {"tcpSocket": {"port": api_port, "host": "127.0.0.1"}}
    else:
        probe = {"exec": {"command": ["true"]}}
    probe["periodSeconds"] = PROBE_PERIOD
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": NAME}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "app",
                    "image": "none",
                    "command": ["sleep", "600"],
                    "readinessProbe": probe,
                }
            ],
        },
    }


def settled(pod: dict[str, Any]) -> bool:
    """Ready, or Running where the agent does not run readiness probes (yet)."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and all(
        "running" in (cs.get("state") or {}) for cs in statuses
    )


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def run(ctx: Context) -> list[Figure]:
    async with real_node(ctx, NAME) as node:
        return await _run(ctx, node)


async def _run(ctx: Context, node: RealNode) -> list[Figure]:
    client = node.client
    api_port = urlsplit(node.server.url).port or 6443
    ctx.say(f"{PODS_COUNT} pods with readiness probes (exec and tcpSocket, every 10 s) ...")
    await asyncio.gather(
        *(
            client.create(PODS, pod(f"idle-{i:03d}", i, api_port), NAMESPACE)
            for i in range(PODS_COUNT)
        )
    )
    started = time.monotonic()
    while True:
        items = (await client.list(PODS, NAMESPACE, label_selector=f"bench={NAME}"))["items"]
        n_ready, n_running = sum(ready(p) for p in items), sum(settled(p) for p in items)
        if n_ready == PODS_COUNT:
            probed = True
            break
        # an agent without probes leaves probed pods unready for good: settle for Running
        if n_running == PODS_COUNT and n_ready == 0 and time.monotonic() - started > 30:
            probed = False
            break
        if time.monotonic() - started > SETTLE_TIMEOUT:
            raise TimeoutError(f"{n_running} running, {n_ready} Ready of {PODS_COUNT}")
        await asyncio.sleep(1.0)
    ctx.say(
        f"all {'Ready' if probed else 'Running (no readiness yet: probes not run)'}; "
        f"sampling the agent for {SAMPLE_SECONDS:.0f}s ..."
    )
    await asyncio.sleep(PROBE_PERIOD)  # past the start-up burst of first probes
    pid = node.agent_pid
    cpu0, t0 = process_cpu_seconds(pid), time.perf_counter()
    rss_peak = 0
    while time.perf_counter() - t0 < SAMPLE_SECONDS:
        rss_peak = max(rss_peak, rss_kib(pid))
        await asyncio.sleep(1.0)
    cpu = (process_cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
    rss = rss_kib(pid)
    items = (await client.list(PODS, NAMESPACE, label_selector=f"bench={NAME}"))["items"]
    return [
        exactly(NAME, "pods still Running", sum(settled(p) for p in items), "", PODS_COUNT),
        info(NAME, "pods Ready (readiness probes run)", sum(ready(p) for p in items), "", digits=0),
        below(NAME, f"agent CPU, {PODS_COUNT} probed pods", cpu * 100, "% of a core", 2, digits=2),
        below(NAME, f"agent RSS, {PODS_COUNT} probed pods", rss_peak / 1024, "MiB", 100),
        info(NAME, "agent RSS at the end", rss / 1024, "MiB"),
        info(
            NAME, f"supervisor PSS, {PODS_COUNT} pods", pss_kib(node.supervisor_pid()) / 1024, "MiB"
        ),
    ]
