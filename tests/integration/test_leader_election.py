"""Leader election through a Lease: one leader at a time, takeover after expiry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from setpoint.client.api import LEASES, ApiClient
from setpoint.client.leaderelection import LeaderElectionConfig, LeaderElector
from setpoint.meta.clock import FakeClock


def config(lease: str, identity: str) -> LeaderElectionConfig:
    return LeaderElectionConfig(
        lease_name=lease,
        identity=identity,
        lease_duration=1.0,
        renew_deadline=0.8,
        retry_period=0.2,
    )


async def test_only_one_candidate_acquires(client: ApiClient) -> None:
    lease = f"le-{uuid.uuid4().hex[:8]}"
    a = LeaderElector(client, config(lease, "a"))
    b = LeaderElector(client, config(lease, "b"))
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]


async def test_follower_takes_over_after_the_leader_stops(client: ApiClient) -> None:
    lease = f"le-{uuid.uuid4().hex[:8]}"
    leading: list[str] = []

    def work(name: str):  # type: ignore[no-untyped-def]
        async def lead() -> None:
            leading.append(name)
            await asyncio.Event().wait()

        return lead

    first = LeaderElector(client, config(lease, "first"))
    second = LeaderElector(client, config(lease, "second"))
    t1 = asyncio.create_task(first.run(work("first")))

    async def until(cond) -> None:  # type: ignore[no-untyped-def]
        while not cond():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until(lambda: leading == ["first"]), 10)
    t2 = asyncio.create_task(second.run(work("second")))
    await asyncio.sleep(0.5)
    assert leading == ["first"]  # the lease is held and renewed
    t1.cancel()
    await asyncio.wait_for(until(lambda: leading == ["first", "second"]), 10)
    t2.cancel()


async def test_run_returns_once_leadership_is_lost(client: ApiClient) -> None:
    """As client-go's Run: a leader whose lease was taken stops its work and returns."""
    lease = f"le-{uuid.uuid4().hex[:8]}"
    stopped = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    elector = LeaderElector(client, config(lease, "first"))
    running = asyncio.create_task(elector.run(lead))
    while not elector.is_leader:
        await asyncio.sleep(0.02)
    taken = await client.get(LEASES, lease, "kube-system")
    taken["spec"]["holderIdentity"] = "thief"
    taken["spec"]["leaseDurationSeconds"] = 3600
    await client.update(LEASES, taken)
    await asyncio.wait_for(running, 10)
    assert stopped.is_set() and not elector.is_leader


async def test_follower_tries_again_when_the_lease_it_saw_expires(client: ApiClient) -> None:
    """A candidate that finds the lease held waits for the holder's expiry, not a whole
    retry period past it."""
    lease = f"le-{uuid.uuid4().hex[:8]}"
    clock = FakeClock(datetime.now(UTC))
    holder = LeaderElector(client, config(lease, "holder"), clock=clock)
    assert await holder.try_acquire_or_renew()
    follower = LeaderElector(
        client,
        LeaderElectionConfig(
            lease_name=lease, identity="follower", lease_duration=1.0, retry_period=5.0
        ),
        clock=clock,
    )
    assert not await follower.try_acquire_or_renew()
    clock.step(0.75)
    assert 0.25 <= follower._until_next_attempt() <= 0.3
    clock.step(1.0)
    assert follower._until_next_attempt() == pytest.approx(0.01)
