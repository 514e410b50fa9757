"""``exec``: ``kubectl exec`` round trips and ``kubectl port-forward`` throughput.

Method: a fresh server and one real agent (:mod:`bench.realnode`) run a pod whose container
is a small Python TCP server that, for each connection, sends ``PAYLOAD`` bytes and closes.
Then, with the real kubectl:

- ``kubectl exec POD -- true`` is run ``EXECS`` times one after another; its wall time (the
  whole kubectl process: start, discovery from its cache, the WebSocket through the API
  server to the agent, the command in the container's cgroups, the status back) gives p50
  and p99;
- the payload is read ``READS`` times directly from the pod's IP and port (from the node),
  and ``READS`` times
  through ``kubectl port-forward`` (kubectl's SPDY tunnel in a WebSocket, relayed by the
  API server to the agent): the best throughput of each, and their ratio.

Targets: exec round trip p50 < 100 ms (issue 14). Port-forward throughput is reported, with
the direct figure as its ceiling. Standalone: ``python -m bench.exec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bench.common import Context, Figure, below, info, percentiles, run_standalone
from bench.realnode import NODE, real_node
from setpoint.client.api import PODS, ApiClient

NAME = "exec"
EXECS = 40
READS = 5
PAYLOAD = 64 * 2**20
KUBECTL = str(Path(sys.executable).parent / "kubectl")

SENDER = textwrap.dedent(
    """
    import socket, sys
    block = b"x" * (1 << 20)
    server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
    while True:
        conn, _ = server.accept()
        for _ in range(int(sys.argv[2]) >> 20):
            conn.sendall(block)
        conn.close()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_all(host: str, port: int) -> float:
    """Seconds to receive everything the sender sends on one connection."""
    started = time.monotonic()
    received = 0
    with socket.create_connection((host, port), timeout=60) as conn:
        while chunk := conn.recv(1 << 20):
            received += len(chunk)
    if received != PAYLOAD:
        raise RuntimeError(f"received {received} of {PAYLOAD} bytes")
    return time.monotonic() - started


async def wait_running(client: ApiClient, name: str, timeout: float = 60.0) -> str:
    """Until the pod runs; its IP (the node's, for a pod on the node's network)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = await client.get(PODS, name, "default")
        status = pod.get("status") or {}
        statuses = status.get("containerStatuses") or []
        if statuses and "running" in statuses[0].get("state", {}) and status.get("podIP"):
            return str(status["podIP"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"pod {name} not running within {timeout:.0f}s")


def kubectl_env(kubeconfig: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    return {**env, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}


async def run(ctx: Context) -> list[Figure]:
    async with real_node(ctx, NAME) as node:
        port = free_port()
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sender", "namespace": "default"},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "sender",
                        "image": "python",
                        "command": ["python3", "-c", SENDER, str(port), str(PAYLOAD)],
                    }
                ],
            },
        }
        await node.client.create(PODS, pod, "default")
        pod_ip = await wait_running(node.client, "sender")
        env = kubectl_env(node.server.data_dir / "kubeconfig.yaml", node.server.data_dir)
        exec_argv = [KUBECTL, "exec", "sender", "--", "true"]
        subprocess.run(exec_argv, env=env, check=True, capture_output=True)  # warm caches
        ctx.say(f"{EXECS} x kubectl exec sender -- true")
        times = []
        for _ in range(EXECS):
            started = time.monotonic()
            await asyncio.to_thread(
                subprocess.run, exec_argv, env=env, check=True, capture_output=True
            )
            times.append((time.monotonic() - started) * 1000)
        p50, p99 = percentiles(times, (50, 99))
        await asyncio.sleep(1.0)  # the agent's status writes after the pod started settle
        direct = min([await asyncio.to_thread(read_all, pod_ip, port) for _ in range(READS)])
        local = free_port()
        forward = subprocess.Popen(
            [KUBECTL, "port-forward", "pod/sender", f"{local}:{port}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert forward.stdout is not None
            line = await asyncio.to_thread(forward.stdout.readline)
            if "Forwarding from" not in line:
                raise RuntimeError(f"kubectl port-forward did not start: {line!r}")
            ctx.say(f"{READS} x {PAYLOAD >> 20} MiB direct and through kubectl port-forward")
            forwarded = min(
                [await asyncio.to_thread(read_all, "127.0.0.1", local) for _ in range(READS)]
            )
        finally:
            forward.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                forward.wait(5)
        mib = PAYLOAD / 2**20
        return [
            below(NAME, "kubectl exec POD -- true, p50", p50, "ms", 100, digits=1),
            info(NAME, "kubectl exec POD -- true, p99", p99, "ms", digits=1),
            info(NAME, "TCP read, direct to the pod's IP", mib / direct, "MiB/s", digits=0),
            info(
                NAME, "TCP read, through kubectl port-forward", mib / forwarded, "MiB/s", digits=0
            ),
            info(NAME, "port-forward / direct", direct / forwarded * 100, "%", digits=1),
        ]


if __name__ == "__main__":
    sys.exit(run_standalone(run))
