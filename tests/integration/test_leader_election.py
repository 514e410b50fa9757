"""Leader election through a Lease: one leader at a time, takeover after expiry."""

from __future__ import annotations

import asyncio
import uuid

from setpoint.client.api import ApiClient
from setpoint.client.leaderelection import LeaderElectionConfig, LeaderElector


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
