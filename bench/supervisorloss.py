"""``supervisorloss``: how fast a node repairs the loss of its supervisor, and what
containment costs a restart.

Method, node: a fresh server and one real ``setpoint agent`` (:mod:`bench.realnode`).
``ROUNDS`` times, a new pod (``sleep 600``, restart policy Always: a fresh one each round,
so its first restart is immediate rather than in crash-loop backoff) runs, and the per-node
supervisor and the pod's process are SIGKILLed in the same instant; timed from the kills
until (a) a new process of the container runs (its pid, alive, in the new supervisor's
state file, polled every 2 ms), (b) the pod's watch shows it running with restart count 1,
and (c) the Node's watch shows it ``Ready=True`` again after the ``Ready=False``
("container runtime is down") the agent posts meanwhile.

Method, containment: under one supervisor (no agent), 100 SIGKILLs of a ``sleep 600``
container as in ``crash``, timed from the kill until the event stream reports the
replacement running, once for a container in cgroups of its own (joined in a
``preexec_fn`` between fork and exec, which also costs the fork its ``vfork`` fast path)
and once for one without. Root and a cgroup filesystem only.

Target: supervisor killed -> container running again p99 < 2 s.
Standalone: ``python -m bench supervisorloss``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from bench.common import NAMESPACE, Context, Figure, below, info, percentiles
from bench.realnode import NODE, RealNode, real_node
from setpoint.agent.runtime import ContainerSpec, ensure_supervisor
from setpoint.agent.supervisor import cgroup_dirs, cgroup_empty, kill_cgroup, proc_start_time
from setpoint.client.api import NODES, PODS, Obj

NAME = "supervisorloss"
ROUNDS = 10
KILLS = 100


def container_instance(node: RealNode, uid: str) -> tuple[int, int, int] | None:
    """(restart count, pid, start time) of pod ``uid``'s live instance, from the supervisor."""
    state_file = node.agent_dir / "supervisor" / "containers" / quote(f"{uid}/app", safe="")
    with contextlib.suppress(OSError, ValueError, TypeError):
        saved = json.loads((state_file / "state.json").read_text())
        pid, start = saved.get("pid"), saved.get("pid_start_time")
        if pid and proc_start_time(pid) == start:
            return int(saved["restart_count"]), pid, start
    return None


async def wait_for(
    check: Callable[[], object], timeout: float = 30.0, interval: float = 0.002
) -> float:
    """Poll ``check`` until truthy; returns when it became so (``perf_counter``)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        await asyncio.sleep(interval)
    return time.perf_counter()


class Watched:
    """The newest pod and node objects as their watches deliver them, with arrival times."""

    def __init__(self) -> None:
        self.pod: list[tuple[float, Obj]] = []
        self.node: list[tuple[float, Obj]] = []

    async def follow(self, node: RealNode) -> None:
        async def pods() -> None:
            async for _, obj in node.client.watch(PODS, NAMESPACE):
                self.pod.append((time.perf_counter(), obj))

        async def nodes() -> None:
            async for _, obj in node.client.watch(NODES, field_selector=f"metadata.name={NODE}"):
                self.node.append((time.perf_counter(), obj))

        await asyncio.gather(pods(), nodes())


def pod_running_after(watched: Watched, since: float, name: str) -> float | None:
    """When the watch delivered pod ``name`` running again after its first restart."""
    for at, obj in watched.pod:
        statuses = obj.get("status", {}).get("containerStatuses") or [{}]
        restarted = statuses[0].get("restartCount") == 1
        running = "running" in statuses[0].get("state", {})
        if at >= since and obj["metadata"]["name"] == name and restarted and running:
            return at
    return None


def ready_again_after(watched: Watched, since: float) -> float | None:
    was_down = False
    for at, obj in watched.node:
        if at < since:
            continue
        ready = next(
            (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {}
        )
        was_down = was_down or ready.get("status") == "False"
        if was_down and ready.get("status") == "True":
            return at
    return None


async def measure_node(ctx: Context) -> tuple[list[float], list[float], list[float]]:
    async with real_node(ctx, NAME) as node:
        watched = Watched()
        follower = asyncio.create_task(watched.follow(node))
        try:
            rounds = [await one_round(node, watched, f"survivor-{n}") for n in range(ROUNDS)]
            process, status, ready = (list(series) for series in zip(*rounds, strict=True))
            return process, status, ready
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower


async def one_round(node: RealNode, watched: Watched, name: str) -> tuple[float, float, float]:
    """Run pod ``name``, then kill the supervisor and its process at once; seconds until
    its next instance runs, until its status says so, and until the node is Ready again."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "app", "image": "none", "command": ["sleep", "600"]}],
        },
    }
    uid = (await node.client.create(PODS, pod, NAMESPACE))["metadata"]["uid"]
    await wait_for(lambda: container_instance(node, uid) is not None)
    instance = container_instance(node, uid)
    assert instance is not None
    started = time.perf_counter()
    os.kill(node.supervisor_pid(), signal.SIGKILL)
    os.kill(instance[1], signal.SIGKILL)
    process = await wait_for(lambda: (container_instance(node, uid) or (0,))[0] == 1)
    status = await wait_for(lambda: pod_running_after(watched, started, name), interval=0.01)
    ready = await wait_for(lambda: ready_again_after(watched, started), interval=0.01)
    status = pod_running_after(watched, started, name) or status  # when the watch had it
    ready = ready_again_after(watched, started) or ready
    return process - started, status - started, ready - started


async def measure_restarts(work: Path, *, cgroup_parent: str | None) -> list[float]:
    runtime = await ensure_supervisor(work / ("contained" if cgroup_parent else "plain"))
    supervisor = (await runtime.info())["pid"]
    spec = ContainerSpec(
        id=f"bench/{'contained' if cgroup_parent else 'plain'}",
        argv=["sleep", "600"],
        env={"PATH": os.environ["PATH"]},
        backoff_base=0.0,
        cgroup_parent=cgroup_parent,
    )
    try:
        state = await runtime.start_container(spec)
        events = runtime.events()
        async for current in events:  # the initial snapshot
            if current.id == spec.id:
                break
        latencies = []
        for n in range(1, KILLS + 1):
            assert state.pid is not None
            started = time.perf_counter()
            os.kill(state.pid, signal.SIGKILL)
            async with asyncio.timeout(5):
                async for state in events:
                    if state.id == spec.id and state.restart_count == n and state.pid:
                        break
            latencies.append(time.perf_counter() - started)
        await events.aclose()
        await runtime.remove(spec.id)
        return latencies
    finally:
        await runtime.close()
        os.kill(supervisor, signal.SIGTERM)


async def run(ctx: Context) -> list[Figure]:
    ctx.say(f"{ROUNDS} supervisor + container SIGKILLs on a real node ...")
    process, status, ready = await measure_node(ctx)
    ms = [[x * 1000 for x in series] for series in (process, status, ready)]
    p50, p99 = percentiles(ms[0], (50, 99))
    s50, s99 = percentiles(ms[1], (50, 99))
    r50, r99 = percentiles(ms[2], (50, 99))
    figures = [
        below(NAME, "supervisor loss to container running p50", p50, "ms", 2000),
        below(NAME, "supervisor loss to container running p99", p99, "ms", 2000),
        info(NAME, "supervisor loss to pod status running p50", s50, "ms"),
        info(NAME, "supervisor loss to pod status running p99", s99, "ms"),
        info(NAME, "supervisor loss to node Ready again p50", r50, "ms"),
        info(NAME, "supervisor loss to node Ready again p99", r99, "ms"),
    ]
    parent = f"setpoint-bench/{uuid.uuid4().hex[:8]}"
    if os.geteuid() != 0 or not cgroup_dirs(parent, "x"):
        ctx.say("containment cost not measured: needs root and a cgroup filesystem")
        return figures
    work = Path(tempfile.mkdtemp(prefix="sp-suploss-", dir="/tmp"))
    try:
        ctx.say(f"{KILLS} SIGKILLs of a container with and without cgroups ...")
        plain = await measure_restarts(work, cgroup_parent=None)
        contained = await measure_restarts(work, cgroup_parent=parent)
    finally:
        dirs = cgroup_dirs(parent, "bench/contained")
        kill_cgroup(dirs)
        deadline = time.monotonic() + 5
        while not cgroup_empty(dirs) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for d in [*dirs, *(d.parent for d in dirs), *(d.parent.parent for d in dirs)]:
            with contextlib.suppress(OSError):
                d.rmdir()
        shutil.rmtree(work, ignore_errors=True)
    q50, q99 = percentiles([x * 1000 for x in plain], (50, 99))
    c50, c99 = percentiles([x * 1000 for x in contained], (50, 99))
    figures += [
        info(NAME, "crash-to-running without cgroups p50", q50, "ms", digits=2),
        info(NAME, "crash-to-running without cgroups p99", q99, "ms", digits=2),
        info(NAME, "crash-to-running in cgroups p50", c50, "ms", digits=2),
        info(NAME, "crash-to-running in cgroups p99", c99, "ms", digits=2),
    ]
    return figures
