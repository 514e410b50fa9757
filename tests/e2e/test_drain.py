"""cordon, uncordon and drain with the real kubectl: a server with its controllers and
scheduler, two hollow nodes from `setpoint sim`, PodDisruptionBudgets honoured through the
Eviction subresource. Each test labels its pods ``app=<its namespace>`` and drains only those
(``--pod-selector``), so the tests share the nodes without draining each other's pods."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests import objects
from tests.support import Kubectl, Server, start_server, start_sim, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("drain")]


@dataclass
class Cluster:
    server: Server
    nodes: list[str]

    def kubectl(self) -> Kubectl:
        return Kubectl(self.server)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("drain")
    server = start_server(base / "data", controllers=True)
    sim = start_sim(server, 2, base / "sim.log")
    try:
        k = Kubectl(server)
        wait_for(
            lambda: k("get", "nodes", "-o", "name").stdout.count("node/") == 2,
            timeout=30,
            what="2 hollow nodes",
        )
        names = sorted(
            n.removeprefix("node/") for n in k("get", "nodes", "-o", "name").stdout.split()
        )
        yield Cluster(server, names)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
        server.stop()


@dataclass
class Scene:
    """One test's namespace (its pods are labelled ``app=<namespace>``) on the cluster."""

    k: Kubectl
    nodes: list[str]
    app: str

    def everywhere(self, *args: str, **kwargs: Any) -> Any:
        return Kubectl(self.k.server)(*args, **kwargs)

    def drain(self, node: str, *flags: str, check: bool = True, timeout: float = 120) -> Any:
        return self.everywhere(
            "drain", node, f"--pod-selector=app={self.app}", *flags, check=check, timeout=timeout
        )


@pytest.fixture
def scene(cluster: Cluster) -> Iterator[Scene]:
    ns = f"d-{uuid.uuid4().hex[:8]}"
    Kubectl(cluster.server)("create", "namespace", ns)
    try:
        yield Scene(Kubectl(cluster.server, ns), cluster.nodes, ns)
    finally:
        for node in cluster.nodes:
            Kubectl(cluster.server)("uncordon", node)


def deployment(scene: Scene, replicas: int, **pod_spec: Any) -> str:
    return yaml.safe_dump(
        objects.deployment(
            "web",
            pod_labels={"app": scene.app},
            template=objects.pod_template(
                {"app": scene.app},
                containers=[objects.container("app", command=["sleep", "3600"])],
                **pod_spec,
            ),
            replicas=replicas,
        )
    )


def live_pods(scene: Scene) -> list[dict[str, Any]]:
    items = scene.k("get", "pods", "-l", f"app={scene.app}", "-o", "json").json()["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def all_on(scene: Scene, node: str, count: int) -> list[dict[str, Any]]:
    """Wait until ``count`` ready pods of the scene run, all on ``node``."""

    def placed() -> list[dict[str, Any]] | None:
        pods = live_pods(scene)
        ok = len(pods) == count and all(
            ready(p) and p["spec"].get("nodeName") == node for p in pods
        )
        return pods if ok else None

    return wait_for(placed, timeout=60, what=f"{count} ready pods on {node}")


def run_on_first_node(scene: Scene, manifest: str, count: int) -> list[dict[str, Any]]:
    """Apply ``manifest`` while the second node is cordoned, so its pods land on the first."""
    first, second = scene.nodes
    scene.everywhere("cordon", second)
    scene.k("apply", "-f", "-", input=manifest)
    pods = all_on(scene, first, count)
    scene.everywhere("uncordon", second)
    return pods


def budget(scene: Scene, allowed: int, **spec: Any) -> None:
    pdb = objects.pod_disruption_budget("web", match_labels={"app": scene.app}, **spec)
    scene.k("apply", "-f", "-", input=yaml.safe_dump(pdb))
    wait_for(
        lambda: (
            (scene.k("get", "pdb", "web", "-o", "json").json().get("status") or {}).get(
                "disruptionsAllowed"
            )
            == allowed
        ),
        timeout=30,
        what=f"the budget to allow {allowed}",
    )


def test_cordon_marks_the_node_unschedulable_and_the_scheduler_keeps_off_it(
    scene: Scene,
) -> None:
    first, second = scene.nodes
    assert scene.everywhere("cordon", first).stdout.strip() == f"node/{first} cordoned"
    node = scene.everywhere("get", "node", first, "-o", "json").json()
    assert node["spec"]["unschedulable"] is True
    assert "Ready,SchedulingDisabled" in scene.everywhere("get", "node", first).stdout
    scene.k("apply", "-f", "-", input=deployment(scene, 3))
    all_on(scene, second, 3)
    assert scene.everywhere("uncordon", first).stdout.strip() == f"node/{first} uncordoned"
    assert (
        not scene.everywhere("get", "node", first, "-o", "json").json()["spec"].get("unschedulable")
    )


def test_drain_evicts_one_pod_at_a_time_as_the_budget_allows(scene: Scene) -> None:
    first, second = scene.nodes
    run_on_first_node(scene, deployment(scene, 3), 3)
    budget(scene, 1, minAvailable=2)
    drained = scene.drain(first, "--timeout=100s")
    assert f"node/{first} cordoned" in drained.stdout
    assert f"node/{first} drained" in drained.stdout
    assert drained.stdout.count(" evicted") == 3
    # only one eviction was allowed at first: the others waited for replacements
    assert "Cannot evict pod as it would violate the pod's disruption budget." in drained.stderr
    assert "(will retry after 5s)" in drained.stderr
    all_on(scene, second, 3)
    status = scene.k("get", "pdb", "web", "-o", "json").json()["status"]
    assert status["currentHealthy"] >= 2


def test_drain_blocked_by_a_budget_gives_up_at_its_timeout(scene: Scene) -> None:
    first, _ = scene.nodes
    pods = run_on_first_node(scene, deployment(scene, 2), 2)
    budget(scene, 0, maxUnavailable=0)
    blocked = scene.drain(first, "--timeout=6s", check=False)
    assert blocked.returncode != 0
    assert "global timeout reached: 6s" in blocked.stderr
    assert f'unable to drain node "{first}"' in blocked.stderr
    assert {p["metadata"]["name"] for p in live_pods(scene)} == {
        p["metadata"]["name"] for p in pods
    }


def test_disable_eviction_deletes_past_the_budget(scene: Scene) -> None:
    first, second = scene.nodes
    run_on_first_node(scene, deployment(scene, 2), 2)
    budget(scene, 0, maxUnavailable=0)
    drained = scene.drain(first, "--disable-eviction", "--timeout=60s")
    assert drained.stdout.count(" deleted") == 2
    assert f"node/{first} drained" in drained.stdout
    all_on(scene, second, 2)


def test_drain_needs_force_for_pods_without_a_controller(scene: Scene) -> None:
    first, _ = scene.nodes
    bare = objects.pod(
        "bare",
        labels={"app": scene.app},
        containers=[objects.container("app", command=["sleep", "3600"])],
        nodeName=first,
    )
    scene.k("apply", "-f", "-", input=yaml.safe_dump(bare))
    wait_for(lambda: all(map(ready, live_pods(scene))) and live_pods(scene), what="bare pod")
    refused = scene.drain(first, "--timeout=30s", check=False)
    assert refused.returncode != 0
    assert "cannot delete Pods that declare no controller (use --force to override)" in (
        refused.stderr
    )
    forced = scene.drain(first, "--force", "--timeout=30s")
    assert "Warning: deleting Pods that declare no controller" in forced.stderr
    assert f"node/{first} drained" in forced.stdout
    wait_for(lambda: not live_pods(scene), what="the bare pod to go")


def test_drain_needs_delete_emptydir_data_for_local_storage(scene: Scene) -> None:
    first, second = scene.nodes
    manifest = deployment(scene, 1, volumes=[{"name": "scratch", "emptyDir": {}}])
    run_on_first_node(scene, manifest, 1)
    refused = scene.drain(first, "--timeout=30s", check=False)
    assert refused.returncode != 0
    assert "cannot delete Pods with local storage (use --delete-emptydir-data to override)" in (
        refused.stderr
    )
    scene.drain(first, "--delete-emptydir-data", "--timeout=30s")
    all_on(scene, second, 1)


def test_drain_passes_its_grace_period_to_the_eviction(scene: Scene) -> None:
    first, _ = scene.nodes
    (pod,) = run_on_first_node(scene, deployment(scene, 1), 1)
    name = pod["metadata"]["name"]
    # a watch from the pod's resourceVersion replays every change after it, however late
    # kubectl gets going on a busy machine; the server ends it after timeoutSeconds
    version = pod["metadata"]["resourceVersion"]
    namespace = pod["metadata"]["namespace"]
    url = (
        f"/api/v1/namespaces/{namespace}/pods?watch=1&fieldSelector=metadata.name%3D{name}"
        f"&resourceVersion={version}&timeoutSeconds=12"
    )
    watch = scene.k.popen("get", "--raw", url)
    scene.drain(first, "--grace-period=3", "--timeout=30s")
    out, _ = watch.communicate(timeout=60)
    graces = {
        event["object"]["metadata"].get("deletionGracePeriodSeconds") for event in _json_stream(out)
    }
    assert 3 in graces


def test_drain_ignores_daemonset_pods_only_when_told(scene: Scene) -> None:
    first, second = scene.nodes
    ds = objects.daemon_set(
        "agent",
        pod_labels={"app": scene.app},
        containers=[objects.container("agent", command=["sleep", "3600"])],
    )
    scene.k("apply", "-f", "-", input=yaml.safe_dump(ds))
    wait_for(
        lambda: len(live_pods(scene)) == 2 and all(map(ready, live_pods(scene))),
        timeout=60,
        what="a daemon pod on each node",
    )
    refused = scene.drain(first, "--timeout=30s", check=False)
    assert refused.returncode != 0
    assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)" in (
        refused.stderr
    )
    drained = scene.drain(first, "--ignore-daemonsets", "--timeout=30s")
    assert "Warning: ignoring DaemonSet-managed Pods" in drained.stderr
    assert f"node/{first} drained" in drained.stdout
    # the cordoned node keeps its daemon pod: daemon pods tolerate unschedulable
    nodes = sorted(p["spec"]["nodeName"] for p in live_pods(scene))
    assert nodes == sorted([first, second])


def _json_stream(text: str) -> list[dict[str, Any]]:
    """The objects of a stream of concatenated JSON documents (kubectl's watch output)."""
    import json

    decoder = json.JSONDecoder()
    found, index = [], 0
    text = text.strip()
    while index < len(text):
        value, end = decoder.raw_decode(text, index)
        found.append(value)
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return found
