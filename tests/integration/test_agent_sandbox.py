"""The pod sandbox against a real server and real processes: volumes mounted in a private
mount namespace, FailedMount for a missing source, cgroup limits and OOM kills.

A container's own view of the filesystem is read through ``/proc/<pid>/root``, which
resolves paths in the mount namespace of that process."""

# ruff: noqa: F811  (the ``node`` fixture is imported, and test parameters must share its name)

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent import cgroups
from setpoint.agent.sandbox import mounts_under
from setpoint.client.api import CONFIGMAPS, EVENTS, PODS
from tests import objects
from tests.integration.test_agent import AgentNode, node  # noqa: F401
from tests.support import eventually

Obj = dict[str, Any]

SLEEP = ["sleep", "3600"]


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mount namespaces and cgroup limits need the agent to run as root")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_configmap(node: AgentNode, name: str, data: dict[str, str]) -> None:
    await node.client.create(CONFIGMAPS, objects.configmap(name, data=data), node.namespace)


async def pod_events(node: AgentNode, uid: str, reason: str) -> list[Obj]:
    events = await node.client.list(EVENTS, node.namespace)
    return [
        e
        for e in events["items"]
        if e["involvedObject"].get("uid") == uid and e.get("reason") == reason
    ]


async def delete_and_wait_gone(node: AgentNode, name: str) -> None:
    await node.client.delete(PODS, name, node.namespace)
    await node.wait_gone(name)


async def test_configmap_volume_is_visible_inside_the_container_but_not_on_the_host(
    node: AgentNode,
) -> None:
    needs_root()
    cm, mount_path = unique("cm"), f"/etc/{unique('sp-test')}"
    await create_configmap(node, cm, {"greeting": "hello"})
    await node.create_pod(
        "cm-pod",
        {"command": SLEEP, "volumeMounts": [{"name": "cfg", "mountPath": mount_path}]},
        volumes=[{"name": "cfg", "configMap": {"name": cm}}],
    )
    pid = await node.running_pid("cm-pod")
    inside = Path(f"/proc/{pid}/root{mount_path}/greeting")

    async def entered() -> str | None:  # (running: nsenter may not have entered it yet)
        return inside.read_text() if inside.exists() else None

    assert await eventually(entered, timeout=10, what="the volume inside") == "hello"
    assert not Path(mount_path, "greeting").exists()
    await delete_and_wait_gone(node, "cm-pod")
    os.rmdir(mount_path)  # the mount point the sandbox had to create on the host


async def test_exec_probe_sees_the_containers_volumes(node: AgentNode) -> None:
    needs_root()
    cm, mount_path = unique("cm"), f"/etc/{unique('sp-test')}"
    await create_configmap(node, cm, {"ready": "yes"})
    probe = {"exec": {"command": ["cat", f"{mount_path}/ready"]}, "periodSeconds": 1}
    await node.create_pod(
        "probed-volume",
        {
            "command": SLEEP,
            "readinessProbe": probe,
            "volumeMounts": [{"name": "cfg", "mountPath": mount_path}],
        },
        volumes=[{"name": "cfg", "configMap": {"name": cm}}],
    )
    await node.running_pid("probed-volume")

    async def ready() -> bool:
        return bool((await node.app_status("probed-volume")).get("ready"))

    await eventually(ready, timeout=15, what="readiness read from the mounted volume")
    await delete_and_wait_gone(node, "probed-volume")
    os.rmdir(mount_path)


async def test_read_only_volume_mount_rejects_writes(node: AgentNode) -> None:
    needs_root()
    ro, rw = f"/tmp/{unique('sp-ro')}", f"/tmp/{unique('sp-rw')}"
    await node.create_pod(
        "ro-pod",
        {
            "command": SLEEP,
            "volumeMounts": [
                {"name": "scratch", "mountPath": ro, "readOnly": True},
                {"name": "scratch", "mountPath": rw},
            ],
        },
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    pid = await node.running_pid("ro-pod")
    Path(f"/proc/{pid}/root{rw}/written").write_text("ok")
    assert Path(f"/proc/{pid}/root{ro}/written").read_text() == "ok"  # the same volume
    with pytest.raises(OSError) as info:
        Path(f"/proc/{pid}/root{ro}/other").write_text("no")
    assert info.value.errno == errno.EROFS
    await delete_and_wait_gone(node, "ro-pod")
    os.rmdir(ro)
    os.rmdir(rw)


async def test_missing_configmap_is_failed_mount_until_it_is_created(node: AgentNode) -> None:
    cm = unique("late")
    pod = await node.create_pod(
        "late-pod",
        {"command": SLEEP},
        volumes=[{"name": "cfg", "configMap": {"name": cm}}],
    )
    uid = pod["metadata"]["uid"]
    expected = f'MountVolume.SetUp failed for volume "cfg" : configmap "{cm}" not found'

    async def failed_mount() -> bool:
        events = await pod_events(node, uid, "FailedMount")
        return any(e["message"] == expected and e["type"] == "Warning" for e in events)

    await eventually(failed_mount, what="FailedMount event")
    waiting = (await node.app_status("late-pod")).get("state", {}).get("waiting", {})
    assert waiting.get("reason") == "ContainerCreating"
    await create_configmap(node, cm, {"k": "v"})
    await node.running_pid("late-pod")  # within the 10 s retry
    await delete_and_wait_gone(node, "late-pod")


async def test_memory_limit_oom_kill_is_reported_as_oom_killed(node: AgentNode) -> None:
    needs_root()
    host = cgroups.Host.detect()
    if host.version == 0 or "memory" in host.missing:
        pytest.skip(f"no usable cgroup memory controller: {host.missing.get('memory')}")
    allocate = "b=bytearray(200*1024*1024); import time; time.sleep(5)"
    await node.create_pod(
        "oom-pod",
        {
            "command": ["python3", "-c", allocate],
            "resources": {"limits": {"memory": "30Mi"}},
        },
        restartPolicy="Never",
    )

    async def oom_killed() -> Obj | None:
        state = (await node.app_status("oom-pod")).get("state", {})
        terminated: Obj | None = state.get("terminated")
        return terminated

    terminated = await eventually(oom_killed, what="oom-pod terminated")
    assert terminated["reason"] == "OOMKilled", terminated
    assert terminated["exitCode"] == 137
    await delete_and_wait_gone(node, "oom-pod")


async def test_cpu_limit_is_written_to_the_cfs_quota(node: AgentNode) -> None:
    needs_root()
    host = cgroups.Host.detect()
    if host.version == 0 or "cpu" in host.missing:
        pytest.skip(f"no usable cgroup cpu controller: {host.missing.get('cpu')}")
    await node.create_pod(
        "cpu-pod",
        {
            "command": SLEEP,
            "resources": {"limits": {"cpu": "250m"}, "requests": {"cpu": "100m"}},
        },
    )
    pid = await node.running_pid("cpu-pod")
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    if host.version == 2:
        path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        assert Path(f"/sys/fs/cgroup{path}/cpu.max").read_text().split() == ["25000", "100000"]
    else:
        path = next(
            line.split(":", 2)[2] for line in lines if "cpu" in line.split(":", 2)[1].split(",")
        )
        cpu_dir = Path(f"/sys/fs/cgroup/cpu{path}")
        assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert (cpu_dir / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert (cpu_dir / "cpu.shares").read_text().strip() == "102"
    await delete_and_wait_gone(node, "cpu-pod")


async def test_configmap_change_reaches_the_mounted_volume(node: AgentNode) -> None:
    needs_root()
    assert node.agent is not None
    node.agent.sandboxes.resync_seconds = 0.5
    cm, mount_path = unique("cm"), f"/etc/{unique('sp-test')}"
    await create_configmap(node, cm, {"greeting": "hello"})
    await node.create_pod(
        "resync-pod",
        {"command": SLEEP, "volumeMounts": [{"name": "cfg", "mountPath": mount_path}]},
        volumes=[{"name": "cfg", "configMap": {"name": cm}}],
    )
    pid = await node.running_pid("resync-pod")
    current = await node.client.get(CONFIGMAPS, cm, node.namespace)
    current["data"] = {"greeting": "bonjour"}
    await node.client.update(CONFIGMAPS, current)
    greeting = Path(f"/proc/{pid}/root{mount_path}/greeting")

    async def updated() -> bool:
        return greeting.read_text() == "bonjour"

    await eventually(updated, what="new ConfigMap contents in the volume")
    await delete_and_wait_gone(node, "resync-pod")
    os.rmdir(mount_path)


async def test_deleted_pod_has_its_sandbox_torn_down(node: AgentNode) -> None:
    needs_root()
    mount_path = f"/tmp/{unique('sp-mem')}"
    pod = await node.create_pod(
        "gone-pod",
        {"command": SLEEP, "volumeMounts": [{"name": "mem", "mountPath": mount_path}]},
        volumes=[{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
    )
    await node.running_pid("gone-pod")
    pod_dir = node.data_dir.absolute() / "pods" / pod["metadata"]["uid"]
    assert mounts_under(pod_dir)  # the tmpfs and the namespace file
    await delete_and_wait_gone(node, "gone-pod")
    assert not pod_dir.exists()
    assert not mounts_under(pod_dir)
    os.rmdir(mount_path)
