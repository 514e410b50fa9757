"""``patchstorm``: 200 concurrent PATCHes of one object, without a resourceVersion, per type.

Method: a fresh server; 200 connections are opened (TLS handshakes done) first. For each
patch type — JSON patch (``application/json-patch+json``), merge patch
(``application/merge-patch+json``), strategic merge patch
(``application/strategic-merge-patch+json``) and server-side apply
(``application/apply-patch+yaml``, ``force=true``, one ``fieldManager`` for all) — a fresh
ConfigMap with ``data: {init: x}`` is created, then 200 PATCHes of it are sent at once, one
per connection, none with a resourceVersion precondition, each setting its own data key
(``k-000`` .. ``k-199``). Kubernetes retries such a patch on a write conflict, so every one
of them should succeed. The object is then read: every key whose patch was acknowledged
must be in it (a missing one is a lost write, a failure of the benchmark); for JSON, merge
and strategic patches all 200 should be. For apply, one field manager owns the keys it last
applied, so each apply removes the previous one's key and the final object rightly holds
one of them: there only the successes count.

Target: 200 of 200 succeed for every type; the final object has all 200 keys (JSON, merge,
strategic).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import orjson

from bench.common import (
    CONFIGMAPS,
    JSON_HEADERS,
    Context,
    Figure,
    Server,
    exactly,
    info,
    percentiles,
    warm_up,
)

NAME = "patchstorm"
PATCHES = 200
MANAGER = "bench-patchstorm"
STORM_TIME_LIMIT = 60.0  # for one type's 200 patches


@dataclass(frozen=True)
class PatchType:
    label: str
    content_type: str
    query: str = ""
    keeps_all_keys: bool = True  # False for apply: one manager's keys replace each other

    def body(self, name: str, key: str) -> bytes:
        value = f"v-{key}"
        if self.label == "json":
            return orjson.dumps([{"op": "add", "path": f"/data/{key}", "value": value}])
        if self.label == "apply":  # JSON is YAML
            return orjson.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name},
                    "data": {key: value},
                }
            )
        return orjson.dumps({"data": {key: value}})


TYPES = (
    PatchType("json", "application/json-patch+json"),
    PatchType("merge", "application/merge-patch+json"),
    PatchType("strategic", "application/strategic-merge-patch+json"),
    PatchType(
        "apply",
        "application/apply-patch+yaml",
        f"?fieldManager={MANAGER}&force=true",
        keeps_all_keys=False,
    ),
)


@dataclass
class Storm:
    acked: set[str]
    outcomes: Counter[str]  # "200", "HTTP 409 Conflict", "ClientOSError", ...
    latencies: list[float]
    wall: float
    final_keys: set[str]


def key_name(i: int) -> str:
    return f"k-{i:03d}"


async def storm(session: aiohttp.ClientSession, kind: PatchType) -> Storm:
    name = f"storm-{kind.label}"
    created = orjson.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"init": "x"}}
    )
    async with session.post(CONFIGMAPS, data=created, headers=JSON_HEADERS) as resp:
        await resp.read()
        resp.raise_for_status()
    path = f"{CONFIGMAPS}/{name}{kind.query}"
    headers = {"Content-Type": kind.content_type, "Accept": "application/json"}
    bodies = [(key_name(i), kind.body(name, key_name(i))) for i in range(PATCHES)]
    acked: set[str] = set()
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []

    async def one(key: str, body: bytes) -> None:
        start = time.perf_counter()
        try:
            async with session.patch(path, data=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcomes[type(exc).__name__] += 1
            return
        latencies.append(time.perf_counter() - start)
        if status == 200:
            acked.add(key)
            outcomes["200"] += 1
            return
        try:
            reason = orjson.loads(raw).get("reason", "")
        except orjson.JSONDecodeError:
            reason = ""
        outcomes[f"HTTP {status} {reason}".rstrip()] += 1

    started = time.perf_counter()
    async with asyncio.timeout(STORM_TIME_LIMIT):
        await asyncio.gather(*(one(key, body) for key, body in bodies))
    wall = time.perf_counter() - started
    async with session.get(f"{CONFIGMAPS}/{name}", headers=JSON_HEADERS) as resp:
        resp.raise_for_status()
        data = orjson.loads(await resp.read()).get("data") or {}
    final = {k for k in data if k.startswith("k-")}
    return Storm(acked, outcomes, latencies, wall, final)


async def run(ctx: Context) -> list[Figure]:
    async with ctx.server(NAME) as server:
        return await _run(ctx, server)


async def _run(ctx: Context, server: Server) -> list[Figure]:
    figures: list[Figure] = []
    results: dict[str, Storm] = {}
    async with server.session(connections=PATCHES) as session:
        await warm_up(session, PATCHES)
        async with ctx.measure(server, NAME) as phase:
            for kind in TYPES:
                ctx.say(f"{PATCHES} concurrent {kind.content_type} patches of one ConfigMap ...")
                result = await storm(session, kind)
                results[kind.label] = result
                ctx.say(
                    f"  {len(result.acked)} of {PATCHES} succeeded in {result.wall:.2f}s "
                    f"({dict(result.outcomes)}); {len(result.final_keys)} keys in the object"
                )
    for kind in TYPES:
        result = results[kind.label]
        label = f"{kind.label} patch"
        ok = len(result.acked)
        _, p99 = percentiles(result.latencies, (50, 99))
        figures.append(
            exactly(NAME, f"{label}: succeeded of {PATCHES}", ok, "", PATCHES, check=False)
        )
        if kind.keeps_all_keys:
            figures += [
                exactly(
                    NAME,
                    f"{label}: acknowledged keys in the final object",
                    len(result.acked & result.final_keys),
                    "",
                    ok,
                ),
                exactly(
                    NAME,
                    f"{label}: keys in the final object",
                    len(result.final_keys),
                    "",
                    PATCHES,
                    check=False,
                ),
            ]
        else:
            figures.append(
                info(NAME, f"{label}: keys in the final object", len(result.final_keys), digits=0)
            )
        figures += [
            info(NAME, f"{label}: latency p99", p99 * 1000, "ms"),
            info(NAME, f"{label}: time for all {PATCHES}", result.wall, "s", digits=2),
        ]
    return figures + phase.figures(NAME)
