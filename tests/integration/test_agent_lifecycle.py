"""Lifecycle limits the node agent enforces on running pods (``activeDeadlineSeconds``), with
an in-process agent against a real server and real processes (the ``node`` fixture)."""

from __future__ import annotations

from typing import Any

from setpoint.agent.lifecycle import DEADLINE_MESSAGE, DEADLINE_REASON
from setpoint.agent.supervisor import proc_start_time
from setpoint.client.api import EVENTS, PODS
from tests.integration.test_agent import AgentNode, node  # noqa: F401
from tests.support import eventually

Obj = dict[str, Any]


async def _phase(node: AgentNode, name: str, phase: str) -> Obj | None:  # noqa: F811
    pod = await node.pod(name)
    return pod if pod.get("status", {}).get("phase") == phase else None


async def test_pod_past_its_active_deadline_is_killed_and_failed(node: AgentNode) -> None:  # noqa: F811
    created = await node.create_pod(
        "deadline", {"command": ["sleep", "1000"]}, activeDeadlineSeconds=2
    )
    pid = await node.running_pid("deadline")
    start_time = proc_start_time(pid)

    pod = await eventually(lambda: _phase(node, "deadline", "Failed"), timeout=15, what="Failed")
    assert pod["status"]["reason"] == DEADLINE_REASON
    assert pod["status"]["message"] == DEADLINE_MESSAGE
    assert proc_start_time(pid) != start_time  # the process is gone
    state = pod["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"

    async def event() -> bool:
        events = await node.client.list(EVENTS, node.namespace)
        return any(
            e["involvedObject"].get("uid") == created["metadata"]["uid"]
            and e["reason"] == DEADLINE_REASON
            and e["message"] == DEADLINE_MESSAGE
            for e in events["items"]
        )

    await eventually(event, what="DeadlineExceeded event")


async def test_failed_for_deadline_pod_is_not_restarted(node: AgentNode) -> None:  # noqa: F811
    await node.create_pod("stays-down", {"command": ["sleep", "1000"]}, activeDeadlineSeconds=1)
    await node.running_pid("stays-down")
    await eventually(lambda: _phase(node, "stays-down", "Failed"), timeout=15, what="Failed")
    # a restart of the agent re-reads everything: the pod must stay Failed, nothing restarted
    await node.stop_agent()
    await node.start_agent()
    await node.client.patch(
        PODS, "stays-down", {"metadata": {"labels": {"poke": "1"}}}, node.namespace
    )
    pod = await eventually(
        lambda: _phase(node, "stays-down", "Failed"), timeout=5, what="still Failed"
    )
    assert pod["status"]["reason"] == DEADLINE_REASON
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    assert "terminated" in pod["status"]["containerStatuses"][0]["state"]


async def test_pod_that_finishes_before_its_deadline_succeeds(node: AgentNode) -> None:  # noqa: F811
    await node.create_pod(
        "quick", {"command": ["true"]}, restartPolicy="Never", activeDeadlineSeconds=30
    )
    pod = await eventually(lambda: _phase(node, "quick", "Succeeded"), what="Succeeded")
    assert "reason" not in pod["status"]
