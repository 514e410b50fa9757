"""A pod's securityContext on the node: the user, groups and capabilities its processes
get, runAsNonRoot, no_new_privs, a read-only root and fsGroup-owned volumes.

What a container process is comes from ``/proc/<pid>/status`` (its uid, gids, capability
sets, NoNewPrivs) and what it did from files it wrote into its emptyDir, read through
``/proc/<pid>/root``, which resolves paths in that process's mount namespace."""

# ruff: noqa: F811  (the ``node`` fixture is imported, and test parameters must share its name)

from __future__ import annotations

import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.namespaceusers import namespace_user
from setpoint.agent.securitycontext import NOBODY
from setpoint.client.api import SECRETS
from tests import objects
from tests.integration.test_agent import AgentNode, node  # noqa: F401
from tests.support import eventually

Obj = dict[str, Any]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")

OUT = {"name": "out", "mountPath": "/out"}
SCRATCH = [{"name": "out", "emptyDir": {}}]


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


async def workload(node: AgentNode, name: str, comm: str = "sleep") -> int:
    """The pid of the pod's container once it runs ``comm`` (before, it is still the
    nsenter and setpriv the agent starts it through, which are root)."""
    pid = await node.running_pid(name)

    async def execed() -> bool:
        return Path(f"/proc/{pid}/comm").read_text().strip() == comm

    await eventually(execed, what=f"{name} running {comm}")
    return pid


async def written(pid: int, name: str) -> str:
    """What the container wrote to ``/out/<name>``, once it did."""
    path = Path(f"/proc/{pid}/root/out/{name}")

    async def read() -> str | None:
        return path.read_text().strip() if path.exists() else None

    return await eventually(read, what=f"/out/{name}")


async def test_pod_runs_as_its_user_group_supplemental_groups_and_fs_group(
    node: AgentNode,
) -> None:
    script = "id -u > /out/uid; id -G > /out/groups; touch /out/made; exec sleep 3600"
    await node.create_pod(
        "ids",
        {"command": ["sh", "-c", script], "volumeMounts": [OUT]},
        volumes=SCRATCH,
        securityContext={
            "runAsUser": 1000,
            "runAsGroup": 3000,
            "supplementalGroups": [4000],
            "fsGroup": 2000,
        },
    )
    pid = await workload(node, "ids")
    status = proc_status(pid)
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["3000"] * 4
    assert status["Groups"].split() == ["2000", "4000"]
    assert await written(pid, "uid") == "1000"
    assert (await written(pid, "groups")).split() == ["3000", "2000", "4000"]
    volume = os.stat(f"/proc/{pid}/root/out")
    assert volume.st_gid == 2000 and volume.st_mode & stat.S_ISGID
    assert os.stat(f"/proc/{pid}/root/out/made").st_gid == 2000  # (setgid directory)


async def test_container_security_context_wins_over_the_pods(node: AgentNode) -> None:
    await node.create_pod(
        "override",
        {"command": ["sleep", "3600"], "securityContext": {"runAsUser": 1001}},
        securityContext={"runAsUser": 1000, "runAsGroup": 3000},
    )
    status = proc_status(await workload(node, "override"))
    assert status["Uid"].split()[0] == "1001"
    assert status["Gid"].split()[0] == "3000"


async def test_pods_without_a_user_run_as_their_namespaces_user(node: AgentNode) -> None:
    await node.create_pod("plain", {"command": ["sleep", "3600"]})
    status = proc_status(await workload(node, "plain"))
    user = str(namespace_user(node.namespace))
    assert (status["Uid"].split()[0], status["Gid"].split()[0]) == (user, user)
    assert status["CapEff"] == "0000000000000000"


async def test_a_fixed_default_user_is_used_and_root_there_fails_run_as_non_root(
    node: AgentNode,
) -> None:
    await node.stop_agent()
    await node.start_agent(default_run_as_user=NOBODY)
    await node.create_pod("nobody", {"command": ["sleep", "3600"]})
    status = proc_status(await workload(node, "nobody"))
    assert (status["Uid"].split()[0], status["Gid"].split()[0]) == (str(NOBODY), str(NOBODY))
    await node.stop_agent()
    await node.start_agent(default_run_as_user=0)
    await node.create_pod(
        "asroot", {"command": ["sleep", "3600"]}, securityContext={"runAsNonRoot": True}
    )

    async def refused() -> Obj | None:
        waiting: Obj | None = (await node.app_status("asroot")).get("state", {}).get("waiting")
        return waiting if waiting and waiting.get("message") else None

    waiting = await eventually(refused, what="CreateContainerConfigError")
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"].startswith("container has runAsNonRoot and image will run as root")


async def test_run_as_non_root_with_user_0_is_a_config_error_and_never_starts(
    node: AgentNode,
) -> None:
    await node.create_pod(
        "rootless",
        {"command": ["sleep", "3600"], "securityContext": {"runAsNonRoot": True}},
        securityContext={"runAsUser": 0},
    )

    async def refused() -> Obj | None:
        waiting: Obj | None = (await node.app_status("rootless")).get("state", {}).get("waiting")
        return waiting if waiting and waiting.get("message") else None

    waiting = await eventually(refused, what="CreateContainerConfigError")
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "runAsUser breaks non-root policy" in waiting["message"]
    assert "container: app" in waiting["message"]
    pod = await node.pod("rootless")
    assert pod["status"]["phase"] == "Pending"
    assert node.agent is not None
    assert f"{pod['metadata']['uid']}/app" not in node.agent._states


async def test_run_as_non_root_with_the_default_user_runs(node: AgentNode) -> None:
    await node.create_pod(
        "nonroot", {"command": ["sleep", "3600"]}, securityContext={"runAsNonRoot": True}
    )
    uid = proc_status(await workload(node, "nonroot"))["Uid"].split()[0]
    assert uid == str(namespace_user(node.namespace))


async def test_non_root_user_with_net_bind_service_binds_port_80_but_cannot_chown(
    node: AgentNode,
) -> None:
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    bind = f"import socket; s = socket.socket(); s.bind(({address!r}, 80)); print('bound')"
    script = (
        f'python3 -c "{bind}" > /out/bind 2>&1; touch /out/f; '
        "chown 0 /out/f 2> /out/chown && echo chowned > /out/chown; exec sleep 3600"
    )
    capabilities = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    await node.create_pod(
        "binder",
        {
            "command": ["sh", "-c", script],
            "volumeMounts": [OUT],
            "securityContext": {"runAsUser": 1000, "capabilities": capabilities},
        },
        volumes=SCRATCH,
    )
    pid = await workload(node, "binder")
    assert await written(pid, "bind") == "bound"
    assert "Operation not permitted" in await written(pid, "chown")
    status = proc_status(pid)
    net_bind_service = f"{1 << 10:016x}"
    assert status["CapEff"] == status["CapAmb"] == status["CapBnd"] == net_bind_service


async def test_dropped_capabilities_leave_root_without_them(node: AgentNode) -> None:
    await node.create_pod(
        "weakroot",
        {
            "command": ["sleep", "3600"],
            "securityContext": {"runAsUser": 0, "capabilities": {"drop": ["ALL"]}},
        },
    )
    status = proc_status(await workload(node, "weakroot"))
    assert status["Uid"].split()[0] == "0"
    assert status["CapEff"] == status["CapBnd"] == "0000000000000000"


async def test_allow_privilege_escalation_false_sets_no_new_privs(node: AgentNode) -> None:
    await node.create_pod(
        "nnp",
        {"command": ["sleep", "3600"], "securityContext": {"allowPrivilegeEscalation": False}},
    )
    assert proc_status(await workload(node, "nnp"))["NoNewPrivs"] == "1"


async def test_read_only_root_filesystem_keeps_volumes_writable(node: AgentNode) -> None:
    target = f"/tmp/sp-ro-root-{random.randrange(1 << 30)}"
    script = (
        f"touch {target} 2> /out/root && echo written > /out/root; "
        "echo ok > /out/volume; exec sleep 3600"
    )
    await node.create_pod(
        "roroot",
        {
            "command": ["sh", "-c", script],
            "volumeMounts": [OUT],
            "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": True},
        },
        volumes=SCRATCH,
    )
    pid = await workload(node, "roroot")
    assert "Read-only file system" in await written(pid, "root")
    assert await written(pid, "volume") == "ok"
    assert not os.path.exists(target)


async def test_privileged_container_gets_every_capability_of_the_node(node: AgentNode) -> None:
    await node.create_pod(
        "priv",
        {"command": ["sleep", "3600"], "securityContext": {"runAsUser": 0, "privileged": True}},
    )
    status = proc_status(await workload(node, "priv"))
    assert status["CapEff"] == proc_status(os.getpid())["CapBnd"]


async def test_default_root_pod_gets_the_runtime_default_capabilities_not_sys_admin(
    node: AgentNode,
) -> None:
    await node.create_pod(
        "root", {"command": ["sleep", "3600"], "securityContext": {"runAsUser": 0}}
    )
    caps = int(proc_status(await workload(node, "root"))["CapEff"], 16)
    chown, sys_admin = 1 << 0, 1 << 21
    assert caps & chown and not caps & sys_admin


async def test_pod_cannot_read_the_agents_data_dir_or_another_pods_secret(
    node: AgentNode,
) -> None:
    """Even as root: the agent's data dir is an empty read-only directory in every
    container, and root without CAP_SYS_ADMIN cannot unmount it."""
    await node.client.create(
        SECRETS,
        objects.secret("hidden", stringData={"key": "s3cret"}),
        node.namespace,
    )
    victim = await node.create_pod(
        "victim",
        {"command": ["sleep", "3600"], "volumeMounts": [{"name": "s", "mountPath": "/etc/s"}]},
        volumes=[{"name": "s", "secret": {"secretName": "hidden"}}],
    )
    victim_pid = await workload(node, "victim")
    assert Path(f"/proc/{victim_pid}/root/etc/s/key").read_text() == "s3cret"
    secret_dir = node.data_dir / "pods" / victim["metadata"]["uid"] / "volumes"
    secret_file = secret_dir / "kubernetes.io~secret" / "s" / "key"
    spec_files = node.data_dir / "supervisor" / "containers"
    tries = {
        "secret": f"cat {secret_file}",
        "through": f"cat /proc/{victim_pid}/root/etc/s/key",
        "list": f"ls -A {node.data_dir}",
        "specs": f"cat {spec_files}/*/spec.json",
        "umount": f"umount {node.data_dir}",
    }
    script = "; ".join(
        f"{cmd} > /out/{name} 2>&1; echo $? >> /out/{name}" for name, cmd in tries.items()
    )
    await node.create_pod(
        "thief",
        {
            "command": ["sh", "-c", script + "; exec sleep 3600"],
            "volumeMounts": [OUT],
            "securityContext": {"runAsUser": 0},
        },
        volumes=SCRATCH,
    )
    pid = await workload(node, "thief")
    for name in tries:
        said = await written(pid, name)
        assert "s3cret" not in said, name
        if name != "list":
            assert said.splitlines()[-1] != "0", (name, said)
    assert (await written(pid, "list")).splitlines() == ["0"]  # empty


async def test_exec_probe_runs_as_the_containers_user(node: AgentNode) -> None:
    probe = {"exec": {"command": ["sh", "-c", 'test "$(id -u):$(id -g)" = 1000:3000']}}
    await node.create_pod(
        "probed",
        {"command": ["sleep", "3600"], "readinessProbe": {**probe, "periodSeconds": 1}},
        securityContext={"runAsUser": 1000, "runAsGroup": 3000},
    )

    async def ready() -> bool:
        return bool((await node.app_status("probed")).get("ready"))

    await eventually(ready, what="probed ready by a probe run as 1000:3000")
