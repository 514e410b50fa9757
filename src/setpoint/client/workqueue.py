"""A rate-limited, de-duplicating work queue, as client-go's ``workqueue`` package.

Event handlers put object keys (``namespace/name``) on the queue; workers take a key, call
``reconcile(key)`` and report ``done``. A key waiting in the queue is held once however
often it is added, and a key being processed is never handed to a second worker: if it is
added meanwhile it is queued again when the first worker is done. Failures come back with
per-item exponential backoff (``add_rate_limited``), bounded overall by a token bucket;
``forget`` resets an item's backoff after a success.

What happens to a key after ``reconcile`` is the worker's decision alone (:func:`run_worker`),
made from what ``reconcile`` returned, as controller-runtime does with its ``Result``:
``None`` forgets the key, :class:`Requeue` brings it back (later, or rate-limited), and an
exception retries it rate-limited. A reconcile never touches the queue itself, so nothing it
does can reset a key's backoff by accident: a key that keeps asking to be rate-limited, or
keeps failing, waits twice as long each time until a reconcile of it ends well.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from setpoint.client.api import ApiError

log = logging.getLogger(__name__)

# The metric names client-go's workqueue exports (component-base/metrics/prometheus/workqueue).
_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10)
DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", ["name"])
ADDS = Counter("workqueue_adds_total", "Total number of adds handled by workqueue", ["name"])
QUEUE_LATENCY = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.",
    ["name"],
    buckets=_BUCKETS,
)
WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.",
    ["name"],
    buckets=_BUCKETS,
)
RETRIES = Counter(
    "workqueue_retries_total", "Total number of retries handled by workqueue", ["name"]
)
RECONCILES = Counter(
    "setpoint_reconcile_total", "Reconciles by controller and result", ["name", "result"]
)

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down; workers stop."""


class TokenBucket:
    """Overall rate limit: ``qps`` tokens per second, ``burst`` at most (client-go's
    default controller limiter uses 10 qps / 100 burst)."""

    def __init__(
        self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
        self._last = now

    def reserve(self) -> float:
        """Take a token; return how long to wait before using it."""
        self._refill()
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def try_accept(self) -> bool:
        """Take a token if one is there now (``TryAccept``); never wait."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1
        return True


class WorkQueue(Generic[K]):
    def __init__(
        self,
        name: str = "",
        *,
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        qps: float = 10.0,
        burst: int = 100,
    ) -> None:
        self.name = name
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._bucket = TokenBucket(qps, burst)
        self._wakeup = asyncio.Event()
        self._shutting_down = False
        self._timers: set[asyncio.TimerHandle] = set()
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        self._depth = DEPTH.labels(name or "unnamed")
        self._adds = ADDS.labels(name or "unnamed")
        self._queue_latency = QUEUE_LATENCY.labels(name or "unnamed")
        self._work_duration = WORK_DURATION.labels(name or "unnamed")
        self._retries = RETRIES.labels(name or "unnamed")

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._adds.inc()
        self._added_at.setdefault(key, time.monotonic())
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._depth.set(len(self._queue))
        self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self.add(key)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def item_backoff(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return float(min(self._base_delay * (2**failures), self._max_delay))

    def add_rate_limited(self, key: K) -> None:
        self._retries.inc()
        self.add_after(key, max(self.item_backoff(key), self._bucket.reserve()))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def retries(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        now = time.monotonic()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._queue_latency.observe(now - added)
        self._started_at[key] = now
        self._depth.set(len(self._queue))
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if started is not None:
            self._work_duration.observe(time.monotonic() - started)
        if key in self._dirty:
            self._queue.append(key)
            self._depth.set(len(self._queue))
            self._wakeup.set()

    def shut_down(self) -> None:
        self._shutting_down = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._wakeup.set()


@dataclass(frozen=True)
class Requeue:
    """What a reconcile asks for when it is not done with a key (controller-runtime's
    ``Result``). ``Requeue(after=s)``: the key succeeded for now and comes back in ``s``
    seconds (``RequeueAfter``: its backoff is forgotten first). ``Requeue()``: the key comes
    back rate-limited (``Requeue: true``), its backoff growing with each consecutive
    request, e.g. while writes keep losing to a stale cache."""

    after: float | None = None


Reconciler = Callable[[K], Awaitable[Requeue | None]]


def apply_result(queue: WorkQueue[K], key: K, result: Requeue | None) -> None:
    """What the worker does with a key after a reconcile returned ``result``."""
    if result is None:
        queue.forget(key)
    elif result.after is None:
        queue.add_rate_limited(key)
    else:
        queue.forget(key)
        queue.add_after(key, result.after)


async def run_worker(queue: WorkQueue[K], reconcile: Reconciler[K]) -> None:
    """Take keys until shutdown and apply each reconcile's result (:func:`apply_result`);
    a failure re-queues the key rate-limited. Exceptions never escape (the key is retried),
    as in client-go."""
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            result = await reconcile(key)
        except asyncio.CancelledError:
            queue.done(key)
            raise
        except ApiError as exc:
            RECONCILES.labels(queue.name, "error").inc()
            if exc.is_namespace_terminating:
                # every later create there fails too: nothing to retry (client-go's handleErr)
                log.debug("%s: %r is in a namespace being deleted: %s", queue.name, key, exc)
                queue.forget(key)
            elif exc.is_conflict:  # lost an optimistic-concurrency race: routine, retry
                log.debug("%s: reconcile of %r conflicted: %s; retrying", queue.name, key, exc)
                queue.add_rate_limited(key)
            else:  # an answer of the API, not a fault here: one line, and retry
                log.warning("%s: reconcile of %r failed: %s; retrying", queue.name, key, exc)
                queue.add_rate_limited(key)
        except (ConnectionError, TimeoutError) as exc:
            # the API server is unreachable (restarting, overloaded): not a bug here
            RECONCILES.labels(queue.name, "error").inc()
            log.warning("%s: reconcile of %r failed: %r; retrying", queue.name, key, exc)
            queue.add_rate_limited(key)
        except Exception:
            log.exception("%s: reconcile of %r failed; retrying", queue.name, key)
            RECONCILES.labels(queue.name, "error").inc()
            queue.add_rate_limited(key)
        else:
            RECONCILES.labels(queue.name, "success").inc()
            apply_result(queue, key, result)
        finally:
            queue.done(key)
