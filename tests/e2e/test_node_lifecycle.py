"""Nodes that go away, end to end: a real server with its controllers and scheduler, hollow
nodes from `setpoint sim` (its own cluster: these tests taint, delete and lose nodes), and
the real kubectl."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import objects
from tests.e2e.test_controllers import deployment, pods, ready
from tests.support import Kubectl, Server, start_server, start_sim, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cluster")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    base = tmp_path_factory.mktemp("nodelife")
    server = start_server(base / "data", controllers=True)
    sim = start_sim(server, 3, base / "sim.log")
    try:
        wait_for(
            lambda: Kubectl(server)("get", "nodes", "-o", "name").stdout.count("node/") == 3,
            timeout=30,
            what="3 hollow nodes",
        )
        yield server, base
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
        server.stop()


@pytest.fixture
def k(cluster: tuple[Server, Path]) -> Kubectl:
    ns = f"e-{uuid.uuid4().hex[:8]}"
    Kubectl(cluster[0])("create", "namespace", ns)
    return Kubectl(cluster[0], ns)


def pinned_pod(name: str, node: str, tolerations: list[dict[str, object]] | None = None) -> str:
    spec: dict[str, object] = {"nodeName": node}
    if tolerations:
        spec["tolerations"] = tolerations
    return yaml.safe_dump(
        objects.pod(name, containers=[objects.container("app", command=["sleep", "3600"])], **spec)
    )


def test_kubectl_taint_no_execute_evicts_pods_that_do_not_tolerate_it(k: Kubectl) -> None:
    node = "hollow-node-0"
    k("apply", "-f", "-", input=pinned_pod("plain", node))
    tolerant = [{"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}]
    k("apply", "-f", "-", input=pinned_pod("tolerant", node, tolerant))
    k("wait", "--for=condition=Ready", "pod/plain", "pod/tolerant", "--timeout=30s")
    # a pod gets the default not-ready/unreachable tolerations on create
    defaults = k("get", "pod", "plain", "-o", "jsonpath={.spec.tolerations[*].key}").stdout
    assert defaults.split() == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    k("taint", "node", node, "maintenance=now:NoExecute", namespaced=False)
    try:
        k("wait", "--for=delete", "pod/plain", "--timeout=30s")
        events = k("get", "events", "--field-selector", "reason=TaintManagerEviction").stdout
        assert "Marking for deletion Pod" in events
        assert k("get", "pod", "tolerant", "-o", "jsonpath={.status.phase}").stdout == "Running"
    finally:
        k("taint", "node", node, "maintenance-", namespaced=False)


def test_kubectl_delete_node_removes_its_pods_and_the_deployment_comes_back_elsewhere(
    k: Kubectl,
) -> None:
    k("apply", "-f", "-", input=deployment("spread", 3))
    k("rollout", "status", "deploy/spread", "--timeout=60s")
    placed = pods(k, "app=spread")
    victim = placed[0]["spec"]["nodeName"]
    on_victim = {p["metadata"]["name"] for p in placed if p["spec"]["nodeName"] == victim}
    k("delete", "node", victim, namespaced=False)

    def back_elsewhere() -> list[dict] | None:
        current = pods(k, "app=spread")
        moved = all(p["spec"].get("nodeName") not in (None, victim) for p in current)
        return current if len(current) == 3 and moved and all(map(ready, current)) else None

    wait_for(back_elsewhere, timeout=60, what="3 ready replicas on the remaining nodes")
    left = k("get", "pods", "-o", "name").stdout
    assert not any(name in left for name in on_victim)


def test_a_lost_nodes_pods_are_replaced_within_seconds(
    k: Kubectl, cluster: tuple[Server, Path]
) -> None:
    server, base = cluster
    lost = start_sim(server, 1, base / "lost.log", name_prefix="lost")
    try:
        wait_for(
            lambda: "Ready" in k("get", "node", "lost-0", "--no-headers", namespaced=False).stdout,
            timeout=30,
            what="the node lost-0",
        )
        k("apply", "-f", "-", input=pinned_pod("stranded", "lost-0"))
        k("wait", "--for=condition=Ready", "pod/stranded", "--timeout=30s")
    finally:
        lost.send_signal(signal.SIGTERM)  # its heartbeats stop; the Node stays
        lost.wait(10)
    wait_for(
        lambda: "NotReady" in k("get", "node", "lost-0", "--no-headers", namespaced=False).stdout,
        timeout=40,
        what="the node to be marked NotReady",
    )
    taints = k(
        "get", "node", "lost-0", "-o", "jsonpath={.spec.taints[*].key}", namespaced=False
    ).stdout.split()
    assert "node.kubernetes.io/unreachable" in taints
    # unreachable toleration (10 s), then the pod's grace period, then PodGC
    k("wait", "--for=delete", "pod/stranded", "--timeout=90s")
    k("delete", "node", "lost-0", namespaced=False)
