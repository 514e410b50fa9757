"""``nodefailure``: a node dies; how long until its Deployment's pods run Ready elsewhere.

Method: the multi-node harness of the tests (``tests/cluster.py``): one ``setpoint server``
with controllers and scheduler, and 3 ``setpoint agent`` processes, each its own node (in a
network namespace of its own where root allows). A Deployment of 30 ``sleep`` replicas
spreads over the 3 nodes. One trial: the node running most of them dies — its agent, its
supervisor and every workload process are SIGKILLed at once — and the clock runs until 30
live replicas are Ready again, none of them on the dead node (the Deployment's view: the
dead node's pods may still be Terminating). The node then comes back, its taints go, and a
``kubectl rollout restart`` spreads the replicas over the 3 nodes again for the next trial.

10 trials at setpoint's defaults (node lost after 15 s without a heartbeat, pods tolerate an
unreachable node for 10 s more), then 10 with the fastest configuration this machine keeps
safe: a node lost after 4 s (its agent renews its Lease every second, so four heartbeats in a
row must be missed) and no toleration.

Target: at the defaults p99 < 30 s (Kubernetes' defaults: about 6 minutes).
Standalone: ``python -m bench nodefailure``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.cluster import Cluster, node_ready, running_cluster
from tests.support import create_namespace, wait_for

from bench.common import Context, Figure, below, info, percentiles

NAME = "nodefailure"
NODES = 3
REPLICAS = 30
TRIALS = 10
RECOVERY_LIMIT = 120.0
DEFAULTS: list[str] = []
FASTEST_SERVER = [
    "--node-monitor-grace-period",
    "4s",
    "--default-not-ready-toleration-seconds",
    "0",
    "--default-unreachable-toleration-seconds",
    "0",
]
FASTEST_AGENT = ["--node-lease-duration-seconds", "4"]


def live_ready_elsewhere(cluster: Cluster, namespace: str, dead: str) -> bool:
    live = [p for p in cluster.pods(namespace) if not p["metadata"].get("deletionTimestamp")]
    return len(live) == REPLICAS and all(
        p["spec"].get("nodeName") != dead
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions") or []
        )
        for p in live
    )


def spread(cluster: Cluster, namespace: str) -> str:
    """Wait for the replicas to run on every node; return the busiest node."""
    k = cluster.kubectl(namespace)
    k("rollout", "status", "deployment/work", "--timeout=120s")
    nodes = [p["spec"]["nodeName"] for p in cluster.pods(namespace)]
    if set(nodes) != {n.name for n in cluster.nodes}:
        k("rollout", "restart", "deployment/work")
        k("rollout", "status", "deployment/work", "--timeout=120s")
        wait_for(lambda: len(cluster.pods(namespace)) == REPLICAS, timeout=60)
        nodes = [p["spec"]["nodeName"] for p in cluster.pods(namespace)]
    return max(set(nodes), key=nodes.count)


def trials(
    work: Path, ctx: Context, server_flags: list[str], agent_flags: list[str]
) -> list[float]:
    took: list[float] = []
    with running_cluster(NODES, server_flags=server_flags, agent_flags=agent_flags) as cluster:
        namespace = create_namespace(cluster.server, "bench")
        k = cluster.kubectl(namespace)
        k("create", "deployment", "work", f"--replicas={REPLICAS}", "--image=busybox", "--",
          "sleep", "3600")  # fmt: skip
        for trial in range(TRIALS):
            victim = cluster.node(spread(cluster, namespace))
            began = time.monotonic()
            victim.crash()
            wait_for(
                lambda: live_ready_elsewhere(cluster, namespace, victim.name),  # noqa: B023
                timeout=RECOVERY_LIMIT,
                interval=0.1,
                what="the replicas Ready elsewhere",
            )
            took.append(time.monotonic() - began)
            ctx.say(f"trial {trial + 1}: {took[-1]:.1f} s (node {victim.name})")
            victim.start()
            wait_for(lambda: node_ready(cluster.server, victim.name) == "True", timeout=60)  # noqa: B023
        if cluster.tracebacks():
            raise RuntimeError(f"tracebacks in {cluster.tracebacks()}")
    return took


async def run(ctx: Context) -> list[Figure]:
    ctx.say(f"{TRIALS} node failures at the defaults ...")
    default = await asyncio.to_thread(trials, ctx.work_dir, ctx, DEFAULTS, [])
    ctx.say(f"{TRIALS} node failures at the fastest safe configuration ...")
    fastest = await asyncio.to_thread(trials, ctx.work_dir, ctx, FASTEST_SERVER, FASTEST_AGENT)
    d50, d99 = percentiles(default, (50, 99))
    f50, f99 = percentiles(fastest, (50, 99))
    return [
        info(NAME, "defaults: node death to 30/30 Ready elsewhere, p50", d50, "s"),
        below(NAME, "defaults: node death to 30/30 Ready elsewhere, p99", d99, "s", 30),
        info(NAME, "fastest safe: node death to 30/30 Ready elsewhere, p50", f50, "s"),
        info(NAME, "fastest safe: node death to 30/30 Ready elsewhere, p99", f99, "s"),
    ]
