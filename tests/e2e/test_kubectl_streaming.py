"""`kubectl exec`, `cp`, `attach` and `port-forward` as a user types them, and the official
Python client's `stream()` and `portforward()`: `setpoint server` with its local node agent,
the API server relaying each WebSocket to the agent."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import portforward, stream

from tests import objects
from tests.support import (
    KUBECTL,
    Kubectl,
    Server,
    collect_lines,
    create_namespace,
    free_port,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

# a TCP server that answers each connection with what it received, upper-cased, once the
# client has half-closed or sent a newline: both directions of a forwarded connection, and
# (for kubectl's SPDY streams, which have one) the half-close
ECHO_SERVER = textwrap.dedent(
    """
    import socket, sys
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        data = b""
        while not data.endswith(b"\\n") and (chunk := conn.recv(65536)):
            data += chunk
        conn.sendall(data.upper())
        conn.close()
    """
)


def apply(kubectl: Kubectl, *pods: objects.Obj) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(pods))


def wait_running(kubectl: Kubectl, name: str) -> None:
    def running() -> bool:
        pod = kubectl("get", "pod", name, "-o", "json", check=False)
        if pod.returncode != 0:
            return False
        statuses = pod.json().get("status", {}).get("containerStatuses") or []
        return bool(statuses) and all("running" in s.get("state", {}) for s in statuses)

    wait_for(running, timeout=60, what=f"pod {name} to run")


@pytest.fixture(scope="module")
def echo_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def kubectl(node_server: Server, echo_port: int) -> Iterator[Kubectl]:
    namespace = create_namespace(node_server, "stream")
    kubectl = Kubectl(node_server, namespace)
    shell = objects.container(
        "shell",
        "busybox",
        command=["sh", "-c", "cat /proc/self/cgroup; exec sleep 100000"],
        env=[{"name": "GREETING", "value": "hello from the pod"}],
        workingDir="/tmp",
    )
    echo = objects.container(
        "echo", "python", command=["python3", "-c", ECHO_SERVER, str(echo_port)]
    )
    reader = objects.container(
        "reader",
        "busybox",
        command=["sh", "-c", "while read line; do echo got: $line; done"],
        stdin=True,
    )
    crashing = objects.container("crash", "busybox", command=["sh", "-c", "exit 1"])
    talker = objects.container(
        "talker",
        "busybox",
        command=["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"],
    )
    apply(
        kubectl,
        objects.pod("shell", containers=[shell], terminationGracePeriodSeconds=1),
        objects.pod("echo", containers=[echo], terminationGracePeriodSeconds=1),
        objects.pod("reader", containers=[reader], terminationGracePeriodSeconds=1),
        objects.pod("crash", containers=[crashing], terminationGracePeriodSeconds=1),
        objects.pod("talker", containers=[talker], terminationGracePeriodSeconds=1),
    )
    for name in ("shell", "echo", "reader", "talker"):
        wait_running(kubectl, name)
    wait_for(
        lambda: "listening" in kubectl("logs", "echo", check=False).stdout,
        timeout=30,
        what="the echo server to listen",
    )
    yield kubectl
    node_server.request("DELETE", f"/api/v1/namespaces/{namespace}")


# ------------------------------------------------------------------ exec


def test_exec_prints_output_and_succeeds(kubectl: Kubectl) -> None:
    result = kubectl("exec", "shell", "--", "echo", "hello")
    assert result.stdout == "hello\n"


def test_exec_reports_the_commands_exit_code(kubectl: Kubectl) -> None:
    result = kubectl(
        "exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False
    )
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert "err" in result.stderr
    assert "command terminated with exit code 3" in result.stderr


def test_exec_of_a_command_killed_by_a_signal_is_128_plus_the_signal(kubectl: Kubectl) -> None:
    result = kubectl("exec", "shell", "--", "sh", "-c", "kill -9 $$", check=False)
    assert result.returncode == 137


def test_exec_passes_stdin_to_the_command(kubectl: Kubectl) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    result = kubectl("exec", "-i", "shell", "--", "sh", "-c", "wc -l; echo done", input=text)
    assert result.stdout.split() == ["2000", "done"]


def test_exec_runs_with_the_containers_env_working_dir_and_cgroups(kubectl: Kubectl) -> None:
    assert kubectl("exec", "shell", "--", "sh", "-c", "echo $GREETING").stdout == (
        "hello from the pod\n"
    )
    assert kubectl("exec", "shell", "--", "pwd").stdout == "/tmp\n"
    container_cgroups = kubectl("logs", "shell").stdout
    assert kubectl("exec", "shell", "--", "cat", "/proc/self/cgroup").stdout == container_cgroups


def test_exec_of_a_missing_command_is_an_internal_error(kubectl: Kubectl) -> None:
    result = kubectl("exec", "shell", "--", "no-such-command", check=False)
    assert result.returncode != 0
    assert "executable file not found" in result.stderr


def test_exec_into_a_container_that_is_not_running_is_refused(kubectl: Kubectl) -> None:
    result = kubectl("exec", "crash", "--", "true", check=False)
    assert result.returncode != 0
    assert 'container not found ("crash")' in result.stderr


def test_a_client_that_goes_away_takes_the_command_with_it(kubectl: Kubectl) -> None:
    marker = f"sleep 6{time.monotonic_ns() % 100000}.5"  # a command line no one else runs
    process = kubectl.popen("exec", "shell", "--", *marker.split())

    def running() -> bool:
        return (
            marker in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        )

    wait_for(running, timeout=30, what="the exec'd command to run")
    process.kill()
    process.wait()
    wait_for(lambda: not running(), timeout=30, what="the exec'd command to be killed")


# ------------------------------------------------------------------ cp


def test_cp_copies_files_into_and_out_of_a_pod(kubectl: Kubectl, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "small.txt").write_text("hello\n")
    blob = bytes(range(256)) * 4096  # 1 MiB
    (source / "blob.bin").write_bytes(blob)
    inside = f"/tmp/setpoint-cp-{tmp_path.name}"
    try:
        kubectl("cp", str(source), f"shell:{inside}")
        assert kubectl("exec", "shell", "--", "cat", f"{inside}/small.txt").stdout == "hello\n"
        back = tmp_path / "back"
        kubectl("cp", f"shell:{inside}", str(back))
        assert (back / "blob.bin").read_bytes() == blob
        assert (back / "small.txt").read_text() == "hello\n"
    finally:
        kubectl("exec", "shell", "--", "rm", "-rf", inside, check=False)


# ------------------------------------------------------------------ attach


def test_attach_streams_output_and_feeds_stdin(kubectl: Kubectl) -> None:
    process = subprocess.Popen(
        [KUBECTL, "-n", kubectl.namespace or "default", "attach", "-i", "reader"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=kubectl.env(),
        text=True,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        lines: list[str] = []
        reading = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))
        reading.start()
        deadline = time.monotonic() + 30
        while "got: ping\n" not in lines and time.monotonic() < deadline:
            process.stdin.write("ping\n")  # until the session is up, lines may be missed
            process.stdin.flush()
            time.sleep(0.3)
        assert "got: ping\n" in lines
    finally:
        process.kill()
        process.wait()


def test_attach_without_stdin_shows_what_the_container_writes_from_now_on(
    kubectl: Kubectl,
) -> None:
    process = kubectl.popen("attach", "talker")
    try:
        lines = collect_lines(process)
        wait_for(lambda: any(line.startswith("tick ") for line in lines), timeout=30,
                 what="attach to show the container's output")  # fmt: skip
        first = int(next(line for line in lines if line.startswith("tick ")).split()[1])
        assert first > 1  # what was written before the attach is not replayed
    finally:
        process.kill()
        process.wait()


# ------------------------------------------------------------------ port-forward


def test_port_forward_carries_data_both_ways(kubectl: Kubectl, echo_port: int) -> None:
    local = free_port()
    process = kubectl.popen("port-forward", "pod/echo", f"{local}:{echo_port}")
    try:
        assert process.stdout is not None
        wait_for(
            lambda: "Forwarding from" in (process.stdout.readline() or ""),  # type: ignore[union-attr]
            timeout=30,
            what="kubectl port-forward to listen",
        )
        payload = b"abc" * 100_000
        for _ in range(3):  # one connection after another through the same session
            with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
                conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)
                received = b""
                while chunk := conn.recv(65536):
                    received += chunk
            assert received == payload.upper()
    finally:
        process.kill()
        process.wait()


def test_port_forward_to_a_service_reaches_a_pod_it_selects(
    kubectl: Kubectl, echo_port: int
) -> None:
    """kubectl resolves svc/NAME to one of the Service's pods and its port to the pod's
    target port, then forwards to that pod as for pod/NAME."""
    kubectl("label", "pod", "echo", "app=echo", "--overwrite")
    kubectl("create", "service", "clusterip", "echo", f"--tcp=80:{echo_port}")
    local = free_port()
    process = kubectl.popen("port-forward", "svc/echo", f"{local}:80")
    try:
        assert process.stdout is not None
        line = wait_for(
            lambda: (lambda text: text if "Forwarding from" in text else None)(
                process.stdout.readline() or ""  # type: ignore[union-attr]
            ),
            timeout=30,
            what="kubectl port-forward svc/echo to listen",
        )
        assert f"127.0.0.1:{local} -> {echo_port}" in line
        with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
            conn.sendall(b"through the service")
            conn.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
        assert received == b"THROUGH THE SERVICE"
    finally:
        process.kill()
        process.wait()
        kubectl("delete", "service", "echo", check=False)


def test_port_forward_to_a_closed_port_reports_the_error(kubectl: Kubectl) -> None:
    local, closed = free_port(), free_port()
    process = kubectl.popen("port-forward", "pod/echo", f"{local}:{closed}")
    try:
        assert process.stdout is not None
        wait_for(
            lambda: "Forwarding from" in (process.stdout.readline() or ""),  # type: ignore[union-attr]
            timeout=30,
            what="kubectl port-forward to listen",
        )
        with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
            conn.settimeout(30)
            assert conn.recv(10) == b""
        _, err = process.communicate(timeout=30)
        assert f"error forwarding port {closed} to pod echo" in err
        assert "connection refused" in err
    finally:
        process.kill()
        process.wait()


# ------------------------------------------------------------------ the official client


@pytest.fixture(scope="module")
def core(node_server: Server) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(str(node_server.kubeconfig)))


def test_python_client_stream_runs_a_command(kubectl: Kubectl, core: k8s.CoreV1Api) -> None:
    namespace = kubectl.namespace
    output = stream(
        core.connect_get_namespaced_pod_exec,
        "shell",
        namespace,
        command=["sh", "-c", "echo $GREETING"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output == "hello from the pod\n"


def test_python_client_stream_with_stdin_reports_the_exit_code(
    kubectl: Kubectl, core: k8s.CoreV1Api
) -> None:
    session = stream(
        core.connect_get_namespaced_pod_exec,
        "shell",
        kubectl.namespace,
        command=["sh", "-c", "read x; echo got $x; exit 4"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    session.write_stdin("abc\n")
    session.run_forever(timeout=30)
    assert session.read_stdout() == "got abc\n"
    assert session.returncode == 4


def test_python_client_tty_has_the_size_it_was_given(kubectl: Kubectl, core: k8s.CoreV1Api) -> None:
    session = stream(
        core.connect_get_namespaced_pod_exec,
        "shell",
        kubectl.namespace,
        command=["sh", "-c", "sleep 0.5; stty size; tty"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=True,
        _preload_content=False,
    )
    session.write_channel(4, json.dumps({"Width": 100, "Height": 40}))
    session.run_forever(timeout=30)
    lines = session.read_stdout().split("\r\n")
    assert lines[0] == "40 100"
    assert lines[1].startswith("/dev/pts/")
    assert session.returncode == 0


def test_python_client_port_forward(kubectl: Kubectl, core: k8s.CoreV1Api, echo_port: int) -> None:
    forward = portforward(
        core.connect_get_namespaced_pod_portforward,
        "echo",
        kubectl.namespace,
        ports=str(echo_port),
    )
    conn = forward.socket(echo_port)
    conn.setblocking(True)
    conn.sendall(b"through the websocket\n")  # the v4 protocol has no half-close
    received = b""
    conn.settimeout(30)
    while chunk := conn.recv(65536):
        received += chunk
    conn.close()
    assert received == b"THROUGH THE WEBSOCKET\n"
    assert forward.error(echo_port) is None


# ------------------------------------------------------------------ bad input


def exec_path(namespace: str, pod: str, query: str = "command=true&stdout=1") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{pod}/exec?{query}"


def test_discovery_lists_the_streaming_subresources(node_server: Server) -> None:
    _, body, _ = node_server.request("GET", "/api/v1")
    kinds = {r["name"]: (r["kind"], r["verbs"]) for r in body["resources"]}
    assert kinds["pods/exec"] == ("PodExecOptions", ["create", "get"])
    assert kinds["pods/attach"] == ("PodAttachOptions", ["create", "get"])
    assert kinds["pods/portforward"] == ("PodPortForwardOptions", ["create", "get"])


def test_an_unknown_pod_is_404(node_server: Server, kubectl: Kubectl) -> None:
    status, body, _ = node_server.request("GET", exec_path(kubectl.namespace or "", "nope"))
    assert status == 404 and body["reason"] == "NotFound"


def test_an_unknown_container_is_400(node_server: Server, kubectl: Kubectl) -> None:
    path = exec_path(kubectl.namespace or "", "shell", "command=true&stdout=1&container=nope")
    status, body, _ = node_server.request("GET", path)
    assert status == 400
    assert body["message"] == "container nope is not valid for pod shell"


def test_a_pod_without_a_node_is_400(node_server: Server, kubectl: Kubectl) -> None:
    pod = objects.pod(
        "unscheduled",
        containers=[objects.container("c", "busybox", command=["true"])],
        nodeSelector={"no-such": "node"},
    )
    apply(kubectl, pod)
    status, body, _ = node_server.request("GET", exec_path(kubectl.namespace or "", "unscheduled"))
    assert status == 400
    assert body["message"] == "pod unscheduled does not have a host assigned"


def test_nodes_may_not_exec(node_server: Server, kubectl: Kubectl) -> None:
    token = (node_server.data_dir / "node-token").read_text().strip()
    path = exec_path(kubectl.namespace or "", "shell")
    status, body, _ = node_server.request("GET", path, token=token)
    assert status == 403
    assert 'cannot create resource "pods/exec"' in body["message"]


def websocket_refusal(server: Server, path: str) -> tuple[int, str]:
    """Open ``path`` as kubectl does; return the refused upgrade's status, and the Status
    message the SPDY retry that kubectl would send next gets."""

    async def attempt() -> int:
        context = ssl.create_default_context(cafile=str(server.ca_file))
        async with aiohttp.ClientSession() as session:
            try:
                ws = await session.ws_connect(
                    server.url + path,
                    protocols=["v5.channel.k8s.io"],
                    headers={"Authorization": f"Bearer {server.token}"},
                    ssl=context,
                )
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            await ws.close()
            return 101

    status = asyncio.run(attempt())
    _, body, _ = server.request("POST", path, headers={"Upgrade": "SPDY/3.1"})
    return status, body["message"] if isinstance(body, dict) else str(body)


def test_exec_without_a_command_is_400(node_server: Server, kubectl: Kubectl) -> None:
    status, message = websocket_refusal(
        node_server, exec_path(kubectl.namespace or "", "shell", "stdout=1")
    )
    assert status == 400
    assert message == "you must specify at least one command for the container"


def test_exec_without_any_stream_is_400(node_server: Server, kubectl: Kubectl) -> None:
    status, message = websocket_refusal(
        node_server, exec_path(kubectl.namespace or "", "shell", "command=true")
    )
    assert status == 400
    assert message == "you must specify at least 1 of stdin, stdout, stderr"


def test_spdy_without_a_websocket_attempt_is_refused_in_plain_words(
    node_server: Server, kubectl: Kubectl
) -> None:
    path = exec_path(kubectl.namespace or "", "shell", "command=date&stdout=1")
    status, body, _ = node_server.request("POST", path, headers={"Upgrade": "SPDY/3.1"})
    assert status == 400
    assert "over WebSockets only" in body["message"]
