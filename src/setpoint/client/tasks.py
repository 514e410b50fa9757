"""Owning a group of asyncio tasks: run them until asked to stop or until one fails (its
failure surfaces instead of the rest limping on), then cancel and await every one; and a
periodic pass that one failure does not stop (:func:`run_periodically`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


async def run_until_stopped(stopping: asyncio.Event, tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Return when ``stopping`` is set; raise the exception of a task that fails first."""
    stopper = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_periodically(
    period: float, step: Callable[[], Awaitable[None]], *, name: str
) -> None:
    """Run ``step`` every ``period`` seconds until cancelled (``wait.Until``); a failing
    pass is logged and the next one runs as usual."""
    while True:
        try:
            await step()
        except Exception:
            log.exception("%s: periodic pass failed", name)
        await asyncio.sleep(period)
