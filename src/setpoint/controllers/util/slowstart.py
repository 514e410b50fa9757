"""Slow-start batches: create many objects without paying for a broken template many times.

A controller that must create N pods sends them in batches of 1, 2, 4, ... in parallel and
stops after the first batch in which a call failed (``slowStartBatch`` in
``pkg/controller/replicaset/replica_set.go``, which the DaemonSet controller's ``syncNodes``
repeats). A quota, admission or validation error then costs one request, not N; the calls
never made are the caller's to forget (lower its expectations) and to retry later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SLOW_START_INITIAL_BATCH = 1


class BatchError(Exception):
    """A batch failed: ``successes`` calls succeeded in all, ``cause`` is the first error."""

    def __init__(self, successes: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.successes = successes
        self.cause = cause


async def slow_start_batch(
    items: Sequence[T],
    fn: Callable[[T], Awaitable[None]],
    initial: int = SLOW_START_INITIAL_BATCH,
) -> int:
    """Call ``fn`` for each item in growing parallel batches (1, 2, 4, ...); stop after the
    first batch with a failure. Returns how many calls succeeded; raises :class:`BatchError`
    (with that count) after the failing batch."""
    position, successes = 0, 0
    batch = min(len(items), initial)
    while batch > 0:
        chunk = items[position : position + batch]
        results = await asyncio.gather(*(fn(item) for item in chunk), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        if errors:
            raise BatchError(successes, errors[0])
        position += batch
        batch = min(2 * batch, len(items) - position)
    return successes


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """The batch sizes :func:`slow_start_batch` uses for ``count`` items if every call
    succeeds."""
    sizes, remaining = [], count
    batch = min(remaining, initial)
    while batch > 0:
        sizes.append(batch)
        remaining -= batch
        batch = min(2 * batch, remaining)
    return sizes
