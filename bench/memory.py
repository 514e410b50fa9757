"""``memory``: what the watch cache's history costs: one 60 KB ConfigMap updated 1,000 times.

Method: a fresh server. One ConfigMap of 60 KB (``data.payload``) is created and patched
20 times (warm-up, untimed); after a 2 s pause the server's RSS is the baseline. Then one
connection sends 1,000 ``application/merge-patch+json`` PATCHes of it, one at a time, each
replacing the whole payload with a different 60 KB value and setting ``data.seq``
(0..999), so every update is a new 60 KB version of the object. The server's RSS (from
/proc) is sampled every 200 ms for its peak, read once the last update is acknowledged, and
read again after 90 s with no requests at all (Kubernetes' watch cache keeps an event for
75 s; after that, history is something a server may let go). The object is read at the end
and must be the last update.

Target: RSS after 90 s idle within 64 MiB of the baseline.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from bench.common import (
    CONFIGMAPS,
    JSON_HEADERS,
    MERGE_PATCH,
    Context,
    Figure,
    RSSSampler,
    Server,
    below,
    exactly,
    info,
    mib,
    percentiles,
    warm_up,
)

NAME = "memory"
SIZE = 60 * 1024  # bytes of data.payload
UPDATES = 1_000
WARM_UPDATES = 20
IDLE_SECONDS = 90.0
WRITE_TIME_LIMIT = 240.0  # for all 1,000 updates
TARGET = "memory-target"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def payload(seq: int) -> str:
    """A 60 KB value that differs from every other ``seq``'s (a rotated alphabet)."""
    shift = seq % len(_ALPHABET)
    line = _ALPHABET[shift:] + _ALPHABET[:shift]
    return (f"{seq:08d}" + line * (SIZE // len(line) + 1))[:SIZE]


def patch_body(seq: int) -> bytes:
    return orjson.dumps({"data": {"seq": str(seq), "payload": payload(seq)}})


async def update(session: aiohttp.ClientSession, seq: int) -> float:
    """One PATCH; returns its latency. Any answer but 200 ends the benchmark."""
    body = patch_body(seq)
    start = time.perf_counter()
    async with session.patch(f"{CONFIGMAPS}/{TARGET}", data=body, headers=MERGE_PATCH) as resp:
        text = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"patch {seq} failed: HTTP {resp.status}: {text[:200]!r}")
    return time.perf_counter() - start


async def run(ctx: Context) -> list[Figure]:
    async with ctx.server(NAME) as server:
        return await _run(ctx, server)


async def _run(ctx: Context, server: Server) -> list[Figure]:
    async with server.session(connections=1) as session:
        await warm_up(session, 1)
        created = orjson.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": TARGET},
                "data": {"seq": "-1", "payload": payload(0)},
            }
        )
        async with session.post(CONFIGMAPS, data=created, headers=JSON_HEADERS) as resp:
            await resp.read()
            resp.raise_for_status()
        for seq in range(WARM_UPDATES):
            await update(session, -1 - seq)
        await asyncio.sleep(2.0)
        rss_base = server.rss_bytes()

        ctx.say(f"{UPDATES:,} updates of one {SIZE // 1024} KB ConfigMap, one at a time ...")
        latencies: list[float] = []
        deadline = time.monotonic() + WRITE_TIME_LIMIT
        async with RSSSampler(server) as rss, ctx.measure(server, NAME) as phase:
            for seq in range(UPDATES):
                if time.monotonic() > deadline:
                    break
                latencies.append(await update(session, seq))
        rss_written = server.rss_bytes()

        ctx.say(f"{len(latencies):,} updates in {phase.wall:.1f}s; idle {IDLE_SECONDS:.0f}s ...")
        async with RSSSampler(server, interval=1.0) as idle_rss:
            await asyncio.sleep(IDLE_SECONDS)
        rss_idle = server.rss_bytes()

        async with session.get(f"{CONFIGMAPS}/{TARGET}", headers=JSON_HEADERS) as resp:
            resp.raise_for_status()
            final = orjson.loads(await resp.read())["data"]
    last = len(latencies) - 1
    is_last = final.get("seq") == str(last) and final.get("payload") == payload(last)

    p50, p99 = percentiles(latencies, (50, 99))
    peak = max(rss.peak, idle_rss.peak)
    return [
        below(NAME, "server RSS growth after 90 s idle", mib(rss_idle - rss_base), "MiB", 64),
        info(NAME, "server RSS, baseline", mib(rss_base), "MiB"),
        info(NAME, "server RSS peak", mib(peak), "MiB"),
        info(NAME, "server RSS after the updates", mib(rss_written), "MiB"),
        info(NAME, "server RSS after 90 s idle", mib(rss_idle), "MiB"),
        info(NAME, "server RSS growth, peak", mib(peak - rss_base), "MiB"),
        exactly(NAME, "updates acknowledged", len(latencies), "", UPDATES),
        exactly(NAME, "final object is the last update", int(is_last), "", 1),
        info(NAME, "update latency p50", p50 * 1000, "ms"),
        info(NAME, "update latency p99", p99 * 1000, "ms"),
        *phase.figures(NAME),
    ]
