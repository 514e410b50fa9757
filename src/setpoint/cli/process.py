"""Process set-up every long-running ``setpoint`` command shares: the event loop, the
garbage collector, the exit status that says it could not start, and going when the server
that started it goes."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
from typing import Protocol

# Exit status of a command that could not start (a full or read-only disk, a corrupt or
# missing database, a data dir in use): distinct from 1 (failed while running) and 2 (bad
# usage), so a supervisor can tell "restarting will not help" apart, e.g. systemd's
# RestartPreventExitStatus=3.
EXIT_CANNOT_START = 3


def install_uvloop() -> None:
    """Run asyncio on uvloop (a dependency; stay runnable without it)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass


def tune_gc() -> None:
    """Keep what start-up made out of the collector's generations and collect less often.

    The API server's watch caches and every informer cache hold hundreds of thousands of
    long-lived dicts; with CPython's default thresholds (700, 10, 10) a burst of new objects
    (3,000 pods arriving) sets off full collections that walk all of them and stop the
    event loop for tens to hundreds of milliseconds each. Reference counting frees almost
    everything these processes drop, so rarer collections cost little memory."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


PARENT_PID_ENV = "SETPOINT_EXIT_WITH_PARENT"


def exit_with_parent() -> None:
    """In a child started by :func:`setpoint.cli.server.supervise_child`: stop (SIGTERM to
    ourselves, so the normal shutdown runs) when the server that started us is gone, even if
    it was killed with SIGKILL and could not stop us itself."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class Runnable(Protocol):
    async def run(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signalled(component: Runnable) -> None:
    """Run ``component`` until it ends by itself or SIGTERM/SIGINT asks it to stop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(component.stop()))
    try:
        await component.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
