"""``rbac``: what authorizing through RBAC costs, against the admin's path, for writes and
GETs.

Method: a fresh server (controllers on, no agent). The admin makes a ClusterRole that may
create and get ConfigMaps, binds it to user ``bench-user`` with a RoleBinding in
``default``, and — so that the index has something to skip — 1,000 RoleBindings in
``default`` for other users and 200 ClusterRoleBindings for other groups. Then, on 32
keep-alive HTTPS connections, four phases alternate three times (the best of the rounds
counts, as the machine is shared): 5,000 ConfigMap creates as the admin (``system:masters``:
allowed before RBAC is asked), 5,000 as ``bench-user``, 10,000 GETs of one ConfigMap as
the admin, 10,000 as ``bench-user``. ``bench-user`` has its own bearer token
(``--token-auth-file``).

Figures: throughput of each (the better round), and the server's CPU time per request —
on a machine shared with other work the CPU time is the steadier measure of what RBAC
costs (the server is CPU-bound, so throughput follows it when the machine is quiet).

Target: RBAC's server CPU per request within 10% of the admin's, for writes and GETs.
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
ROUNDS = 3
USER = "bench-user"
TOKEN = "bench-user-token-0123456789abcdef"
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
    best: dict[str, float] = {}  # throughput: the better round
    cpu: dict[str, float] = {}  # server CPU seconds per request: the better round
    failures = 0

    def keep(key: str, rate: float, cpu_per_request: float) -> None:
        best[key] = max(best.get(key, 0.0), rate)
        cpu[key] = min(cpu.get(key, float("inf")), cpu_per_request)

    tokens = ctx.work_dir / "rbac-tokens.csv"
    tokens.parent.mkdir(parents=True, exist_ok=True)
    tokens.write_text(f"{TOKEN},{USER},bench-uid\n")
    # --client-qps 0: what is measured is authorization, not the per-user rate limit (the
    # admin is exempt from it; the user would be held to 200/s)
    extra = ["--token-auth-file", str(tokens), "--client-qps", "0"]
    async with ctx.server(NAME, extra_args=extra) as server:
        async with server.session(connections=CLIENTS) as admin:
            await warm_up(admin, CLIENTS)
            ctx.say("policy: 1 binding for bench-user, 1,200 for others ...")
            await _policy(admin)
            await _post(admin, CONFIGMAPS, orjson.dumps({"metadata": {"name": "target"}}))
        target = f"{CONFIGMAPS}/target"
        async with (
            server.session(connections=CLIENTS) as admin,
            server.session(connections=CLIENTS, token=TOKEN) as user,
        ):
            await warm_up(admin, CLIENTS)
            await warm_up(user, CLIENTS)
            for round_ in range(ROUNDS):
                for who, session in (("admin", admin), ("rbac", user)):
                    names = [f"{who}-{round_}-{i:05d}" for i in range(WRITES)]
                    ctx.say(f"round {round_ + 1}: {WRITES:,} creates as {who} ...")
                    async with ctx.measure(server, f"{NAME}-{who}-writes") as phase:
                        result = await create_configmaps(session, names, concurrency=CLIENTS)
                    acked = max(len(result.acked), 1)
                    failures += sum(result.failures.values())
                    keep(f"{who} creates", acked / phase.wall, phase.server_cpu / acked)
                for who, session in (("admin", admin), ("rbac", user)):
                    ctx.say(f"round {round_ + 1}: {GETS:,} GETs as {who} ...")
                    async with ctx.measure(server, f"{NAME}-{who}-gets") as phase:
                        _, failed = await _gets(session, target, GETS)
                    failures += failed
                    keep(f"{who} GET", GETS / phase.wall, phase.server_cpu / GETS)

    def cost(table: dict[str, float], kind: str, *, lower_is_better: bool) -> float:
        admin_value, rbac_value = table[f"admin {kind}"], table[f"rbac {kind}"]
        if lower_is_better:
            return (rbac_value / admin_value - 1) * 100
        return (1 - rbac_value / admin_value) * 100

    return [
        info(NAME, "admin creates/s", best["admin creates"], "creates/s", digits=0),
        info(NAME, "RBAC user creates/s", best["rbac creates"], "creates/s", digits=0),
        info(NAME, "RBAC write throughput cost", cost(best, "creates", lower_is_better=False), "%"),
        info(NAME, "admin server CPU per create", cpu["admin creates"] * 1e6, "µs", digits=0),
        info(NAME, "RBAC user server CPU per create", cpu["rbac creates"] * 1e6, "µs", digits=0),
        below(
            NAME,
            "RBAC server CPU cost per create",
            cost(cpu, "creates", lower_is_better=True),
            "%",
            10,
        ),
        info(NAME, "admin GET/s", best["admin GET"], "GET/s", digits=0),
        info(NAME, "RBAC user GET/s", best["rbac GET"], "GET/s", digits=0),
        info(NAME, "RBAC GET throughput cost", cost(best, "GET", lower_is_better=False), "%"),
        info(NAME, "admin server CPU per GET", cpu["admin GET"] * 1e6, "µs", digits=0),
        info(NAME, "RBAC user server CPU per GET", cpu["rbac GET"] * 1e6, "µs", digits=0),
        below(
            NAME, "RBAC server CPU cost per GET", cost(cpu, "GET", lower_is_better=True), "%", 10
        ),
        info(NAME, "failed requests", failures),
    ]
