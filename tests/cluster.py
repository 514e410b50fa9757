"""Several real nodes on one machine: one ``setpoint server`` and N ``setpoint agent`` processes.

Each agent is a node of its own, with its own data dir, supervisor and container processes.
Where root can create network namespaces (the normal case here), each agent runs in a network
namespace that this harness creates, joined to the server by a veth pair on a bridge of its
own, with addresses that exist only on that bridge and inside those namespaces: no traffic
leaves the machine, nothing touches the host's routes or firewall. That lets a test cut a
node's network (its link goes down; agent and workloads keep running) as well as kill, stop or
restart the agent. Without that privilege the agents share the host's loopback and the
network-cut faults are skipped.

Agents enter only the namespace's *network* (``nsenter --net``), not a new mount namespace as
``ip netns exec`` would (that remounts /sys and would hide the cgroup hierarchies).

Each agent gives its pods a network of their own (:mod:`setpoint.agent.network`) from its
Node's podCIDR, a subnet of a cluster CIDR unused on this machine. The harness plays the
operator who routes the cluster CIDR: forwarding on in each node's namespace and, on the
run's bridge, a route to each node's podCIDR via its address, so that the tests reach pods at
their IPs (all of them inside namespaces the run created).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from setpoint.agent.supervisor import proc_start_time
from tests.support import (
    SETPOINT,
    Kubectl,
    Server,
    kill_node_processes,
    start_server,
    wait_for,
)

# Node loss in seconds, for tests: lost 3 s after the last heartbeat (a Lease of 3 s, renewed
# every 0.75 s), pods tolerate an unreachable or not-ready node for 1 s more.
FAST_NODE_LOSS_SERVER = [
    "--node-monitor-grace-period",
    "3s",
    "--default-not-ready-toleration-seconds",
    "1",
    "--default-unreachable-toleration-seconds",
    "1",
]
FAST_NODE_LOSS_AGENT = ["--node-lease-duration-seconds", "3"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def can_make_network_namespaces() -> bool:
    """Whether this process may create a network namespace, a bridge and a veth pair into
    it (root, iproute2, util-linux, the kernel's veth and bridge drivers): tried once, for
    real, on throwaway names."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nsenter"):
        return False
    probe = uuid.uuid4().hex[:8]
    netns, bridge, veth = f"sp-probe-{probe}", f"spp{probe}", f"spv{probe}"
    steps = [
        ("netns", "add", netns),
        ("link", "add", bridge, "type", "bridge"),
        ("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns),
        ("link", "set", veth, "master", bridge),
    ]
    try:
        return all(_ip(*step, check=False).returncode == 0 for step in steps)
    finally:
        _ip("link", "del", veth, check=False)
        _ip("link", "del", bridge, check=False)
        _ip("netns", "del", netns, check=False)


def _unused_subnet() -> ipaddress.IPv4Network:
    """A /24 under 10.200.0.0/13 that no address or route on this machine uses."""
    taken = _ip("-o", "-4", "addr").stdout + _ip("-4", "route").stdout
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randint(200, 207)}.{random.randint(0, 255)}.0/24")
        if f"10.{net.network_address.packed[1]}.{net.network_address.packed[2]}." not in taken:
            return net  # type: ignore[return-value]
    raise RuntimeError("no free 10.200.0.0/13 subnet for the test network")


def _forward(netns: str) -> None:
    """Forwarding on in the node's namespace: its pods are reached through it."""
    subprocess.run(
        [
            "nsenter",
            f"--net=/run/netns/{netns}",
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
        ],
        check=True,
    )


@dataclass
class NodeLink:
    """One node's network namespace and its veth to the run's bridge."""

    netns: str
    host_link: str
    address: str

    def cut(self) -> None:
        """The node's network is cut: its link goes down (processes keep running)."""
        _ip("link", "set", self.host_link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_link, "up")


class TestNetwork:
    """A bridge with the server's address and, per node, a namespace joined to it."""

    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:6]
        self.bridge = f"spb{self.run_id}"
        self.subnet = _unused_subnet()
        hosts = self.subnet.hosts()
        self.gateway = str(next(hosts))
        self._addresses = hosts
        self.links: list[NodeLink] = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_node(self) -> NodeLink:
        index = len(self.links)
        netns, host_link = f"sp-{self.run_id}-n{index}", f"sph{self.run_id}n{index}"
        address = str(next(self._addresses))
        _ip("netns", "add", netns)
        _ip("link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("link", "set", host_link, "master", self.bridge)
        _ip("link", "set", host_link, "up")
        inside = ("netns", "exec", netns, "ip")
        _ip(*inside, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        _forward(netns)
        link = NodeLink(netns, host_link, address)
        self.links.append(link)
        return link

    def route_pods(self, link: NodeLink, pod_cidr: str) -> None:
        """Reach the pods of the node behind ``link`` from this machine."""
        _ip("route", "replace", pod_cidr, "via", link.address, "dev", self.bridge)

    def close(self) -> None:
        for link in self.links:
            _ip("link", "del", link.host_link, check=False)
            _ip("netns", "del", link.netns, check=False)
        _ip("link", "del", self.bridge, check=False)


@dataclass
class ClusterNode:
    """A ``setpoint agent`` process that is node ``name`` of the cluster."""

    server: Server
    name: str
    data_dir: Path
    log_path: Path
    link: NodeLink | None = None
    extra: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    join_token: bool = True  # False: start without --token-file (the node joined before)

    def in_netns(self, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in the node's network namespace (where its bridge, veths, routes and
        the node proxy's table are); its stdout."""
        assert self.link is not None, "the node has no network namespace of its own"
        netns = f"--net=/run/netns/{self.link.netns}"
        return subprocess.run(
            ["nsenter", netns, *argv], capture_output=True, text=True, check=check
        ).stdout

    def command(self) -> list[str]:
        prefix = ["nsenter", f"--net=/run/netns/{self.link.netns}"] if self.link else []
        address = self.link.address if self.link else "127.0.0.1"
        return [
            *prefix,
            SETPOINT,
            "-v",
            "agent",
            "--server",
            self.server.url,
            *(
                ["--token-file", str(self.server.data_dir / "node-token")]
                if self.join_token
                else []
            ),
            "--ca-file",
            str(self.server.ca_file),
            "--node-name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--kubelet-port",
            "0",
            "--node-ip",
            address,
            *self.extra,
        ]

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the agent: no chance to clean up (its workloads keep running)."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def crash(self) -> None:
        """The machine dies: the agent, its supervisor and every container process."""
        self.kill()
        kill_node_processes(self.data_dir)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGCONT)  # a paused agent cannot stop
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def container_processes(self, pod_uid: str = "") -> set[tuple[int, int]]:
        """The (pid, start time) of every container instance — of one pod if ``pod_uid`` is
        given — that this node's supervisor recorded and that still runs."""
        found: set[tuple[int, int]] = set()
        containers = self.data_dir / "supervisor" / "containers"
        for state_file in containers.glob("*/state.json"):
            if pod_uid and not unquote(state_file.parent.name).startswith(pod_uid + "/"):
                continue
            with contextlib.suppress(OSError, ValueError):
                saved = json.loads(state_file.read_text())
                process = (int(saved.get("pid") or 0), int(saved.get("pid_start_time") or 0))
                if process[0] and proc_start_time(process[0]) == process[1]:
                    found.add(process)
        return found


def node_conditions(server: Server, name: str) -> dict[str, dict[str, Any]]:
    status, body, _ = server.request("GET", f"/api/v1/nodes/{name}")
    if status != 200:
        return {}
    return {c["type"]: c for c in body.get("status", {}).get("conditions", [])}


def node_ready(server: Server, name: str) -> str | None:
    """The node's Ready condition status ("True", "False", "Unknown"), None if absent."""
    ready = node_conditions(server, name).get("Ready")
    return ready["status"] if ready else None


class Cluster:
    """A server with controllers and scheduler (no local agent) and N agent nodes."""

    def __init__(
        self,
        work: Path,
        nodes: int,
        *,
        server_flags: list[str] | None = None,
        agent_flags: list[str] | None = None,
        network: bool = True,
    ) -> None:
        self.work = work
        self.network = TestNetwork() if network and can_make_network_namespaces() else None
        self.nodes: list[ClusterNode] = []
        try:
            self.server = start_server(
                work / "server",
                controllers=True,
                extra=server_flags,
                bind_address=self.network.gateway if self.network else "127.0.0.1",
            )
            for index in range(nodes):
                self.add_node(f"node-{index}-{uuid.uuid4().hex[:4]}", agent_flags or [])
            wait_for(
                lambda: all(node_ready(self.server, n.name) == "True" for n in self.nodes),
                timeout=60,
                what="every node Ready",
            )
            for node in self.nodes:
                self.route_pods(node)
        except BaseException:
            self.close()
            raise

    def add_node(self, name: str, flags: list[str]) -> ClusterNode:
        link = self.network.add_node() if self.network else None
        node = ClusterNode(
            self.server, name, self.work / name / "agent", self.work / f"{name}.log", link, flags
        )
        self.nodes.append(node)
        node.start()
        return node

    def pod_cidr(self, name: str) -> str:
        status, body, _ = self.server.request("GET", f"/api/v1/nodes/{name}")
        return str((body.get("spec") or {}).get("podCIDR") or "") if status == 200 else ""

    def route_pods(self, node: ClusterNode) -> None:
        """Route the node's podCIDR via the node (once node IPAM gave it one)."""
        if self.network is None or node.link is None:
            return
        cidr = wait_for(lambda: self.pod_cidr(node.name), timeout=30, what="a podCIDR")
        self.network.route_pods(node.link, cidr)

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    def kubectl(self, namespace: str) -> Kubectl:
        return Kubectl(self.server, namespace)

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        query = f"?labelSelector={selector}" if selector else ""
        status, body, _ = self.server.request("GET", f"/api/v1/namespaces/{namespace}/pods{query}")
        assert status == 200, body
        return list(body["items"])

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
            with contextlib.suppress(Exception):
                kill_node_processes(node.data_dir)
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        if self.network:
            self.network.close()

    def tracebacks(self) -> list[str]:
        """The Python tracebacks in the components' logs (a bug wherever they came from),
        each with the component's name and the lines that follow it."""
        logs = {"server": self.server.log(), **{n.name: n.log() for n in self.nodes}}
        found = []
        for name, text in logs.items():
            lines = text.splitlines()
            found += [
                f"{name}:\n" + "\n".join(lines[i : i + 40])
                for i, line in enumerate(lines)
                if line.startswith("Traceback")
            ]
        return found


@contextlib.contextmanager
def running_cluster(nodes: int, **kwargs: Any) -> Iterator[Cluster]:
    work = Path(tempfile.mkdtemp(prefix="sp-cluster-"))
    cluster = Cluster(work, nodes, **kwargs)
    try:
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


def manifest(*objects: dict[str, Any]) -> str:
    return "\n---\n".join(json.dumps(o) for o in objects)
