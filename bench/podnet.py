"""``podnet``: what a pod's own network namespace costs.

Method: an agent's :class:`~setpoint.agent.network.PodNetwork` (the code the agent runs, on
a data dir of the run, so its bridge and namespaces have names of their own) is given a /24
of 10.208.0.0/12 unused on this machine, then ``PODS`` times sets up one pod's network
(namespace, veth on the bridge, address, default route) and, after all are up, tears each
down again; each timed alone, the first setup (which also makes the bridge) included.
Everything is removed afterwards (:func:`setpoint.agent.network.remove_all`).

Then the price of ``setns`` at container start: under one supervisor (no agent), ``STARTS``
starts of ``true`` in the node's network and as many in a pod's namespace (joined in the
``preexec_fn``), timed from the request until the supervisor answers it running.
Root and iproute2 only.

Target: pod network setup p99 < 50 ms.
Standalone: ``python -m bench podnet``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from tests.support import unused_cluster_cidr

from bench.common import Context, Figure, below, container_start_times, info, percentiles
from setpoint.agent.network import PodNetwork, pod_network_unavailable, remove_all

NAME = "podnet"
PODS = 100
STARTS = 100


async def run(ctx: Context) -> list[Figure]:
    why = pod_network_unavailable()
    if why:
        ctx.say(f"not measured: {why}")
        return []
    work = Path(tempfile.mkdtemp(prefix="sp-podnet-", dir="/tmp"))
    network = PodNetwork(work)
    network.set_pod_cidr(unused_cluster_cidr().replace(".0.0/16", ".0.0/24"))
    uids = [str(uuid.uuid4()) for _ in range(PODS)]
    setups, teardowns = [], []
    try:
        ctx.say(f"{PODS} pod networks set up and torn down ...")
        for uid in uids:
            started = time.perf_counter()
            await network.setup(uid)
            setups.append(time.perf_counter() - started)
        netns = str(network.netns_path(uids[0]))
        ctx.say(f"{STARTS} container starts without and with a network namespace ...")
        plain = await container_start_times(work / "plain", STARTS)
        joined = await container_start_times(work / "netns", STARTS, netns=netns)
        for uid in uids:
            started = time.perf_counter()
            await network.teardown(uid)
            teardowns.append(time.perf_counter() - started)
    finally:
        remove_all(work)
        shutil.rmtree(work, ignore_errors=True)
    s50, s99 = percentiles([s * 1000 for s in setups], (50, 99))
    t50, t99 = percentiles([s * 1000 for s in teardowns], (50, 99))
    (p50,) = percentiles([s * 1000 for s in plain], (50,))
    j50, j99 = percentiles([s * 1000 for s in joined], (50, 99))
    return [
        info(NAME, "pod network setup p50", s50, "ms"),
        below(NAME, "pod network setup p99", s99, "ms", 50),
        info(NAME, "pod network teardown p50", t50, "ms"),
        info(NAME, "pod network teardown p99", t99, "ms"),
        info(NAME, "container start, node network p50", p50, "ms", digits=2),
        info(NAME, "container start, pod network (setns) p50", j50, "ms", digits=2),
        info(NAME, "container start, pod network (setns) p99", j99, "ms", digits=2),
    ]
