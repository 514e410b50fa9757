"""Nodes fail, the workload lives: faults on a cluster of several real nodes on one machine.

One ``setpoint server`` (controllers, scheduler) and three ``setpoint agent`` processes, each
its own node in a network namespace of its own (see :mod:`tests.cluster`), driven with the
real kubectl. Each test injects one fault — the machine dies (agent and every workload
process killed), the agent freezes (SIGSTOP), the node's network is cut, the node is deleted,
the API server restarts or is killed mid-rollout — and checks that the workload converges
back and that nothing ran twice for longer than a returning agent takes to notice.

The control plane runs with short timings so that the module takes well under a minute per
fault: a node is lost after 3 s without a heartbeat and its pods tolerate that for 1 s more.
``bench/nodefailure.py`` measures the same story at the defaults.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import objects
from tests.cluster import (
    FAST_NODE_LOSS_AGENT,
    FAST_NODE_LOSS_SERVER,
    Cluster,
    ClusterNode,
    manifest,
    node_ready,
    running_cluster,
)
from tests.support import Kubectl, create_namespace, start_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cluster")]

Obj = dict[str, Any]

SERVER_FLAGS = FAST_NODE_LOSS_SERVER
AGENT_FLAGS = FAST_NODE_LOSS_AGENT
LOST_WITHIN = 30.0  # seconds from a fault to the workload whole again, with room for a busy CI


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster(3, server_flags=SERVER_FLAGS, agent_flags=AGENT_FLAGS) as running:
        yield running
        assert not running.tracebacks(), running.tracebacks()


@pytest.fixture
def k(cluster: Cluster) -> Iterator[Kubectl]:
    """kubectl in a fresh namespace; every node is running and Ready before and after."""
    for node in cluster.nodes:
        heal(cluster, node)
    yield cluster.kubectl(create_namespace(cluster.server, "fault"))
    for node in cluster.nodes:
        heal(cluster, node)


def heal(cluster: Cluster, node: ClusterNode) -> None:
    if node.link:
        node.link.restore()
    if node.running:
        node.signal(signal.SIGCONT)
    else:
        node.start()
    wait_for(lambda: node_ready(cluster.server, node.name) == "True", timeout=60, what="Ready")
    wait_for(lambda: not taints(cluster, node.name), timeout=30, what="taints removed")


def taints(cluster: Cluster, node: str) -> set[tuple[str, str]]:
    status, body, _ = cluster.server.request("GET", f"/api/v1/nodes/{node}")
    assert status == 200, body
    return {(t["key"], t["effect"]) for t in body["spec"].get("taints") or []}


def ready(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def deployment(name: str, replicas: int) -> Obj:
    body = objects.deployment(
        name,
        replicas=replicas,
        containers=[objects.container("app", "busybox", command=["sleep", "3600"])],
    )
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
    return body


def whole(cluster: Cluster, namespace: str, app: str, replicas: int, away_from: str) -> bool:
    """``replicas`` live pods of ``app`` are Ready, none of them on ``away_from``."""
    live = [
        p
        for p in cluster.pods(namespace, f"app={app}")
        if not p["metadata"].get("deletionTimestamp")
    ]
    return (
        len(live) == replicas
        and all(ready(p) for p in live)
        and all(p["spec"].get("nodeName") != away_from for p in live)
    )


def spread_over_every_node(cluster: Cluster, k: Kubectl, app: str, replicas: int) -> str:
    """Run a Deployment until each node has some of its pods; returns the busiest node."""
    k("apply", "-f", "-", input=manifest(deployment(app, replicas)))
    k("rollout", "status", f"deployment/{app}", "--timeout=60s")
    nodes = [p["spec"]["nodeName"] for p in cluster.pods(k.namespace or "", f"app={app}")]
    assert set(nodes) == {n.name for n in cluster.nodes}, nodes
    return max(set(nodes), key=nodes.count)


def pods_on(cluster: Cluster, namespace: str, node: str) -> list[Obj]:
    return [p for p in cluster.pods(namespace) if p["spec"].get("nodeName") == node]


# ------------------------------------------------------------------ the machine dies


def test_a_dead_node_is_noticed_tainted_and_its_pods_replaced(cluster: Cluster, k: Kubectl) -> None:
    namespace = k.namespace or ""
    victim = cluster.node(spread_over_every_node(cluster, k, "web", 6))
    lost = {p["metadata"]["uid"] for p in pods_on(cluster, namespace, victim.name)}

    began = time.monotonic()
    victim.crash()  # agent, supervisor and every workload process: the machine is gone

    wait_for(lambda: node_ready(cluster.server, victim.name) == "Unknown", timeout=LOST_WITHIN)
    conditions = k("get", "node", victim.name, "-o", "json", namespaced=False).json()["status"]
    assert {c["reason"] for c in conditions["conditions"]} == {"NodeStatusUnknown"}
    wait_for(
        lambda: (
            {
                ("node.kubernetes.io/unreachable", "NoSchedule"),
                ("node.kubernetes.io/unreachable", "NoExecute"),
            }
            <= taints(cluster, victim.name)
        ),
        timeout=LOST_WITHIN,
        what="the unreachable taints",
    )
    table = k("get", "nodes", "--no-headers", namespaced=False).stdout
    assert any(r.split()[:2] == [victim.name, "NotReady"] for r in table.splitlines()), table

    wait_for(lambda: whole(cluster, namespace, "web", 6, victim.name), timeout=LOST_WITHIN)
    print(f"dead node to 6/6 Ready elsewhere: {time.monotonic() - began:.1f}s")
    # the lost pods do not stay Terminating for ever: nobody will ever confirm them
    wait_for(
        lambda: not lost & {p["metadata"]["uid"] for p in cluster.pods(namespace)},
        timeout=LOST_WITHIN,
        what="the dead node's pods to be removed",
    )
    # nothing new is placed on the dead node meanwhile
    k("create", "deployment", "late", "--replicas=3", "--image=busybox", "--", "sleep", "3600")
    k("rollout", "status", "deployment/late", "--timeout=60s")
    assert not pods_on(cluster, namespace, victim.name)


def test_a_job_on_a_dead_node_is_retried_and_completes_once_per_index(
    cluster: Cluster, k: Kubectl
) -> None:
    """Zero duplicate completions: each index of an Indexed Job succeeds exactly once even
    though a node running some of them dies."""
    namespace = k.namespace or ""
    job = objects.job(
        "work",
        completions=6,
        parallelism=6,
        completionMode="Indexed",
        backoffLimitPerIndex=2,
        containers=[
            objects.container(
                "w", "busybox", command=["sh", "-c", "sleep 4; echo done $JOB_COMPLETION_INDEX"]
            )
        ],
    )
    job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    k("apply", "-f", "-", input=manifest(job))
    wait_for(
        lambda: len({p["spec"].get("nodeName") for p in running(cluster, namespace)}) > 1,
        timeout=30,
        what="the Job's pods running on several nodes",
    )
    victim = cluster.node(running(cluster, namespace)[0]["spec"]["nodeName"])
    victim.crash()
    k("wait", "--for=condition=Complete", "job/work", "--timeout=90s")
    succeeded = [
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        for p in cluster.pods(namespace)
        if p["status"].get("phase") == "Succeeded"
    ]
    assert sorted(succeeded) == [str(i) for i in range(6)], succeeded
    status = k("get", "job", "work", "-o", "json").json()["status"]
    assert status["succeeded"] == 6
    assert status.get("failed", 0) >= 1  # the lost pods counted against the budget


def running(cluster: Cluster, namespace: str) -> list[Obj]:
    return [p for p in cluster.pods(namespace) if p["status"].get("phase") == "Running"]


def test_draining_a_dead_node_completes(cluster: Cluster, k: Kubectl) -> None:
    """kubectl drain evicts through the Eviction API and waits for the pods to be gone; on a
    dead node nobody confirms their end, so PodGC's lost-node rule is what lets it finish."""
    namespace = k.namespace or ""
    victim = cluster.node(spread_over_every_node(cluster, k, "web", 6))
    victim.crash()
    wait_for(lambda: node_ready(cluster.server, victim.name) == "Unknown", timeout=LOST_WITHIN)
    drained = k(
        "drain", victim.name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s",
        namespaced=False, timeout=90,
    )  # fmt: skip
    assert "drained" in drained.stdout, drained.stdout
    assert not pods_on(cluster, namespace, victim.name)
    wait_for(lambda: whole(cluster, namespace, "web", 6, victim.name), timeout=LOST_WITHIN)
    k("uncordon", victim.name, namespaced=False)


def test_a_killed_supervisor_is_replaced_and_the_exit_it_missed_restarted(
    cluster: Cluster, k: Kubectl
) -> None:
    """The per-node supervisor and a container die in the same instant: the node reports
    its runtime down, a new supervisor is running within moments, the container is
    restarted (RESTARTS 1) and the others keep running untouched."""
    namespace = k.namespace or ""
    node = cluster.nodes[0]
    # While the runtime is down the node is NotReady and gets the not-ready NoExecute taint;
    # with this module's 1 s toleration a slow repair would evict the pods instead of
    # restarting them. Tolerating the taint keeps the test about the repair.
    tolerate = [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
    ]
    pods = [
        objects.pod(
            name,
            containers=[objects.container("app", "busybox", command=["sleep", "3600"])],
            nodeName=node.name,
            tolerations=tolerate,
        )
        for name in ("victim", "bystander")
    ]
    k("apply", "-f", "-", input=manifest(*pods))
    k("wait", "--for=condition=Ready", "pod/victim", "pod/bystander", "--timeout=60s")
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.pods(namespace)}
    (victim,) = node.container_processes(uids["victim"])
    bystander = node.container_processes(uids["bystander"])
    supervisor = int((node.data_dir / "supervisor" / "supervisor.pid").read_text())

    os.kill(supervisor, signal.SIGKILL)
    os.kill(victim[0], signal.SIGKILL)

    def restarted() -> bool:
        pod = k("get", "pod", "victim", "-o", "json").json()
        status = pod["status"]["containerStatuses"][0]
        return bool(status["restartCount"] == 1 and status.get("ready"))

    wait_for(restarted, timeout=LOST_WITHIN, what="the victim restarted by a new supervisor")
    assert node.container_processes(uids["bystander"]) == bystander
    wait_for(lambda: node_ready(cluster.server, node.name) == "True", timeout=LOST_WITHIN)
    table = k("get", "pods", "--no-headers").stdout
    assert {tuple(line.split()[:4]) for line in table.splitlines()} == {
        ("bystander", "1/1", "Running", "0"),
        ("victim", "1/1", "Running", "1"),
    }, table


# ------------------------------------------------------------------ the node returns


@pytest.mark.parametrize("fault", ["sigkill", "sigstop", "network"])
def test_a_returning_node_stops_the_pods_that_were_replaced_meanwhile(
    cluster: Cluster, k: Kubectl, fault: str
) -> None:
    """The agent is killed (SIGKILL) or freezes (SIGSTOP), or the node's link goes down: its
    workloads keep running, unseen. The control plane replaces them elsewhere; when the node
    returns (the agent is started again, resumed, the link restored) its agent finds they no
    longer exist and stops them at once."""
    if fault == "network" and not cluster.network:
        pytest.skip("needs root to create network namespaces")
    namespace = k.namespace or ""
    victim = cluster.node(spread_over_every_node(cluster, k, "web", 6))
    stale = {
        process
        for pod in pods_on(cluster, namespace, victim.name)
        for process in victim.container_processes(pod["metadata"]["uid"])
    }
    assert stale

    if fault == "sigkill":
        victim.kill()
    elif fault == "sigstop":
        victim.signal(signal.SIGSTOP)
    else:
        assert victim.link is not None
        victim.link.cut()
    wait_for(lambda: node_ready(cluster.server, victim.name) == "Unknown", timeout=LOST_WITHIN)
    wait_for(lambda: whole(cluster, namespace, "web", 6, victim.name), timeout=LOST_WITHIN)
    assert stale <= victim.container_processes(), "the unreachable node's workloads kept running"

    returned = time.monotonic()
    if fault == "sigkill":
        victim.start()
    elif fault == "sigstop":
        victim.signal(signal.SIGCONT)
    else:
        assert victim.link is not None
        victim.link.restore()
    wait_for(
        lambda: not stale & victim.container_processes(),
        timeout=LOST_WITHIN,
        what="the returning node to stop its replaced pods",
    )
    print(f"stale copies stopped {time.monotonic() - returned:.1f}s after the node returned")
    wait_for(lambda: node_ready(cluster.server, victim.name) == "True", timeout=LOST_WITHIN)
    assert whole(cluster, namespace, "web", 6, "")


# ------------------------------------------------------------------ operator actions


def test_deleting_a_node_removes_its_pods_and_they_come_back_elsewhere(
    cluster: Cluster, k: Kubectl
) -> None:
    namespace = k.namespace or ""
    victim = cluster.node(spread_over_every_node(cluster, k, "web", 6))
    processes = victim.container_processes()
    victim.kill()  # the agent is gone (its workloads still run, as on a machine left behind)
    k("delete", "node", victim.name, namespaced=False)
    wait_for(lambda: whole(cluster, namespace, "web", 6, victim.name), timeout=LOST_WITHIN)
    wait_for(
        lambda: not pods_on(cluster, namespace, victim.name),
        timeout=LOST_WITHIN,
        what="the deleted node's pods to be removed",
    )
    # the node's agent comes back: it registers again and stops what it no longer runs
    victim.start()
    wait_for(lambda: node_ready(cluster.server, victim.name) == "True", timeout=LOST_WITHIN)
    wait_for(lambda: not processes & victim.container_processes(), timeout=LOST_WITHIN)


def test_taint_no_execute_by_hand_evicts_pods_that_do_not_tolerate_it(
    cluster: Cluster, k: Kubectl
) -> None:
    namespace = k.namespace or ""
    node = cluster.nodes[0].name
    tolerating = objects.pod(
        "tolerant",
        containers=[objects.container("app", "busybox", command=["sleep", "3600"])],
        nodeName=node,
        tolerations=[{"key": "maintenance", "operator": "Exists", "effect": "NoExecute"}],
    )
    plain = objects.pod(
        "plain",
        containers=[objects.container("app", "busybox", command=["sleep", "3600"])],
        nodeName=node,
        terminationGracePeriodSeconds=1,
    )
    k("apply", "-f", "-", input=manifest(tolerating, plain))
    k("wait", "--for=condition=Ready", "pod/tolerant", "pod/plain", "--timeout=60s")
    k("taint", "node", node, "maintenance=now:NoExecute", namespaced=False)
    try:
        wait_for(
            lambda: {p["metadata"]["name"] for p in cluster.pods(namespace)} == {"tolerant"},
            timeout=LOST_WITHIN,
            what="the intolerant pod evicted",
        )
        events = k("get", "events", "--field-selector", "involvedObject.name=plain").stdout
        assert "TaintManagerEviction" in events, events
    finally:
        k("taint", "node", node, "maintenance-", namespaced=False)


# ------------------------------------------------------------------ the API server goes


def test_nodes_and_workloads_ride_out_an_api_server_restart(cluster: Cluster, k: Kubectl) -> None:
    namespace = k.namespace or ""
    spread_over_every_node(cluster, k, "web", 6)
    before = {p["metadata"]["uid"] for p in cluster.pods(namespace)}
    processes = {n.name: n.container_processes() for n in cluster.nodes}

    restart_server(cluster, signal.SIGTERM, down_for=2.0)

    # the nodes were not declared lost for the server's own absence, nothing was replaced
    wait_for(lambda: whole(cluster, namespace, "web", 6, ""), timeout=LOST_WITHIN)
    assert {p["metadata"]["uid"] for p in cluster.pods(namespace)} == before
    for node in cluster.nodes:
        assert processes[node.name] <= node.container_processes(), node.name
    restarts = [
        s["restartCount"] for p in cluster.pods(namespace) for s in p["status"]["containerStatuses"]
    ]
    assert restarts == [0] * 6


def test_a_rollout_survives_the_api_server_being_killed_mid_way(
    cluster: Cluster, k: Kubectl
) -> None:
    namespace = k.namespace or ""
    spread_over_every_node(cluster, k, "web", 6)
    k("set", "env", "deployment/web", "VERSION=2")
    wait_for(
        lambda: any(
            "VERSION" in str(p["spec"]["containers"][0].get("env")) for p in cluster.pods(namespace)
        ),
        timeout=30,
        what="the rollout to start",
    )
    restart_server(cluster, signal.SIGKILL, down_for=0.5)
    k("rollout", "status", "deployment/web", "--timeout=90s")
    live = [p for p in cluster.pods(namespace) if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 6
    assert all(
        p["spec"]["containers"][0]["env"] == [{"name": "VERSION", "value": "2"}] for p in live
    )
    assert k("get", "deployment", "web", "-o", "json").json()["status"]["readyReplicas"] == 6


def restart_server(cluster: Cluster, signum: int, *, down_for: float) -> None:
    """Stop the API server (and its controllers) and start it again on the same port and
    data dir, as an operator's restart or a crash and a supervisor's restart would."""
    old = cluster.server
    assert old.stop(signum) in (0, -signal.SIGKILL)
    time.sleep(down_for)  # the outage itself (what the test is about), not a wait for anything
    cluster.server = start_server(
        old.data_dir,
        port=old.port,
        controllers=True,
        extra=SERVER_FLAGS,
        bind_address=old.host,
    )
    for node in cluster.nodes:
        node.server = cluster.server
