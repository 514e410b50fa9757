"""Per-pod port assignment for pods in the node's network (the agent has no pod network):
two replicas declaring containerPort 8080 each get a node port of their own through
``$PORT``, are probed on it, and their Service's endpoints name it."""

# ruff: noqa: F811  (the fixtures are imported, and test parameters must share their names)

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from setpoint.agent.dynports import FILE_NAME
from setpoint.client.api import EVENTS, SERVICES, Obj
from setpoint.meta.assignedports import ANNOTATION
from tests.integration.test_agent import AgentNode, node  # noqa: F401
from tests.integration.test_endpointslice_controller import (  # noqa: F401
    controllers,
    slice_endpoints,
    web_service,
)
from tests.support import eventually

SERVER = ["sh", "-c", "exec python3 -m http.server $PORT --directory /tmp"]
HTTP = {"name": "http", "containerPort": 8080}
READY = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}


async def create_replica(node: AgentNode, name: str) -> None:
    container = {"command": SERVER, "ports": [HTTP], "readinessProbe": READY}
    await node.create_pod(name, container, labels={"app": "web"})


async def assigned_port(node: AgentNode, name: str) -> int:
    async def annotated() -> int | None:
        annotations = (await node.pod(name))["metadata"].get("annotations") or {}
        text = annotations.get(ANNOTATION)
        return int(json.loads(text)["8080/TCP"]) if text else None

    return await eventually(annotated, what=f"{name}'s assigned-ports annotation")


async def ready(node: AgentNode, name: str) -> bool:
    conditions = (await node.pod(name)).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def http_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def pod_event(node: AgentNode, uid: str, reason: str) -> Obj | None:
    events = await node.client.list(EVENTS, node.namespace)
    found = [
        e
        for e in events["items"]
        if e["involvedObject"].get("uid") == uid and e.get("reason") == reason
    ]
    return found[0] if found else None


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(v.decode().partition("=")[::2] for v in raw if v)


async def test_two_replicas_of_one_port_each_listen_on_their_own_node_port(
    node: AgentNode,
) -> None:
    await create_replica(node, "web-a")
    await create_replica(node, "web-b")
    ports = {name: await assigned_port(node, name) for name in ("web-a", "web-b")}
    assert ports["web-a"] != ports["web-b"]
    for name, port in ports.items():
        pid = await node.running_pid(name)
        env = environ(pid)
        assert env["PORT"] == env["PORT_8080"] == env["PORT_HTTP"] == str(port)
        await eventually(lambda n=name: ready(node, n), what=f"{name} Ready on its own port")
        assert b"200 OK" in await http_get(port)
        pod = await node.pod(name)
        assert (await node.app_status(name)).get("restartCount") == 0
        event = await eventually(
            lambda p=pod: pod_event(node, p["metadata"]["uid"], "ContainerPortsAssigned"),
            what=f"{name}'s ContainerPortsAssigned event",
        )
        assert event["type"] == "Normal"
        assert f"containerPort 8080/TCP is node port {port}" in event["message"]
        assert "(env PORT_8080, PORT_HTTP, PORT)" in event["message"]
        assert await pod_event(node, pod["metadata"]["uid"], "ContainerPortsNotIsolated") is None
        recorded = node.data_dir / "pods" / pod["metadata"]["uid"] / FILE_NAME
        assert json.loads(recorded.read_text()) == {"8080/TCP": port}


async def test_an_explicit_port_env_wins_over_the_assigned_one(node: AgentNode) -> None:
    container = {
        "command": ["sleep", "3600"],
        "ports": [HTTP],
        "env": [{"name": "PORT", "value": "1"}],
    }
    await node.create_pod("own-port", container)
    port = await assigned_port(node, "own-port")
    env = environ(await node.running_pid("own-port"))
    assert env["PORT"] == "1"
    assert env["PORT_8080"] == str(port)


async def test_a_service_reaches_each_replica_on_its_assigned_port(
    node: AgentNode, controllers: None
) -> None:
    await create_replica(node, "web-a")
    await create_replica(node, "web-b")
    ports = sorted([await assigned_port(node, "web-a"), await assigned_port(node, "web-b")])
    await node.client.create(SERVICES, web_service(), node.namespace)

    async def both_ready() -> list[tuple[str, int, bool]] | None:
        endpoints = await slice_endpoints(node.client, node.namespace)
        return endpoints if endpoints == [("127.0.0.1", p, True) for p in ports] else None

    await eventually(both_ready, timeout=30, what="endpoints on the assigned ports")


async def test_a_udp_port_is_still_warned_about(node: AgentNode) -> None:
    ports = [HTTP, {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]
    created = await node.create_pod("udp", {"command": ["sleep", "3600"], "ports": ports})
    uid = created["metadata"]["uid"]
    warning = await eventually(
        lambda: pod_event(node, uid, "ContainerPortsNotIsolated"), what="the UDP port's Warning"
    )
    assert "5353/UDP are bound on the node" in warning["message"]
    assert "8080/TCP" not in warning["message"]
    assert await pod_event(node, uid, "ContainerPortsAssigned") is not None
