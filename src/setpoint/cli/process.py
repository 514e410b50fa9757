"""Process set-up every long-running ``setpoint`` command shares: the event loop and the
garbage collector."""

from __future__ import annotations

import gc


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
