"""Per-user token buckets and watch caps: the burst, the refill, Retry-After, exemptions,
and that idle users' buckets go."""

from __future__ import annotations

import pytest

from setpoint.api.auth.user import CONTROLLER_MANAGER_USER, NODES_GROUP, UserInfo
from setpoint.api.errors import APIError
from setpoint.api.ratelimit import ClientLimits, ClientRateLimiter

ALICE = UserInfo("alice", ("system:authenticated",))
BOB = UserInfo("bob")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_429_with_retry_after_then_refill() -> None:
    clock = Clock()
    limiter = ClientRateLimiter(ClientLimits(qps=0.5, burst=3), clock=clock)
    for _ in range(3):
        limiter.take(ALICE)
    with pytest.raises(APIError) as refused:
        limiter.take(ALICE)
    assert refused.value.code == 429
    assert refused.value.reason == "TooManyRequests"
    assert refused.value.headers["Retry-After"] == "2"  # one token every 2 s
    limiter.take(BOB)  # another user has a bucket of its own
    clock.now += 2.0
    limiter.take(ALICE)


def test_nodes_and_the_controller_manager_are_exempt() -> None:
    limiter = ClientRateLimiter(ClientLimits(qps=1, burst=1, max_watches_per_user=1))
    node = UserInfo("system:node:n1", (NODES_GROUP,))
    manager = UserInfo(CONTROLLER_MANAGER_USER)
    for _ in range(10):
        limiter.take(node)
        limiter.take(manager)
    with limiter.watching(node), limiter.watching(node):
        pass
    assert limiter.tracked_users == 0


def test_watch_cap_counts_open_watches_per_user() -> None:
    limiter = ClientRateLimiter(ClientLimits(max_watches_per_user=2))
    with limiter.watching(ALICE), limiter.watching(ALICE):
        with pytest.raises(APIError) as refused, limiter.watching(ALICE):
            pass
        assert refused.value.code == 429
        assert 'user "alice" has 2 open, the limit is 2' in refused.value.message
        with limiter.watching(BOB):
            pass
    with limiter.watching(ALICE):
        pass
    assert limiter.tracked_users == 0  # counts go with the last watch


def test_idle_users_buckets_expire() -> None:
    clock = Clock()
    limiter = ClientRateLimiter(ClientLimits(qps=10, burst=20), clock=clock)
    for i in range(1000):
        limiter.take(UserInfo(f"user-{i}"))
    assert limiter.tracked_users == 1000
    clock.now += 60.0  # every bucket has refilled
    limiter.take(ALICE)
    assert limiter.tracked_users == 1


def test_system_masters_are_exempt_unless_told_otherwise() -> None:
    admin = UserInfo("admin", ("system:masters",))
    exempting = ClientRateLimiter(ClientLimits(qps=1, burst=1, max_watches_per_user=1))
    for _ in range(10):
        exempting.take(admin)
    limiting = ClientRateLimiter(ClientLimits(qps=1, burst=1, exempt_groups=()))
    limiting.take(admin)
    with pytest.raises(APIError):
        limiting.take(admin)


def test_zero_turns_the_limits_off() -> None:
    limiter = ClientRateLimiter(ClientLimits(qps=0, max_watches_per_user=0))
    for _ in range(1000):
        limiter.take(ALICE)
    with limiter.watching(ALICE), limiter.watching(ALICE):
        pass
