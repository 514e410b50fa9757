"""Probes and lifecycle hooks of the node agent, against a real server with real processes:
an in-process agent (the ``node`` fixture of ``test_agent``) runs each pod."""

from __future__ import annotations

from typing import Any

from setpoint.client.api import EVENTS, PODS
from tests.integration import test_agent
from tests.integration.test_agent import AgentNode
from tests.support import eventually

node = test_agent.node  # a fresh node with its own supervisor and in-process agent

Obj = dict[str, Any]


def exec_probe(script: str, **fields: Any) -> Obj:
    return {"exec": {"command": ["sh", "-c", script]}, "periodSeconds": 1, **fields}


async def ready_condition(node: AgentNode, name: str) -> str:
    conditions = (await node.pod(name)).get("status", {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


async def wait_ready(node: AgentNode, name: str, want: str, timeout: float = 15) -> None:
    async def check() -> bool:
        return await ready_condition(node, name) == want

    await eventually(check, timeout=timeout, what=f"{name} Ready={want}")


async def events_of(node: AgentNode, name: str) -> list[Obj]:
    events = await node.client.list(EVENTS, node.namespace)
    return [e for e in events["items"] if e["involvedObject"].get("name") == name]


async def test_readiness_exec_probe_flips_ready(node: AgentNode) -> None:
    marker = node.shared / "ready"
    probe = exec_probe(f"test -f {marker}", failureThreshold=1)
    await node.create_pod("flip", {"command": ["sleep", "1000"], "readinessProbe": probe})
    await node.running_pid("flip")
    assert await ready_condition(node, "flip") == "False"
    marker.touch()
    await wait_ready(node, "flip", "True")
    assert (await node.app_status("flip"))["ready"] is True
    marker.unlink()
    await wait_ready(node, "flip", "False")
    pod = await node.pod("flip")
    containers_ready = next(
        c for c in pod["status"]["conditions"] if c["type"] == "ContainersReady"
    )
    assert containers_ready["status"] == "False"
    messages = [e["message"] for e in await events_of(node, "flip") if e["reason"] == "Unhealthy"]
    assert any(m.startswith("Readiness probe failed") for m in messages)


async def test_http_get_readiness_probe_against_a_real_http_server(node: AgentNode) -> None:
    # (the node has no pod network: the app listens on the port assigned to its containerPort)
    server = "exec python3 -m http.server --bind 127.0.0.1 $PORT"
    await node.create_pod(
        "web",
        {
            "command": ["sh", "-c", server],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        },
    )
    await node.running_pid("web")
    await wait_ready(node, "web", "True")


async def test_liveness_failure_restarts_the_container(node: AgentNode) -> None:
    probe = exec_probe("echo broken; exit 1", failureThreshold=2)
    await node.create_pod(
        "sick",
        {"command": ["sleep", "1000"], "livenessProbe": probe},
        terminationGracePeriodSeconds=1,
    )
    await node.running_pid("sick")

    async def restarted() -> bool:
        return int((await node.app_status("sick")).get("restartCount", 0)) >= 1

    await eventually(restarted, timeout=20, what="restart after liveness failure")
    await node.running_pid("sick")  # remember the new process for cleanup
    events = await events_of(node, "sick")
    unhealthy = [e for e in events if e["reason"] == "Unhealthy"]
    assert unhealthy and unhealthy[0]["type"] == "Warning"
    assert unhealthy[0]["message"].startswith("Liveness probe failed: broken")
    killing = [e["message"] for e in events if e["reason"] == "Killing"]
    assert "Container app failed liveness probe, will be restarted" in killing


async def test_startup_probe_holds_readiness_until_it_passes(node: AgentNode) -> None:
    marker = node.shared / "started"
    await node.create_pod(
        "slow",
        {
            "command": ["sleep", "1000"],
            "startupProbe": exec_probe(f"test -f {marker}", failureThreshold=100),
        },
    )
    await node.running_pid("slow")

    async def reported_unstarted() -> bool:
        status = await node.app_status("slow")
        return "running" in status.get("state", {}) and status.get("started") is False

    await eventually(reported_unstarted, what="running but not started")
    assert await ready_condition(node, "slow") == "False"
    marker.touch()
    await wait_ready(node, "slow", "True")
    assert (await node.app_status("slow"))["started"] is True


async def test_post_start_exec_hook_runs_with_the_container_env(node: AgentNode) -> None:
    out = node.shared / "post-start"
    await node.create_pod(
        "hooked",
        {
            "command": ["sleep", "1000"],
            "env": [{"name": "GREETING", "value": "hello"}],
            "lifecycle": {
                "postStart": {"exec": {"command": ["sh", "-c", f"echo $GREETING > {out}"]}}
            },
        },
    )
    await node.running_pid("hooked")

    async def written() -> str:
        return out.read_text().strip() if out.exists() else ""

    assert await eventually(written, what="postStart output") == "hello"


async def test_failed_post_start_hook_kills_the_container(node: AgentNode) -> None:
    await node.create_pod(
        "badhook",
        {
            "command": ["sleep", "1000"],
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 1"]}}},
        },
        restartPolicy="Never",
        terminationGracePeriodSeconds=1,
    )

    async def failed() -> Obj | None:
        pod = await node.pod("badhook")
        return pod if pod["status"].get("phase") == "Failed" else None

    await eventually(failed, what="pod Failed after its postStart hook failed")

    async def reported() -> bool:  # events are written after the status, by a queue
        return "FailedPostStartHook" in {e["reason"] for e in await events_of(node, "badhook")}

    await eventually(reported, what="a FailedPostStartHook event")


async def test_pre_stop_hook_runs_before_sigterm_on_deletion(node: AgentNode) -> None:
    out = node.shared / "order"
    script = f"trap 'echo term >> {out}; exit 0' TERM; while :; do sleep 0.1; done"
    await node.create_pod(
        "orderly",
        {
            "command": ["sh", "-c", script],
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", f"echo prestop >> {out}"]}}},
        },
    )
    await node.running_pid("orderly")
    await node.client.delete(PODS, "orderly", node.namespace, grace_period_seconds=10)
    await node.wait_gone("orderly")
    assert out.read_text().split() == ["prestop", "term"]
