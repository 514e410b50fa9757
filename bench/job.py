"""``job``: a Job of 1,000 completions, 100 in parallel, on 50 hollow nodes.

Method: a fresh server with its controller manager and scheduler, and ``setpoint sim
--nodes 50``. A Job with ``completions: 1000``, ``parallelism: 100`` and a pod template
with ``restartPolicy: Never`` is created; each hollow pod runs for 0.1 s (the sim's default
``sim.setpoint.dev/run-seconds``) and exits 0. The Job is polled every 100 ms from the
create until it has the condition ``Complete`` = True. Its ``status.succeeded`` must then be
exactly 1,000 and ``status.failed`` 0. The ideal time is 10 waves of 0.1 s = 1 s.

Target: Complete < 20 s; succeeded = 1,000, failed = 0.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.cluster import Cluster, cluster
from bench.common import NAMESPACE, Context, Figure, below, exactly, info
from setpoint.client.api import JOBS, Obj

NAME = "job"
NODES = 50
COMPLETIONS = 1_000
PARALLELISM = 100
JOB = "bench-job"
TIME_LIMIT = 180.0
POLL = 0.1


def job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": JOB},
        "spec": {
            "completions": COMPLETIONS,
            "parallelism": PARALLELISM,
            "backoffLimit": 6,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.invalid/pause",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                }
            },
        },
    }


def condition(j: Obj, kind: str) -> bool:
    conditions = (j.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


async def run(ctx: Context) -> list[Figure]:
    async with cluster(ctx, NAME, NODES) as c:
        return await _run(ctx, c)


async def _run(ctx: Context, c: Cluster) -> list[Figure]:
    ctx.say(f"Job of {COMPLETIONS:,} completions, parallelism {PARALLELISM} ...")
    j: Obj = {}
    complete = failed_cond = False
    half = 0.0
    async with c.measure(NAME) as phase:
        t0 = time.perf_counter()
        await c.client.create(JOBS, job(), NAMESPACE)
        deadline = time.monotonic() + TIME_LIMIT
        while time.monotonic() < deadline:
            j = await c.client.get(JOBS, JOB, NAMESPACE)
            complete, failed_cond = condition(j, "Complete"), condition(j, "Failed")
            succeeded = int((j.get("status") or {}).get("succeeded") or 0)
            if not half and succeeded >= COMPLETIONS // 2:
                half = time.perf_counter() - t0
            if complete or failed_cond:
                break
            await asyncio.sleep(POLL)
    status = j.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    failed = int(status.get("failed") or 0)
    ctx.say(
        f"after {phase.wall:.1f}s: complete={complete} failed={failed_cond} "
        f"succeeded={succeeded} failed pods={failed}"
    )
    return [
        below(
            NAME, "create to Complete", phase.wall if complete else TIME_LIMIT, "s", 20, digits=2
        ),
        exactly(NAME, "Job Complete", int(complete), "", 1),
        exactly(NAME, "succeeded", succeeded, "", COMPLETIONS),
        exactly(NAME, "failed", failed, "", 0),
        info(NAME, "pods completed/s", succeeded / phase.wall, "pods/s", digits=0),
        info(NAME, "time to 500 succeeded", half, "s", digits=2),
        info(NAME, "controller-manager RSS after run", c.rss_mib(c.cm_pid), "MiB"),
        *phase.figures(NAME),
    ]
