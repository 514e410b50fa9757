"""The reconciliation engine end to end: a real server with its controllers and scheduler,
hollow nodes from `setpoint sim`, and the real kubectl."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import objects
from tests.support import Kubectl, Server, start_server, start_sim, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cluster")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("cluster")
    server = start_server(base / "data", controllers=True)
    sim = start_sim(server, 3, base / "sim.log")
    try:
        k = Kubectl(server)
        wait_for(
            lambda: k("get", "nodes", "-o", "name").stdout.count("node/") == 3,
            timeout=30,
            what="3 hollow nodes",
        )
        yield server
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
        server.stop()


@pytest.fixture
def k(cluster: Server) -> Iterator[Kubectl]:
    import uuid

    ns = f"e-{uuid.uuid4().hex[:8]}"
    Kubectl(cluster)("create", "namespace", ns)
    yield Kubectl(cluster, ns)


def deployment(name: str, replicas: int, image: str = "nginx:1.27") -> str:
    """The manifest of a Deployment of ``replicas`` pods of ``image`` that rolls out one
    new pod at a time, none going before its replacement is up."""
    return yaml.safe_dump(
        objects.deployment(
            name,
            containers=[objects.container("app", image, command=["sleep", "3600"])],
            replicas=replicas,
            strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        )
    )


def pods(k: Kubectl, selector: str) -> list[dict]:
    items: list[dict] = k("get", "pods", "-l", selector, "-o", "json").json()["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_deployment_runs_three_ready_pods_and_replaces_a_deleted_one(k: Kubectl) -> None:
    k("apply", "-f", "-", input=deployment("web", 3))
    k("rollout", "status", "deploy/web", "--timeout=60s")
    running = wait_for(
        lambda: (lambda p: p if len(p) == 3 and all(map(ready, p)) else None)(pods(k, "app=web")),
        what="3 ready pods",
    )
    assert all(p["spec"]["nodeName"] for p in running)
    victim = running[0]["metadata"]["name"]
    k("delete", "pod", victim)
    replaced = wait_for(
        lambda: (
            lambda p: (
                p
                if len(p) == 3
                and all(map(ready, p))
                and victim not in {x["metadata"]["name"] for x in p}
                else None
            )
        )(pods(k, "app=web")),
        what="a replacement pod",
    )
    assert len({p["metadata"]["name"] for p in replaced}) == 3


def test_generation_changes_only_with_the_spec(k: Kubectl) -> None:
    """The controller records the revision annotation without bumping generation (as
    upstream's, through the status subresource)."""
    k("apply", "-f", "-", input=deployment("gen", 2))
    k("rollout", "status", "deployment/gen", "--timeout=60s")
    d = k("get", "deployment", "gen", "-o", "json").json()
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert d["metadata"]["generation"] == 1
    assert d["status"]["observedGeneration"] == 1
    k("scale", "deployment/gen", "--replicas=3")
    k("rollout", "status", "deployment/gen", "--timeout=60s")
    d = k("get", "deployment", "gen", "-o", "json").json()
    assert d["metadata"]["generation"] == 2
    assert d["status"]["observedGeneration"] == 2


def test_scale_up_and_down(k: Kubectl) -> None:
    k("apply", "-f", "-", input=deployment("sc", 2))
    k("scale", "deploy/sc", "--replicas=5")
    wait_for(lambda: len([p for p in pods(k, "app=sc") if ready(p)]) == 5, what="5 pods")
    k("scale", "deploy/sc", "--replicas=1")
    wait_for(lambda: len(pods(k, "app=sc")) == 1, what="1 pod")
    k("wait", "--for=condition=Available", "deploy/sc", "--timeout=30s")


def test_rolling_update_and_undo(k: Kubectl) -> None:
    k("apply", "-f", "-", input=deployment("roll", 3))
    k("rollout", "status", "deploy/roll", "--timeout=60s")
    k("set", "image", "deploy/roll", "app=nginx:1.28")
    k("rollout", "status", "deploy/roll", "--timeout=60s")
    images = {p["spec"]["containers"][0]["image"] for p in pods(k, "app=roll")}
    assert images == {"nginx:1.28"}
    history = k("rollout", "history", "deploy/roll").stdout
    assert "1" in history and "2" in history
    k("rollout", "undo", "deploy/roll")
    k("rollout", "status", "deploy/roll", "--timeout=60s")
    wait_for(
        lambda: (
            {p["spec"]["containers"][0]["image"] for p in pods(k, "app=roll")} == {"nginx:1.27"}
        ),
        what="pods back on the old image",
    )
    rs = k("get", "rs", "-l", "app=roll", "-o", "json").json()["items"]
    assert len(rs) == 2  # the old ReplicaSet was reused, not a third one created


def test_job_with_completions_and_parallelism_completes(k: Kubectl) -> None:
    k(
        "create",
        "-f",
        "-",
        input="""
apiVersion: batch/v1
kind: Job
metadata: {name: batch3}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox, command: ["true"]}]
""",
    )
    k("wait", "--for=condition=complete", "job/batch3", "--timeout=60s")
    status = k("get", "job", "batch3", "-o", "json").json()["status"]
    assert status["succeeded"] == 3
    assert status.get("failed", 0) == 0


def test_failing_job_hits_backoff_limit(k: Kubectl) -> None:
    k(
        "create",
        "-f",
        "-",
        input="""
apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 2
  template:
    metadata:
      annotations: {sim.setpoint.dev/exit-code: "1"}
    spec:
      restartPolicy: Never
      containers: [{name: w, image: busybox, command: ["false"]}]
""",
    )
    k("wait", "--for=condition=failed", "job/doomed", "--timeout=90s")
    job = k("get", "job", "doomed", "-o", "json").json()
    assert job["status"]["failed"] == 3
    reasons = {c["type"]: c.get("reason") for c in job["status"]["conditions"]}
    assert reasons["Failed"] == "BackoffLimitExceeded"


def test_cronjob_fires(k: Kubectl) -> None:
    k("create", "cronjob", "tick", "--image=busybox", "--schedule=* * * * *", "--", "true")
    wait_for(
        lambda: k("get", "jobs", "-o", "name").stdout.strip(),
        timeout=80,
        what="the CronJob's first job",
    )


def test_cascading_deletion_modes(k: Kubectl) -> None:
    for name in ("bg", "orph", "fg"):
        k("apply", "-f", "-", input=deployment(name, 1))
    for name in ("bg", "orph", "fg"):
        wait_for(lambda n=name: len(pods(k, f"app={n}")) == 1, what=f"{name} pod")
    k("delete", "deploy", "bg", "--cascade=background")
    wait_for(
        lambda: (
            not pods(k, "app=bg")
            and not k("get", "rs", "-l", "app=bg", "-o", "name").stdout.strip()
        ),
        what="bg dependents gone",
    )
    k("delete", "deploy", "orph", "--cascade=orphan")
    rs = k("get", "rs", "-l", "app=orph", "-o", "json").json()["items"]
    assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
    assert len(pods(k, "app=orph")) == 1
    k("delete", "deploy", "fg", "--cascade=foreground")
    assert k("get", "deploy", "fg", check=False).returncode != 0
    assert not k("get", "rs", "-l", "app=fg", "-o", "name").stdout.strip()


def test_deleting_a_namespace_removes_its_contents(cluster: Server) -> None:
    k = Kubectl(cluster)
    k("create", "namespace", "goner")
    Kubectl(cluster, "goner")("apply", "-f", "-", input=deployment("x", 2))
    k("delete", "namespace", "goner", "--timeout=60s")
    assert k("get", "namespace", "goner", check=False).returncode != 0


def test_server_restart_mid_rollout_converges(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", controllers=True)
    sim = start_sim(server, 2, tmp_path / "sim.log")
    try:
        k = Kubectl(server, "default")
        wait_for(lambda: k("get", "nodes", "-o", "name").stdout.count("node/") == 2, what="nodes")
        k("apply", "-f", "-", input=deployment("web", 4))
        k("rollout", "status", "deploy/web", "--timeout=60s")
        k("set", "image", "deploy/web", "app=nginx:1.28")
        server.stop()
        server = start_server(tmp_path / "data", port=server.port, controllers=True)
        k = Kubectl(server, "default")
        k("rollout", "status", "deploy/web", "--timeout=90s")
        wait_for(
            lambda: (
                {p["spec"]["containers"][0]["image"] for p in pods(k, "app=web")} == {"nginx:1.28"}
                and len(pods(k, "app=web")) == 4
            ),
            what="converged",
        )
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(10)
        server.stop()


def test_metrics_report_work_queues(cluster: Server) -> None:
    status, body, _ = cluster.request("GET", "/metrics")
    assert status == 200
    assert 'workqueue_adds_total{name="replicaset"}' in body
    assert "workqueue_depth" in body and "workqueue_work_duration_seconds" in body


def test_pod_with_impossible_request_reports_failed_scheduling(k: Kubectl) -> None:
    k(
        "run",
        "huge",
        "--image=busybox",
        "--overrides",
        '{"spec":{"containers":[{"name":"huge","image":"busybox","command":["sleep","9"],'
        '"resources":{"requests":{"cpu":"1000"}}}]}}',
    )
    events = wait_for(
        lambda: [
            e
            for e in k("get", "events", "-o", "json").json()["items"]
            if e["reason"] == "FailedScheduling"
        ],
        what="FailedScheduling",
    )
    assert events[0]["message"].startswith("0/3 nodes are available: 3 Insufficient cpu.")
    assert k("get", "pod", "huge", "-o", "jsonpath={.status.phase}").stdout == "Pending"


def test_replication_controller_runs_lists_and_scales_its_pods(k: Kubectl) -> None:
    template = objects.pod_template(
        {"app": "old"}, containers=[objects.container("c", command=["sleep", "3600"])]
    )
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "old"},
        "spec": {"replicas": 2, "template": template},  # selector defaults to the labels
    }
    k("apply", "-f", "-", input=yaml.safe_dump(rc))
    wait_for(
        lambda: k("get", "rc", "old", "--no-headers").stdout.split()[:4] == ["old", "2", "2", "2"],
        timeout=30,
        what="DESIRED 2, CURRENT 2, READY 2",
    )
    header = k("get", "rc", "-o", "wide").stdout.splitlines()[0].split()
    assert header == [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert k("get", "rc", "old", "-o", "wide", "--no-headers").stdout.split()[-1] == "app=old"
    assert (
        k("scale", "rc", "old", "--replicas=3").stdout.strip() == "replicationcontroller/old scaled"
    )
    wait_for(lambda: len(pods(k, "app=old")) == 3, what="3 pods after kubectl scale")
    scale = k("get", "--raw", f"/api/v1/namespaces/{k.namespace}/replicationcontrollers/old/scale")
    assert scale.json()["status"]["selector"] == "app=old"  # the label map, as a selector
    k("delete", "rc", "old")
    wait_for(lambda: not pods(k, "app=old"), what="the RC's pods garbage-collected")
