"""Per-client limits: a token bucket per user, and a cap on each user's open watches.

The in-flight limits (see ``inflight``) bound what the server works on at once; they do not
stop one client from taking all of it, request after request. So each user also has a
token bucket (``--client-qps`` tokens a second, up to ``--client-burst``): every request
takes a token, and one that finds the bucket empty is answered at once with 429
``TooManyRequests``, ``Retry-After`` saying when the next token is there — what
kube-apiserver's API Priority and Fairness answers a flow it sheds, and what every
Kubernetes client retries by itself. A user may also hold only so many watches open at
once (``--max-watches-per-user``); one more is refused with 429 until one ends.

Node agents (``system:nodes``) and the controller manager are exempt from both: they are
few, their request rates are bounded by their own code, and throttling their heartbeats or
reconciles would hurt the whole cluster (their concurrency is already bounded by their own
priority level's seats). So is ``system:masters``, as kube-apiserver's APF exempts it: the
limits give users a fair share against one another, and the cluster's administrators are
not one of the users sharing it (the in-flight seats still bound what they can make the
server do at once). ``--client-limit-exempt-groups`` names the exempt groups (empty: the
administrators are limited too). Everyone else — service accounts, people with their own
credentials — is limited. The defaults (200 requests a second, bursts of 400, 250 watches)
are far above what ``kubectl`` (50 a second) or an informer-based client does, so they
only stop a runaway script.

Memory is bounded: a bucket that has refilled completely holds nothing a new bucket would
not, so idle users' buckets are dropped by a periodic sweep, and a user's watch count goes
when its last watch ends.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import Counter

from setpoint.api import errors
from setpoint.api.auth.user import SYSTEM_MASTERS, UserInfo
from setpoint.api.inflight import PriorityLevel, priority_level

THROTTLED = Counter(
    "setpoint_apiserver_client_throttled_total",
    "Requests refused with 429 by the per-user limits, by limit (rate or watches).",
    ["limit"],
)
_SWEEP_INTERVAL = 30.0


@dataclass(frozen=True)
class ClientLimits:
    """Per-user limits (0 turns one off)."""

    qps: float = 200.0
    burst: int = 400
    max_watches_per_user: int = 250
    # members of these groups are not limited (node agents and the controller manager
    # never are)
    exempt_groups: tuple[str, ...] = (SYSTEM_MASTERS,)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


def exempt(user: UserInfo, groups: tuple[str, ...] = (SYSTEM_MASTERS,)) -> bool:
    """Node agents, the controller manager and members of ``groups`` are not limited."""
    if priority_level(user.name, user.groups) is PriorityLevel.SYSTEM:
        return True
    return any(group in groups for group in user.groups)


class ClientRateLimiter:
    def __init__(
        self, limits: ClientLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._watches: dict[str, int] = {}
        self._swept = clock()

    def take(self, user: UserInfo) -> None:
        """Take a token for one request of ``user``; raise 429 if there is none."""
        qps, burst = self.limits.qps, self.limits.burst
        if qps <= 0 or exempt(user, self.limits.exempt_groups):
            return
        now = self._clock()
        if now - self._swept > _SWEEP_INTERVAL:
            self._sweep(now)
        bucket = self._buckets.get(user.name)
        if bucket is None:
            bucket = self._buckets[user.name] = _Bucket(float(max(burst, 1)), now)
        else:
            bucket.tokens = min(float(max(burst, 1)), bucket.tokens + (now - bucket.updated) * qps)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        THROTTLED.labels("rate").inc()
        retry_after = max(1, math.ceil((1.0 - bucket.tokens) / qps))
        raise errors.too_many_requests(
            "Too many requests, please try again later.", retry_after=retry_after
        )

    @contextlib.contextmanager
    def watching(self, user: UserInfo) -> Iterator[None]:
        """Count one open watch of ``user`` while in the block; 429 if it has too many."""
        cap = self.limits.max_watches_per_user
        if cap <= 0 or exempt(user, self.limits.exempt_groups):
            yield
            return
        open_now = self._watches.get(user.name, 0)
        if open_now >= cap:
            THROTTLED.labels("watches").inc()
            raise errors.too_many_requests(
                f'Too many watches: user "{user.name}" has {open_now} open, the limit is '
                f"{cap}; close one and try again.",
                retry_after=1,
            )
        self._watches[user.name] = open_now + 1
        try:
            yield
        finally:
            left = self._watches.get(user.name, 1) - 1
            if left > 0:
                self._watches[user.name] = left
            else:
                self._watches.pop(user.name, None)

    def _sweep(self, now: float) -> None:
        """Drop the buckets that are full again: their users have been idle."""
        self._swept = now
        full_after = max(self.limits.burst, 1) / self.limits.qps
        idle = [name for name, b in self._buckets.items() if now - b.updated >= full_after]
        for name in idle:
            del self._buckets[name]

    @property
    def tracked_users(self) -> int:
        return len(self._buckets) + len(self._watches)
