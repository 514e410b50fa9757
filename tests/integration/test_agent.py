"""The node agent against a real server, with a real supervisor running real processes.

Each test gets its own node (a unique name, a temporary data dir, a supervisor started
through ``ensure_supervisor``) and an in-process :class:`NodeAgent`; the finalizer stops the
agent, then kills the supervisor and every container process group it ever ran."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.agent import NodeAgent
from setpoint.agent.runtime import Runtime, ensure_supervisor
from setpoint.agent.supervisor import proc_start_time
from setpoint.client.api import (
    CONFIGMAPS,
    EVENTS,
    LEASES,
    NODES,
    PODS,
    SECRETS,
    ApiClient,
    ApiError,
)
from setpoint.client.nodes import NODE_LEASE_DURATION_SECONDS
from tests import objects
from tests.support import SETPOINT, Server, eventually, kill_node_processes

Obj = dict[str, Any]


@dataclass
class AgentNode:
    name: str
    data_dir: Path
    runtime: Runtime
    client: ApiClient
    namespace: str
    processes: set[tuple[int, int]] = field(default_factory=set)
    agent: NodeAgent | None = None
    task: asyncio.Task[None] | None = None

    @property
    def shared(self) -> Path:
        """A directory the test and its pods' processes (``nobody`` by default) both write:
        outside the data dir, which pods never see."""
        path = self.data_dir.with_name(self.data_dir.name + "-shared")
        if not path.exists():
            path.mkdir()
            path.chmod(0o777)
        return path

    async def start_agent(self, **options: Any) -> NodeAgent:
        agent = NodeAgent(
            self.client,
            node_name=self.name,
            data_dir=self.data_dir,
            runtime=self.runtime,
            **options,
        )
        self.agent, self.task = agent, asyncio.create_task(agent.run())
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait([self.task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            ready.cancel()
            self.task.result()  # raises what made run() fail
        assert agent.ready.is_set()
        return agent

    async def stop_agent(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
        if self.task is not None:
            await self.task
        self.agent = self.task = None

    async def create_pod(self, name: str, container: Obj, **spec: Any) -> Obj:
        containers = [{**objects.container("app", "none"), **container}]
        pod = objects.pod(name, namespace=self.namespace, containers=containers, **spec)
        created = await self.client.create(PODS, pod)
        binding = objects.binding(name, self.name)
        await self.client.request("POST", PODS.path(self.namespace, name, "binding"), body=binding)
        return created

    async def pod(self, name: str) -> Obj:
        return await self.client.get(PODS, name, self.namespace)

    async def wait_gone(self, name: str) -> None:
        """Until the pod ``name`` no longer exists (the agent confirmed its deletion)."""

        async def gone() -> bool:
            try:
                await self.pod(name)
            except ApiError as exc:
                return exc.is_not_found
            return False

        await eventually(gone, what=f"{name} deleted")

    async def app_status(self, name: str) -> Obj:
        statuses = (await self.pod(name)).get("status", {}).get("containerStatuses") or [{}]
        status: Obj = statuses[0]
        return status

    async def running_pid(self, name: str) -> int:
        """The pid of the pod's container process, once the pod reports it Running."""

        async def check() -> int | None:
            pod = await self.pod(name)
            if pod["status"].get("phase") != "Running":
                return None
            uid = pod["metadata"]["uid"]
            assert self.agent is not None
            state = self.agent._states.get(f"{uid}/app")
            if state is None or state.pid is None or state.pid_start_time is None:
                return None
            self.processes.add((state.pid, state.pid_start_time))
            return state.pid

        return await eventually(check, what=f"{name} running")


async def wait_registered(client: ApiClient, name: str) -> None:
    """Until node ``name``'s agent has renewed its Lease once."""

    async def registered() -> bool:
        with contextlib.suppress(ApiError):
            await client.get(LEASES, name, "kube-node-lease")
            return True
        return False

    await eventually(registered, timeout=60, what="node lease")


async def killall(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``setpoint killall --data-dir data_dir``, which must succeed."""
    done = await asyncio.to_thread(
        subprocess.run,
        [SETPOINT, "killall", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
async def node(client: ApiClient, namespace: str) -> AsyncIterator[AgentNode]:
    data_dir = Path(tempfile.mkdtemp(prefix="sp-agent-"))
    processes: set[tuple[int, int]] = set()
    n: AgentNode | None = None
    try:
        runtime = await ensure_supervisor(data_dir / "supervisor")
        name = f"agent-{uuid.uuid4().hex[:8]}"
        n = AgentNode(name, data_dir, runtime, client, namespace, processes)
        await n.start_agent()
        yield n
    finally:
        if n is not None:
            with contextlib.suppress(Exception):
                await n.stop_agent()
            with contextlib.suppress(Exception):
                await n.runtime.close()
        kill_node_processes(data_dir, processes)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(data_dir.with_name(data_dir.name + "-shared"), ignore_errors=True)


async def test_node_registers_with_host_capacity_and_lease(node: AgentNode) -> None:
    obj = await node.client.get(NODES, node.name)
    assert obj["metadata"]["labels"]["kubernetes.io/hostname"] == node.name
    assert obj["status"]["capacity"]["cpu"] == str(os.cpu_count())
    assert obj["status"]["capacity"]["pods"] == "110"
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    lease = await node.client.get(LEASES, node.name, "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == node.name
    assert lease["spec"]["leaseDurationSeconds"] == NODE_LEASE_DURATION_SECONDS


async def test_killall_stops_the_nodes_workloads_and_removes_their_sandboxes(
    node: AgentNode,
) -> None:
    await node.create_pod("doomed", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("doomed")
    uid = (await node.pod("doomed"))["metadata"]["uid"]
    await node.stop_agent()
    done = await killall(node.data_dir)
    assert "killed 1 container process(es)" in done.stdout
    assert not Path(f"/proc/{pid}").exists()
    assert not (node.data_dir / "pods" / uid).exists()


async def test_pod_runs_as_a_real_process(node: AgentNode) -> None:
    await node.create_pod("sleeper", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("sleeper")
    assert proc_start_time(pid) is not None
    status = await eventually(lambda: _ready(node, "sleeper"), what="sleeper ready")
    assert status["restartCount"] == 0
    assert "running" in status["state"]


async def _ready(node: AgentNode, name: str) -> Obj | None:
    status = await node.app_status(name)
    return status if status.get("ready") else None


async def test_killed_container_is_restarted(node: AgentNode) -> None:
    await node.create_pod("crashy", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("crashy")
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> Obj | None:
        status = await node.app_status("crashy")
        if status.get("restartCount") == 1 and "running" in status.get("state", {}):
            return status
        return None

    status = await eventually(restarted, timeout=10, what="restart")
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert (await node.pod("crashy"))["status"]["phase"] == "Running"
    await node.running_pid("crashy")  # remember the new process for cleanup


async def test_failing_pod_with_restart_policy_never_fails(node: AgentNode) -> None:
    await node.create_pod("exit3", {"command": ["sh", "-c", "exit 3"]}, restartPolicy="Never")

    async def failed() -> Obj | None:
        pod = await node.pod("exit3")
        return pod if pod["status"].get("phase") == "Failed" else None

    pod = await eventually(failed, what="pod Failed")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3
    assert term["reason"] == "Error"


async def test_on_failure_pod_that_failed_once_keeps_the_failure_as_last_state(
    node: AgentNode,
) -> None:
    marker = node.shared / "failed-once"
    script = f"[ -e {marker} ] && exit 0; touch {marker}; exit 1"
    await node.create_pod(
        "second-try", {"command": ["sh", "-c", script]}, restartPolicy="OnFailure"
    )

    async def succeeded() -> Obj | None:
        pod = await node.pod("second-try")
        return pod if pod["status"].get("phase") == "Succeeded" else None

    status = (await eventually(succeeded, what="pod Succeeded"))["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    term, last = status["state"]["terminated"], status["lastState"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert last["finishedAt"] <= term["startedAt"]


async def test_deleted_pod_gets_sigterm_and_disappears(node: AgentNode) -> None:
    marker = node.shared / "terminated"
    script = f"trap 'echo bye > {marker}; exit 0' TERM; while :; do sleep 0.1; done"
    await node.create_pod("graceful", {"command": ["sh", "-c", script]})
    await node.running_pid("graceful")
    await node.client.delete(PODS, "graceful", node.namespace, grace_period_seconds=10)
    await node.wait_gone("graceful")
    assert marker.read_text().strip() == "bye"


async def test_pod_without_command_is_create_container_config_error(node: AgentNode) -> None:
    pod = await node.create_pod("nocmd", {})

    async def waiting() -> Obj | None:
        state = (await node.app_status("nocmd")).get("state", {})
        return state.get("waiting") if "CreateContainerConfigError" in str(state) else None

    waiting_state = await eventually(waiting, what="CreateContainerConfigError")
    assert "has neither command nor args" in waiting_state["message"]

    async def warning() -> bool:
        events = await node.client.list(EVENTS, node.namespace)
        return any(
            e["involvedObject"].get("uid") == pod["metadata"]["uid"]
            and e["type"] == "Warning"
            and e["source"].get("component") == "kubelet"
            for e in events["items"]
        )

    await eventually(warning, what="Warning event")


async def test_args_without_command_run_as_the_command_with_an_event(node: AgentNode) -> None:
    pod = await node.create_pod(
        "argsonly", {"image": "busybox", "args": ["sh", "-c", "exec sleep 1000"]}
    )
    pid = await node.running_pid("argsonly")
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"1000"]

    async def entrypoint_event() -> Obj | None:
        events = await node.client.list(EVENTS, node.namespace)
        return next(
            (
                e
                for e in events["items"]
                if e["involvedObject"].get("uid") == pod["metadata"]["uid"]
                and e["reason"] == "ImageEntrypointUnknown"
            ),
            None,
        )

    event = await eventually(entrypoint_event, what="ImageEntrypointUnknown event")
    assert event["type"] == "Normal"
    assert "entrypoint of image 'busybox' is not known" in event["message"]


async def test_missing_binary_reports_the_start_error(node: AgentNode) -> None:
    await node.create_pod("nobin", {"command": ["/nonexistent/binary"]})

    async def start_error() -> Obj | None:
        status = await node.app_status("nobin")
        last = (status.get("lastState") or {}).get("terminated") or {}
        return status if last.get("reason") == "StartError" else None

    status = await eventually(start_error, what="StartError")
    assert "nonexistent" in str(status)


async def test_restarted_agent_adopts_running_containers(node: AgentNode) -> None:
    await node.create_pod("survivor", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("survivor")
    await node.stop_agent()
    await node.start_agent()
    assert await node.running_pid("survivor") == pid
    assert (await node.app_status("survivor"))["restartCount"] == 0


async def container_event_counts(node: AgentNode, uid: str) -> dict[str, int]:
    """How often each event was said about the pod: the sum of ``count`` per reason (a
    repeated event bumps the count of the one already written)."""
    counts: dict[str, int] = {}
    for e in (await node.client.list(EVENTS, node.namespace))["items"]:
        if e["involvedObject"].get("uid") == uid:
            counts[e["reason"]] = counts.get(e["reason"], 0) + int(e.get("count") or 1)
    return counts


async def flush_agent_events(node: AgentNode, pod: Obj) -> None:
    """Until every event the agent queued so far is written: its one sender writes in
    order, so once a marker queued now is visible, so is everything queued before it."""
    assert node.agent is not None
    marker = f"flush-{uuid.uuid4().hex[:8]}"
    await node.agent.recorder.record(pod, "Normal", "TestFlush", marker)

    async def written() -> bool:
        events = (await node.client.list(EVENTS, node.namespace))["items"]
        return any(e["message"] == marker for e in events)

    await eventually(written, what="the agent's queued events to be written")


async def test_agent_restart_adds_no_created_or_started_events(node: AgentNode) -> None:
    pod = await node.create_pod("steady", {"command": ["sleep", "1000"]})
    uid = pod["metadata"]["uid"]
    pid = await node.running_pid("steady")
    assert node.agent is not None
    await eventually(lambda: _reported(node, uid, ("running", 0)), what="events recorded")
    await flush_agent_events(node, pod)
    before = await container_event_counts(node, uid)
    assert (before.get("Created"), before.get("Started")) == (1, 1)

    await node.stop_agent()
    await node.start_agent()  # a new agent (new event cache) on the same data dir
    await eventually(lambda: _reported(node, uid, ("running", 0)), what="pod reconciled")
    await flush_agent_events(node, pod)
    after = await container_event_counts(node, uid)
    assert (after.get("Created"), after.get("Started")) == (1, 1)

    os.kill(pid, signal.SIGKILL)  # a real start: the supervisor restarts the container
    await eventually(lambda: _reported(node, uid, ("running", 1)), what="restart seen")
    await node.running_pid("steady")  # remember the new process for cleanup
    await flush_agent_events(node, pod)
    restarted = await container_event_counts(node, uid)
    assert (restarted.get("Created"), restarted.get("Started")) == (2, 2)


async def _reported(node: AgentNode, uid: str, seen: tuple[str, int]) -> bool:
    """The agent has reconciled the pod's app container as ``seen`` (state, restarts)."""
    return node.agent is not None and node.agent._reported.get(f"{uid}/app") == seen


async def test_containers_of_vanished_pods_are_removed_on_start(node: AgentNode) -> None:
    await node.create_pod("ghost", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("ghost")
    await node.stop_agent()
    # force deletion: no kubelet confirms it, the pod is gone at once
    await node.client.delete(PODS, "ghost", node.namespace, grace_period_seconds=0)
    await node.start_agent()

    async def removed() -> bool:
        return not any(s.pid == pid for s in await node.runtime.list())

    await eventually(removed, what="orphan container removed")
    started = next(st for p, st in node.processes if p == pid)
    assert proc_start_time(pid) != started  # the process is gone (or its pid reused)


def pod_dirs(node: AgentNode, uid: str) -> list[str]:
    """What the node keeps of the pod ``uid`` under ``<data-dir>/pods``: its sandbox
    directory and its log directory."""
    return sorted(p.name for p in (node.data_dir / "pods").iterdir() if uid in p.name)


async def test_deleted_pods_leave_no_log_directories_behind(node: AgentNode) -> None:
    uids = []
    for n in range(3):
        pod = await node.create_pod(f"chatty-{n}", {"command": ["sh", "-c", "echo hi; sleep 1000"]})
        uids.append(pod["metadata"]["uid"])
        await node.running_pid(f"chatty-{n}")
    assert all(any("_" in d for d in pod_dirs(node, uid)) for uid in uids)  # logs were kept
    for n in range(3):
        await node.client.delete(PODS, f"chatty-{n}", node.namespace, grace_period_seconds=1)
    for n in range(3):
        await node.wait_gone(f"chatty-{n}")
    assert [pod_dirs(node, uid) for uid in uids] == [[], [], []]


async def test_log_directory_of_a_pod_deleted_while_the_agent_was_down_is_removed(
    node: AgentNode,
) -> None:
    pod = await node.create_pod("gone", {"command": ["sh", "-c", "echo hi; sleep 1000"]})
    uid = pod["metadata"]["uid"]
    await node.running_pid("gone")
    await node.stop_agent()
    await node.client.delete(PODS, "gone", node.namespace, grace_period_seconds=0)
    await node.start_agent()

    async def removed() -> bool:
        return not pod_dirs(node, uid)

    await eventually(removed, what="log directory of the vanished pod removed")


async def test_agent_command_registers_the_node(server: Server, client: ApiClient) -> None:
    name = f"agent-cli-{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="sp-agent-cli-"))
    process = subprocess.Popen(
        [
            SETPOINT,
            "agent",
            "--kubeconfig",
            str(server.kubeconfig),
            "--node-name",
            name,
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_registered(client, name)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_node_processes(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_agent_command_tightens_a_data_dir_left_open(
    server: Server, client: ApiClient
) -> None:
    name = f"agent-cli-{uuid.uuid4().hex[:8]}"
    parent = Path(tempfile.mkdtemp(prefix="sp-agent-cli-"))
    data_dir = parent / "agent"
    data_dir.mkdir()
    for directory in (parent, data_dir):
        os.chmod(directory, 0o755)  # made by hand, or by an older setpoint
    process = subprocess.Popen(
        [
            *(SETPOINT, "agent", "--kubeconfig", str(server.kubeconfig)),
            *("--node-name", name, "--data-dir", str(data_dir)),
            *("--kubelet-port", "0"),  # 10250 may be another agent's on this machine
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            await wait_registered(client, name)
        except AssertionError:
            if process.poll() is not None:  # say why it went
                raise AssertionError(process.communicate()[1].decode()[-3000:]) from None
            raise
        modes = {p: p.stat().st_mode & 0o777 for p in (data_dir, data_dir / "supervisor")}
        assert modes == {data_dir: 0o700, data_dir / "supervisor": 0o700}
        assert parent.stat().st_mode & 0o777 == 0o755  # not the agent's to change
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_node_processes(data_dir)
        shutil.rmtree(parent, ignore_errors=True)


async def test_process_gets_env_from_config_map_secret_and_pod_fields(node: AgentNode) -> None:
    ns = node.namespace
    await node.client.create(CONFIGMAPS, objects.configmap("cm", data={"c": "blue"}), ns)
    password = base64.b64encode(b"hunter2").decode()
    await node.client.create(SECRETS, objects.secret("s", data={"p": password}), ns)
    env = [
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "c"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "p"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "BOTH", "value": "$(POD)-$(COLOR)"},
    ]
    await node.create_pod("envy", {"command": ["sleep", "1000"], "env": env})
    pid = await node.running_pid("envy")
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
        if "=" in item
    )
    assert environ["COLOR"] == "blue"
    assert environ["PASSWORD"] == "hunter2"
    assert environ["BOTH"] == "envy-blue"


async def test_force_deleted_pod_has_its_process_stopped(node: AgentNode) -> None:
    await node.create_pod("forced", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("forced")
    started = next(st for p, st in node.processes if p == pid)
    await node.client.delete(PODS, "forced", node.namespace, grace_period_seconds=0)

    async def stopped() -> bool:
        return proc_start_time(pid) != started

    await eventually(stopped, what="process of the force-deleted pod stopped")


async def test_init_container_runs_to_completion_before_app_containers(
    node: AgentNode,
) -> None:
    marker = node.shared / "initialized"
    await node.create_pod(
        "inited",
        {"command": ["sh", "-c", f"test -f {marker} && exec sleep 1000"]},
        restartPolicy="Never",
        initContainers=[{"name": "init", "image": "none", "command": ["touch", str(marker)]}],
    )
    await node.running_pid("inited")
    pod = await node.pod("inited")
    init = pod["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["reason"] == "Completed"
    assert init["ready"] is True
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "True"


async def test_failed_init_container_fails_a_never_restarting_pod(node: AgentNode) -> None:
    await node.create_pod(
        "badinit",
        {"command": ["sleep", "1000"]},
        restartPolicy="Never",
        initContainers=[{"name": "init", "image": "none", "command": ["sh", "-c", "exit 7"]}],
    )

    async def failed() -> Obj | None:
        pod = await node.pod("badinit")
        return pod if pod["status"].get("phase") == "Failed" else None

    pod = await eventually(failed, what="pod Failed")
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    app = pod["status"]["containerStatuses"][0]
    assert app["state"] == {"waiting": {"reason": "PodInitializing"}}


async def test_sidecar_starts_before_the_app_and_keeps_running(node: AgentNode) -> None:
    sidecar = {"name": "proxy", "image": "none", "command": ["sleep", "1000"]}
    await node.create_pod(
        "with-sidecar",
        {"command": ["sleep", "1000"]},
        initContainers=[{**sidecar, "restartPolicy": "Always"}],
    )
    await node.running_pid("with-sidecar")

    async def ready() -> Obj | None:
        status = (await node.pod("with-sidecar"))["status"]
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return status if conditions.get("Ready") == "True" else None

    status = await eventually(ready, what="pod with a sidecar Ready")
    proxy = status["initContainerStatuses"][0]
    assert "running" in proxy["state"] and proxy["started"] is True and proxy["ready"] is True
    app = status["containerStatuses"][0]
    assert proxy["state"]["running"]["startedAt"] <= app["state"]["running"]["startedAt"]


async def test_pod_that_does_not_restart_completes_and_its_sidecar_is_stopped(
    node: AgentNode,
) -> None:
    sidecar = {"name": "proxy", "image": "none", "command": ["sleep", "1000"]}
    await node.create_pod(
        "job-like",
        {"command": ["sh", "-c", "sleep 0.5"]},
        initContainers=[{**sidecar, "restartPolicy": "Always"}],
        restartPolicy="Never",
    )

    async def succeeded() -> Obj | None:
        status = (await node.pod("job-like"))["status"]
        return status if status.get("phase") == "Succeeded" else None

    status = await eventually(succeeded, timeout=20, what="pod Succeeded")
    proxy = status["initContainerStatuses"][0]
    assert "terminated" in proxy["state"]
