"""A network namespace and an IP per pod, on real nodes, driven with the real kubectl.

Two ``setpoint agent`` nodes, each in a network namespace of the run (:mod:`tests.cluster`),
give their pods addresses from the podCIDR node IPAM gave their Node; the harness routes the
run's cluster CIDR to the nodes, so the test reaches pods at their IPs. All addresses live in
namespaces and bridges made by the run or by setpoint. Needs root (skipped without it).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests import objects
from tests.cluster import Cluster, ClusterNode, can_make_network_namespaces, running_cluster
from tests.support import Kubectl, create_namespace, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("cluster"),
    pytest.mark.skipif(
        not can_make_network_namespaces(),
        reason="pod networks need root, iproute2 and network namespaces",
    ),
]

Obj = dict[str, Any]
PORT = 8080


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster(2) as running:
        yield running
        assert not running.tracebacks(), running.tracebacks()


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    return cluster.kubectl(create_namespace(cluster.server, "net"))


def web_server(**fields: Any) -> Obj:
    return objects.container(
        "web",
        "python",
        command=["python3", "-m", "http.server", str(PORT), "--directory", "/tmp"],
        **{
            "ports": [{"containerPort": PORT}],
            "readinessProbe": {"httpGet": {"path": "/", "port": PORT}, "periodSeconds": 1},
        }
        | fields,
    )


def on_node(node: ClusterNode) -> Obj:
    return {"nodeSelector": {"kubernetes.io/hostname": node.name}}


def deployment_on(node: ClusterNode, name: str, replicas: int, container: Obj, **spec: Any) -> Obj:
    body = objects.deployment(name, replicas=replicas, containers=[container])
    body["spec"]["template"]["spec"].update(on_node(node), **spec)
    return body


def pods(k: Kubectl, selector: str = "") -> list[Obj]:
    args = ["get", "pods", "-o", "json", *(["-l", selector] if selector else [])]
    return list(k(*args).json()["items"])


def ready_pods(k: Kubectl, selector: str, count: int) -> list[Obj]:
    def all_ready() -> list[Obj] | None:
        found = [
            p
            for p in pods(k, selector)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions") or []
            )
        ]
        return found if len(found) == count else None

    return wait_for(all_ready, timeout=90, what=f"{count} ready pods ({selector})")


def answers(ip: str) -> bool:
    with urllib.request.urlopen(f"http://{ip}:{PORT}/", timeout=5) as response:
        return bool(response.status == 200)


def pod_networks_of(node: ClusterNode) -> set[str]:
    """The pod namespaces, veths and addresses the node's agent has now."""
    from setpoint.agent.network import node_key

    key = node_key(node.data_dir)
    namespaces = {
        line.split()[0]
        for line in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True
        ).stdout.splitlines()
        if line.startswith(f"sp-{key}-")
    }
    links = json.loads(node.in_netns("ip", "-j", "link", "show"))
    veths = {link["ifname"] for link in links if link["ifname"].startswith("spv")}
    ipam = node.data_dir / "network" / "ipam"
    addresses = {p.name for p in ipam.glob("*.*.*.*")} if ipam.is_dir() else set()
    return namespaces | veths | addresses


def test_replicas_on_one_port_each_answer_at_their_own_ip(k: Kubectl, cluster: Cluster) -> None:
    """`kubectl create deployment web --replicas=3 -- python3 -m http.server 8080` on one
    node: no "Address already in use", each replica at an IP of the node's podCIDR."""
    node = cluster.nodes[0]
    body = deployment_on(node, "web", 3, web_server())
    k("apply", "-f", "-", input=json.dumps(body))
    running = ready_pods(k, "app=web", 3)
    subnet = ipaddress.ip_network(cluster.pod_cidr(node.name))
    ips = {p["status"]["podIP"] for p in running}
    assert len(ips) == 3
    assert all(ipaddress.ip_address(ip) in subnet for ip in ips)
    assert all(p["status"]["podIPs"] == [{"ip": p["status"]["podIP"]}] for p in running)
    assert all(p["status"]["hostIP"] != p["status"]["podIP"] for p in running)
    assert all(answers(ip) for ip in ips)
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in running)


def test_pods_on_different_nodes_reach_each_other(k: Kubectl, cluster: Cluster) -> None:
    server_node, client_node = cluster.nodes
    body = objects.pod(
        "server", containers=[web_server()], labels={"app": "server"}, **on_node(server_node)
    )
    k("apply", "-f", "-", input=json.dumps(body))
    (server,) = ready_pods(k, "app=server", 1)
    url = f"http://{server['status']['podIP']}:{PORT}/"
    fetch = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)"
    client = objects.pod(
        "client",
        containers=[objects.container("get", "python", command=["python3", "-c", fetch])],
        restartPolicy="Never",
        **on_node(client_node),
    )
    k("apply", "-f", "-", input=json.dumps(client))

    def finished() -> str | None:
        phase = k("get", "pod", "client", "-o", "jsonpath={.status.phase}").stdout
        return phase if phase in ("Succeeded", "Failed") else None

    assert wait_for(finished, timeout=60, what="the client pod to finish") == "Succeeded", k(
        "logs", "client", check=False
    ).stdout


def test_host_network_pods_keep_the_nodes_address(k: Kubectl, cluster: Cluster) -> None:
    node = cluster.nodes[0]
    sleeper = objects.container("app", command=["sleep", "1000"])
    body = objects.pod("hostnet", containers=[sleeper], hostNetwork=True, **on_node(node))
    k("apply", "-f", "-", input=json.dumps(body))

    def ip() -> str | None:
        return k("get", "pod", "hostnet", "-o", "jsonpath={.status.podIP}").stdout or None

    assert node.link is not None
    assert wait_for(ip, timeout=60, what="a podIP") == node.link.address


def test_a_restarted_agent_keeps_its_pods_and_their_ips(k: Kubectl, cluster: Cluster) -> None:
    node = cluster.nodes[1]
    body = deployment_on(node, "kept", 2, web_server())
    k("apply", "-f", "-", input=json.dumps(body))
    before = {p["metadata"]["name"]: p["status"]["podIP"] for p in ready_pods(k, "app=kept", 2)}
    processes = node.container_processes()
    node.stop()
    node.start()

    def same_ips_and_ready() -> bool:
        now = {
            p["metadata"]["name"]: p["status"].get("podIP") for p in ready_pods(k, "app=kept", 2)
        }
        return now == before

    wait_for(same_ips_and_ready, timeout=60, what="the same pods at the same IPs")
    assert processes <= node.container_processes()  # nothing was restarted
    assert all(answers(ip) for ip in before.values())
    # a new pod gets a new address, not one of theirs
    k("scale", "deployment", "kept", "--replicas=3")
    third = {p["status"]["podIP"] for p in ready_pods(k, "app=kept", 3)} - set(before.values())
    assert len(third) == 1


def test_two_hundred_pods_leave_no_namespace_veth_or_address_behind(
    k: Kubectl, cluster: Cluster
) -> None:
    node = cluster.nodes[0]
    before = pod_networks_of(node)
    sleeper = objects.container("app", command=["sleep", "1000"])
    for round_ in range(2):
        body = deployment_on(node, f"many{round_}", 100, sleeper, terminationGracePeriodSeconds=0)
        k("apply", "-f", "-", input=json.dumps(body))
        ready_pods(k, f"app=many{round_}", 100)
        assert len(pod_networks_of(node) - before) == 3 * 100
        k("delete", "deployment", f"many{round_}", "--wait=false")
        wait_for(
            lambda n=round_: not pods(k, f"app=many{n}"),
            timeout=120,
            what="every pod deleted",
        )
        wait_for(lambda: pod_networks_of(node) == before, timeout=30, what="no pod network left")


def test_without_a_pod_network_declared_ports_are_assigned_node_ports(
    k: Kubectl, cluster: Cluster
) -> None:
    node = cluster.add_node(f"hostonly-{k.namespace}", ["--pod-network", "host"])
    wait_for(lambda: cluster.pod_cidr(node.name), timeout=60, what="the node registered")
    server = web_server()
    server["command"] = ["sh", "-c", "exec python3 -m http.server $PORT --directory /tmp"]
    body = objects.pod("solo", containers=[server], **on_node(node))
    k("apply", "-f", "-", input=json.dumps(body))

    def said() -> str | None:
        events = k("get", "events", "-o", "json").json()["items"]
        found = [e for e in events if e["reason"] == "ContainerPortsAssigned"]
        return found[0]["message"] if found else None

    message = wait_for(said, timeout=60, what="a ContainerPortsAssigned event")
    assert "containerPort 8080/TCP is node port" in message and "--pod-network=host" in message
    (pod,) = ready_pods(k, "", 1)  # its readiness probe on 8080 went to the assigned port
    assert node.link is not None and pod["status"]["podIP"] == node.link.address


def test_exec_probes_run_in_the_pods_network(k: Kubectl, cluster: Cluster) -> None:
    """Its loopback is the pod's own: 127.0.0.1:8080 answers only inside the pod."""
    local = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/', timeout=1)"
    probe = {"exec": {"command": ["python3", "-c", local]}, "periodSeconds": 1}
    server = web_server(readinessProbe=probe)
    body = objects.pod("loopback", containers=[server], labels={"app": "lo"})
    body["spec"].update(on_node(cluster.nodes[0]))
    k("apply", "-f", "-", input=json.dumps(body))
    ready_pods(k, "app=lo", 1)
    with pytest.raises(subprocess.CalledProcessError):  # the node's loopback has no server
        cluster.nodes[0].in_netns("python3", "-c", local)


def test_a_host_port_reaches_the_pod_at_the_nodes_address(k: Kubectl, cluster: Cluster) -> None:
    node = cluster.nodes[1]
    server = web_server(ports=[{"containerPort": PORT, "hostPort": 30080}])
    body = objects.pod("mapped", containers=[server], labels={"app": "mapped"})
    body["spec"].update(on_node(node))
    k("apply", "-f", "-", input=json.dumps(body))
    ready_pods(k, "app=mapped", 1)
    assert node.link is not None
    with urllib.request.urlopen(f"http://{node.link.address}:30080/", timeout=5) as response:
        assert response.status == 200
    k("delete", "pod", "mapped", "--wait=true")
    with pytest.raises(OSError):  # the listener went with the pod
        urllib.request.urlopen(f"http://{node.link.address}:30080/", timeout=5)
