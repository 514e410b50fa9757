"""One read-modify-write per object at a time, within this API server.

An update without a resourceVersion precondition (a ``kubectl patch``, ``scale``, an apply)
must succeed however many clients change the same object at once: the apiserver's
``GuaranteedUpdate`` retries on conflict until it does. Left to race, N concurrent writers
of one object cost O(N²) attempts — every round of the store's group commit lets one win and
sends the rest back. Taking turns per key makes it N attempts: each writer reads the version
its predecessor wrote. Optimistic concurrency stays the rule across API servers; the lock
only spares this one from fighting itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyLocks:
    """A FIFO lock per key, existing only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
