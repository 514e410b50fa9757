"""Another local user reads nothing of what the agent keeps on the node.

A pod gets a Secret as a volume, as a projected volume and as env, and prints it to its log,
so the value lands in every kind of file the agent and the supervisor write. Then an
unprivileged user (``nobody``, through ``setpriv``) tries to find it: walking the agent's
data dir with ``find`` and ``grep -r``, reading each file that holds it, reading the mount
path and the container's environment through ``/proc``. Directory and file modes are checked
too, so that the data dir's own 0700 is not the only thing standing in the way."""

# ruff: noqa: F811  (the ``node`` fixture is imported, and test parameters must share its name)

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from setpoint.client.api import PODS, SECRETS
from tests import objects
from tests.integration.test_agent import AgentNode, node  # noqa: F401
from tests.support import eventually

Obj = dict[str, Any]

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def needs_root_and_setpriv() -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to another user (and mounting tmpfs) needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")


async def as_nobody(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(
        subprocess.run, [*NOBODY, *argv], capture_output=True, timeout=30, check=False
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def files_holding(root: Path, value: bytes) -> list[Path]:
    """Every regular file under ``root`` that contains ``value``, as root sees them (FIFOs,
    sockets and namespace files are not read)."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if os.path.ismount(path) or not stat.S_ISREG(os.lstat(path).st_mode):
                continue  # a mount namespace's file, a FIFO, the supervisor's socket
            if value in path.read_bytes():
                found.append(path)
    return found


async def create_secret(node: AgentNode, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    await node.client.create(SECRETS, objects.secret(name, data=encoded), node.namespace)


async def test_no_secret_byte_is_readable_by_another_local_user(node: AgentNode) -> None:
    needs_root_and_setpriv()
    value = f"sp-secret-{uuid.uuid4().hex}"
    secret = f"vault-{uuid.uuid4().hex[:8]}"
    await create_secret(node, secret, {"token": value})
    mount_path = f"/tmp/sp-vault-{uuid.uuid4().hex[:8]}"
    pod = await node.create_pod(
        "vault",
        {
            "command": ["sh", "-c", 'echo "token is $TOKEN"; exec sleep 1000'],
            "env": [
                {
                    "name": "TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}},
                }
            ],
            "volumeMounts": [
                {"name": "plain", "mountPath": f"{mount_path}/plain"},
                {"name": "projected", "mountPath": f"{mount_path}/projected"},
            ],
        },
        volumes=[
            {"name": "plain", "secret": {"secretName": secret}},
            {
                "name": "projected",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {
                            "secret": {
                                "name": secret,
                                "items": [{"key": "token", "path": "token"}],
                            }
                        },
                        {
                            "secret": {
                                "name": secret,
                                "items": [{"key": "token", "path": "strict", "mode": 0o400}],
                            }
                        },
                    ],
                },
            },
        ],
    )
    uid = pod["metadata"]["uid"]
    pid = await node.running_pid("vault")
    data_dir = node.data_dir
    log_file = data_dir / "pods" / f"{node.namespace}_vault_{uid}" / "app" / "0.log"

    async def printed() -> bool:
        return log_file.exists() and value.encode() in log_file.read_bytes()

    await eventually(printed, what="the container to print its token")

    # root sees the secret everywhere it is meant to be: the test looks in the right places
    holding = files_holding(data_dir, value.encode())
    assert log_file in holding
    assert any(p.name == "spec.json" for p in holding)  # the container's env
    assert any("kubernetes.io~secret" in str(p) for p in holding)
    assert any("kubernetes.io~projected" in str(p) for p in holding)
    inside = Path(f"/proc/{pid}/root{mount_path}")
    assert (inside / "plain" / "token").read_text() == value

    # nobody cannot find it, list it, read it or grep it out of the data dir
    listed = await as_nobody("find", str(data_dir))
    assert listed.stdout.split() == [str(data_dir).encode()]  # nothing below it
    grepped = await as_nobody("grep", "-r", "-D", "skip", "-l", value, str(data_dir))
    assert grepped.returncode != 0 and value.encode() not in grepped.stdout
    for path in holding:
        read = await as_nobody("cat", str(path))
        assert read.returncode != 0 and value.encode() not in read.stdout, path
    # nor at the mount path: on the host it is an empty mount point; the container's view
    # and its environment are behind /proc's ptrace check
    for path in (
        f"{mount_path}/plain/token",
        f"/proc/{pid}/root{mount_path}/plain/token",
        f"/proc/{pid}/root{mount_path}/projected/token",
        f"/proc/{pid}/environ",
    ):
        read = await as_nobody("cat", path)
        assert read.returncode != 0 and value.encode() not in read.stdout, path

    # and not only because of the data dir's mode: each file holding the secret sits below
    # a private directory of the agent's or the supervisor's own
    for path in holding:
        between = [p for p in path.parents if data_dir in p.parents]
        assert any(mode(p) & 0o077 == 0 for p in between), path

    import subprocess as _sp

    print(
        _sp.run(
            ["python3", "/tmp/inventory.py", str(data_dir)], capture_output=True, text=True
        ).stdout
    )
    pod_dir = data_dir / "pods" / uid
    for directory in (
        data_dir,
        data_dir / "pods",
        pod_dir,
        pod_dir / "volumes",
        pod_dir / "volumes" / "kubernetes.io~secret",
        pod_dir / "volumes" / "kubernetes.io~projected",
        pod_dir / "ns",
        log_file.parent,
        log_file.parent.parent,
        data_dir / "supervisor",
        data_dir / "supervisor" / "containers",
        data_dir / "pki",
    ):
        assert mode(directory) == 0o700, directory
    for file in (log_file, data_dir / "supervisor" / "supervisor.log"):
        assert mode(file) == 0o600, file
    for spec in (data_dir / "supervisor" / "containers").glob("*/spec.json"):
        assert mode(spec) == 0o600, spec
        assert mode(spec.parent) == 0o700, spec.parent
    # Kubernetes' modes inside the volumes: defaultMode and items[].mode, and a tmpfs that
    # is not world-writable
    plain = pod_dir / "volumes" / "kubernetes.io~secret" / "plain"
    projected = pod_dir / "volumes" / "kubernetes.io~projected" / "projected"
    assert os.path.ismount(plain) and os.path.ismount(projected)
    assert mode(plain) == mode(projected) == 0o755
    assert mode((plain / "token").resolve()) == 0o644
    assert mode((projected / "token").resolve()) == 0o440
    assert mode((projected / "strict").resolve()) == 0o400

    await node.client.delete(PODS, "vault", node.namespace)
    await node.wait_gone("vault")
    for mount_point in ("plain", "projected", ""):  # what the sandbox made on the host
        os.rmdir(f"{mount_path}/{mount_point}")


async def test_agent_tightens_a_data_dir_that_was_left_open(node: AgentNode) -> None:
    await node.create_pod("early", {"command": ["sleep", "1000"]})
    await node.running_pid("early")
    uid = (await node.pod("early"))["metadata"]["uid"]
    await node.stop_agent()
    loose = [node.data_dir, node.data_dir / "pods", node.data_dir / "pods" / uid]
    for directory in loose:  # as an older setpoint, or someone by hand, left them
        os.chmod(directory, 0o755)
    await node.start_agent()

    async def tightened() -> bool:
        return all(mode(d) == 0o700 for d in loose)

    await eventually(tightened, what="the data dir and pod directory to be private again")
