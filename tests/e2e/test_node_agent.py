"""The node agent end to end: `setpoint server` with its local agent (the ``node_server``
fixture), a second `setpoint agent` process this module starts itself, real workload
processes, and the real kubectl.

Workload processes are found the way an operator would: the supervisor's durable record of
each container (``<agent data dir>/supervisor/containers/<id>/state.json``) names its pid and
start time, and ``/proc`` says whether that very process still runs."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from setpoint.agent.supervisor import proc_start_time
from tests import objects
from tests.cluster import ClusterNode, can_make_network_namespaces
from tests.support import (
    Kubectl,
    Server,
    create_namespace,
    kill_node_processes,
    start_server,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

Obj = dict[str, Any]
Process = tuple[int, int]  # (pid, start time): never mistaken for a recycled pid


@pytest.fixture
def k(node_server: Server) -> Kubectl:
    return Kubectl(node_server, create_namespace(node_server, "na"))


def get_pod(k: Kubectl, name: str) -> Obj:
    pod: Obj = k("get", "pod", name, "-o", "json").json()
    return pod


def running_pod(k: Kubectl, name: str, *, restarts: int = 0, timeout: float = 30) -> Obj:
    """The pod once Running with its container ready after ``restarts`` restarts."""

    def check() -> Obj | None:
        pod = get_pod(k, name)
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        ok = (
            pod["status"].get("phase") == "Running"
            and statuses[0].get("ready")
            and statuses[0].get("restartCount") == restarts
            and "running" in statuses[0].get("state", {})
        )
        return pod if ok else None

    return wait_for(check, timeout=timeout, what=f"pod {name} running ({restarts} restarts)")


def pod_gone(k: Kubectl, name: str) -> bool:
    result = k("get", "pod", name, "--ignore-not-found", "-o", "name", check=False)
    return result.returncode == 0 and not result.stdout.strip()


def container_process(agent_dir: Path, pod: Obj, container: str | None = None) -> Process:
    """The pid and start time the supervisor recorded for the pod's (first) container."""
    name = container or pod["spec"]["containers"][0]["name"]
    cid = f"{pod['metadata']['uid']}/{name}"
    state_file = agent_dir / "supervisor" / "containers" / quote(cid, safe="") / "state.json"
    saved = json.loads(state_file.read_text())
    assert saved.get("pid"), saved
    return int(saved["pid"]), int(saved["pid_start_time"])


def alive(process: Process) -> bool:
    return proc_start_time(process[0]) == process[1]


def node_ip(k: Kubectl, node: str) -> str:
    addresses = k("get", "node", node, "-o", "json", namespaced=False).json()["status"]["addresses"]
    return str(next(a["address"] for a in addresses if a["type"] == "InternalIP"))


# ------------------------------------------------------------------ the local agent


def test_kubectl_run_pod_runs_with_full_status(k: Kubectl, node_server: Server) -> None:
    k("run", "sleeper", "--image=busybox", "--command", "--", "sleep", "1000")
    pod = running_pod(k, "sleeper")
    status = pod["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    (cs,) = status["containerStatuses"]
    assert cs["state"]["running"]["startedAt"]
    assert (cs["ready"], cs["started"], cs["restartCount"]) == (True, True, 0)
    assert cs["containerID"].startswith("setpoint://")
    ip = node_ip(k, pod["spec"]["nodeName"])
    assert status["hostIP"] == ip
    node = k("get", "node", pod["spec"]["nodeName"], "-o", "json", namespaced=False).json()
    if can_make_network_namespaces():  # a pod network: its own IP, from the node's podCIDR
        subnet = ipaddress.ip_network(node["spec"]["podCIDR"])
        assert ipaddress.ip_address(status["podIP"]) in subnet
    else:
        assert status["podIP"] == ip
    assert status["startTime"]
    assert alive(container_process(node_server.data_dir / "agent", pod))


def test_the_agent_writes_as_itself(k: Kubectl, node_server: Server) -> None:
    """Its field manager is the agent's own (it once wrote as ``setpoint-sim``)."""
    k("run", "owned", "--image=busybox", "--command", "--", "sleep", "1000")
    running_pod(k, "owned")
    pod = k("get", "pod", "owned", "-o", "json", "--show-managed-fields").json()
    status_managers = {
        entry["manager"]
        for entry in pod["metadata"]["managedFields"]
        if entry.get("subresource") == "status"
    }
    assert "setpoint-agent" in status_managers
    node = k("get", "node", pod["spec"]["nodeName"], "-o", "json", "--show-managed-fields").json()
    managers = {entry["manager"] for entry in node["metadata"]["managedFields"]}
    assert "setpoint-agent" in managers and "setpoint-sim" not in managers


def test_killed_process_is_restarted_and_reported(k: Kubectl, node_server: Server) -> None:
    k("run", "crashy", "--image=busybox", "--command", "--", "sleep", "1000")
    pod = running_pod(k, "crashy")
    os.kill(container_process(node_server.data_dir / "agent", pod)[0], signal.SIGKILL)

    pod = running_pod(k, "crashy", restarts=1, timeout=10)
    terminated = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")
    table = k("get", "pod", "crashy", "--no-headers").stdout.split()
    assert table[3] == "1"  # NAME READY STATUS RESTARTS AGE


def test_crash_looping_container_backs_off_from_one_second_doubling(k: Kubectl) -> None:
    started = time.monotonic()
    k("run", "crashloop", "--image=busybox", "--command", "--", "sh", "-c", "exit 1")

    def fourth_wait() -> Obj | None:
        (cs,) = get_pod(k, "crashloop")["status"].get("containerStatuses") or [{}]
        waiting = cs.get("state", {}).get("waiting", {})
        if cs.get("restartCount") == 3 and waiting.get("reason") == "CrashLoopBackOff":
            return cs
        return None

    # restarts at once, after 1 s and after 2 s, then waits 4 s: the classic curve (10 s,
    # then 20 s) would need 30 s to get this far
    cs = wait_for(fourth_wait, timeout=25, what="the third restart's crash backing off")
    assert time.monotonic() - started >= 3.0
    uid = get_pod(k, "crashloop")["metadata"]["uid"]
    assert cs["state"]["waiting"]["message"] == (
        f"back-off 4s restarting failed container=crashloop pod=crashloop_{k.namespace}({uid})"
    )
    assert k("get", "pod", "crashloop", "--no-headers").stdout.split()[2] == "CrashLoopBackOff"


def test_kubectl_delete_sends_sigterm_to_the_process(k: Kubectl, node_server: Server) -> None:
    shared = Path(tempfile.mkdtemp(prefix="sp-e2e-"))
    shared.chmod(0o777)  # the pod runs as a user of its own
    marker = shared / "terminated"
    script = f'trap "echo term > {marker}; exit 0" TERM; while true; do sleep 0.1; done'
    k("run", "graceful", "--image=busybox", "--command", "--", "sh", "-c", script)
    pod = running_pod(k, "graceful")
    process = container_process(node_server.data_dir / "agent", pod)

    k("delete", "pod", "graceful", "--timeout=30s")
    assert pod_gone(k, "graceful")
    assert marker.read_text().strip() == "term"
    assert not alive(process)


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    k: Kubectl, node_server: Server
) -> None:
    deaf = ["sh", "-c", 'trap "" TERM; while true; do sleep 0.1; done']
    manifest = objects.pod(
        "stubborn",
        containers=[objects.container("app", "busybox", command=deaf)],
        terminationGracePeriodSeconds=2,
    )
    k("apply", "-f", "-", input=json.dumps(manifest))
    pod = running_pod(k, "stubborn")
    process = container_process(node_server.data_dir / "agent", pod)

    started = time.monotonic()
    k("delete", "pod", "stubborn", "--timeout=30s")
    took = time.monotonic() - started
    assert pod_gone(k, "stubborn")
    assert not alive(process)
    assert 1.8 <= took < 8, f"deletion took {took:.1f}s with a 2s grace period"


# ------------------------------------------------------------------ a second agent


def ready_nodes(k: Kubectl) -> set[str]:
    nodes = k("get", "nodes", "-o", "json", namespaced=False).json()["items"]
    return {
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }


@pytest.fixture
def second_agent(node_server: Server, k: Kubectl) -> Iterator[ClusterNode]:
    work = Path(tempfile.mkdtemp(prefix="sp-agent2-"))
    agent = ClusterNode(node_server, f"second-{uuid.uuid4().hex[:6]}", work / "agent", work / "log")
    agent.start()
    try:
        wait_for(lambda: agent.name in ready_nodes(k), timeout=30, what="the second node Ready")
        yield agent
    finally:
        agent.stop()
        kill_node_processes(agent.data_dir)
        # no later test's pod may be scheduled onto a node whose agent is gone
        k("delete", "node", agent.name, "--ignore-not-found", namespaced=False, check=False)
    assert "Traceback" not in agent.log(), agent.log()


def pinned_pod(name: str, node: str, *, selector: bool = False) -> Obj:
    """A pod bound to ``node`` by its ``nodeName``, or by a ``nodeSelector`` of its
    hostname."""
    pin = {"nodeSelector": {"kubernetes.io/hostname": node}} if selector else {"nodeName": node}
    return objects.pod(
        name,
        containers=[objects.container("app", "busybox", command=["sleep", "1000"])],
        terminationGracePeriodSeconds=5,
        **pin,
    )


def test_second_agent_on_the_same_machine_joins_as_another_node(
    k: Kubectl, second_agent: ClusterNode
) -> None:
    assert {"node-server-node", second_agent.name} <= ready_nodes(k)
    table = k("get", "nodes", "--no-headers", namespaced=False).stdout
    line = next(row for row in table.splitlines() if row.startswith(second_agent.name + " "))
    assert line.split()[1] == "Ready"


def test_workloads_survive_the_agent_being_killed_and_their_exits_are_not_lost(
    k: Kubectl, second_agent: ClusterNode
) -> None:
    node, agent_dir = second_agent.name, second_agent.data_dir
    manifests = [
        pinned_pod("steady", node),
        pinned_pod("victim", node, selector=True),
        pinned_pod("forced", node),
        pinned_pod("leaving", node),
    ]
    k(
        "apply",
        "-f",
        "-",
        input="\n---\n".join(json.dumps(m) for m in manifests),
    )
    pods = {m["metadata"]["name"]: running_pod(k, m["metadata"]["name"]) for m in manifests}
    assert {p["spec"]["nodeName"] for p in pods.values()} == {node}
    before = {name: container_process(agent_dir, pod) for name, pod in pods.items()}

    second_agent.kill()
    time.sleep(0.5)  # give a wrongly linked workload time to die with its agent
    assert all(alive(p) for p in before.values()), "a workload died with its agent"

    os.kill(before["victim"][0], signal.SIGKILL)  # an exit while nobody reports it
    k("delete", "pod", "forced", "--grace-period=0", "--force")  # gone from the API at once
    k("delete", "pod", "leaving", "--wait=false")  # graceful: waits for the agent to confirm
    assert not pod_gone(k, "leaving")

    second_agent.start()
    pod = running_pod(k, "victim", restarts=1)
    terminated = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")
    assert alive(container_process(agent_dir, pod))

    steady = running_pod(k, "steady")
    assert container_process(agent_dir, steady) == before["steady"]
    assert alive(before["steady"])

    wait_for(lambda: not alive(before["forced"]), timeout=20, what="the orphan terminated")
    wait_for(lambda: pod_gone(k, "leaving"), timeout=20, what="the deletion confirmed")
    assert not alive(before["leaving"])


# ------------------------------------------------------------------ a server of its own


def test_server_stop_with_a_shutdown_grace_period_shuts_its_node_down_first(
    tmp_path: Path,
) -> None:
    """``setpoint server --kubelet-arg shutdown-grace-period=5s``: SIGTERM reaches the local
    agent, which reports through the still-running API server before all goes down."""
    data_dir = tmp_path / "graceful"
    grace = ["--kubelet-arg", "shutdown-grace-period=5s"]
    server = start_server(data_dir, controllers=True, agent=True, extra=grace)
    again: Server | None = None
    try:
        k = Kubectl(server, create_namespace(server, "gs"))
        k("run", "sleeper", "--image=busybox", "--command", "--", "sleep", "1000")
        process = container_process(data_dir / "agent", running_pod(k, "sleeper"))

        assert server.stop(timeout=60) == 0
        assert not alive(process)

        again = start_server(data_dir)  # no agent: the status is what the last one wrote
        status = Kubectl(again, k.namespace)("get", "pod", "sleeper", "-o", "json").json()["status"]
        assert (status["phase"], status["reason"]) == ("Failed", "Terminated")
    finally:
        for s in (server, again):
            if s is not None:
                s.stop()
        kill_node_processes(data_dir / "agent")
