"""In-flight seats: users are refused over their seats, system components queue for theirs,
in order, and a seat is never lost to a request that went away while it waited."""

from __future__ import annotations

import asyncio

import pytest

from setpoint.api.errors import APIError
from setpoint.api.inflight import (
    InflightLimiter,
    InflightLimits,
    PriorityLevel,
    is_long_running,
    priority_level,
)

LIMITS = InflightLimits(max_requests_inflight=2, max_mutating_requests_inflight=1)


async def hold(
    limiter: InflightLimiter,
    level: PriorityLevel,
    method: str,
    gate: asyncio.Event,
    order: list[int] | None = None,
    tag: int = 0,
) -> None:
    async with limiter.seat(level, method):
        if order is not None:
            order.append(tag)
        await gate.wait()


def test_nodes_and_the_controller_manager_have_the_system_level() -> None:
    assert priority_level("system:node:a", ("system:nodes",)) is PriorityLevel.SYSTEM
    assert priority_level("system:kube-controller-manager", ()) is PriorityLevel.SYSTEM
    assert priority_level("admin", ("system:masters",)) is PriorityLevel.WORKLOAD


def test_watches_and_streams_are_long_running() -> None:
    assert is_long_running("GET", ["api", "v1", "pods"], watch=True)
    assert is_long_running("GET", ["api", "v1", "namespaces", "a", "pods", "p", "log"], False)
    assert not is_long_running("GET", ["api", "v1", "pods"], watch=False)
    assert not is_long_running("POST", ["api", "v1", "pods"], watch=True)


async def test_a_user_over_the_seats_is_refused_at_once_with_retry_after() -> None:
    limiter = InflightLimiter(LIMITS)
    gate = asyncio.Event()
    holder = asyncio.create_task(hold(limiter, PriorityLevel.WORKLOAD, "POST", gate))
    await asyncio.sleep(0)
    with pytest.raises(APIError) as refused:
        async with limiter.seat(PriorityLevel.WORKLOAD, "PATCH"):
            pass
    assert refused.value.code == 429 and refused.value.headers["Retry-After"] == "1"
    # reads and the system level are counted apart
    async with limiter.seat(PriorityLevel.WORKLOAD, "GET"):
        pass
    async with limiter.seat(PriorityLevel.SYSTEM, "PUT"):
        pass
    gate.set()
    await holder
    assert limiter.in_flight(PriorityLevel.WORKLOAD, mutating=True) == 0


async def test_system_requests_over_the_seats_wait_their_turn_in_order() -> None:
    limiter = InflightLimiter(LIMITS)
    gates = [asyncio.Event() for _ in range(3)]
    order: list[int] = []
    tasks = [
        asyncio.create_task(hold(limiter, PriorityLevel.SYSTEM, "PUT", gates[i], order, i))
        for i in range(3)
    ]
    await asyncio.sleep(0.01)
    assert order == [0]
    gates[0].set()
    await asyncio.sleep(0.01)
    assert order == [0, 1]
    gates[1].set()
    gates[2].set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert limiter.in_flight(PriorityLevel.SYSTEM, mutating=True) == 0


async def test_a_waiter_that_goes_away_loses_no_seat() -> None:
    limiter = InflightLimiter(LIMITS)
    gate = asyncio.Event()
    holder = asyncio.create_task(hold(limiter, PriorityLevel.SYSTEM, "PUT", gate))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold(limiter, PriorityLevel.SYSTEM, "PUT", asyncio.Event()))
    await asyncio.sleep(0.01)
    waiter.cancel()
    gate.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.in_flight(PriorityLevel.SYSTEM, mutating=True) == 0
    async with limiter.seat(PriorityLevel.SYSTEM, "PUT"):
        assert limiter.in_flight(PriorityLevel.SYSTEM, mutating=True) == 1


async def test_the_system_queue_is_bounded_too() -> None:
    limiter = InflightLimiter(LIMITS)  # one mutating seat, four places in the queue
    gate = asyncio.Event()
    tasks = [
        asyncio.create_task(hold(limiter, PriorityLevel.SYSTEM, "POST", gate)) for _ in range(5)
    ]
    await asyncio.sleep(0.01)
    with pytest.raises(APIError):
        async with limiter.seat(PriorityLevel.SYSTEM, "POST"):
            pass
    gate.set()
    await asyncio.gather(*tasks)
