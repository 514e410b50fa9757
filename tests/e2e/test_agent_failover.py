"""Agents that know several API servers fail over, and the ``kubernetes`` Endpoints list
every live server: etcd, two ``setpoint server`` processes on it (each with its controller
manager, one of them leading), and agents started by the test. SIGKILL of the server an
agent uses must leave its node Ready (its Lease renewed through the other server) and its
pods running as they were (same processes), reachable with kubectl through the survivor."""

from __future__ import annotations

import contextlib
import json
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from setpoint.client.servers import ServerList
from setpoint.meta.timestamps import parse_epoch
from tests import objects
from tests.cluster import ClusterNode, node_ready
from tests.etcd import running_etcd
from tests.ha import join_flags
from tests.support import Kubectl, Server, create_namespace, start_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("etcd")]

IDENTITY_LEASE_SECONDS = 3
NODE_LEASE_SECONDS = 4  # renewed every second
SERVER_FLAGS = [
    "--identity-lease-duration-seconds",
    str(IDENTITY_LEASE_SECONDS),
    "--node-monitor-grace-period",
    "6s",
]
AGENT_FLAGS = [
    "--node-lease-duration-seconds",
    str(NODE_LEASE_SECONDS),
    "--pod-network",
    "host",
    "--proxy-mode",
    "none",
]


@dataclass
class TwoServers:
    work: Path
    a: Server
    b: Server

    def other(self, server: Server) -> Server:
        return self.b if server is self.a else self.a

    def by_url(self, url: str) -> Server:
        return next(s for s in (self.a, self.b) if s.url == url)

    def agent(self, name: str, servers: list[Server]) -> ClusterNode:
        extra = [arg for s in servers[1:] for arg in ("--server", s.url)]
        node = ClusterNode(
            servers[0], name, self.work / name, self.work / f"{name}.log", None, extra + AGENT_FLAGS
        )
        node.start()
        return node


@contextlib.contextmanager
def two_servers(work: Path, *, controllers: bool = True) -> Iterator[TwoServers]:
    with running_etcd(work / "etcd") as etcd:
        flags = ["--datastore-endpoint", etcd.endpoint, *SERVER_FLAGS]
        a = start_server(work / "a", controllers=controllers, extra=flags)
        try:
            b = start_server(work / "b", controllers=controllers, extra=[*flags, *join_flags(a)])
            try:
                yield TwoServers(work, a, b)
            finally:
                b.stop(signal.SIGKILL)
        finally:
            a.stop(signal.SIGKILL)


def endpoint_ports(server: Server) -> list[int]:
    status, endpoints, _ = server.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert status == 200, endpoints
    return sorted(
        port["port"] for subset in endpoints.get("subsets") or [] for port in subset["ports"]
    )


def lease_renewed(server: Server, node: str) -> float:
    status, lease, _ = server.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
    )
    assert status == 200, lease
    renewed = parse_epoch(lease["spec"]["renewTime"])
    assert renewed is not None
    return renewed


def wait_ready(server: Server, node: ClusterNode) -> None:
    wait_for(
        lambda: node_ready(server, node.name) == "True",
        timeout=60,
        what=f"node {node.name} Ready",
    )


def renewed_through(survivor: Server, node: ClusterNode, after: float) -> float:
    """The first renewTime of the node's Lease after ``after``, read from ``survivor``."""
    return wait_for(
        lambda: (t := lease_renewed(survivor, node.name)) > after and t,
        timeout=20,
        what=f"node {node.name}'s Lease renewed through the surviving server",
    )


def assert_stays_ready(server: Server, node: ClusterNode, seconds: float) -> None:
    """Ready for ``seconds`` (longer than the node monitor's grace period) with its Lease
    renewed all along."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert node_ready(server, node.name) == "True", node.log()[-3000:]
        assert time.time() - lease_renewed(server, node.name) < NODE_LEASE_SECONDS, node.log()
        time.sleep(0.5)


def test_the_kubernetes_endpoints_list_every_live_server(tmp_path: Path) -> None:
    with two_servers(tmp_path, controllers=False) as servers:
        both = sorted([servers.a.port, servers.b.port])
        wait_for(lambda: endpoint_ports(servers.a) == both, what="both servers listed")
        status, slices, _ = servers.b.request(
            "GET",
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
            "?labelSelector=kubernetes.io/service-name=kubernetes",
        )
        assert status == 200
        assert sorted(s["ports"][0]["port"] for s in slices["items"]) == both
        status, leases, _ = servers.a.request(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
            "?labelSelector=apiserver.kubernetes.io/identity=kube-apiserver",
        )
        assert len(leases["items"]) == 2, leases

        servers.a.stop(signal.SIGKILL)  # no chance to withdraw: its Lease must expire
        killed = time.monotonic()
        wait_for(
            lambda: endpoint_ports(servers.b) == [servers.b.port],
            timeout=IDENTITY_LEASE_SECONDS + 10,
            what="the killed server dropped from the Endpoints",
        )
        assert time.monotonic() - killed >= IDENTITY_LEASE_SECONDS - 1


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_node_stays_ready_and_its_pod_untouched_when_its_server_dies(
    tmp_path: Path, fault: str
) -> None:
    """Killed: its connections are refused. Hung (SIGSTOP, as a machine that drops off the
    network): they stay open and nothing answers, so the agent must notice by itself that
    its heartbeat goes unanswered, and close them."""
    with two_servers(tmp_path) as servers:
        name = f"fo-{uuid.uuid4().hex[:6]}"
        node = servers.agent(name, [servers.a, servers.b])
        try:
            wait_ready(servers.a, node)
            ns = create_namespace(servers.a, "fo")
            k = Kubectl(servers.a, ns)
            wait_for(
                lambda: k.run("get", "sa", "default", check=False).returncode == 0,
                timeout=20,
                what="the default ServiceAccount",
            )
            script = "echo started; while true; do sleep 0.2; done"
            pod = objects.pod(
                "steady",
                nodeName=name,
                containers=[objects.container(command=["sh", "-c", script])],
            )
            k("create", "-f", "-", input=json.dumps(pod))
            wait_for(
                lambda: (
                    k("get", "pod", "steady", "-o", "jsonpath={.status.phase}").stdout == "Running"
                ),
                timeout=30,
                what="the pod Running",
            )
            uid = k("get", "pod", "steady", "-o", "jsonpath={.metadata.uid}").stdout
            processes = wait_for(lambda: node.container_processes(uid), what="its process")

            # the server the agent started on, as it chose it (by its node name)
            used = servers.by_url(ServerList([servers.a.url, servers.b.url], key=name).current)
            survivor = servers.other(used)
            if fault == "killed":
                used.stop(signal.SIGKILL)
            else:
                used.process.send_signal(signal.SIGSTOP)  # two_servers SIGKILLs it at the end
            died = time.time()

            renewed_through(survivor, node, died)
            if fault == "killed":
                assert f"API server {used.url} unreachable; now using {survivor.url}" in (
                    node.log()
                )
            else:
                assert f"API server {used.url} did not answer a lease renewal" in node.log()
            assert_stays_ready(survivor, node, seconds=8)
            k = Kubectl(survivor, ns)
            assert k("get", "pod", "steady", "-o", "jsonpath={.status.phase}").stdout == "Running"
            assert node.container_processes(uid) == processes  # the same process, never restarted
            restarts = "jsonpath={.status.containerStatuses[0].restartCount}"
            assert k("get", "pod", "steady", "-o", restarts).stdout == "0"
            assert "started" in k("logs", "steady").stdout
            assert k("exec", "steady", "--", "echo", "through-the-survivor").stdout.strip() == (
                "through-the-survivor"
            )
            assert "Traceback" not in node.log(), node.log()
        finally:
            node.stop()
            node.crash()


def test_an_agent_given_one_server_learns_the_other_and_fails_over(tmp_path: Path) -> None:
    with two_servers(tmp_path) as servers:
        wait_for(lambda: len(endpoint_ports(servers.a)) == 2, what="both servers in the Endpoints")
        name = f"learn-{uuid.uuid4().hex[:6]}"
        node = servers.agent(name, [servers.a])  # told of a only
        try:
            wait_ready(servers.a, node)
            wait_for(
                lambda: servers.b.url in node.log(), timeout=20, what="the agent to learn of b"
            )
            servers.a.stop(signal.SIGKILL)
            killed = time.time()
            renewed_through(servers.b, node, killed)
            assert f"API server {servers.a.url} unreachable; now using {servers.b.url}" in (
                node.log()
            )
            assert_stays_ready(servers.b, node, seconds=8)
        finally:
            node.stop()
            node.crash()
