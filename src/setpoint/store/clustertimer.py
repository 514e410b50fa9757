"""Work done once per interval for the whole cluster, however many API servers share a store.

Compacting the store's history and sweeping expired Events must happen once, not once per
API server. kube-apiserver coordinates its etcd compaction through the store itself: each
server keeps, per interval, the version of a ``compact_rev_key`` it last saw and tries to
advance it with a compare-and-swap; only the server whose view is current wins that round,
and the others learn the new version and try again next interval. No leader election, no
lease to renew — the store's compare-and-swap is the lock. :class:`ClusterTimer` is that
logical clock for any task, on any :class:`~setpoint.store.interface.Store`.

Each round's winner records a value under the key, which the next round's winner is handed:
compaction records the revision it saw and compacts to the one recorded a round before, so
history is kept for one interval, as kube-apiserver keeps it. A process that starts (or
restarts) while the key exists first learns where the clock stands, so it does not act in
its first round. The keys
live under ``/registry/setpoint/``, outside every resource's prefix, so no watch or list
ever sees them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from setpoint.store.interface import (
    BackendError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionConflictError,
    Store,
)

log = logging.getLogger(__name__)

KEY_PREFIX = "/registry/setpoint/"

Record = Callable[[], Awaitable[bytes]]
"""What this round's winner leaves for the next round (compaction: the revision it saw)."""

Act = Callable[[bytes | None], Awaitable[None]]
"""The round's work, given what the previous round's winner recorded (None the first time)."""


class ClusterTimer:
    """Run ``act`` at most once per round — one ``interval`` — among every process that runs
    a ClusterTimer of the same ``name`` on the same store. A round is won by one
    compare-and-swap of the key from the version this process saw last to ``record()``'s
    value; a process that loses learns the new version and competes next interval."""

    def __init__(
        self, store: Store, name: str, interval: float, act: Act, *, record: Record | None = None
    ) -> None:
        self.store = store
        self.name = name
        self.key = f"{KEY_PREFIX}{name}"
        self.interval = interval
        self.act = act
        self.record = record or _nothing
        self._seen = 0  # mod revision of the key as this process last saw it (0: absent)
        self._seen_value: bytes | None = None

    async def run(self) -> None:
        """Until cancelled: every interval, try to win the round and do the work."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except BackendError as exc:
                log.warning("%s failed: %s", self.name, exc)
            except Exception:
                log.exception("%s failed", self.name)

    async def tick(self) -> bool:
        """One round: True if this process won it (and did the work)."""
        record = await self.record()
        try:
            if self._seen == 0:
                kv = await self.store.create(self.key, record)
            else:
                kv = await self.store.update(self.key, record, expected_revision=self._seen)
        except KeyExistsError:
            self._learn(await self.store.get(self.key))
            return False
        except RevisionConflictError as exc:
            self._learn(exc.current)
            return False
        except KeyNotFoundError:
            self._learn(None)
            return False
        previous = self._seen_value if self._seen else None
        self._seen, self._seen_value = kv.mod_revision, record
        await self.act(previous)
        return True

    def _learn(self, current: KeyValue | None) -> None:
        """Another process won this round: remember where the clock stands now."""
        self._seen = current.mod_revision if current is not None else 0
        self._seen_value = current.value if current is not None else None


async def _nothing() -> bytes:
    return b""
