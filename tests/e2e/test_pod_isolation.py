"""A pod of ``setpoint server``'s own node cannot read the cluster's credentials or store,
whoever it runs as: the server's data dir (admin kubeconfig, node token, CA key,
``state.db``) and the agent's (its pods' secret volumes, their containers' env) are empty,
read-only directories in every container, and a pod's root has no CAP_SYS_ADMIN to unmount
them. A pod that names no user runs as its namespace's user."""

from __future__ import annotations

import os
import uuid

import pytest

from setpoint.agent.namespaceusers import namespace_user
from tests.e2e.test_node_agent import get_pod, running_pod
from tests.support import Kubectl, Server, create_namespace, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("node"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need the agent to be root"),
]


@pytest.fixture
def k(node_server: Server) -> Kubectl:
    return Kubectl(node_server, create_namespace(node_server, "iso"))


def logs_when(k: Kubectl, name: str, last: str) -> str:
    def done() -> str | None:
        out = k("logs", name, check=False).stdout
        return out if last in out else None

    return wait_for(done, timeout=30, what=f"{name} logs")


def test_a_root_pod_cannot_read_the_servers_or_the_agents_files(
    k: Kubectl, node_server: Server
) -> None:
    data_dir = node_server.data_dir.absolute()
    secrets = [
        data_dir / "kubeconfig.yaml",
        data_dir / "node-token",
        *sorted((data_dir / "tls").glob("*.key")),
        *sorted(data_dir.glob("**/state.db")),
    ]
    assert len(secrets) >= 4 and all(p.is_file() for p in secrets)
    # another pod's secret volume, as the agent lays it out
    secret = f"s-{uuid.uuid4().hex[:6]}"
    k("create", "secret", "generic", secret, "--from-literal=key=s3cret")
    k(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: victim}}
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{{name: s, mountPath: /etc/s}}]
  volumes: [{{name: s, secret: {{secretName: {secret}}}}}]
""",
    )
    victim = running_pod(k, "victim")
    uid = victim["metadata"]["uid"]
    volume = data_dir / "agent" / "pods" / uid / "volumes" / "kubernetes.io~secret" / "s" / "key"
    paths = " ".join(str(p) for p in [*secrets, volume])
    script = (
        f'for f in {paths}; do cat "$f" 2>&1; echo "rc=$? $f"; done; '
        f"echo listed:$(ls -A {data_dir} 2>&1); umount {data_dir} 2>&1; echo umount=$?; "
        "echo end; exec sleep 3600"
    )
    k(
        "run",
        "thief",
        "--image=busybox",
        "--overrides",
        '{"spec": {"securityContext": {"runAsUser": 0}}}',
        "--command",
        "--",
        "sh",
        "-c",
        script,
    )
    out = logs_when(k, "thief", "end")
    assert "s3cret" not in out and "BEGIN" not in out and "apiVersion" not in out
    rcs = [line for line in out.splitlines() if line.startswith("rc=")]
    assert len(rcs) == len(secrets) + 1
    assert all(not line.startswith("rc=0 ") for line in rcs), out
    assert "listed:" in out.splitlines()  # an empty directory
    assert "umount=0" not in out


def test_a_pod_without_a_user_runs_as_its_namespaces_user(k: Kubectl) -> None:
    script = "id -u; id -g; echo end; exec sleep 3600"
    k("run", "who", "--image=busybox", "--command", "--", "sh", "-c", script)
    uid, gid = logs_when(k, "who", "end").split()[:2]
    assert uid == gid == str(namespace_user(k.namespace or ""))
    assert get_pod(k, "who")["status"]["phase"] == "Running"
