"""``write``: 10,000 ConfigMap creates from 32 keep-alive HTTPS clients, then a kill -9.

Method: a fresh server; 32 connections are opened (TLS handshakes done) before the clock
starts; 32 workers then POST ~1 KB ConfigMaps to ``/api/v1/namespaces/default/configmaps``,
each worker one request at a time (closed loop), until 10,000 are acknowledged with 201.
Latency is request start to full response read, per create. Afterwards the server is killed
with SIGKILL — no shutdown code runs — restarted on the same data directory, and every
acknowledged name must be listed again.

``--store etcd`` runs the same against servers on an etcd member (:mod:`bench.ha`), and
``--servers N`` against N API servers on it, the 32 workers split evenly between them; all
are killed, the first is restarted and lists. Those figures carry the store and the number
of servers in their names; server CPU is the sum over the N servers, RSS the first one's,
and etcd's CPU is a figure of its own. SQLite takes one server only: one process holds the
store.

Targets: >= 3,000 creates/s and p99 < 50 ms; 10,000 of 10,000 durable.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

from tests.etcd import Etcd

from bench.common import (
    Context,
    Figure,
    Server,
    at_least,
    below,
    create_configmaps,
    exactly,
    info,
    list_names,
    percentiles,
    process_cpu_seconds,
    warm_up,
)
from bench.ha import etcd_member, servers_on_etcd

NAME = "write"
COUNT = 10_000
CLIENTS = 32
SIZE = 1024
TIME_LIMIT = 300.0


async def run(ctx: Context) -> list[Figure]:
    if ctx.store == "sqlite":
        if ctx.api_servers != 1:
            raise RuntimeError(
                "one process holds an SQLite store: --servers needs --store etcd "
                "(see docs/benchmarks.md, issue 16)"
            )
        async with ctx.server(NAME) as server:
            return await measure(ctx, [server])
    with etcd_member(ctx, NAME) as etcd:
        async with servers_on_etcd(ctx, NAME, etcd, ctx.api_servers) as servers:
            return await measure(ctx, servers, etcd=etcd)


async def measure(ctx: Context, servers: list[Server], *, etcd: Etcd | None = None) -> list[Figure]:
    names = [f"w-{i:05d}" for i in range(COUNT)]
    first = servers[0]
    per_server = -(-CLIENTS // len(servers))
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(s.session(connections=per_server)) for s in servers
        ]
        for session in sessions:
            await warm_up(session, per_server)
        ctx.say(
            f"{COUNT:,} creates of {SIZE} B from {CLIENTS} connections "
            f"to {len(servers)} server(s) ..."
        )
        etcd_cpu = process_cpu_seconds(etcd.process.pid) if etcd else 0.0
        async with ctx.measure(first, NAME, others=servers[1:]) as phase:
            result = await create_configmaps(
                sessions, names, concurrency=CLIENTS, size=SIZE, time_limit=TIME_LIMIT
            )
        if etcd:
            etcd_cpu = process_cpu_seconds(etcd.process.pid) - etcd_cpu
    rss = first.rss_bytes()
    ctx.say(f"done in {phase.wall:.1f}s; failures: {result.failures or 'none'}")

    ctx.say("kill -9, restart on the same data dir, list ...")
    for server in servers:
        await server.kill()
    started = time.perf_counter()
    await first.start()
    restart = time.perf_counter() - started
    async with first.session(connections=1) as session:
        listed, _ = await list_names(session)
    durable = len(result.acked & listed)

    # the figures of the default setup keep their names (and rows in the results table)
    where = "" if etcd is None else f" (etcd, {len(servers)} server{'s' * (len(servers) > 1)})"
    p50, p99, top = percentiles(result.latencies, (50, 99, 100))
    acked = len(result.acked)
    per_create = 1e6 / max(acked, 1)
    figures = [
        at_least(NAME, "creates/s", acked / phase.wall, "creates/s", 3000, digits=0),
        below(NAME, "create latency p50", p50 * 1000, "ms", 50),
        below(NAME, "create latency p99", p99 * 1000, "ms", 50),
        info(NAME, "create latency max", top * 1000, "ms"),
        exactly(NAME, "creates acknowledged", acked, "", COUNT),
        exactly(NAME, "durable after kill -9", durable, "", COUNT),
        info(NAME, "restart after kill -9", restart, "s", digits=2),
        info(NAME, "server CPU per create", phase.server_cpu * per_create, "µs", digits=0),
        info(NAME, "client CPU per create", phase.client_cpu * per_create, "µs", digits=0),
        info(NAME, "server RSS after run", rss / 2**20, "MiB"),
        *phase.figures(NAME),
    ]
    if etcd is not None:
        figures.insert(8, info(NAME, "etcd CPU per create", etcd_cpu * per_create, "µs", digits=0))
    return [replace(f, name=f.name + where) for f in figures]
