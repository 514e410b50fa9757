"""`kubectl debug` as a user types it: `setpoint server` with its local node agent (the
``node_server`` fixture) and the real kubectl, for the three ways it debugs: an ephemeral
container added to a running pod, a copy of the pod, and a pod on a node.

``-it`` attaches to the debugging container (``pods/attach``); these tests use neither a
terminal nor attach, so they hold whether kubectl attaches or falls back to the logs."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import objects
from tests.support import Kubectl, Server, create_namespace, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

Obj = dict[str, Any]
NODE = "node-server-node"
ROOT = os.geteuid() == 0  # volumes are mounted (and hostPath / at /host) only as root


@pytest.fixture
def k(node_server: Server) -> Iterator[Kubectl]:
    namespace = create_namespace(node_server, "dbg")
    yield Kubectl(node_server, namespace)
    node_server.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.fixture
def web(k: Kubectl) -> str:
    """A running pod ``web`` whose container ``app`` writes a file into its emptyDir."""
    app = objects.container(
        "app",
        command=["sh", "-c", "echo written-by-app > /scratch/note; exec sleep 1000"],
        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
    )
    pod = objects.pod(
        "web",
        containers=[app],
        volumes=[{"name": "scratch", "emptyDir": {}}],
        terminationGracePeriodSeconds=1,
    )
    k("apply", "-f", "-", input=yaml.safe_dump(pod))
    wait_for(lambda: pod_of(k, "web")["status"].get("phase") == "Running", what="web running")
    return "web"


def pod_of(k: Kubectl, name: str) -> Obj:
    pod: Obj = k("get", "pod", name, "-o", "json").json()
    return pod


def ephemeral_state(k: Kubectl, pod: str, name: str) -> Obj:
    statuses = pod_of(k, pod)["status"].get("ephemeralContainerStatuses") or []
    return next((s["state"] for s in statuses if s["name"] == name), {})


def terminated(k: Kubectl, pod: str, name: str) -> Obj:
    """The ephemeral container's terminated state, once it has one."""
    return wait_for(
        lambda: ephemeral_state(k, pod, name).get("terminated"),
        timeout=30,
        what=f"ephemeral container {name} to finish",
    )


def test_ephemeral_container_runs_once_and_its_logs_are_there(k: Kubectl, web: str) -> None:
    k("debug", web, "--image=busybox", "-c", "debugger", "--", "sh", "-c", "echo hi; exit 3")
    state = terminated(k, web, "debugger")
    assert state["exitCode"] == 3
    assert k("logs", web, "-c", "debugger").stdout == "hi\n"
    pod = pod_of(k, web)
    [status] = pod["status"]["ephemeralContainerStatuses"]
    assert status["restartCount"] == 0 and status["ready"] is False  # never restarted
    assert pod["status"]["phase"] == "Running"  # the pod is as it was
    assert pod["status"]["containerStatuses"][0]["ready"] is True


def test_a_second_debugger_joins_the_first(k: Kubectl, web: str) -> None:
    k("debug", web, "--image=busybox", "-c", "one", "--", "sh", "-c", "echo one")
    k("debug", web, "--image=busybox", "-c", "two", "--target=app", "--", "sh", "-c", "echo two")
    assert terminated(k, web, "two")["exitCode"] == 0
    assert k("logs", web, "-c", "two").stdout == "two\n"
    spec = pod_of(k, web)["spec"]
    assert [c["name"] for c in spec["ephemeralContainers"]] == ["one", "two"]
    assert spec["ephemeralContainers"][1]["targetContainerName"] == "app"


@pytest.mark.skipif(not ROOT, reason="volumes are mounted at their mountPath only as root")
def test_ephemeral_container_sees_the_pods_volumes(k: Kubectl, web: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as custom:
        yaml.safe_dump({"volumeMounts": [{"name": "scratch", "mountPath": "/debug"}]}, custom)
    try:
        k(
            "debug",
            web,
            "--image=busybox",
            "-c",
            "reader",
            f"--custom={custom.name}",
            "--",
            "cat",
            "/debug/note",
        )
    finally:
        os.unlink(custom.name)
    assert terminated(k, web, "reader")["exitCode"] == 0
    assert k("logs", web, "-c", "reader").stdout == "written-by-app\n"


@pytest.mark.skipif(not ROOT, reason="containers are placed in cgroups only as root")
def test_ephemeral_container_runs_in_the_pods_cgroup(k: Kubectl, web: str) -> None:
    k("debug", web, "--image=busybox", "-c", "cg", "--", "cat", "/proc/self/cgroup")
    assert terminated(k, web, "cg")["exitCode"] == 0
    uid = pod_of(k, web)["metadata"]["uid"]
    assert f"/setpoint/pods/{uid}/" in k("logs", web, "-c", "cg").stdout


def test_running_ephemeral_container_is_stopped_with_its_pod(
    k: Kubectl, web: str, shared_dir: Path
) -> None:
    pid_file = shared_dir / "pid"
    script = f"echo $$$$ > {pid_file}; exec sleep 1000"  # $$ is an escaped $ in Kubernetes
    k("debug", web, "--image=busybox", "-c", "sleeper", "--", "sh", "-c", script)
    wait_for(lambda: "running" in ephemeral_state(k, web, "sleeper"), what="sleeper running")
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    k("delete", "pod", web, "--wait=true", timeout=60)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the debugger's process to go")


def test_running_ephemeral_container_ends_with_a_pod_that_completes(
    k: Kubectl, shared_dir: Path
) -> None:
    done = shared_dir / "done"
    app = objects.container("app", command=["sh", "-c", f"until [ -e {done} ]; do sleep 0.1; done"])
    pod = objects.pod("job", containers=[app], restartPolicy="Never")
    k("apply", "-f", "-", input=yaml.safe_dump(pod))
    wait_for(lambda: pod_of(k, "job")["status"].get("phase") == "Running", what="job running")
    k("debug", "job", "--image=busybox", "-c", "sleeper", "--", "sleep", "1000")
    wait_for(lambda: "running" in ephemeral_state(k, "job", "sleeper"), what="sleeper running")
    done.touch()
    wait_for(lambda: pod_of(k, "job")["status"].get("phase") == "Succeeded", what="job done")
    assert terminated(k, "job", "sleeper")["exitCode"] == 143  # SIGTERM, as the pod ended


def test_interactive_debugger_without_a_command_runs_a_shell(k: Kubectl, web: str) -> None:
    # setpoint does not read images: busybox's default command is sh, so that is what runs
    k("debug", web, "-i", "--image=busybox", "-c", "shell", input="exit 0\n", check=False)
    assert terminated(k, web, "shell")["exitCode"] == 0
    [spec] = pod_of(k, web)["spec"]["ephemeralContainers"]
    assert spec["stdin"] is True and "command" not in spec


def test_bad_debugger_is_refused_with_kubernetes_message(k: Kubectl, web: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as custom:
        yaml.safe_dump({"ports": [{"containerPort": 8080}]}, custom)
    try:
        result = k(
            "debug", web, "--image=busybox", "-c", "x", f"--custom={custom.name}", check=False
        )
    finally:
        os.unlink(custom.name)
    assert result.returncode != 0
    assert (
        'Pod "web" is invalid: spec.ephemeralContainers[0].ports: Forbidden: cannot be set for '
        "an Ephemeral Container"
    ) in result.stderr


def test_copy_to_makes_a_debuggable_copy(k: Kubectl, web: str) -> None:
    k(
        "debug",
        web,
        "--copy-to=web-copy",
        "--image=busybox",
        "-c",
        "dbg",
        "--",
        "sh",
        "-c",
        "echo copied; exec sleep 1000",
    )

    def both_ready() -> bool:
        statuses = pod_of(k, "web-copy")["status"].get("containerStatuses") or []
        return len(statuses) == 2 and all(s["ready"] for s in statuses)

    wait_for(both_ready, timeout=30, what="web-copy's two containers")
    assert k("logs", "web-copy", "-c", "dbg").stdout == "copied\n"
    assert pod_of(k, "web-copy")["spec"]["shareProcessNamespace"] is True


@pytest.fixture
def host_dir(node_server: Server) -> Iterator[Path]:
    """``/host``, the mount point `kubectl debug node` asks for, removed afterwards if this
    test's pods made it (the mount namespace shares the host's root, so it appears there)."""
    path = Path("/host")
    existed = path.exists()
    yield path
    if not existed and path.is_dir() and not path.is_mount() and not any(path.iterdir()):
        path.rmdir()


def test_node_debugging_pod_runs_on_the_node_and_is_deleted_cleanly(
    k: Kubectl, node_server: Server, host_dir: Path, shared_dir: Path
) -> None:
    marker = shared_dir / "marker"  # (the debugger runs as a user of its own)
    marker.write_text("on-the-host\n")
    script = f"cat /host{marker} 2>/dev/null || echo unmounted; exec sleep 1000"
    out = k("debug", f"node/{NODE}", "--image=busybox", "--", "sh", "-c", script).stdout
    found = re.search(r"Creating debugging pod (\S+) with container debugger on node", out)
    assert found, out
    name = found.group(1)
    wait_for(lambda: pod_of(k, name)["status"].get("phase") == "Running", what="node debugger")
    pod = pod_of(k, name)
    assert pod["spec"]["nodeName"] == NODE
    assert pod["spec"]["hostNetwork"] and pod["spec"]["hostPID"] and pod["spec"]["hostIPC"]
    expected = "on-the-host\n" if ROOT else "unmounted\n"
    wait_for(lambda: k("logs", name).stdout == expected, what="the debugger's output")
    uid = pod["metadata"]["uid"]
    k("delete", "pod", name, "--wait=true", timeout=60)
    assert k("get", "pod", name, check=False).returncode != 0
    sandbox = node_server.data_dir / "agent" / "pods" / uid
    wait_for(lambda: not sandbox.exists(), what="the debugger's sandbox to go")


def test_interactive_node_debugging_pod_starts(k: Kubectl, host_dir: Path) -> None:
    """`kubectl debug node/NAME -it --image=busybox` gives no command: it must run (a shell),
    not wait forever for a command setpoint cannot read from the image."""
    out = k("debug", f"node/{NODE}", "-i", "--image=busybox", input="exit 0\n", check=False)
    found = re.search(r"Creating debugging pod (\S+)", out.stdout)
    assert found, out.stdout + out.stderr

    def finished() -> Obj | None:
        state = pod_of(k, found.group(1))["status"]["containerStatuses"][0]["state"]
        assert "waiting" not in state or state["waiting"]["reason"] == "ContainerCreating", state
        return state.get("terminated")

    assert wait_for(finished, timeout=30, what="the shell to exit")["exitCode"] == 0
    k("delete", "pod", found.group(1), "--wait=true", timeout=60)
