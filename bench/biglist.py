"""``biglist``: small GETs while 4 clients list 46,000 objects over and over.

Method: a fresh server is filled with 46,000 ConfigMaps of ~256 bytes (64 concurrent
creates, not timed). First 200 GETs of one of them, one at a time, give the idle GET
latency. Then, for 20 s, 4 clients (each its own keep-alive connection) list
``/api/v1/namespaces/default/configmaps`` without ``limit`` — unpaginated, consistent
reads, as a careless script or an old controller does — one list after another, while one
more client GETs that one ConfigMap in a closed loop on its own connection. Each GET is
timed from request to the last byte; each list too, and must hold all 46,000 items
(counted in the body). An answer other than 200 is counted; a list answered 429 is retried
after its Retry-After (at most 1 s).

Target: small GET p99 < 100 ms during the lists. LIST latency is reported, with no target.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp

from bench.common import (
    CONFIGMAPS,
    Context,
    Figure,
    RSSSampler,
    Server,
    below,
    create_configmaps,
    exactly,
    info,
    mib,
    percentiles,
    warm_up,
)
from bench.list import item_count

NAME = "biglist"
COUNT = 46_000
SIZE = 256
CREATORS = 64
CREATE_TIME_LIMIT = 480.0
LISTERS = 4
LOAD_SECONDS = 20.0
MAX_LISTS = 2_000  # per lister, a bound the 20 s will end long before
MAX_GETS = 200_000
IDLE_GETS = 200
TARGET = f"{CONFIGMAPS}/b-00000"
ACCEPT = {"Accept": "application/json"}


async def timed_get(session: aiohttp.ClientSession, path: str) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    async with session.get(path, headers=ACCEPT) as resp:
        body = await resp.read()
        status = resp.status
        retry = resp.headers.get("Retry-After", "")
    elapsed = time.perf_counter() - start
    if status == 429:
        await asyncio.sleep(min(float(retry) if retry.isdigit() else 1.0, 1.0))
    return elapsed, status, body


async def run(ctx: Context) -> list[Figure]:
    async with ctx.server(NAME) as server:
        return await _run(ctx, server)


async def _run(ctx: Context, server: Server) -> list[Figure]:
    async with server.session(connections=CREATORS) as session:
        await warm_up(session, CREATORS)
        ctx.say(f"creating {COUNT:,} ConfigMaps of {SIZE} B from {CREATORS} connections ...")
        started = time.perf_counter()
        created = await create_configmaps(
            session,
            [f"b-{i:05d}" for i in range(COUNT)],
            concurrency=CREATORS,
            size=SIZE,
            time_limit=CREATE_TIME_LIMIT,
        )
        fill = time.perf_counter() - started
    if len(created.acked) != COUNT:
        raise RuntimeError(f"only {len(created.acked)} creates succeeded: {created.failures}")
    ctx.say(f"created in {fill:.1f}s")

    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        server.session(connections=LISTERS, timeout=timeout) as listers,
        server.session(connections=1, timeout=timeout) as getter,
    ):
        await warm_up(listers, LISTERS)
        await timed_get(listers, CONFIGMAPS)  # one untimed list
        idle = [(await timed_get(getter, TARGET))[0] for _ in range(IDLE_GETS)]
        rss_before = server.rss_bytes()

        list_times: list[float] = []
        get_times: list[float] = []
        statuses: Counter[str] = Counter()
        short = 0
        size = 0
        ends = time.monotonic() + LOAD_SECONDS

        async def lister() -> None:
            nonlocal short, size
            for _ in range(MAX_LISTS):
                if time.monotonic() >= ends:
                    return
                elapsed, status, body = await timed_get(listers, CONFIGMAPS)
                if status != 200:
                    statuses[f"list HTTP {status}"] += 1
                    continue
                list_times.append(elapsed)
                size = len(body)
                if item_count(body) != COUNT:
                    short += 1

        async def get_loop() -> None:
            for _ in range(MAX_GETS):
                if time.monotonic() >= ends:
                    return
                elapsed, status, _ = await timed_get(getter, TARGET)
                get_times.append(elapsed)
                if status != 200:
                    statuses[f"get HTTP {status}"] += 1

        ctx.say(
            f"{LOAD_SECONDS:.0f}s of {LISTERS} clients listing all {COUNT:,} and one "
            "client GETting one ..."
        )
        async with RSSSampler(server) as rss, ctx.measure(server, NAME) as phase:
            await asyncio.gather(get_loop(), *(lister() for _ in range(LISTERS)))

    ctx.say(
        f"{len(get_times):,} GETs and {len(list_times)} lists in {phase.wall:.1f}s; "
        f"other answers: {dict(statuses) or 'none'}"
    )
    g50, g99, gtop = percentiles(get_times, (50, 99, 100))
    l50, l99 = percentiles(list_times, (50, 99))
    (i50, i99) = percentiles(idle, (50, 99))
    return [
        info(NAME, "small GET latency p50 during lists", g50 * 1000, "ms"),
        below(NAME, "small GET latency p99 during lists", g99 * 1000, "ms", 100),
        info(NAME, "small GET latency max during lists", gtop * 1000, "ms"),
        info(NAME, "small GETs during lists", len(get_times), digits=0),
        info(NAME, "small GET latency p50, idle", i50 * 1000, "ms"),
        info(NAME, "small GET latency p99, idle", i99 * 1000, "ms"),
        info(NAME, "list latency p50", l50 * 1000, "ms"),
        info(NAME, "list latency p99", l99 * 1000, "ms"),
        info(NAME, "lists completed", len(list_times), digits=0),
        exactly(
            NAME, f"lists with all {COUNT:,} items", len(list_times) - short, "", len(list_times)
        ),
        info(NAME, "answers other than 200", sum(statuses.values()), digits=0),
        info(NAME, "list response size", mib(size), "MiB"),
        info(NAME, f"server RSS with {COUNT:,} objects", mib(rss_before), "MiB"),
        info(NAME, "server RSS peak during lists", mib(rss.peak), "MiB"),
        info(
            NAME,
            f"creates/s while filling ({CREATORS} connections)",
            COUNT / fill,
            "creates/s",
            digits=0,
        ),
        *phase.figures(NAME),
    ]
