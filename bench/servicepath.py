"""``servicepath``: what a Service's cluster IP costs, and how fast the node proxy follows.

Method: a cluster of one server and one ``setpoint agent`` node in a network namespace of the
run (:mod:`tests.cluster`; proxy mode auto, so nftables where ``nft`` works). Pods: three
replicas of a tiny Python HTTP server answering its pod name (``web``, behind a ClusterIP
Service 80 → 8080) and one more (``solo``, behind a Service of its own). A Python load
generator inside the node's network namespace (``CONNECTIONS`` concurrent asyncio clients,
one new TCP connection per request, so each request meets the NAT rules; ``SECONDS`` per
target, the three targets alternating over ``RATE_ROUNDS`` rounds, medians reported)
measures requests/s to the solo pod's IP directly, to its cluster IP (the same backend: the
difference is the data path), and to web's cluster IP (three backends).

Endpoint latency: ``ROUNDS`` times a web replica's readiness probe (exec, every second) is
made to fail; timed from the moment the API shows its EndpointSlice endpoint not ready to the
moment the node's nftables table no longer names its IP (polled every few ms), then it is
made ready again. Root, iproute2 and network namespaces; loopback only.

Targets: cluster IP overhead vs direct < 10 %; endpoint update p99 < 1 s.
Standalone: ``python -m bench servicepath``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests import objects
from tests.cluster import Cluster, can_make_network_namespaces, running_cluster
from tests.objects import NAME_SERVER
from tests.support import create_namespace, wait_for

from bench.common import Context, Figure, below, info, percentiles
from setpoint.agent.network import node_key
from setpoint.agent.proxy.nftables import table_name

NAME = "servicepath"
SECONDS = 2.0
RATE_ROUNDS = 5  # the three targets alternate, each figure is the median of its rounds
CONNECTIONS = 8
ROUNDS = 10


LOAD = """
import asyncio, sys, time
host, port, seconds, conns = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
done = errors = 0
async def client(deadline):
    global done, errors
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
            await reader.read()
            writer.close()
            done += 1
        except OSError:
            errors += 1
async def main():
    start = time.monotonic()
    await asyncio.gather(*(client(start + seconds) for _ in range(conns)))
    print(done / (time.monotonic() - start), errors)
asyncio.run(main())
"""


def in_node(netns: str, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", *argv], capture_output=True, text=True
    ).stdout


def server_container(marks: Path) -> dict[str, object]:
    return objects.container(
        "web",
        "python",
        command=["python3", "-c", NAME_SERVER],
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        ports=[{"containerPort": 8080}],
        readinessProbe={
            "exec": {"command": ["sh", "-c", f'test ! -e "{marks}/$POD_NAME"']},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    )


def ready_pods(cluster: Cluster, namespace: str, selector: str, count: int) -> dict[str, str]:
    def ready() -> dict[str, str] | None:
        found = {
            p["metadata"]["name"]: p["status"]["podIP"]
            for p in cluster.pods(namespace, selector)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []
            )
        }
        return found if len(found) == count else None

    return wait_for(ready, timeout=120, what=f"{count} ready pods")


def endpoint_ready(cluster: Cluster, namespace: str, pod: str) -> bool | None:
    _, body, _ = cluster.server.request(
        "GET",
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        "?labelSelector=kubernetes.io/service-name=web",
    )
    for endpoint_slice in body.get("items") or []:
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("targetRef") or {}).get("name") == pod:
                return bool((endpoint.get("conditions") or {}).get("ready"))
    return None


def rate(netns: str, host: str, port: int) -> float:
    out = in_node(netns, "python3", "-c", LOAD, host, str(port), str(SECONDS), str(CONNECTIONS))
    return float(out.split()[0])


def measure(cluster: Cluster, marks: Path, ctx: Context) -> list[Figure]:
    node = cluster.nodes[0]
    assert node.link is not None
    netns = node.link.netns
    k = cluster.kubectl(create_namespace(cluster.server, "bench"))
    web = objects.deployment("web", replicas=3, containers=[server_container(marks)])
    solo = objects.pod("solo", containers=[server_container(marks)], labels={"app": "solo"})
    k(
        "apply",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": [web, solo]}),
    )
    k("expose", "deployment", "web", "--port=80", "--target-port=8080")
    k("expose", "pod", "solo", "--port=80", "--target-port=8080")
    replicas = ready_pods(cluster, k.namespace or "", "app=web", 3)
    (solo_ip,) = ready_pods(cluster, k.namespace or "", "app=solo", 1).values()
    web_ip = k("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    solo_cluster_ip = k("get", "svc", "solo", "-o", "jsonpath={.spec.clusterIP}").stdout
    table = table_name(node_key(node.data_dir))
    wait_for(
        lambda: solo_cluster_ip in in_node(netns, "nft", "list", "table", "ip", table),
        timeout=30,
        what="the Services in the data path",
    )
    ctx.say(f"requests/s, {CONNECTIONS} clients, a new connection per request ...")
    rates: dict[str, list[float]] = {"direct": [], "through": [], "three": []}
    for _ in range(RATE_ROUNDS):  # alternating: the machine's noise hits all three alike
        rates["direct"].append(rate(netns, solo_ip, 8080))
        rates["through"].append(rate(netns, solo_cluster_ip, 80))
        rates["three"].append(rate(netns, web_ip, 80))
    ctx.say("  rounds: " + "; ".join(f"{k} {[round(r) for r in v]}" for k, v in rates.items()))
    direct, through, three = (statistics.median(rates[key]) for key in rates)
    overhead = (1 - through / direct) * 100

    ctx.say(f"endpoint update latency, {ROUNDS} rounds ...")
    latencies = []
    names = sorted(replicas)
    for n in range(ROUNDS):
        victim = names[n % len(names)]
        (marks / victim).touch()
        unready = wait_for(
            lambda v=victim: endpoint_ready(cluster, k.namespace or "", v) is False,
            timeout=30,
            interval=0.002,
            what="the endpoint not ready",
        )
        assert unready
        seen = time.monotonic()
        ip = replicas[victim]
        wait_for(
            lambda ip=ip: f"{ip}:8080" not in in_node(netns, "nft", "list", "table", "ip", table),
            timeout=30,
            interval=0.002,
            what="the endpoint gone from the table",
        )
        latencies.append(time.monotonic() - seen)
        (marks / victim).unlink()
        wait_for(
            lambda ip=ip: f"{ip}:8080" in in_node(netns, "nft", "list", "table", "ip", table),
            timeout=30,
            what="the endpoint back",
        )
    p50, p99 = percentiles([s * 1000 for s in latencies], (50, 99))
    return [
        info(NAME, "requests/s direct to one pod", direct, "req/s", digits=0),
        info(NAME, "requests/s via cluster IP, same pod (nftables)", through, "req/s", digits=0),
        below(NAME, "cluster IP overhead vs direct", overhead, "%", 10),
        info(NAME, "requests/s via cluster IP, 3 replicas", three, "req/s", digits=0),
        info(NAME, "endpoint update (slice not ready -> out of nftables) p50", p50, "ms"),
        below(NAME, "endpoint update (slice not ready -> out of nftables) p99", p99, "ms", 1000),
    ]


async def run(ctx: Context) -> list[Figure]:
    if not can_make_network_namespaces() or not shutil.which("nft"):
        ctx.say("not measured: needs root, network namespaces and nft")
        return []
    marks = Path(tempfile.mkdtemp(prefix="sp-servicepath-", dir="/tmp"))
    marks.chmod(0o755)
    try:
        with running_cluster(1) as cluster:
            return await asyncio.to_thread(measure, cluster, marks, ctx)
    finally:
        shutil.rmtree(marks, ignore_errors=True)
