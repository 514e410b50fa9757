"""``seedstory``: the seed story (``tests/seedstory.py``) at setpoint's defaults, as figures.

Method: 4 real nodes (the tests' multi-node harness), a 3-replica web server with readiness
and liveness probes, polled 10 times a second on every Ready replica. One after another: its
process is killed, its process hangs (SIGSTOP; the liveness probe restarts it), a pod is
deleted, a node dies (agent, supervisor and processes killed). For each fault: how long fewer
than 3 replicas answered, and the fewest that did.

No target: the figures say what a client of the service sees.
Standalone: ``python -m bench seedstory``.
"""

from __future__ import annotations

import asyncio

from tests.cluster import running_cluster
from tests.seedstory import REPLICAS, Outage, run_seed_story
from tests.support import create_namespace

from bench.common import Context, Figure, info

NAME = "seedstory"


def story() -> list[Outage]:
    with running_cluster(REPLICAS + 1) as cluster:
        outages = run_seed_story(cluster, create_namespace(cluster.server, "seed"))
        if cluster.tracebacks():
            raise RuntimeError(f"tracebacks in {cluster.tracebacks()}")
        return outages


async def run(ctx: Context) -> list[Figure]:
    figures = []
    for outage in await asyncio.to_thread(story):
        ctx.say(str(outage))
        figures += [
            info(
                NAME,
                f"{outage.fault}: time below {REPLICAS} answering",
                outage.seconds_degraded,
                "s",
                digits=2,
            ),
            info(NAME, f"{outage.fault}: fewest answering", outage.fewest_healthy, "", digits=0),
        ]
    return figures
