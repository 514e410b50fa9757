"""``list``: full lists of 10,000 ConfigMaps served from the watch cache.

Method: a fresh server is filled with 10,000 ~1 KB ConfigMaps (32 concurrent creates, not
timed). Then, one request at a time on one keep-alive HTTPS connection, 20 lists of
``/api/v1/namespaces/default/configmaps`` without ``limit`` — a consistent read, which waits
until the watch cache has caught up with the store — and 20 with ``resourceVersion=0``
(any cached state will do), after two untimed lists of each kind. Time is request start to
the last byte of the ~10 MiB JSON body; every list is then parsed (untimed) and must hold all
10,000 items. With 20 samples, p99 is interpolated between the two slowest.

Target: median and p99 < 250 ms.
"""

from __future__ import annotations

import time

import aiohttp
import orjson

from bench.common import (
    CONFIGMAPS,
    Context,
    Figure,
    below,
    create_configmaps,
    exactly,
    info,
    mib,
    percentiles,
    warm_up,
)

NAME = "list"
COUNT = 10_000
LISTS = 20
WARM = 2
MODES = (("consistent", ""), ("rv=0", "?resourceVersion=0"))


async def timed_list(session: aiohttp.ClientSession, query: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    async with session.get(CONFIGMAPS + query, headers={"Accept": "application/json"}) as resp:
        body = await resp.read()
        resp.raise_for_status()
    return time.perf_counter() - start, body


def item_count(body: bytes) -> int:
    """Items in a ConfigMapList, cheaply (no JSON parse inside the measured phase)."""
    return body.count(b'"kind":"ConfigMap","metadata":')


async def run(ctx: Context) -> list[Figure]:
    figures: list[Figure] = []
    async with ctx.server(NAME) as server:
        async with server.session(connections=32) as session:
            await warm_up(session, 32)
            ctx.say(f"creating {COUNT:,} ConfigMaps of 1 KB ...")
            created = await create_configmaps(
                session, [f"l-{i:05d}" for i in range(COUNT)], concurrency=32
            )
        if len(created.acked) != COUNT:
            raise RuntimeError(f"only {len(created.acked)} creates succeeded: {created.failures}")
        timeout = aiohttp.ClientTimeout(total=30)
        async with server.session(connections=1, timeout=timeout) as session:
            for _, query in MODES:
                for _ in range(WARM):
                    await timed_list(session, query)
            ctx.say(f"{LISTS} lists of each kind ...")
            samples: dict[str, list[float]] = {}
            sizes: dict[str, int] = {}
            last: dict[str, bytes] = {}
            short = 0
            async with ctx.measure(server, NAME) as phase:
                for label, query in MODES:
                    times = samples.setdefault(label, [])
                    for _ in range(LISTS):
                        elapsed, body = await timed_list(session, query)
                        times.append(elapsed)
                        sizes[label] = len(body)
                        last[label] = body
                        if item_count(body) != COUNT:
                            short += 1
            rss = server.rss_bytes()
    for label, body in last.items():  # one full parse of each kind, outside the phase
        if len(orjson.loads(body)["items"]) != COUNT:
            raise RuntimeError(f"list ({label}) does not hold {COUNT} items")
    for label, _ in MODES:
        p50, p99 = percentiles(samples[label], (50, 99))
        figures += [
            below(NAME, f"list ({label}) median", p50 * 1000, "ms", 250),
            below(NAME, f"list ({label}) p99", p99 * 1000, "ms", 250),
        ]
    figures += [
        exactly(NAME, "lists with all 10,000 items", 2 * LISTS - short, "", 2 * LISTS),
        info(NAME, "list response size", mib(sizes["consistent"]), "MiB"),
        info(NAME, "server RSS with 10,000 objects", mib(rss), "MiB"),
        *phase.figures(NAME),
    ]
    return figures
