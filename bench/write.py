"""``write``: 10,000 ConfigMap creates from 32 keep-alive HTTPS clients, then a kill -9.

Method: a fresh server; 32 connections are opened (TLS handshakes done) before the clock
starts; 32 workers then POST ~1 KB ConfigMaps to ``/api/v1/namespaces/default/configmaps``,
each worker one request at a time (closed loop), until 10,000 are acknowledged with 201.
Latency is request start to full response read, per create. Afterwards the server is killed
with SIGKILL — no shutdown code runs — restarted on the same data directory, and every
acknowledged name must be listed again.

Targets: >= 3,000 creates/s and p99 < 50 ms; 10,000 of 10,000 durable.
"""

from __future__ import annotations

import time

from bench.common import (
    Context,
    Figure,
    at_least,
    below,
    create_configmaps,
    exactly,
    info,
    list_names,
    percentiles,
    warm_up,
)

NAME = "write"
COUNT = 10_000
CLIENTS = 32
SIZE = 1024
TIME_LIMIT = 300.0


async def run(ctx: Context) -> list[Figure]:
    names = [f"w-{i:05d}" for i in range(COUNT)]
    async with ctx.server(NAME) as server:
        async with server.session(connections=CLIENTS) as session:
            await warm_up(session, CLIENTS)
            ctx.say(f"{COUNT:,} creates of {SIZE} B from {CLIENTS} connections ...")
            async with ctx.measure(server, NAME) as phase:
                result = await create_configmaps(
                    session, names, concurrency=CLIENTS, size=SIZE, time_limit=TIME_LIMIT
                )
        rss = server.rss_bytes()
        ctx.say(f"done in {phase.wall:.1f}s; failures: {result.failures or 'none'}")

        ctx.say("kill -9, restart on the same data dir, list ...")
        await server.kill()
        started = time.perf_counter()
        await server.start()
        restart = time.perf_counter() - started
        async with server.session(connections=1) as session:
            listed, _ = await list_names(session)
    durable = len(result.acked & listed)

    p50, p99, top = percentiles(result.latencies, (50, 99, 100))
    acked = len(result.acked)
    return [
        at_least(NAME, "creates/s", acked / phase.wall, "creates/s", 3000, digits=0),
        below(NAME, "create latency p50", p50 * 1000, "ms", 50),
        below(NAME, "create latency p99", p99 * 1000, "ms", 50),
        info(NAME, "create latency max", top * 1000, "ms"),
        exactly(NAME, "creates acknowledged", acked, "", COUNT),
        exactly(NAME, "durable after kill -9", durable, "", COUNT),
        info(NAME, "restart after kill -9", restart, "s", digits=2),
        info(NAME, "server CPU per create", phase.server_cpu / max(acked, 1) * 1e6, "µs", digits=0),
        info(NAME, "client CPU per create", phase.client_cpu / max(acked, 1) * 1e6, "µs", digits=0),
        info(NAME, "server RSS after run", rss / 2**20, "MiB"),
        *phase.figures(NAME),
    ]
