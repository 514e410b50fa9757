"""``rbac``: what authorizing through RBAC costs, against the admin's path, for writes and
GETs.

Method: a fresh server (controllers on, no agent). The admin makes a ClusterRole that may
create and get ConfigMaps, binds it to user ``bench-user`` with a RoleBinding in
``default``, and — so that the index has something to skip — 1,000 RoleBindings in
``default`` for other users and 200 ClusterRoleBindings for other groups. Then, on 32
keep-alive HTTPS connections, four phases alternate twice (the better of the two rounds
counts, as the machine is shared): 5,000 ConfigMap creates as the admin (``system:masters``:
allowed before RBAC is asked), 5,000 as ``bench-user``, 10,000 GETs of one ConfigMap as
the admin, 10,000 as ``bench-user``. ``bench-user`` is the admin impersonating it
(``Impersonate-User``): there is no way to mint a user token yet, so its figure also pays
for the impersonation check — an upper bound on RBAC's own cost.

Target: RBAC's throughput within 10% of the admin's, for both.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from bench.common import (
    CONFIGMAPS,
    JSON_HEADERS,
    Context,
    Figure,
    below,
    create_configmaps,
    info,
    warm_up,
)

NAME = "rbac"
CLIENTS = 32
WRITES = 5_000
GETS = 10_000
ROUNDS = 2
USER = "bench-user"
RBAC = "rbac.authorization.k8s.io"
BINDINGS = f"/apis/{RBAC}/v1/namespaces/default/rolebindings"
CLUSTER_BINDINGS = f"/apis/{RBAC}/v1/clusterrolebindings"


def _binding(name: str, subject_kind: str, subject: str, role: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": f"{RBAC}/v1",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": subject_kind, "apiGroup": RBAC, "name": subject}],
        }
    )


async def _post(session: aiohttp.ClientSession, path: str, body: bytes) -> None:
    async with session.post(path, data=body, headers=JSON_HEADERS) as resp:
        if resp.status != 201:
            raise RuntimeError(f"POST {path}: {resp.status} {await resp.text()}")


async def _policy(session: aiohttp.ClientSession) -> None:
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "bench-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get"]}],
    }
    await _post(session, f"/apis/{RBAC}/v1/clusterroles", orjson.dumps(role))
    await _post(session, BINDINGS, _binding("bench-user", "User", USER, "bench-configmaps"))
    sem = asyncio.Semaphore(CLIENTS)

    async def one(path: str, body: bytes) -> None:
        async with sem:
            await _post(session, path, body)

    await asyncio.gather(
        *(one(BINDINGS, _binding(f"other-{i}", "User", f"other-{i}", "view")) for i in range(1000)),
        *(
            one(CLUSTER_BINDINGS, _binding(f"team-{i}", "Group", f"team-{i}", "view"))
            for i in range(200)
        ),
    )


async def _gets(session: aiohttp.ClientSession, path: str, count: int) -> tuple[float, int]:
    done = failures = 0

    async def worker() -> None:
        nonlocal done, failures
        while done + failures < count:
            done += 1
            async with session.get(path, headers={"Accept": "application/json"}) as resp:
                await resp.read()
                if resp.status != 200:
                    done -= 1
                    failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return done / (time.perf_counter() - start), failures


async def run(ctx: Context) -> list[Figure]:
    best: dict[str, float] = {}
    failures = 0
    async with ctx.server(NAME) as server:
        async with server.session(connections=CLIENTS) as admin:
            await warm_up(admin, CLIENTS)
            ctx.say("policy: 1 binding for bench-user, 1,200 for others ...")
            await _policy(admin)
            await _post(admin, CONFIGMAPS, orjson.dumps({"metadata": {"name": "target"}}))
        target = f"{CONFIGMAPS}/target"
        async with (
            server.session(connections=CLIENTS) as admin,
            server.session(connections=CLIENTS) as user,
        ):
            user.headers["Impersonate-User"] = USER
            await warm_up(admin, CLIENTS)
            await warm_up(user, CLIENTS)
            for round_ in range(ROUNDS):
                for who, session in (("admin", admin), ("rbac", user)):
                    names = [f"{who}-{round_}-{i:05d}" for i in range(WRITES)]
                    ctx.say(f"round {round_ + 1}: {WRITES:,} creates as {who} ...")
                    start = time.perf_counter()
                    result = await create_configmaps(session, names, concurrency=CLIENTS)
                    rate = len(result.acked) / (time.perf_counter() - start)
                    failures += sum(result.failures.values())
                    best[f"{who} creates/s"] = max(best.get(f"{who} creates/s", 0.0), rate)
                for who, session in (("admin", admin), ("rbac", user)):
                    ctx.say(f"round {round_ + 1}: {GETS:,} GETs as {who} ...")
                    rate, failed = await _gets(session, target, GETS)
                    failures += failed
                    best[f"{who} GET/s"] = max(best.get(f"{who} GET/s", 0.0), rate)

    def cost(kind: str) -> float:
        return (1 - best[f"rbac {kind}/s"] / best[f"admin {kind}/s"]) * 100

    return [
        info(NAME, "admin creates/s", best["admin creates/s"], "creates/s", digits=0),
        info(NAME, "RBAC user creates/s", best["rbac creates/s"], "creates/s", digits=0),
        below(NAME, "RBAC write throughput cost", cost("creates"), "%", 10),
        info(NAME, "admin GET/s", best["admin GET/s"], "GET/s", digits=0),
        info(NAME, "RBAC user GET/s", best["rbac GET/s"], "GET/s", digits=0),
        below(NAME, "RBAC GET throughput cost", cost("GET"), "%", 10),
        info(NAME, "failed requests", failures),
    ]
