"""Per-key exponential backoff in memory: client-go's ``flowcontrol.Backoff``.

Some decisions must not be retried at full speed, yet are not errors a work queue would back
off: the DaemonSet controller deleting a failed daemon pod that the node keeps failing, for
instance. A :class:`Backoff` remembers, per key, the delay the next attempt must wait
(``initial``, doubled on every further attempt up to ``maximum``) and when the last attempt
was made. A key left alone for twice ``maximum`` starts again from ``initial`` and is
forgotten (``hasExpired``, ``GC``). Jitter is left out: one controller process holds all the
keys and nothing else competes for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from setpoint.meta.clock import REAL_CLOCK, Clock


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(self, initial: float, maximum: float, *, clock: Clock = REAL_CLOCK) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, now: float) -> bool:
        return now - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        """The current delay of ``key`` (0 if it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def next(self, key: str) -> None:
        """An attempt is made now: start at ``initial``, or double the delay (``Next``)."""
        now = self.clock.time()
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, now):
            self._entries[key] = _Entry(self.initial, now)
            self.gc(now)
            return
        entry.delay = min(2 * entry.delay, self.maximum)
        entry.last_update = now

    def in_backoff(self, key: str) -> bool:
        """Less than the delay has passed since the last attempt (``IsInBackOffSinceUpdate``)."""
        now = self.clock.time()
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, now):
            return False
        return now - entry.last_update < entry.delay

    def gc(self, now: float) -> None:
        """Forget keys not touched for twice ``maximum`` (``GC``)."""
        stale = [key for key, entry in self._entries.items() if self._expired(entry, now)]
        for key in stale:
            del self._entries[key]
