"""``nodeauth``: what per-node identities cost — joining, and the Node authorizer's graph.

Method, in two parts.

1. In this process, no server: the Node authorizer's graph (``api.auth.node.NodeGraph``) is
   fed 30,000 pods bound to 1,000 nodes, each pod naming 3 Secrets, a ConfigMap, a PVC and a
   ServiceAccount, as the pods' watch cache feeds it; then 30,000 pod changes (each pod's
   Secret renamed); then 100,000 authorizations of a node's ``get`` of a Secret (half its
   pods' own, half another node's), from request attributes made beforehand. Timed with
   ``time.perf_counter`` around each batch, with the garbage collector's thresholds the API
   server runs with (``cli.process.tune_gc``: with CPython's defaults, collections walking
   the 30,000 pods triple the cost, which the server does not pay).
2. A fresh server (controllers and scheduler on): 1,000 joins — ``POST /setpoint/v1/join``
   with the server's node token, one node each, 32 at a time over 32 keep-alive connections
   — timed from the first request to the last answer (they count against the join token's
   per-user rate limit, 200/s with a burst of 400, as a leaked token's flood would); then
   ``setpoint sim --nodes 1000`` (the hollow nodes join in one request, then each registers
   and heartbeats as itself) timed until all 1,000 Nodes are Ready.

Targets: a pod change costs < 50 µs in the graph and a decision < 10 µs, so neither shows
next to a request's ~1 ms; one-by-one joins held to the per-user rate limit (>= 150/s);
reported: the hollow nodes' bring-up.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench.cluster import Sim, client_for
from bench.common import Context, Figure, at_least, below, info
from setpoint.api.auth.attributes import request_attributes
from setpoint.api.auth.node import NodeAuthorizer, NodeGraph
from setpoint.api.auth.user import UserInfo
from setpoint.client.api import ClientConfig

NAME = "nodeauth"
NODES = 1_000
PODS_PER_NODE = 30
DECISIONS = 100_000
JOINS = 1_000
CONCURRENCY = 32


def pod(i: int, node: str, secret_suffix: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": f"p-{i}", "namespace": f"ns-{i % 50}"},
        "spec": {
            "nodeName": node,
            "serviceAccountName": f"sa-{i % 7}",
            "containers": [
                {
                    "name": "app",
                    "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": f"env-{i}"}}}],
                    "envFrom": [{"configMapRef": {"name": f"cm-{i % 100}"}}],
                }
            ],
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "s", "secret": {"secretName": f"vol-{i}{secret_suffix}"}},
                {"name": "d", "persistentVolumeClaim": {"claimName": f"data-{i}"}},
            ],
        },
    }


def graph_figures() -> list[Figure]:
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(50_000, 50, 1000)  # as the API server runs (cli.process.tune_gc)
    try:
        return _graph_figures()
    finally:
        gc.set_threshold(*thresholds)


def _graph_figures() -> list[Figure]:
    graph = NodeGraph()
    total = NODES * PODS_PER_NODE
    pods = [(f"/registry/core/pods/p-{i}", pod(i, f"n-{i % NODES}")) for i in range(total)]
    started = time.perf_counter()
    for key, obj in pods:
        graph.pod_changed(key, obj)
    added = (time.perf_counter() - started) / total
    started = time.perf_counter()
    for i, (key, _) in enumerate(pods):
        graph.pod_changed(key, pod(i, f"n-{i % NODES}", "-v2"))
    changed = (time.perf_counter() - started) / total
    authorizer = NodeAuthorizer(graph, lambda plural, ns, name: None)
    user = UserInfo("system:node:n-0", ("system:nodes", "system:authenticated"))
    own = [
        request_attributes(user, "GET", f"/api/v1/namespaces/ns-{i % 50}/secrets/vol-{i}-v2", {})
        for i in range(0, total, NODES)
    ]
    other = [
        request_attributes(user, "GET", f"/api/v1/namespaces/ns-{i % 50}/secrets/vol-{i}-v2", {})
        for i in range(1, total, NODES)
    ]
    attrs = (own + other) * (DECISIONS // (len(own) + len(other)) + 1)
    attrs = attrs[:DECISIONS]
    started = time.perf_counter()
    allowed = sum(authorizer.authorize(a)[0].value == "allow" for a in attrs)
    decided = (time.perf_counter() - started) / len(attrs)
    return [
        below(NAME, "graph: a pod added", added * 1e6, "µs", 50, digits=1),
        below(NAME, "graph: a pod changed", changed * 1e6, "µs", 50, digits=1),
        below(NAME, "Node authorizer: a Secret get decided", decided * 1e6, "µs", 10, digits=2),
        info(NAME, "of which allowed (half expected)", allowed / len(attrs) * 100, "%", digits=0),
    ]


async def join_rate(ctx: Context, config: ClientConfig) -> float:
    from setpoint.client.api import ApiClient
    from setpoint.client.join import request_node_credential

    async with ApiClient(config, connections=CONCURRENCY) as client:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            async with slots:
                await request_node_credential(client, f"joiner-{i}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(JOINS)))
        return JOINS / (time.perf_counter() - started)


async def run(ctx: Context) -> list[Figure]:
    figures = graph_figures()
    async with ctx.server(NAME) as server, client_for(server) as admin:
        join_token = (server.data_dir / "node-token").read_text().strip()
        config = ClientConfig(server.url, join_token, server.ca_pem, "setpoint-bench")
        rate = await join_rate(ctx, config)
        figures.append(
            at_least(NAME, "one-by-one joins, rate-limited", rate, "joins/s", 150, digits=0)
        )
        sim = Sim(server, NODES, server.log_path.with_name("sim.log"))
        try:
            ready = await sim.start(admin, timeout=180)
        finally:
            await sim.stop()
        figures.append(info(NAME, f"{NODES:,} hollow nodes joined and Ready", ready, "s", digits=1))
    return figures
