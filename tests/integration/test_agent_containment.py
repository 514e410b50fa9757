"""A pod's containers are their cgroups: a real server, an agent, real processes.

What a container forks at its very start is inside its cgroup (and its limits), a process
that starts a session of its own does not outlive a deleted pod, and the node's per-pod
process limit (``--pod-max-pids``) contains a fork bomb."""

# ruff: noqa: F811  (the ``node`` fixture is imported, and test parameters must share its name)

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent import cgroups
from setpoint.agent import pods as podspec
from setpoint.agent.supervisor import cgroup_dirs, cgroup_pids, proc_start_time
from setpoint.client.api import PODS
from tests.integration.test_agent import AgentNode, killall, node  # noqa: F401
from tests.integration.test_agent_sandbox import pod_events
from tests.support import eventually

Obj = dict[str, Any]


def usable_host(*controllers: str) -> cgroups.Host:
    host = cgroups.Host.detect()
    if os.geteuid() != 0 or host.version == 0:
        pytest.skip("containment needs the agent to run as root with cgroups")
    for controller in controllers:
        if controller in host.missing:
            pytest.skip(host.missing[controller])
    return host


async def container_cgroup(node: AgentNode, pod_name: str) -> Path:
    """The container ``app``'s cgroup directory in the first hierarchy it joined."""
    uid = (await node.pod(pod_name))["metadata"]["uid"]
    return cgroup_dirs(cgroups.pod_parent(uid), f"{uid}/app")[0]


async def run_daemonizing_pod(node: AgentNode, name: str) -> tuple[int, int | None, Path]:
    """Run a pod whose container starts a process in a session of its own (``setsid``):
    no process group signal reaches it. Returns that process (pid, start time) and the
    container's cgroup."""
    await node.create_pod(name, {"command": ["sh", "-c", "setsid sleep 1000 & exec sleep 1000"]})
    main = await node.running_pid(name)
    leaf = await container_cgroup(node, name)

    async def escaped() -> int | None:
        others = [pid for pid in cgroup_pids(leaf) if pid != main]
        return others[0] if others and os.getsid(others[0]) == others[0] else None

    pid = await eventually(escaped, what="the setsid child in its own session")
    return pid, proc_start_time(pid), leaf


async def delete_and_wait_gone(node: AgentNode, name: str) -> None:
    await node.client.delete(PODS, name, node.namespace, grace_period_seconds=1)
    await node.wait_gone(name)


async def test_memory_used_by_children_forked_at_start_is_limited(node: AgentNode) -> None:
    usable_host("memory")
    allocate = 'python3 -c "b = bytearray(150 * 1024 * 1024)"'
    await node.create_pod(
        "fork-hog",
        {
            "command": ["sh", "-c", f"{allocate} & wait $!"],
            "resources": {"limits": {"memory": "30Mi"}},
        },
        restartPolicy="Never",
    )

    async def terminated() -> Obj | None:
        state: Obj | None = (await node.app_status("fork-hog")).get("state", {}).get("terminated")
        return state

    state = await eventually(terminated, timeout=30, what="fork-hog terminated")
    assert state["reason"] == "OOMKilled"
    await delete_and_wait_gone(node, "fork-hog")


async def test_all_two_hundred_children_run_inside_the_container(node: AgentNode) -> None:
    usable_host()
    script = "for i in $(seq 200); do sleep 1000 & done; wait"
    await node.create_pod("crowd", {"command": ["sh", "-c", script]})
    main = await node.running_pid("crowd")
    leaf = await container_cgroup(node, "crowd")

    async def all_forked() -> list[int] | None:
        children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        return [int(c) for c in children] if len(children) == 200 else None

    children = await eventually(all_forked, timeout=30, what="200 children forked")
    inside = set(cgroup_pids(leaf))
    assert set(children) <= inside
    assert main in inside
    identities = [(pid, proc_start_time(pid)) for pid in children]
    await delete_and_wait_gone(node, "crowd")
    assert all(proc_start_time(pid) != started for pid, started in identities)


async def test_setsid_child_does_not_outlive_its_deleted_pod(node: AgentNode) -> None:
    usable_host()
    pid, started, _ = await run_daemonizing_pod(node, "daemonizer")
    await delete_and_wait_gone(node, "daemonizer")
    assert proc_start_time(pid) != started


async def test_pod_pid_limit_contains_a_fork_bomb(node: AgentNode) -> None:
    usable_host("pids")
    await node.stop_agent()
    await node.start_agent(pod_max_pids=20)
    bomb = "while :; do sleep 1000 & sleep 0.001; done"
    pod = await node.create_pod("bomb", {"command": ["sh", "-c", bomb]})
    await node.running_pid("bomb")
    uid = pod["metadata"]["uid"]
    pod_dir = cgroups.Host.detect().dirs(cgroups.pod_parent(uid))["pids"]
    assert (pod_dir / "pids.max").read_text().strip() == "20"

    log = podspec.pod_log_dir(node.data_dir, pod) / "app" / "0.log"

    async def refused() -> bool:  # the shell says when a fork fails: "Cannot fork"
        return log.exists() and b"fork" in log.read_bytes().lower()

    await eventually(refused, timeout=30, what="forks refused at the pod's limit")
    assert int((pod_dir / "pids.current").read_text()) <= 20
    await delete_and_wait_gone(node, "bomb")


async def test_pid_limit_without_a_pids_controller_is_a_warning(node: AgentNode) -> None:
    await node.stop_agent()
    agent = await node.start_agent(pod_max_pids=50)
    host = agent.sandboxes.cgroups
    agent.sandboxes.cgroups = cgroups.Host(
        host.version, {**host.missing, "pids": "no cgroup v1 pids hierarchy"}, host.root
    )
    pod = await node.create_pod("unlimited", {"command": ["sleep", "1000"]})
    await node.running_pid("unlimited")

    async def warned() -> list[Obj]:
        return await pod_events(node, pod["metadata"]["uid"], "ResourceLimitsNotEnforced")

    (event,) = await eventually(warned, what="a ResourceLimitsNotEnforced event")
    assert event["type"] == "Warning"
    assert "pod pid limit 50 of the node (no cgroup v1 pids hierarchy)" in event["message"]
    await delete_and_wait_gone(node, "unlimited")


async def test_killall_kills_what_left_the_process_group(node: AgentNode) -> None:
    usable_host()
    pid, started, leaf = await run_daemonizing_pod(node, "detached")
    await node.stop_agent()
    await killall(node.data_dir)
    assert proc_start_time(pid) != started
    assert not leaf.exists()
