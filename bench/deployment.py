"""``deployment``: a Deployment scaled 0 -> 3,000 on 300 hollow nodes, then rolled.

Method: a fresh server with its controller manager and scheduler, and ``setpoint sim
--nodes 300``. A Deployment with 0 replicas (default strategy: RollingUpdate, maxSurge and
maxUnavailable 25%) is created and observed; then ``spec.replicas`` is patched to 3,000 and
the Deployment's status is polled every 100 ms until ``readyReplicas`` is 3,000 (scale-up
time). Then an env var in the pod template is changed and the status is polled until
``updatedReplicas`` == ``readyReplicas`` == ``replicas`` == 3,000 and every older
ReplicaSet has 0 replicas in spec and status (rollout time).

Targets: scale-up < 15 s, rolling update < 30 s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.cluster import Cluster, cluster
from bench.common import NAMESPACE, Context, Figure, below, exactly, info
from setpoint.client.api import DEPLOYMENTS, REPLICASETS, Obj

NAME = "deployment"
NODES = 300
REPLICAS = 3_000
DEPLOY = "bench-deploy"
SCALE_LIMIT = 120.0
ROLL_LIMIT = 180.0
POLL = 0.1


def deployment() -> dict[str, Any]:
    labels = {"app": DEPLOY}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOY, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.invalid/pause",
                            "env": [{"name": "VERSION", "value": "1"}],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ]
                },
            },
        },
    }


def _status(d: Obj, key: str) -> int:
    return int((d.get("status") or {}).get(key) or 0)


async def run(ctx: Context) -> list[Figure]:
    async with cluster(ctx, NAME, NODES) as c:
        return await _run(ctx, c)


async def _run(ctx: Context, c: Cluster) -> list[Figure]:
    client = c.client
    await client.create(DEPLOYMENTS, deployment(), NAMESPACE)
    for _ in range(100):  # the controller has seen it (observedGeneration) before we scale
        d = await client.get(DEPLOYMENTS, DEPLOY, NAMESPACE)
        if _status(d, "observedGeneration") >= 1:
            break
        await asyncio.sleep(0.1)

    ctx.say(f"scale 0 -> {REPLICAS:,} on {NODES} nodes ...")
    ready = 0
    async with c.measure(f"{NAME}-scale") as scale:
        await client.patch(DEPLOYMENTS, DEPLOY, {"spec": {"replicas": REPLICAS}}, NAMESPACE)
        deadline = time.monotonic() + SCALE_LIMIT
        while time.monotonic() < deadline:
            d = await client.get(DEPLOYMENTS, DEPLOY, NAMESPACE)
            ready = _status(d, "readyReplicas")
            if ready >= REPLICAS:
                break
            await asyncio.sleep(POLL)
    scaled = ready >= REPLICAS
    ctx.say(f"ready {ready:,} after {scale.wall:.1f}s" + ("" if scaled else " (time limit)"))

    figures = [
        below(NAME, "scale 0 -> 3,000 until all Ready", scale.wall, "s", 15, digits=2),
        exactly(NAME, "ready replicas after scale-up", ready, "", REPLICAS),
        info(NAME, "pods Ready/s during scale-up", ready / scale.wall, "pods/s", digits=0),
        *scale.figures(NAME, "scale-up"),
    ]
    if not scaled:
        return figures

    ctx.say("rolling update (template env change) ...")
    updated = old_left = 0
    done = False
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "env": [{"name": "VERSION", "value": "2"}]}]}
            }
        }
    }
    async with c.measure(f"{NAME}-roll") as roll:
        # strategic merge patch: containers merge by name, env by name
        await client.patch(
            DEPLOYMENTS,
            DEPLOY,
            patch,
            NAMESPACE,
            patch_type="application/strategic-merge-patch+json",
        )
        deadline = time.monotonic() + ROLL_LIMIT
        while time.monotonic() < deadline:
            d = await client.get(DEPLOYMENTS, DEPLOY, NAMESPACE)
            updated, ready = _status(d, "updatedReplicas"), _status(d, "readyReplicas")
            total = _status(d, "replicas")
            gen_ok = _status(d, "observedGeneration") >= int(d["metadata"].get("generation", 0))
            if gen_ok and updated == ready == total == REPLICAS:
                old_left = await _old_replicas(c, d)
                if old_left == 0:
                    done = True
                    break
            await asyncio.sleep(POLL)
    ctx.say(
        f"updated {updated:,} ready {ready:,} old {old_left:,} after {roll.wall:.1f}s"
        + ("" if done else " (time limit)")
    )
    figures += [
        below(NAME, "rolling update until all updated+Ready", roll.wall, "s", 30, digits=2),
        exactly(
            NAME, "updated and ready replicas after rollout", min(updated, ready), "", REPLICAS
        ),
        exactly(NAME, "old ReplicaSet replicas after rollout", old_left if done else -1, "", 0),
        info(NAME, "pods replaced/s during rollout", updated / roll.wall, "pods/s", digits=0),
        *roll.figures(NAME, "rollout"),
        info(NAME, "controller-manager RSS after run", c.rss_mib(c.cm_pid), "MiB"),
    ]
    return figures


async def _old_replicas(c: Cluster, d: Obj) -> int:
    """Replicas (spec + status) still held by ReplicaSets other than the newest revision."""
    listed = await c.client.list(REPLICASETS, NAMESPACE, label_selector=f"app={DEPLOY}")
    sets = listed.get("items", [])

    def revision(rs: Obj) -> int:
        notes = rs["metadata"].get("annotations") or {}
        return int(notes.get("deployment.kubernetes.io/revision", "0"))

    if not sets:
        return -1
    newest = max(revision(rs) for rs in sets)
    return sum(
        int((rs.get("spec") or {}).get("replicas") or 0) + _status(rs, "replicas")
        for rs in sets
        if revision(rs) != newest
    )
