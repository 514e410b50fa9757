"""``leaderfailover``: the API server whose controller manager leads is SIGKILLed; how long
until another controller manager leads and acts.

Method: one etcd member and two API servers on it (:mod:`bench.ha`), each with its
controller-manager child competing for the Lease ``kube-system/setpoint-controller-manager``
(client-go's and kube-controller-manager's defaults: 15 s lease, 10 s renew deadline, 2 s
retry). The servers run with ``-v`` so that each manager's "<identity> became leader" line
says which server it belongs to. Once a manager leads, a ReplicaSet of 3 gets its pods (the
controllers are working). Then, ``ROUNDS`` times: the server whose manager holds the Lease
is killed with SIGKILL (its manager notices within ~1 s and stops, but cannot release the
Lease through its dead server); at once a new ReplicaSet of 3 is created through the
survivor, which is then polled every 50 ms for the Lease (until its holderIdentity is the
survivor's manager) and for the ReplicaSet's pods (until all 3 exist: a controller acted).
Both are timed from the kill. The killed server is started again on its data dir (it
follows) before the next round. Pods stay Pending: there are no nodes, and none are needed
for a ReplicaSet to make its pods.

Target (issue 16): kill -> controllers active again < one lease duration + 2 s.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import aiohttp
import orjson
from tests.objects import container, replica_set

from bench.common import (
    JSON_HEADERS,
    NAMESPACE,
    Context,
    Figure,
    Server,
    below,
    exactly,
    info,
    run_standalone,
)
from bench.ha import etcd_member, servers_on_etcd

NAME = "leaderfailover"
ROUNDS = 3
REPLICAS = 3
LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/setpoint-controller-manager"
REPLICASETS = f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
POLL = 0.05
WAIT = 60.0  # far beyond the target: a failover that takes this long has failed


async def poll(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Call ``check`` every ``POLL`` seconds until it is true; fail after ``WAIT``."""
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {WAIT:.0f}s")
        await asyncio.sleep(POLL)


async def get(session: aiohttp.ClientSession, path: str) -> dict[str, Any] | None:
    """The object at ``path``, or None when it is missing or the server does not answer."""
    try:
        async with session.get(path, headers=JSON_HEADERS) as resp:
            body = await resp.read()
            return orjson.loads(body) if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


def leading(servers: list[Server], holder: str) -> Server | None:
    """The server whose controller manager announced ``holder`` as its identity."""
    line = f"{holder} became leader"
    return next((s for s in servers if line in s.log_path.read_text(errors="replace")), None)


async def leader(
    session: aiohttp.ClientSession, servers: list[Server]
) -> tuple[Server, dict[str, Any]]:
    """The server that leads now, and the Lease."""
    found: list[tuple[Server, dict[str, Any]]] = []

    async def known() -> bool:
        lease = await get(session, LEASE)
        holder = (lease or {}).get("spec", {}).get("holderIdentity")
        server = leading(servers, holder) if holder else None
        if server is not None and lease is not None:
            found.append((server, lease))
        return bool(found)

    await poll(known, "leading controller manager")
    return found[0]


async def create_replicaset(session: aiohttp.ClientSession, name: str) -> None:
    body = replica_set(
        name,
        replicas=REPLICAS,
        containers=[container(command=["sleep", "3600"])],
    )
    async with session.post(REPLICASETS, data=orjson.dumps(body), headers=JSON_HEADERS) as resp:
        if resp.status != 201:
            raise RuntimeError(
                f"creating ReplicaSet {name}: HTTP {resp.status} {await resp.text()}"
            )


async def pods_made(session: aiohttp.ClientSession, name: str) -> None:
    async def all_there() -> bool:
        pods = await get(session, f"{PODS}?labelSelector=app%3D{name}")
        return pods is not None and len(pods["items"]) >= REPLICAS

    await poll(all_there, f"pods of ReplicaSet {name}")


class Failover(NamedTuple):
    """One kill of the leader, timed from the kill."""

    new_holder: float  # seconds until the survivor's manager holds the Lease
    pods_made: float  # seconds until the ReplicaSet created after the kill has its pods
    lease_duration: float  # the Lease's leaseDurationSeconds


async def failover(ctx: Context, servers: list[Server], round_: int) -> Failover:
    """Kill the leading server, time the takeover, start the killed server again."""
    async with servers[0].session(connections=2) as probe:
        old, lease = await leader(probe, servers)
    survivor = next(s for s in servers if s is not old)
    old_holder = lease["spec"]["holderIdentity"]
    duration = float(lease["spec"]["leaseDurationSeconds"])
    ctx.say(f"round {round_}: leader is server pid {old.pid}; SIGKILL")
    async with survivor.session(connections=4) as session:
        killed = time.perf_counter()
        await old.kill()
        rs_name = f"after-kill-{round_}"
        await create_replicaset(session, rs_name)

        async def taken_over() -> float:
            async def new_holder() -> bool:
                spec = ((await get(session, LEASE)) or {}).get("spec", {})
                holder = spec.get("holderIdentity")
                return (
                    bool(holder)
                    and holder != old_holder
                    and leading([survivor], holder) is not None
                )

            await poll(new_holder, "new leader")
            return time.perf_counter() - killed

        async def acted() -> float:
            await pods_made(session, rs_name)
            return time.perf_counter() - killed

        took_over, pods = await asyncio.gather(taken_over(), acted())
    ctx.say(f"  new leader after {took_over:.2f}s, ReplicaSet's pods after {pods:.2f}s")
    await old.start()
    return Failover(took_over, pods, duration)


async def run(ctx: Context) -> list[Figure]:
    with etcd_member(ctx, NAME) as etcd:
        async with servers_on_etcd(ctx, NAME, etcd, 2, verbose=True) as servers:
            async with servers[0].session(connections=2) as session:
                await leader(session, servers)
                await create_replicaset(session, "before-kill")
                await pods_made(session, "before-kill")
            rounds = [await failover(ctx, servers, n) for n in range(ROUNDS)]
    took_over = [r.new_holder for r in rounds]
    acted = [r.pods_made for r in rounds]
    lease_duration = rounds[0].lease_duration
    goal = lease_duration + 2
    return [
        exactly(NAME, "failovers completed", len(rounds), "", ROUNDS),
        info(NAME, "lease duration", lease_duration, "s", digits=0),
        info(NAME, "kill to new Lease holder, median", statistics.median(took_over), "s"),
        below(NAME, "kill to new Lease holder, max", max(took_over), "s", goal),
        info(NAME, "kill to ReplicaSet's pods created, median", statistics.median(acted), "s"),
        below(NAME, "kill to ReplicaSet's pods created, max", max(acted), "s", goal),
    ]


if __name__ == "__main__":
    raise SystemExit(run_standalone(run))
