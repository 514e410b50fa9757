"""``crash``: how fast the node supervisor replaces a crashed workload, and what it costs.

Method: a supervisor is started on a fresh state dir (``ensure_supervisor``) with one
container, ``sleep 600`` under restart policy ``Always``. Its backoff is set to zero
(``backoff_base=0``): the benchmark measures the restart path, not the policy's deliberate
waits (with the defaults only the first restart is immediate). 200 times: SIGKILL the
current process and time from the kill until the event stream reports the replacement
running (its pid is then already in ``/proc``); the supervisor's own view (replacement start
minus recorded finish) is reported alongside. Afterwards 100 ``sleep`` containers run under
the same supervisor and its RSS and PSS are read from ``/proc/<pid>/smaps_rollup``.

Peers, each measured the same way when installed in the venv an environment variable names
(kill to a new child pid seen in ``/proc/<daemon>/task/*/children``, polled every 0.5 ms):
supervisord (``SETPOINT_BENCH_SUPERVISORD_VENV``; ``autorestart=true``, ``startsecs=0``)
and circus (``SETPOINT_BENCH_CIRCUS_VENV``; ``respawn``, ``warmup_delay=0``, IPC endpoints).
``scripts/bench-peers.sh`` makes both venvs.

Targets: crash-to-running p50 < 20 ms, p99 < 100 ms.
Standalone: ``python -m bench.crash``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Context, Figure, below, info, percentiles, run_standalone
from setpoint.agent.runtime import ContainerSpec, Runtime, ensure_supervisor

NAME = "crash"
KILLS = 200
PEER_KILLS = 50  # the peers take a second or more per restart
CIRCUS_CHECK_DELAY = 0.1  # the arbiter's respawn tick; its default is 5 s
IDLE_CONTAINERS = 100


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


async def measure_setpoint(work: Path) -> tuple[list[float], list[float], int, int]:
    runtime = await ensure_supervisor(work / "supervisor")
    supervisor = (await runtime.info())["pid"]
    try:
        spec = ContainerSpec(
            id="bench/crash", argv=["sleep", "600"], env={"PATH": os.environ["PATH"]},
            backoff_base=0.0,
        )  # fmt: skip
        await runtime.start_container(spec)
        observed, internal = await time_restarts(runtime, spec.id, KILLS)
        for i in range(IDLE_CONTAINERS):
            await runtime.start_container(
                ContainerSpec(id=f"bench/idle-{i}", argv=["sleep", "600"], env=spec.env)
            )
        await asyncio.sleep(0.5)
        rss, pss = memory_kib(supervisor)
        for s in await runtime.list():
            await runtime.remove(s.id)
        return observed, internal, rss, pss
    finally:
        await runtime.close()
        os.kill(supervisor, signal.SIGTERM)


async def time_restarts(
    runtime: Runtime, container_id: str, kills: int
) -> tuple[list[float], list[float]]:
    """SIGKILL the running container ``kills`` times, one after another; for each kill, the
    time until the event stream reports the replacement running, and the supervisor's own
    view of it (replacement start minus recorded finish)."""
    events = runtime.events()
    try:
        async for state in events:  # the initial snapshot
            if state.id == container_id:
                break
        first = state.restart_count
        observed: list[float] = []
        internal: list[float] = []
        for n in range(first + 1, first + kills + 1):
            assert state.pid is not None
            started = time.perf_counter()
            os.kill(state.pid, signal.SIGKILL)
            async with asyncio.timeout(5):
                async for state in events:
                    if state.id == container_id and (state.restart_count, state.state) == (
                        n,
                        "running",
                    ):
                        break
            observed.append(time.perf_counter() - started)
            assert state.last_exit is not None and state.started_at is not None
            internal.append(state.started_at - state.last_exit.finished_at)
        return observed, internal
    finally:
        await events.aclose()


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def measure_supervisord(venv: Path, work: Path) -> list[float]:
    conf = work / "supervisord.conf"
    conf.write_text(
        f"[supervisord]\nnodaemon=true\nlogfile={work}/supervisord.log\npidfile={work}/sd.pid\n"
        "[program:sleep]\ncommand=sleep 600\nautorestart=true\nstartsecs=0\n"
        "startretries=1000000\n"
    )
    return measure_peer("supervisord", [str(venv / "bin" / "supervisord"), "-c", str(conf)])


def measure_circus(venv: Path, work: Path) -> list[float]:
    conf = work / "circus.ini"
    conf.write_text(
        f"[circus]\nendpoint = ipc://{work}/circus.sock\n"
        f"pubsub_endpoint = ipc://{work}/circus-pubsub.sock\nstatsd = False\n"
        f"check_delay = {CIRCUS_CHECK_DELAY}\n"
        "[watcher:sleep]\ncmd = sleep 600\nnumprocesses = 1\nwarmup_delay = 0\n"
        "respawn = True\nmax_retry = -1\n"
    )
    return measure_peer("circusd", [str(venv / "bin" / "circusd"), str(conf)])


def measure_peer(name: str, argv: list[str]) -> list[float]:
    """Kill the one child of the daemon ``argv`` starts ``KILLS`` times, timing each kill
    until a new child appears."""
    daemon = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    current: set[int] = set()
    try:
        deadline = time.monotonic() + 10
        while not (current := children(daemon.pid)):
            assert time.monotonic() < deadline, f"{name} started nothing"
            time.sleep(0.01)
        latencies = []
        for _ in range(PEER_KILLS):
            (pid,) = current
            started = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while not (current := children(daemon.pid) - {pid}):
                assert time.monotonic() < deadline, f"{name} did not restart"
                time.sleep(0.0005)
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        with contextlib.suppress(OSError):
            current |= children(daemon.pid)
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
        for pid in current:  # circus puts each child in a process group of its own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def run(ctx: Context) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="sp-crash-", dir="/tmp"))
    try:
        ctx.say(f"{KILLS} SIGKILLs of a container under the setpoint supervisor ...")
        observed, internal, rss, pss = await measure_setpoint(work)
        p50, p99 = percentiles([x * 1000 for x in observed], (50, 99))
        i50, i99 = percentiles([x * 1000 for x in internal], (50, 99))
        figures = [
            below(NAME, "crash-to-running p50", p50, "ms", 20, digits=2),
            below(NAME, "crash-to-running p99", p99, "ms", 100, digits=2),
            info(NAME, "supervisor exit-to-start p50", i50, "ms", digits=2),
            info(NAME, "supervisor exit-to-start p99", i99, "ms", digits=2),
            info(NAME, f"supervisor RSS, {IDLE_CONTAINERS} containers", rss / 1024, "MiB"),
            info(NAME, f"supervisor PSS, {IDLE_CONTAINERS} containers", pss / 1024, "MiB"),
        ]
        peers = (
            ("supervisord", "supervisord", "SETPOINT_BENCH_SUPERVISORD_VENV", measure_supervisord),
            ("circus", "circusd", "SETPOINT_BENCH_CIRCUS_VENV", measure_circus),
        )
        for peer, daemon, variable, measure in peers:
            venv = os.environ.get(variable)
            if not (venv and (Path(venv) / "bin" / daemon).exists()):
                ctx.say(f"{peer} not measured: set {variable}")
                continue
            ctx.say(f"{PEER_KILLS} SIGKILLs of a process under {peer} ...")
            times = await asyncio.to_thread(measure, Path(venv), work)
            q50, q99 = percentiles([x * 1000 for x in times], (50, 99))
            figures += [
                info(NAME, f"{peer} crash-to-running p50", q50, "ms", digits=2),
                info(NAME, f"{peer} crash-to-running p99", q99, "ms", digits=2),
                info(NAME, f"{peer}/setpoint p50 ratio", q50 / p50, "x"),
            ]
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_standalone(run))
