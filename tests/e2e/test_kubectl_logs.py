"""`kubectl logs` as a user sees it: `setpoint server` with its local node agent, the real
kubectl, and the API server proxying to the agent's HTTPS endpoint like to a kubelet."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests import objects
from tests.support import Kubectl, Server, collect_lines, create_namespace, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (.*)$")


def pod_yaml(name: str, scripts: dict[str, str], *, labels: dict[str, str] | None = None) -> str:
    """The manifest of a pod whose containers, named as ``scripts``' keys, run its shell
    scripts."""
    containers = [
        objects.container(c, "busybox", command=["sh", "-c", script])
        for c, script in scripts.items()
    ]
    pod = objects.pod(
        name, labels=labels or {}, containers=containers, terminationGracePeriodSeconds=1
    )
    return yaml.safe_dump(pod)


@pytest.fixture(scope="module")
def kubectl(node_server: Server) -> Iterator[Kubectl]:
    namespace = create_namespace(node_server)
    kubectl = Kubectl(node_server, namespace)
    greeter = "for i in 1 2 3 4; do echo line $i; done; echo oops >&2; exec sleep 1000"
    kubectl("apply", "-f", "-", input=pod_yaml("greeter", {"app": greeter}, labels={"app": "hi"}))
    duo = {"a": "echo from-a; exec sleep 1000", "b": "echo from-b; exec sleep 1000"}
    kubectl("apply", "-f", "-", input=pod_yaml("duo", duo, labels={"app": "duo"}))
    wait_for(
        lambda: "oops" in kubectl("logs", "greeter", check=False).stdout,
        timeout=30,
        what="greeter's output",
    )
    wait_for(
        lambda: "from-b" in kubectl("logs", "duo", "-c", "b", check=False).stdout,
        timeout=30,
        what="duo's output",
    )
    yield kubectl
    node_server.request("DELETE", f"/api/v1/namespaces/{namespace}")


def test_logs_show_a_pods_output(kubectl: Kubectl) -> None:
    assert kubectl("logs", "greeter").stdout == "line 1\nline 2\nline 3\nline 4\noops\n"


def test_tail_shows_the_last_lines(kubectl: Kubectl) -> None:
    assert kubectl("logs", "greeter", "--tail", "2").stdout == "line 4\noops\n"


def test_timestamps_prefix_each_line(kubectl: Kubectl) -> None:
    lines = kubectl("logs", "greeter", "--timestamps").stdout.splitlines()
    matches = [TIMESTAMPED.match(line) for line in lines]
    assert all(matches), lines
    assert [m.group(1) for m in matches if m] == ["line 1", "line 2", "line 3", "line 4", "oops"]


def test_since_keeps_recent_lines_and_drops_older_ones(kubectl: Kubectl) -> None:
    assert "line 1" in kubectl("logs", "greeter", "--since", "1h").stdout
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kubectl("logs", "greeter", f"--since-time={future}").stdout == ""


def test_container_is_chosen_with_c(kubectl: Kubectl) -> None:
    assert kubectl("logs", "duo", "-c", "b").stdout == "from-b\n"


def test_all_containers_shows_each_containers_output(kubectl: Kubectl) -> None:
    # kubectl requests the containers' logs concurrently: their order varies
    lines = kubectl("logs", "duo", "--all-containers").stdout.splitlines()
    assert sorted(lines) == ["from-a", "from-b"]


def test_label_selector_shows_the_matching_pods_logs(kubectl: Kubectl) -> None:
    assert kubectl("logs", "-l", "app=hi").stdout == "line 1\nline 2\nline 3\nline 4\noops\n"


def test_kubectl_defaults_to_the_first_of_several_containers(kubectl: Kubectl) -> None:
    result = kubectl("logs", "duo")
    assert result.stdout == "from-a\n"
    assert 'Defaulted container "a" out of: a, b' in result.stderr


def test_api_needs_a_container_name_for_a_pod_with_several(
    kubectl: Kubectl, node_server: Server
) -> None:
    status, body, _ = node_server.request(
        "GET", f"/api/v1/namespaces/{kubectl.namespace}/pods/duo/log"
    )
    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"] == "a container name must be specified for pod duo, choose one of: [a b]"


def test_unknown_container_is_refused(kubectl: Kubectl, node_server: Server) -> None:
    result = kubectl("logs", "duo", "-c", "nope", check=False)  # kubectl checks it first
    assert result.returncode != 0
    assert "container nope is not valid for pod duo" in result.stderr
    status, body, _ = node_server.request(
        "GET", f"/api/v1/namespaces/{kubectl.namespace}/pods/duo/log?container=nope"
    )
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == "container nope is not valid for pod duo"


def test_previous_of_a_container_that_never_restarted_is_not_found(kubectl: Kubectl) -> None:
    result = kubectl("logs", "greeter", "--previous", check=False)
    assert result.returncode != 0
    assert 'previous terminated container "app" in pod "greeter" not found' in result.stderr


def test_container_that_cannot_start_is_waiting_to_start(kubectl: Kubectl) -> None:
    manifest = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nocommand\nspec:\n"
        "  containers:\n  - name: app\n    image: busybox\n"
    )
    kubectl("apply", "-f", "-", input=manifest)

    def refused() -> str | None:
        result = kubectl("logs", "nocommand", check=False)
        return result.stderr if "waiting to start" in result.stderr else None

    stderr = wait_for(refused, timeout=30, what="a waiting-to-start answer")
    assert 'container "app" in pod "nocommand" is waiting to start: ' in stderr
    kubectl("delete", "pod", "nocommand", "--wait=false")


def test_previous_shows_the_instance_before_a_crash(kubectl: Kubectl) -> None:
    script = "echo started $$$$; sleep 1000"  # Kubernetes expansion makes $$ of $$$$
    kubectl("apply", "-f", "-", input=pod_yaml("phoenix", {"app": script}))
    first = wait_for(
        lambda: re.search(r"started (\d+)", kubectl("logs", "phoenix", check=False).stdout),
        timeout=30,
        what="phoenix's first line",
    )
    os.kill(int(first.group(1)), signal.SIGKILL)

    def second_instance() -> str | None:
        out = kubectl("logs", "phoenix", check=False).stdout
        return out if "started" in out and first.group(0) not in out else None

    current = wait_for(second_instance, timeout=30, what="the restarted instance's log")
    previous = kubectl("logs", "phoenix", "--previous").stdout
    assert previous == f"{first.group(0)}\n"
    assert current.startswith("started ")
    kubectl("delete", "pod", "phoenix", "--wait=false")


def test_follow_streams_lines_written_after_kubectl_started(kubectl: Kubectl) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="sp-logs-"))
    scratch.chmod(0o755)  # the pod runs as a user of its own
    go = scratch / "go"
    script = f"echo ready; while [ ! -f {go} ]; do sleep 0.05; done; echo after; exec sleep 1000"
    kubectl("apply", "-f", "-", input=pod_yaml("ticker", {"app": script}))
    wait_for(
        lambda: "ready" in kubectl("logs", "ticker", check=False).stdout,
        timeout=30,
        what="ticker's first line",
    )
    follower = kubectl.popen("logs", "-f", "ticker")
    try:
        lines = collect_lines(follower)
        wait_for(lambda: lines == ["ready"], timeout=15, what="the followed first line")
        go.touch()
        wait_for(lambda: lines == ["ready", "after"], timeout=15, what="the followed new line")
        assert follower.poll() is None  # still following
    finally:
        follower.kill()
        follower.wait()
        shutil.rmtree(scratch, ignore_errors=True)
        kubectl("delete", "pod", "ticker", "--wait=false")


def test_follow_ends_when_the_pod_is_deleted(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=pod_yaml("brief", {"app": "echo here; exec sleep 1000"}))
    wait_for(
        lambda: "here" in kubectl("logs", "brief", check=False).stdout,
        timeout=30,
        what="brief's output",
    )
    follower = kubectl.popen("logs", "-f", "brief")
    try:
        lines = collect_lines(follower)
        wait_for(lambda: lines == ["here"], timeout=15, what="the followed line")
        kubectl("delete", "pod", "brief", "--wait=true", "--timeout=60s")
        assert follower.wait(timeout=15) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait()
