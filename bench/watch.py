"""``watch``: 100 watchers each receive all of 10,000 updates; delivery delay and server RSS.

Method: a fresh server with 4 small ConfigMaps. 100 watches are opened, each its own HTTPS
connection, as ``GET /api/v1/namespaces/default/configmaps?watch=true&resourceVersion=<rv>``
(newline-delimited JSON), from the list's resourceVersion. Then 4 writer connections send
10,000 ``application/merge-patch+json`` PATCHes in total (closed loop, one in flight per
writer, each writer on its own ConfigMap); every patch sets ``data.seq`` (0..9,999) and
``data.ts``, the wall-clock time just before the request is sent. Each watcher records, for
every MODIFIED event, receive time minus ``ts`` — the receive time is taken when the client
reads the chunk holding the event, so the delay covers commit, fan-out, TLS, the network
stack and the client's own read loop. Every watcher must see every seq exactly once:
1,000,000 events in all. The server's RSS is read (from /proc) once all watches are open,
sampled during the run for its peak, and read again after the last event is delivered.

Target: delivery delay p99 < 100 ms; 1,000,000 events delivered; RSS growth bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from dataclasses import dataclass, field

import aiohttp
import orjson

from bench.common import (
    CONFIGMAPS,
    JSON_HEADERS,
    Context,
    Figure,
    RSSSampler,
    Server,
    below,
    exactly,
    info,
    mib,
    numbered_patches,
    percentiles,
    warm_up,
)

NAME = "watch"
WATCHERS = 100
UPDATES = 10_000
WRITERS = 4
WRITE_TIME_LIMIT = 300.0  # for all 10,000 updates
DRAIN_TIME_LIMIT = 60.0  # after the last update, for the watchers to catch up
WATCH_TIMEOUT = 900  # timeoutSeconds: the server ends the watches by itself after this


@dataclass(eq=False)
class Watcher:
    seen: bytearray = field(default_factory=lambda: bytearray(UPDATES))
    delays: array[float] = field(default_factory=lambda: array("d"))
    events: int = 0
    unique: int = 0
    duplicates: int = 0
    other: int = 0  # events that are not our MODIFIED updates (bookmarks, errors)
    ended: str = ""  # why the stream ended early, if it did
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, line: bytes, now: float) -> None:
        event = orjson.loads(line)
        if event.get("type") != "MODIFIED":
            self.other += 1
            return
        data = event["object"]["data"]
        seq = int(data["seq"])
        self.events += 1
        self.delays.append(now - float(data["ts"]))
        if self.seen[seq]:
            self.duplicates += 1
        else:
            self.seen[seq] = 1
            self.unique += 1
            if self.unique == UPDATES:
                self.done.set()

    async def consume(self, resp: aiohttp.ClientResponse) -> None:
        rest = b""
        try:
            async for chunk in resp.content.iter_any():
                now = time.time()
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if line:
                        self.take(line, now)
            self.ended = "stream closed by server"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.ended = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()


async def open_watch(
    session: aiohttp.ClientSession, rv: str, watcher: Watcher
) -> aiohttp.ClientResponse:
    query = f"?watch=true&resourceVersion={rv}&timeoutSeconds={WATCH_TIMEOUT}"
    resp = await session.get(CONFIGMAPS + query, headers={"Accept": "application/json"})
    if resp.status != 200:
        body = await resp.text()
        resp.release()
        raise RuntimeError(f"watch failed: HTTP {resp.status}: {body[:200]}")
    return resp


async def write_updates(session: aiohttp.ClientSession) -> tuple[int, list[float]]:
    """Send UPDATES patches from WRITERS connections; returns (acknowledged, latencies).
    Each patch carries ``ts``, the wall-clock time just before it is sent."""
    return await numbered_patches(
        session,
        target=lambda index: f"{CONFIGMAPS}/watch-target-{index}",
        body=lambda seq: orjson.dumps({"data": {"seq": str(seq), "ts": f"{time.time():.6f}"}}),
        writers=WRITERS,
        updates=UPDATES,
        time_limit=WRITE_TIME_LIMIT,
    )


async def run(ctx: Context) -> list[Figure]:
    async with ctx.server(NAME) as server:
        return await _run(ctx, server)


async def _run(ctx: Context, server: Server) -> list[Figure]:
    watch_timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    async with (
        server.session(connections=WRITERS) as writers,
        server.session(connections=WATCHERS, timeout=watch_timeout) as watches,
    ):
        for i in range(WRITERS):
            body = orjson.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"watch-target-{i}"},
                    "data": {"seq": "-1", "ts": "0"},
                }
            )
            async with writers.post(CONFIGMAPS, data=body, headers=JSON_HEADERS) as resp:
                await resp.read()
                resp.raise_for_status()
        await warm_up(writers, WRITERS)
        async with writers.get(CONFIGMAPS, headers={"Accept": "application/json"}) as resp:
            rv = str(orjson.loads(await resp.read())["metadata"]["resourceVersion"])

        watchers = [Watcher() for _ in range(WATCHERS)]
        responses = await asyncio.gather(*(open_watch(watches, rv, w) for w in watchers))
        readers = [
            asyncio.create_task(w.consume(r)) for w, r in zip(watchers, responses, strict=True)
        ]
        try:
            await asyncio.sleep(0.5)  # let the server settle with every watch registered
            rss_before = server.rss_bytes()
            ctx.say(
                f"{WATCHERS} watches open from rv {rv}; {UPDATES:,} patches from "
                f"{WRITERS} writers ..."
            )
            async with RSSSampler(server) as rss, ctx.measure(server, NAME) as phase:
                acked, write_latencies = await write_updates(writers)
                written = time.perf_counter()
                waits = [asyncio.create_task(w.done.wait()) for w in watchers]
                _, pending = await asyncio.wait(waits, timeout=DRAIN_TIME_LIMIT)
                for waiting in pending:
                    waiting.cancel()
                drain = time.perf_counter() - written
            rss_after = server.rss_bytes()
        finally:
            for reader in readers:
                reader.cancel()
            for reader in readers:
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            for resp in responses:
                resp.close()
        await asyncio.sleep(1.0)
        rss_closed = server.rss_bytes()

    delays: array[float] = array("d")
    for w in watchers:
        delays.extend(w.delays)
    events = sum(w.events for w in watchers)
    complete = sum(1 for w in watchers if w.unique == UPDATES)
    duplicates = sum(w.duplicates for w in watchers)
    ended = {w.ended for w in watchers if w.ended and w.unique < UPDATES}
    ctx.say(
        f"{acked:,} patches acked; {events:,} events delivered in {phase.wall:.1f}s "
        f"(drain after last patch {drain * 1000:.0f} ms); duplicates {duplicates}; "
        f"early ends: {ended or 'none'}"
    )
    p50, p99, top = percentiles(delays, (50, 99, 100))
    w50, w99 = percentiles(write_latencies, (50, 99))
    return [
        below(NAME, "delivery delay p50", p50 * 1000, "ms", 100),
        below(NAME, "delivery delay p99", p99 * 1000, "ms", 100),
        info(NAME, "delivery delay max", top * 1000, "ms"),
        exactly(NAME, "events delivered", events, "", WATCHERS * UPDATES),
        exactly(NAME, "watchers that saw every update", complete, "", WATCHERS),
        info(NAME, "updates/s (4 writers)", acked / phase.wall, "updates/s", digits=0),
        info(NAME, "events/s delivered", events / phase.wall, "events/s", digits=0),
        info(NAME, "patch latency p50", w50 * 1000, "ms"),
        info(NAME, "patch latency p99", w99 * 1000, "ms"),
        info(NAME, "server RSS, watches open, before", mib(rss_before), "MiB"),
        info(NAME, "server RSS peak", mib(rss.peak), "MiB"),
        info(NAME, "server RSS after", mib(rss_after), "MiB"),
        info(NAME, "server RSS growth", mib(rss_after - rss_before), "MiB"),
        info(NAME, "RSS growth per update", (rss_after - rss_before) / 1024 / UPDATES, "KiB"),
        info(NAME, "server RSS after watches closed", mib(rss_closed), "MiB"),
        *phase.figures(NAME),
    ]
