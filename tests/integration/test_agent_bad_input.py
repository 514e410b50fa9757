"""Bad pods on a real agent: each gets the Kubernetes reason in its status and a Warning
event, and the agent goes on running the pod next to it.

Every test starts a healthy pod first and checks, after the bad pod has been reported, that
the healthy one is still Running with its first process and that the agent still starts new
pods."""

# ruff: noqa: F811  (the ``node`` fixture is imported, and test parameters must share its name)

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from setpoint.client.api import CONFIGMAPS, EVENTS
from tests import objects
from tests.integration.test_agent import AgentNode, node  # noqa: F401
from tests.support import eventually

Obj = dict[str, Any]
SLEEP = {"command": ["sleep", "1000"]}


async def warning_reasons(node: AgentNode, name: str) -> set[str]:
    uid = (await node.pod(name))["metadata"]["uid"]
    events = (await node.client.list(EVENTS, node.namespace))["items"]
    return {
        e["reason"]
        for e in events
        if e["involvedObject"].get("uid") == uid and e.get("type") == "Warning"
    }


async def reported(
    node: AgentNode, name: str, *, reason: str, event: str, where: Callable[[Obj], str]
) -> Obj:
    """Wait until the pod's app container status shows ``reason`` (read with ``where``) and
    a Warning event ``event`` was recorded about the pod."""

    async def check() -> Obj | None:
        status = await node.app_status(name)
        if where(status) == reason and event in await warning_reasons(node, name):
            return status
        return None

    return await eventually(check, timeout=20, what=f"{name}: {reason} and {event}")


async def agent_carries_on(node: AgentNode, healthy_pid: int) -> None:
    assert await node.running_pid("healthy") == healthy_pid
    await node.create_pod("after", SLEEP)
    await node.running_pid("after")


def waiting_reason(status: Obj) -> str:
    return str(((status.get("state") or {}).get("waiting") or {}).get("reason", ""))


def last_terminated_reason(status: Obj) -> str:
    return str(((status.get("lastState") or {}).get("terminated") or {}).get("reason", ""))


async def with_healthy_neighbour(node: AgentNode, bad: Callable[[], Awaitable[None]]) -> int:
    await node.create_pod("healthy", SLEEP)
    pid = await node.running_pid("healthy")
    await bad()
    return pid


async def test_working_dir_that_does_not_exist_is_a_start_error(node: AgentNode) -> None:
    async def bad() -> None:
        container = {**SLEEP, "workingDir": "/no/such/dir"}
        await node.create_pod("nowd", container, restartPolicy="Never")

    pid = await with_healthy_neighbour(node, bad)

    def terminated_reason(status: Obj) -> str:
        return str(((status.get("state") or {}).get("terminated") or {}).get("reason", ""))

    status = await reported(
        node, "nowd", reason="StartError", event="Failed", where=terminated_reason
    )
    assert "/no/such/dir" in status["state"]["terminated"]["message"]
    await agent_carries_on(node, pid)


async def test_missing_config_map_key_is_create_container_config_error(node: AgentNode) -> None:
    async def bad() -> None:
        cfg = objects.configmap("cfg", data={"a": "1"})
        await node.client.create(CONFIGMAPS, cfg, node.namespace)
        ref = {"configMapKeyRef": {"name": "cfg", "key": "missing"}}
        await node.create_pod("nokey", {**SLEEP, "env": [{"name": "X", "valueFrom": ref}]})

    pid = await with_healthy_neighbour(node, bad)
    status = await reported(
        node, "nokey", reason="CreateContainerConfigError", event="Failed", where=waiting_reason
    )
    assert "missing" in status["state"]["waiting"]["message"]
    await agent_carries_on(node, pid)


async def test_probe_on_a_port_name_the_container_does_not_have_is_unhealthy(
    node: AgentNode,
) -> None:
    async def bad() -> None:
        probe = {"tcpSocket": {"port": "nope"}, "periodSeconds": 1}
        await node.create_pod("badport", {**SLEEP, "readinessProbe": probe})

    pid = await with_healthy_neighbour(node, bad)

    async def unhealthy() -> bool:
        return "Unhealthy" in await warning_reasons(node, "badport")

    await eventually(unhealthy, timeout=20, what="Unhealthy event for the bad port")
    status = await node.app_status("badport")
    assert "running" in status["state"] and status["ready"] is False
    await agent_carries_on(node, pid)


async def test_host_path_of_the_wrong_type_is_failed_mount(node: AgentNode) -> None:
    async def bad() -> None:
        volume = {"name": "v", "hostPath": {"path": "/etc", "type": "File"}}
        container = {**SLEEP, "volumeMounts": [{"name": "v", "mountPath": "/mnt/sp-bad"}]}
        await node.create_pod("badmount", container, volumes=[volume])

    pid = await with_healthy_neighbour(node, bad)
    await reported(
        node, "badmount", reason="ContainerCreating", event="FailedMount", where=waiting_reason
    )
    await agent_carries_on(node, pid)
