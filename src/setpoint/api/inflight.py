"""In-flight limits: load beyond what the server works on at once is refused, not queued.

kube-apiserver bounds the requests it serves concurrently (``--max-requests-inflight`` 400
read-only, ``--max-mutating-requests-inflight`` 200 mutating); one over the bound is answered
at once with 429 ``TooManyRequests`` and ``Retry-After: 1``, which every Kubernetes client
honours by retrying. Long-running requests (watches, pod logs, and later exec, attach,
port-forward) are not counted: they hold a connection, not the server's attention.

In the spirit of API Priority and Fairness, node agents (group ``system:nodes``: Lease
renewals, node and pod status), the controller manager (user
``system:kube-controller-manager``) and the scheduler (``system:kube-scheduler``) count
against seats of their own, the same number
again, so a user flooding the API never takes the seats a node needs for its heartbeat or a
controller for its reconcile. Their requests over those seats wait their turn in a queue
(four times as long as the seats, FIFO, within the request deadline) instead of being
refused, as APF queues: there are only so many of these clients, each with bounded
concurrency, and a burst of them (hundreds of nodes reporting at once, the scheduler's
bindings) is work the cluster needs done. setpoint differs from kube-apiserver on purpose:
``system:masters`` is limited too (kube-apiserver exempts it, but setpoint's admin
kubeconfig is what users work with every day), and there is no per-flow fairness inside a
level, only its seats and, for the system level, its queue.

Every request that is not long-running also has a deadline (``--request-timeout``, 60 s as
in Kubernetes), reading its body included, after which it is answered 504; so a client that
sends its body slowly cannot hold a seat for longer than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from setpoint.api import errors
from setpoint.api.auth.user import CONTROLLER_MANAGER_USER, NODES_GROUP, SCHEDULER_USER

# subresources whose requests stream for as long as the client wants (kube-apiserver's
# BasicLongRunningRequestCheck)
LONG_RUNNING_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward", "proxy"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_AFTER_SECONDS = 1

INFLIGHT = Gauge(
    "apiserver_current_inflight_requests",
    "Requests being served now, by priority level and kind (readOnly or mutating).",
    ["priority_level", "request_kind"],
)
REJECTED = Counter(
    "apiserver_flowcontrol_rejected_requests_total",
    "Requests refused with 429 because their priority level had no seat free.",
    ["priority_level", "request_kind"],
)


@dataclass(frozen=True)
class InflightLimits:
    """Seats per priority level (kube-apiserver's flags and defaults)."""

    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    request_timeout: float = 60.0


class PriorityLevel(enum.Enum):
    SYSTEM = "system"  # node agents and the controller manager
    WORKLOAD = "workload"  # everyone else


def priority_level(user_name: str, groups: tuple[str, ...]) -> PriorityLevel:
    if NODES_GROUP in groups or user_name in (CONTROLLER_MANAGER_USER, SCHEDULER_USER):
        return PriorityLevel.SYSTEM
    return PriorityLevel.WORKLOAD


def is_long_running(method: str, segments: list[str], watch: bool) -> bool:
    """A watch, or a request to a streaming subresource (``.../pods/NAME/log``)."""
    if watch and method == "GET":
        return True
    return len(segments) >= 2 and segments[-1] in LONG_RUNNING_SUBRESOURCES


def too_many_requests() -> errors.APIError:
    return errors.APIError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        details={"retryAfterSeconds": RETRY_AFTER_SECONDS},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# how many requests of the system level may wait for a seat, per seat
_QUEUE_PER_SEAT = 4


class _Seats:
    """The seats of one priority level for one kind of request, with a FIFO queue."""

    def __init__(self, bound: int, queue_limit: int) -> None:
        self.bound = bound
        self.queue_limit = queue_limit
        self.taken = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def take(self) -> bool:
        """Take a seat, waiting in the queue if there is room in it; False if neither."""
        if self.taken < self.bound and not self._waiting:
            self.taken += 1
            return True
        if len(self._waiting) >= self.queue_limit:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # the seat is handed over with the turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give_back()  # handed a seat just as the request went away
            else:
                self._waiting.remove(turn)
            raise
        return True

    def give_back(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the seat passes straight to the next in line
                return
        self.taken -= 1


class InflightLimiter:
    """Counts the requests in flight per priority level and kind."""

    def __init__(self, limits: InflightLimits) -> None:
        self.limits = limits
        self._seats: dict[tuple[PriorityLevel, bool], _Seats] = {}
        for level in PriorityLevel:
            for mutating in (False, True):
                bound = (
                    limits.max_mutating_requests_inflight
                    if mutating
                    else limits.max_requests_inflight
                )
                queue = bound * _QUEUE_PER_SEAT if level is PriorityLevel.SYSTEM else 0
                self._seats[(level, mutating)] = _Seats(bound, queue)

    def in_flight(self, level: PriorityLevel, *, mutating: bool) -> int:
        return self._seats[(level, mutating)].taken

    @contextlib.asynccontextmanager
    async def seat(self, level: PriorityLevel, method: str) -> AsyncIterator[None]:
        """Hold a seat for one request; 429 when its level has none free (and, for the
        system level, its queue is full too)."""
        mutating = method not in _READ_METHODS
        seats = self._seats[(level, mutating)]
        kind = "mutating" if mutating else "readOnly"
        if not await seats.take():
            REJECTED.labels(level.value, kind).inc()
            raise too_many_requests()
        gauge = INFLIGHT.labels(level.value, kind)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()
            seats.give_back()
