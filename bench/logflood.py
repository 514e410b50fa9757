"""``logflood``: what a container that logs as fast as it can costs the node supervisor.

Method: a supervisor is started on a fresh state dir (``ensure_supervisor``) with a
``sleep 600`` container (restart policy ``Always``, backoff zero as in ``crash``, logging
like every pod's container). Idle: it is SIGKILLed ``KILLS`` times and each crash-to-running
is timed through the event stream (``crash.time_restarts``). Then a second container runs
``yes`` (writing ``y`` lines flat out, logging with the kubelet's default rotation, 10 MiB x
5 files), and over ``WINDOW`` seconds the supervisor's CPU time (``/proc/<pid>/stat``) and
the bytes it writes (``wchar`` of ``/proc/<pid>/io``: the CRI log lines) are measured; then
the ``sleep`` container is killed ``KILLS`` times again, under the flood.

Targets: the supervisor spends < 25 % of a core on the flood, and crash-to-running p99
under the flood stays within 20 % of idle (+ 1 ms, so that a sub-millisecond idle p99 is
not held to a few microseconds).
Standalone: ``python -m bench.logflood``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    Context,
    Figure,
    below,
    info,
    percentiles,
    process_cpu_seconds,
    run_standalone,
)
from bench.crash import time_restarts
from setpoint.agent.pods import NodeContainerSettings
from setpoint.agent.runtime import ContainerSpec, Runtime, ensure_supervisor

NAME = "logflood"
KILLS = 500
WINDOW = 5.0  # seconds of flood the supervisor's cost is measured over
WARM_UP = 1.0


def written_bytes(pid: int) -> int:
    """Bytes ``pid`` has passed to write(2) and friends so far."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "wchar":
            return int(value)
    raise LookupError("no wchar in /proc/<pid>/io")


async def crash_to_running_ms(runtime: Runtime, container_id: str) -> tuple[float, float]:
    observed, _ = await time_restarts(runtime, container_id, KILLS)
    p50, p99 = percentiles([x * 1000 for x in observed], (50, 99))
    return p50, p99


async def measure(work: Path) -> list[Figure]:
    runtime = await ensure_supervisor(work / "supervisor")
    supervisor = (await runtime.info())["pid"]
    env = {"PATH": os.environ["PATH"]}
    try:
        crasher = ContainerSpec(
            id="bench/crash", argv=["sleep", "600"], env=env,
            log_dir=str(work / "logs" / "crash"), backoff_base=0.0,
            max_log_rate=NodeContainerSettings().max_log_rate,
        )  # fmt: skip
        await runtime.start_container(crasher)
        idle50, idle99 = await crash_to_running_ms(runtime, crasher.id)
        flood = ContainerSpec(
            id="bench/yes", argv=["yes"], env=env, log_dir=str(work / "logs" / "yes"),
            max_log_rate=NodeContainerSettings().max_log_rate,  # the agent's default
        )  # fmt: skip
        await runtime.start_container(flood)
        await asyncio.sleep(WARM_UP)
        cpu, wrote = process_cpu_seconds(supervisor), written_bytes(supervisor)
        started = time.monotonic()
        await asyncio.sleep(WINDOW)
        elapsed = time.monotonic() - started
        share = (process_cpu_seconds(supervisor) - cpu) / elapsed * 100
        rate = (written_bytes(supervisor) - wrote) / elapsed / 2**20
        flood50, flood99 = await crash_to_running_ms(runtime, crasher.id)
        return [
            below(NAME, "supervisor CPU, one container logging flat out", share, "%", 25),
            info(NAME, "log written, one container logging flat out", rate, "MiB/s"),
            info(NAME, "crash-to-running p50, idle", idle50, "ms", digits=2),
            info(NAME, "crash-to-running p99, idle", idle99, "ms", digits=2),
            info(NAME, "crash-to-running p50, beside the flood", flood50, "ms", digits=2),
            below(
                NAME, "crash-to-running p99, beside the flood", flood99, "ms",
                round(idle99 * 1.2 + 1, 2), digits=2,
            ),
        ]  # fmt: skip
    finally:
        for state in await runtime.list():  # `yes` must not outlive the benchmark
            await runtime.remove(state.id)
        await runtime.close()
        os.kill(supervisor, signal.SIGTERM)


async def run(ctx: Context) -> list[Figure]:
    work = Path(tempfile.mkdtemp(prefix="sp-logflood-", dir="/tmp"))
    try:
        ctx.say(f"{KILLS} crashes idle, {WINDOW:g}s of `yes` logging, {KILLS} crashes beside it")
        return await measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_standalone(run))
