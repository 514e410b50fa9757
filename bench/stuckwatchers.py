"""``stuckwatchers``: 20 watches that never read, during 3,000 updates of 8 KB objects.

Method: a fresh server with 4 ConfigMaps of 8 KB. 20 "stuck" watches are opened as
``GET /api/v1/namespaces/default/configmaps?watch=true&resourceVersion=<rv>`` from the
list's resourceVersion, each on its own TLS connection whose socket has a 4 KiB receive
buffer (``SO_RCVBUF``, set before connecting so the TCP window stays small); after the
response headers nothing is ever read from them again. The requests say
``Connection: close``, so a server that ends such a stream also closes its connection. One
more watch, on an ordinary aiohttp connection, reads everything. 4 writer connections then
send 3,000 ``application/merge-patch+json`` PATCHes in total (closed loop, each writer on
its own ConfigMap), each setting ``data.seq`` (0..2,999): every update is an ~8 KB event
for each of the 21 watches. The reading watch must see every seq exactly once. The
server's RSS is read once all watches are open, sampled every 200 ms for its peak and read
when the reading watch has seen the last update. Then each stuck socket is read until the
server closes it (EOF) or a 15 s deadline passes: EOF (or a reset) counts as closed by the
server, a stream still open at the deadline (data still coming, or none) as not closed.

Targets: server RSS growth (peak) < 100 MiB; all 20 stuck watches closed by the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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
from setpoint.pki import client_ssl_context

NAME = "stuckwatchers"
STUCK = 20
UPDATES = 3_000
WRITERS = 4
SIZE = 8 * 1024  # bytes of data.payload
RCVBUF = 4096
WRITE_TIME_LIMIT = 240.0  # for all 3,000 updates
DRAIN_TIME_LIMIT = 60.0  # after the last update, for the reading watch to catch up
CLOSE_DEADLINE = 15.0  # for the server to have closed the stuck watches, read to EOF
WATCH_TIMEOUT = 1800  # timeoutSeconds: far beyond the run


# --------------------------------------------------------------------------- stuck watches


@dataclass(eq=False)
class StuckWatch:
    """A watch on a raw TLS stream with a tiny receive buffer, never read until the end."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    outcome: str = ""  # "EOF", "reset: ...", "open at deadline"
    drained: int = 0  # bytes read while looking for the end

    @property
    def closed_by_server(self) -> bool:
        return self.outcome != "" and self.outcome != "open at deadline"

    async def read_to_end(self, deadline: float) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                while chunk := await self.reader.read(1 << 16):
                    self.drained += len(chunk)
            self.outcome = "EOF"
        except TimeoutError:
            self.outcome = "open at deadline"
        except OSError as exc:  # ssl.SSLError too
            # a server that aborts the connection may reset it: it still ended the stream
            self.outcome = f"reset: {type(exc).__name__}"

    def close(self) -> None:
        self.writer.close()


async def open_stuck_watch(server: Server, context: ssl.SSLContext, rv: str) -> StuckWatch:
    url = urlsplit(server.url)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)  # before connect
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        # a small StreamReader limit: the client stops reading from TLS after ~8 KiB
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=context, server_hostname=host, limit=RCVBUF
        )
    except BaseException:
        sock.close()
        raise
    query = f"watch=true&resourceVersion={rv}&timeoutSeconds={WATCH_TIMEOUT}"
    writer.write(
        (
            f"GET {CONFIGMAPS}?{query} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"Authorization: Bearer {server.token}\r\n"
            "Accept: application/json\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        raise RuntimeError(f"stuck watch failed: {head[:200]!r}")
    return StuckWatch(reader, writer)


# --------------------------------------------------------------------------- reading watch


@dataclass(eq=False)
class ReadingWatch:
    seen: bytearray = field(default_factory=lambda: bytearray(UPDATES))
    unique: int = 0
    duplicates: int = 0
    ended: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, line: bytes) -> None:
        event = orjson.loads(line)
        if event.get("type") != "MODIFIED":
            return
        seq = int(event["object"]["data"]["seq"])
        if self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.unique += 1
        if self.unique == UPDATES:
            self.done.set()

    async def consume(self, resp: aiohttp.ClientResponse) -> None:
        rest = b""
        try:
            async for chunk in resp.content.iter_any():
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if line:
                        self.take(line)
            self.ended = "stream closed by server"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.ended = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()


# --------------------------------------------------------------------------- writes


def configmap(name: str) -> bytes:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"seq": "-1", "payload": (name * (SIZE // len(name) + 1))[:SIZE]},
    }
    return orjson.dumps(doc)


async def write_updates(session: aiohttp.ClientSession) -> tuple[int, list[float]]:
    """UPDATES patches from WRITERS connections; returns (acknowledged, latencies)."""
    return await numbered_patches(
        session,
        target=lambda index: f"{CONFIGMAPS}/stuck-target-{index}",
        body=lambda seq: orjson.dumps({"data": {"seq": str(seq)}}),
        writers=WRITERS,
        updates=UPDATES,
        time_limit=WRITE_TIME_LIMIT,
    )


# --------------------------------------------------------------------------- run


async def run(ctx: Context) -> list[Figure]:
    async with ctx.server(NAME) as server:
        return await _run(ctx, server)


async def _run(ctx: Context, server: Server) -> list[Figure]:
    watch_timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    stuck: list[StuckWatch] = []
    async with (
        server.session(connections=WRITERS) as writers,
        server.session(connections=1, timeout=watch_timeout) as watches,
    ):
        for i in range(WRITERS):
            async with writers.post(
                CONFIGMAPS, data=configmap(f"stuck-target-{i}"), headers=JSON_HEADERS
            ) as resp:
                await resp.read()
                resp.raise_for_status()
        await warm_up(writers, WRITERS)
        async with writers.get(CONFIGMAPS, headers=JSON_HEADERS) as resp:
            rv = str(orjson.loads(await resp.read())["metadata"]["resourceVersion"])

        context = client_ssl_context(server.ca_pem)
        reading = ReadingWatch()
        query = f"?watch=true&resourceVersion={rv}&timeoutSeconds={WATCH_TIMEOUT}"
        resp = await watches.get(CONFIGMAPS + query, headers={"Accept": "application/json"})
        if resp.status != 200:
            raise RuntimeError(f"watch failed: HTTP {resp.status}: {(await resp.text())[:200]}")
        reader = asyncio.create_task(reading.consume(resp))
        try:
            for _ in range(STUCK):
                stuck.append(await open_stuck_watch(server, context, rv))
            await asyncio.sleep(0.5)  # let the server settle with every watch registered
            rss_before = server.rss_bytes()
            ctx.say(
                f"{STUCK} stuck watches and 1 reading watch open from rv {rv}; "
                f"{UPDATES:,} patches of {SIZE // 1024} KB objects from {WRITERS} writers ..."
            )
            async with RSSSampler(server) as rss, ctx.measure(server, NAME) as phase:
                acked, latencies = await write_updates(writers)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reading.done.wait(), DRAIN_TIME_LIMIT)
            rss_after = server.rss_bytes()

            ctx.say(f"reading the stuck watches until EOF, at most {CLOSE_DEADLINE:.0f}s ...")
            deadline = asyncio.get_running_loop().time() + CLOSE_DEADLINE
            await asyncio.gather(*(s.read_to_end(deadline) for s in stuck))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            resp.close()
            for s in stuck:
                s.close()
        await asyncio.sleep(1.0)
        rss_closed = server.rss_bytes()

    closed = sum(s.closed_by_server for s in stuck)
    outcomes = Counter(s.outcome for s in stuck)
    drained = sum(s.drained for s in stuck)
    ctx.say(
        f"{acked:,} patches acked in {phase.wall:.1f}s; reading watch saw {reading.unique:,} "
        f"(duplicates {reading.duplicates}, ended: {reading.ended or 'no'}); stuck watches: "
        f"{dict(outcomes)}, {mib(drained):.1f} MiB read from them before EOF or deadline"
    )
    p50, p99 = percentiles(latencies, (50, 99))
    return [
        below(NAME, "server RSS growth, peak", mib(rss.peak - rss_before), "MiB", 100),
        info(NAME, "server RSS growth after the updates", mib(rss_after - rss_before), "MiB"),
        exactly(NAME, "stuck watches closed by the server", closed, "", STUCK, check=False),
        exactly(NAME, "updates the reading watch saw", reading.unique, "", UPDATES),
        exactly(NAME, "duplicate events at the reading watch", reading.duplicates, "", 0),
        exactly(NAME, "updates acknowledged", acked, "", UPDATES),
        info(NAME, "server RSS, watches open, before", mib(rss_before), "MiB"),
        info(NAME, "server RSS peak", mib(rss.peak), "MiB"),
        info(NAME, "server RSS after the updates", mib(rss_after), "MiB"),
        info(NAME, "server RSS after the stuck sockets closed", mib(rss_closed), "MiB"),
        info(NAME, "read from stuck watches before EOF or deadline", mib(drained), "MiB"),
        info(NAME, "updates/s (4 writers)", acked / phase.wall, "updates/s", digits=0),
        info(NAME, "patch latency p50", p50 * 1000, "ms"),
        info(NAME, "patch latency p99", p99 * 1000, "ms"),
        *phase.figures(NAME),
    ]
