"""Killing a container's current instance (a failed liveness probe) leaves its restart policy
in charge, unlike stopping it: a real supervisor with real processes."""

from __future__ import annotations

import time

from setpoint.agent.supervisor import proc_start_time
from tests.unit import test_runtime
from tests.unit.test_runtime import Node, exited, instance_log, restarted, running, until

node = test_runtime.node  # the supervisor fixture of the runtime tests


async def test_killed_instance_is_restarted_when_policy_is_always(node: Node) -> None:
    first = await node.start(node.spec("app", "exec sleep 60"))
    await node.runtime.kill_instance("pod-1/app", grace_seconds=5, restart_count=0)
    state = await node.wait_for("pod-1/app", restarted(1))
    assert state.pid != first.pid
    assert state.last_exit is not None
    assert state.last_exit.exit_code == 143  # SIGTERM: 128 + 15
    assert proc_start_time(first.pid or 0) != first.pid_start_time


async def test_killed_instance_stays_exited_when_policy_is_never(node: Node) -> None:
    await node.start(node.spec("app", "exec sleep 60", restart_policy="Never"))
    state = await node.runtime.kill_instance("pod-1/app", grace_seconds=5)
    state = await node.wait_for("pod-1/app", exited)
    assert state.restart_count == 0
    assert state.last_exit is not None and state.last_exit.signal == 15


async def test_kill_escalates_to_sigkill_after_the_grace_period(node: Node) -> None:
    spec = node.spec("app", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
    await node.start(spec)
    log = instance_log(spec)  # the trap is set once it says so (a loaded machine is slow)
    await until(lambda: log.exists() and b"ready" in log.read_bytes())
    started = time.monotonic()
    await node.runtime.kill_instance("pod-1/app", grace_seconds=0.3)
    state = await node.wait_for("pod-1/app", restarted(1))
    assert time.monotonic() - started >= 0.3
    assert state.last_exit is not None and state.last_exit.exit_code == 137


async def test_kill_of_an_older_instance_leaves_the_current_one_running(node: Node) -> None:
    await node.start(node.spec("app", "exec sleep 60"))
    await node.runtime.kill_instance("pod-1/app", grace_seconds=5, restart_count=0)
    current = await node.wait_for("pod-1/app", restarted(1))
    after = await node.runtime.kill_instance("pod-1/app", grace_seconds=5, restart_count=0)
    assert after.pid == current.pid and after.restart_count == 1
    assert running(await node.get("pod-1/app"))
