"""The node proxy end to end: Service cluster IPs and node ports reach pods.

Two ``setpoint agent`` nodes in network namespaces of the run (:mod:`tests.cluster`), three
replicas of a tiny HTTP server answering its own pod name behind a Service (port 80 → 8080),
driven with the real kubectl. Requests come from a client pod, from inside a node's network
namespace, and from the test itself through the run's bridge (a /32 route to the cluster IP
via a node's address, on that bridge only). Needs root, network namespaces and ``nft``.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.network import node_key
from setpoint.agent.proxy.addresses import interface_name
from setpoint.agent.proxy.nftables import table_name
from tests import objects
from tests.cluster import Cluster, ClusterNode, can_make_network_namespaces, running_cluster
from tests.objects import NAME_SERVER
from tests.support import SETPOINT, Kubectl, create_namespace, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("cluster"),
    pytest.mark.skipif(
        not can_make_network_namespaces(),
        reason="the node proxy needs root, iproute2 and network namespaces",
    ),
    pytest.mark.skipif(
        not shutil.which("nft"), reason="nft is not installed (make installs Debian's nftables)"
    ),
]

Obj = dict[str, Any]


# GET http://HOST:PORT/ COUNT times, print each answer (or the error) on a line
CLIENT = """
import sys, urllib.request
host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(count):
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=3) as response:
            print(response.read().decode(), flush=True)
    except OSError as exc:
        print(f"error: {exc}", flush=True)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster(2) as running:
        yield running
        assert not running.tracebacks(), running.tracebacks()


@pytest.fixture(scope="module")
def marks() -> Iterator[Path]:
    """Where the test makes a replica unready: its readiness probe fails while
    ``<marks>/<pod name>`` exists (outside the pytest temporary directories, which the pods'
    users cannot reach)."""
    path = Path(tempfile.mkdtemp(prefix="sp-unready-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def web(cluster: Cluster, marks: Path) -> Iterator[tuple[Kubectl, str]]:
    """Three replicas behind the NodePort Service ``web`` (80 → 8080); its cluster IP."""
    k = cluster.kubectl(create_namespace(cluster.server, "proxy"))
    # ready while the server accepts connections (on the pod's own loopback: exec probes run
    # in the pod's network) and the test has not marked the replica
    serving = "exec 3<>/dev/tcp/127.0.0.1/8080"
    readiness = {
        "exec": {"command": ["bash", "-c", f'test ! -e "{marks}/$POD_NAME" && {serving}']},
        "periodSeconds": 1,
        "failureThreshold": 1,
        "timeoutSeconds": 10,  # a probe that is only slow (a busy machine) is not a failure
    }
    server = objects.container(
        "web",
        "python",
        command=["python3", "-c", NAME_SERVER],
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        ports=[{"containerPort": 8080}],
        readinessProbe=readiness,
    )
    k(
        "apply",
        "-f",
        "-",
        input=json.dumps(objects.deployment("web", replicas=3, containers=[server])),
    )
    k("expose", "deployment", "web", "--port=80", "--target-port=8080", "--type=NodePort")
    ready_replicas(k, "app=web", 3)
    cluster_ip = k("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    yield k, cluster_ip


def ready_replicas(k: Kubectl, selector: str, count: int) -> set[str]:
    def ready() -> set[str] | None:
        names = {
            p["metadata"]["name"]
            for p in k("get", "pods", "-l", selector, "-o", "json").json()["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []
            )
        }
        return names if len(names) == count else None

    return wait_for(ready, timeout=90, what=f"{count} ready pods ({selector})")


def get_from_node(node: ClusterNode, host: str, port: int, count: int) -> list[str]:
    return node.in_netns("python3", "-c", CLIENT, host, str(port), str(count)).splitlines()


def get(host: str, port: int, timeout: float = 2.0) -> str:
    """One request from the test process (through the run's bridge)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def route_to(cluster: Cluster, ip: str, node: ClusterNode) -> None:
    """Send the test's traffic for ``ip`` to ``node``, on the run's bridge."""
    assert cluster.network is not None and node.link is not None
    subprocess.run(
        [
            "ip",
            "route",
            "replace",
            f"{ip}/32",
            "via",
            node.link.address,
            "dev",
            cluster.network.bridge,
        ],
        check=True,
    )


def table_of(node: ClusterNode) -> str:
    """The node proxy's nftables table in the node's namespace ("" if there is none)."""
    table = table_name(node_key(node.data_dir))
    return node.in_netns("nft", "list", "table", "ip", table, check=False)


def has_interface(node: ClusterNode) -> bool:
    name = interface_name(node_key(node.data_dir))
    return bool(node.in_netns("ip", "-o", "link", "show", name, check=False).strip())


def test_cluster_ip_reaches_every_replica_from_a_pod(
    cluster: Cluster, web: tuple[Kubectl, str]
) -> None:
    k, cluster_ip = web
    replicas = ready_replicas(k, "app=web", 3)
    client = objects.pod(
        "client",
        containers=[
            objects.container(
                "get", "python", command=["python3", "-c", CLIENT, cluster_ip, "80", "60"]
            )
        ],
        restartPolicy="Never",
    )
    k("apply", "-f", "-", input=json.dumps(client))

    def finished() -> str | None:
        phase = k("get", "pod", "client", "-o", "jsonpath={.status.phase}").stdout
        return phase if phase in ("Succeeded", "Failed") else None

    assert wait_for(finished, timeout=60, what="the client pod to finish") == "Succeeded"
    answers = k("logs", "client").stdout.splitlines()
    assert len(answers) == 60 and set(answers) == replicas, answers
    k("delete", "pod", "client", "--wait=false")


def test_cluster_ip_reaches_every_replica_from_each_node(
    cluster: Cluster, web: tuple[Kubectl, str]
) -> None:
    k, cluster_ip = web
    replicas = ready_replicas(k, "app=web", 3)
    for node in cluster.nodes[:2]:
        answers = get_from_node(node, cluster_ip, 80, 60)
        assert set(answers) == replicas, (node.name, answers)
        assert "nat-prerouting" in table_of(node)


def test_node_port_answers_on_a_nodes_address(cluster: Cluster, web: tuple[Kubectl, str]) -> None:
    k, _ = web
    replicas = ready_replicas(k, "app=web", 3)
    node_port = int(k("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout)
    node = cluster.nodes[1]
    assert node.link is not None
    answers = {get(node.link.address, node_port) for _ in range(60)}
    assert answers == replicas


def test_an_unready_replica_leaves_rotation_within_a_second(
    cluster: Cluster, web: tuple[Kubectl, str], marks: Path
) -> None:
    k, cluster_ip = web
    replicas = ready_replicas(k, "app=web", 3)
    route_to(cluster, cluster_ip, cluster.nodes[0])
    assert {get(cluster_ip, 80) for _ in range(60)} == replicas
    victim = sorted(replicas)[0]
    namespace = k.namespace

    def endpoint_unready() -> float | None:
        status, body, _ = cluster.server.request(
            "GET",
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
            "?labelSelector=kubernetes.io/service-name=web",
        )
        assert status == 200
        for endpoint_slice in body["items"]:
            for endpoint in endpoint_slice.get("endpoints") or []:
                name = (endpoint.get("targetRef") or {}).get("name")
                if name == victim and not (endpoint.get("conditions") or {}).get("ready"):
                    return time.monotonic()
        return None

    (marks / victim).touch()
    try:
        unready_at = wait_for(endpoint_unready, timeout=30, interval=0.01, what="not ready")

        def out_of_rotation() -> float | None:
            answers = [get(cluster_ip, 80) for _ in range(20)]
            return time.monotonic() if victim not in answers else None

        gone_at = wait_for(out_of_rotation, timeout=10, interval=0, what="out of rotation")
        # 20 requests in a row without the victim: the data path had dropped it by then
        assert gone_at - unready_at < 1.0, gone_at - unready_at
    finally:
        (marks / victim).unlink()
    ready_replicas(k, "app=web", 3)

    def back() -> bool:
        return victim in {get(cluster_ip, 80) for _ in range(30)}

    wait_for(back, timeout=10, what="the replica back in rotation")


def test_a_service_without_endpoints_is_refused_at_once(cluster: Cluster) -> None:
    k = cluster.kubectl(create_namespace(cluster.server, "empty"))
    k("create", "service", "clusterip", "nobody", "--tcp=80:8080")
    cluster_ip = k("get", "svc", "nobody", "-o", "jsonpath={.spec.clusterIP}").stdout
    node = cluster.nodes[0]
    wait_for(lambda: cluster_ip in table_of(node), timeout=10, what="the rejection rule")
    script = (
        "import socket, sys, time\n"
        "start = time.monotonic()\n"
        "try:\n"
        f"    socket.create_connection(({cluster_ip!r}, 80), timeout=5)\n"
        "except ConnectionRefusedError:\n"
        "    print(time.monotonic() - start)\n"
    )
    elapsed = node.in_netns("python3", "-c", script).strip()
    assert elapsed and float(elapsed) < 0.5, elapsed
    route_to(cluster, cluster_ip, node)  # from another machine: rejected in forward/input
    start = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((cluster_ip, 80), timeout=5)
    assert time.monotonic() - start < 0.5


def test_deleting_a_service_removes_its_rules(cluster: Cluster) -> None:
    k = cluster.kubectl(create_namespace(cluster.server, "gone"))
    k("create", "service", "clusterip", "brief", "--tcp=80:8080")
    cluster_ip = k("get", "svc", "brief", "-o", "jsonpath={.spec.clusterIP}").stdout
    node = cluster.nodes[1]
    wait_for(lambda: cluster_ip in table_of(node), timeout=10, what="the Service's rules")
    k("delete", "svc", "brief")
    wait_for(lambda: cluster_ip not in table_of(node), timeout=10, what="its rules gone")
    assert "nat-prerouting" in table_of(node)  # the table stays, for the other Services


def test_userspace_mode_reaches_every_replica(cluster: Cluster, web: tuple[Kubectl, str]) -> None:
    k, cluster_ip = web
    replicas = ready_replicas(k, "app=web", 3)
    node = cluster.add_node(f"userspace-{k.namespace}", ["--proxy-mode", "userspace"])
    wait_for(lambda: cluster.pod_cidr(node.name), timeout=60, what="the node registered")

    def all_replicas() -> bool:
        return set(get_from_node(node, cluster_ip, 80, 30)) == replicas

    wait_for(all_replicas, timeout=30, interval=0.2, what="every replica through the relay")
    assert table_of(node) == ""  # no kernel rules in this mode
    assert "userspace mode" in node.log()
    node.stop()
    wait_for(lambda: not has_interface(node), timeout=10, what="the cluster IP interface gone")


def test_agent_stop_and_killall_leave_no_table(cluster: Cluster) -> None:
    node = cluster.add_node(f"teardown-{int(time.time())}", [])
    wait_for(lambda: "nat-prerouting" in table_of(node), timeout=60, what="the proxy's table")
    assert has_interface(node)
    node.stop()
    assert table_of(node) == "" and not has_interface(node)
    node.start()
    wait_for(lambda: "nat-prerouting" in table_of(node), timeout=60, what="the table again")
    node.kill()  # no chance to clean up: killall must
    assert "nat-prerouting" in table_of(node)
    assert node.link is not None
    subprocess.run(
        [
            "nsenter",
            f"--net=/run/netns/{node.link.netns}",
            SETPOINT,
            "killall",
            "--data-dir",
            str(node.data_dir),
        ],
        check=True,
        capture_output=True,
    )
    assert table_of(node) == "" and not has_interface(node)
