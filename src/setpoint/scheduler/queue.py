"""The scheduling queue: which pending pod to decide next, and when to try again.

Like kube-scheduler's ``PriorityQueue`` it holds each pending pod in exactly one of three
places:

* the **active queue**, ordered by priority (``spec.priority``, higher first) and then by
  arrival — the pods the scheduler pops next;
* the **backoff queue**, for pods that failed recently: each attempt doubles the wait
  (1 s, 2 s, ... up to 10 s) before the pod moves back to the active queue;
* the **unschedulable pool**, for pods no node could take. They wait for a cluster event
  that might help them — a node added or changed, a pod deleted, a pod bound near them —
  and then move to backoff (or straight to active when their backoff has already passed).
  Each remembers which plugins rejected it, so an event only moves the pods it can help
  (a deleted pod frees resources, it cannot fix a node selector). Pods left there longer
  than the flush interval are retried anyway, as a safety net.

A pod popped for a scheduling cycle that then fails may have missed an event that arrived
during the cycle; the queue counts move requests and sends such a pod to backoff rather
than to the unschedulable pool, so the event is not lost.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
UNSCHEDULABLE_FLUSH = 30.0

# Plugins whose rejections a kind of cluster event may undo (queueing hints, coarsely).
ALL_PLUGINS: frozenset[str] = frozenset(
    {
        "NodeUnschedulable",
        "TaintToleration",
        "NodeAffinity",
        "NodeResourcesFit",
        "PodTopologySpread",
        "InterPodAffinity",
        "NoNodes",
    }
)
POD_DELETED: frozenset[str] = frozenset(
    {"NodeResourcesFit", "PodTopologySpread", "InterPodAffinity"}
)
ASSIGNED_POD_CHANGED: frozenset[str] = frozenset({"PodTopologySpread", "InterPodAffinity"})


@dataclass
class QueuedPod:
    """A pending pod and its scheduling history."""

    key: str
    pod: Obj
    attempts: int = 0
    added: float = field(default_factory=time.monotonic)
    unschedulable_since: float = 0.0
    backoff_until: float = 0.0
    rejected_by: frozenset[str] = frozenset()
    cycle: int = 0  # the scheduling cycle that popped it

    @property
    def priority(self) -> int:
        return int((self.pod.get("spec") or {}).get("priority") or 0)


class SchedulingQueue:
    def __init__(
        self,
        *,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        flush_after: float = UNSCHEDULABLE_FLUSH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._flush_after = flush_after
        self._clock = clock
        self._seq = itertools.count()
        self._active: list[tuple[int, int, str]] = []  # (-priority, seq, key)
        self._active_keys: dict[str, QueuedPod] = {}
        self._backoff: list[tuple[float, int, str]] = []  # (ready at, seq, key)
        self._backoff_keys: dict[str, QueuedPod] = {}
        self._unschedulable: dict[str, QueuedPod] = {}
        self._in_flight: dict[str, QueuedPod] = {}
        self._cycle = 0
        self._move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self._closed = False

    # ------------------------------------------------------------ inspection

    def __len__(self) -> int:
        return len(self._active_keys) + len(self._backoff_keys) + len(self._unschedulable)

    def __contains__(self, key: str) -> bool:
        return (
            key in self._active_keys
            or key in self._backoff_keys
            or key in self._unschedulable
            or key in self._in_flight
        )

    def pending_counts(self) -> dict[str, int]:
        return {
            "active": len(self._active_keys),
            "backoff": len(self._backoff_keys),
            "unschedulable": len(self._unschedulable),
        }

    @property
    def scheduling_cycle(self) -> int:
        return self._cycle

    # ------------------------------------------------------------ pod events

    def add(self, key: str, pod: Obj) -> None:
        """A new pending pod (or one seen again after a relist): straight to active."""
        if key in self._in_flight:
            self._in_flight[key].pod = pod
            return
        existing = self._find(key)
        if existing is not None:
            existing.pod = pod
            return
        self._push_active(QueuedPod(key, pod))

    def update(self, key: str, pod: Obj) -> None:
        """The pending pod changed: an unschedulable pod gets another chance, since the
        change (labels, tolerations, requests) may make it fit."""
        queued = self._unschedulable.pop(key, None)
        if queued is not None:
            queued.pod = pod
            self._requeue(queued)
            return
        self.add(key, pod)

    def delete(self, key: str) -> None:
        self._active_keys.pop(key, None)  # heap entries of removed keys are skipped
        self._backoff_keys.pop(key, None)
        self._unschedulable.pop(key, None)
        self._in_flight.pop(key, None)

    def move_all(self, plugins: frozenset[str] = ALL_PLUGINS) -> None:
        """A cluster event happened: retry the unschedulable pods it may help."""
        self._move_request_cycle = self._cycle
        for key, queued in list(self._unschedulable.items()):
            if queued.rejected_by & plugins or not queued.rejected_by:
                del self._unschedulable[key]
                self._requeue(queued)

    def flush(self) -> None:
        """Move due backoff pods to active and long-waiting unschedulable pods to backoff
        (the scheduler calls this every second, as kube-scheduler's flush loops)."""
        self._flush_backoff()
        now = self._clock()
        for key, queued in list(self._unschedulable.items()):
            if now - queued.unschedulable_since >= self._flush_after:
                del self._unschedulable[key]
                self._requeue(queued)

    def _flush_backoff(self) -> None:
        """Move due backoff pods to active: a look at the heap's head, cheap enough for
        every pop (the unschedulable pool, thousands of pods, is only walked by flush)."""
        now = self._clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            queued = self._backoff_keys.pop(key, None)
            if queued is not None and queued.backoff_until <= now:
                self._push_active(queued)
            elif queued is not None:  # re-pushed with a later time; keep the newer entry
                self._backoff_keys[key] = queued

    def next_backoff_due(self) -> float | None:
        return self._backoff[0][0] if self._backoff else None

    # ------------------------------------------------------------ the cycle

    async def pop(self) -> QueuedPod:
        """The next pod to schedule; waits for one. Raises :class:`QueueClosed`."""
        while True:
            if self._closed:
                raise QueueClosed()
            self._flush_backoff()
            while self._active:
                _, _, key = heapq.heappop(self._active)
                queued = self._active_keys.pop(key, None)
                if queued is None:
                    continue
                self._cycle += 1
                queued.cycle = self._cycle
                queued.attempts += 1
                self._in_flight[key] = queued
                return queued
            self._wakeup.clear()
            due = self.next_backoff_due()
            timeout = None if due is None else max(due - self._clock(), 0.001)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass

    def done(self, key: str) -> None:
        """The pod was scheduled (or is gone): forget it."""
        self._in_flight.pop(key, None)

    def add_unschedulable(self, queued: QueuedPod, rejected_by: Iterable[str]) -> None:
        """No node fit. Park the pod until an event may help — or, if such an event came
        while it was being decided, go to backoff right away."""
        if self._in_flight.pop(queued.key, None) is None:
            return  # deleted (or bound) meanwhile
        queued.rejected_by = frozenset(rejected_by)
        queued.unschedulable_since = self._clock()
        queued.backoff_until = self._clock() + self.backoff_duration(queued.attempts)
        if self._move_request_cycle >= queued.cycle:
            self._push_backoff(queued, keep_deadline=True)
        else:
            self._unschedulable[queued.key] = queued

    def add_backoff(self, queued: QueuedPod) -> None:
        """The attempt failed for another reason (an API error while binding): retry later."""
        if self._in_flight.pop(queued.key, None) is None:
            return  # deleted meanwhile
        self._push_backoff(queued)

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # ------------------------------------------------------------ internals

    def _find(self, key: str) -> QueuedPod | None:
        return (
            self._active_keys.get(key)
            or self._backoff_keys.get(key)
            or self._unschedulable.get(key)
        )

    def backoff_duration(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return float(min(self._initial_backoff * 2 ** (attempts - 1), self._max_backoff))

    def _requeue(self, queued: QueuedPod) -> None:
        if queued.backoff_until > self._clock():
            self._push_backoff(queued, keep_deadline=True)
        else:
            self._push_active(queued)

    def _push_active(self, queued: QueuedPod) -> None:
        self._active_keys[queued.key] = queued
        heapq.heappush(self._active, (-queued.priority, next(self._seq), queued.key))
        self._wakeup.set()

    def _push_backoff(self, queued: QueuedPod, *, keep_deadline: bool = False) -> None:
        if not keep_deadline:
            queued.backoff_until = self._clock() + self.backoff_duration(queued.attempts)
        self._backoff_keys[queued.key] = queued
        heapq.heappush(self._backoff, (queued.backoff_until, next(self._seq), queued.key))
        self._wakeup.set()


class QueueClosed(Exception):
    """The scheduling queue was closed; the scheduler stops."""
