"""A lost supervisor is a node fault the agent repairs at once: a real server, an agent, a
supervisor killed with SIGKILL.

The agent notices the supervisor's change stream break, reports its node ``Ready=False``
(``KubeletNotReady``, "container runtime is down"), starts a new supervisor, which re-adopts
the containers that kept running and records the exits of those that died meanwhile, then
reports the node ready again; a container killed in the gap is restarted by its restart
policy with its exit in ``lastState``, and a pod deleted around it goes away."""

# ruff: noqa: F811  (the ``node`` fixture is imported, and test parameters must share its name)

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from setpoint.agent.supervisor import proc_start_time
from setpoint.client.api import NODES
from tests.integration.test_agent import AgentNode, node  # noqa: F401
from tests.support import Kubectl, eventually

Obj = dict[str, Any]


class ReadyHistory:
    """Every Ready condition the node's watch shows, in order, as (status, reason, message)."""

    def __init__(self, node: AgentNode) -> None:
        self.node = node
        self.seen: list[tuple[str, str, str]] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadyHistory:
        current = await self.node.client.get(NODES, self.node.name)
        self._note(current)
        version = current["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(self._follow(version))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _follow(self, version: str) -> None:
        selector = f"metadata.name={self.node.name}"
        async for _, obj in self.node.client.watch(
            NODES, resource_version=version, field_selector=selector
        ):
            self._note(obj)

    def _note(self, node_obj: Obj) -> None:
        for c in node_obj.get("status", {}).get("conditions", []):
            if c["type"] == "Ready":
                entry = (c["status"], c["reason"], c["message"])
                if not self.seen or self.seen[-1] != entry:
                    self.seen.append(entry)


async def supervisor_pid(node: AgentNode) -> int:
    return int((await node.runtime.info())["pid"])


async def test_container_killed_with_its_supervisor_is_restarted_and_node_recovers(
    node: AgentNode,
) -> None:
    await node.create_pod("survivor", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("survivor")
    supervisor = await supervisor_pid(node)
    async with ReadyHistory(node) as history:
        os.kill(supervisor, signal.SIGKILL)  # the same instant
        os.kill(pid, signal.SIGKILL)

        async def restarted() -> Obj | None:
            status = await node.app_status("survivor")
            running = "running" in status.get("state", {})
            return status if running and status.get("restartCount") == 1 else None

        status = await eventually(restarted, timeout=20, what="the container restarted")

        async def ready_again() -> bool:
            return history.seen[-1][0] == "True" and len(history.seen) >= 3

        await eventually(ready_again, timeout=20, what="the node Ready again")
    # a new supervisor runs the node now
    assert await supervisor_pid(node) != supervisor
    # its exit status died with the supervisor that reaped it: containerd's unknown exit
    last = status["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (255, "Unknown")
    assert [s for s, _, _ in history.seen] == ["True", "False", "True"]
    assert history.seen[1][1:] == ("KubeletNotReady", "container runtime is down")
    assert (await node.pod("survivor"))["status"]["phase"] == "Running"
    await node.running_pid("survivor")  # remember the new process for cleanup


async def test_live_containers_are_kept_across_a_supervisor_loss(node: AgentNode) -> None:
    await node.create_pod("keeper", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("keeper")
    started = proc_start_time(pid)
    supervisor = await supervisor_pid(node)
    os.kill(supervisor, signal.SIGKILL)

    async def new_supervisor() -> bool:
        with contextlib.suppress(ConnectionError):
            return await supervisor_pid(node) != supervisor
        return False

    await eventually(new_supervisor, timeout=20, what="a new supervisor")
    assert proc_start_time(pid) == started  # re-adopted, not restarted
    assert (await node.app_status("keeper"))["restartCount"] == 0


async def test_pod_deleted_while_its_supervisor_is_lost_goes_away(
    node: AgentNode, kubectl: Kubectl
) -> None:
    await node.create_pod("leaving", {"command": ["sleep", "1000"]})
    pid = await node.running_pid("leaving")
    started = proc_start_time(pid)
    os.kill(await supervisor_pid(node), signal.SIGKILL)
    done = await asyncio.to_thread(kubectl, "delete", "pod", "leaving", "--timeout=60s")
    assert done.returncode == 0, done.stderr
    assert 'pod "leaving" deleted' in done.stdout
    await node.wait_gone("leaving")  # kubectl waited for it: gone already
    assert proc_start_time(pid) != started
