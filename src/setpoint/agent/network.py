"""The pod network of one node: a network namespace and an IP per pod, on a node bridge.

This is what a CNI ``bridge`` plugin with ``host-local`` IPAM does for a kubelet, done by the
agent itself with iproute2 (``ip``), for the pod sandbox (:mod:`setpoint.agent.sandbox`)
that owns it:

- **The node bridge** ``spbr<key>`` carries the first address of the node's
  ``spec.podCIDR`` (``10.244.3.1/24``), which the control plane's node IPAM gave the Node
  (:mod:`setpoint.controllers.nodeipam`). ``<key>`` is derived from the agent's data dir,
  which is unique per agent on a machine: several agents may share one (tests, and
  ``setpoint server``'s local agent, run in the host's network namespace).
- **Per pod** a network namespace ``sp-<key>-<pod uid>`` (under ``/run/netns``, so ``ip
  netns`` lists it) holding the pod's own loopback and ``eth0``, one end of a veth pair whose
  other end (``spv<hash>``) is a port of the bridge; ``eth0`` has the pod's IP and a default
  route via the bridge address. Containers join it before they exec (the supervisor's
  ``setns``: :attr:`~setpoint.agent.supervisor.ContainerSpec.netns`); exec probes and hooks
  enter it with ``nsenter --net``; httpGet and tcpSocket probes reach the pod's IP from the
  node, across the bridge.
- **Addresses** are handed out host-local style: one file per address in use under
  ``<data-dir>/network/ipam`` naming its pod, and ``last_reserved_ip``: the next pod gets the
  next free address after it (round robin, so a released address is not reused at once).
  All of it is on disk, so a restarted agent re-attaches: :meth:`PodNetwork.setup` of a pod
  whose namespace and veth exist is a no-op that returns the same IP.
- **Forwarding**: ``net.ipv4.ip_forward`` is turned on in the agent's network namespace when
  the bridge is made (as the CNI bridge plugin does): a pod calling a Service whose endpoint
  is a pod of this node is DNATed by the node proxy and then forwarded bridge to bridge.
- **Other nodes' pods** are reached host-gw style: a route to each other Node's podCIDR via
  its InternalIP (:meth:`PodNetwork.sync_routes`). That needs the nodes on one L2
  segment (a route's gateway must be directly reachable); pods have no masquerade, so their
  traffic does not leave the nodes' network in any useful way unless an operator routes the
  cluster CIDR there.

Setup and teardown are idempotent: a pod whose setup failed half-way is cleaned and set up
again; :meth:`PodNetwork.teardown` of something gone is a no-op; :func:`remove_all` (for
``setpoint killall``) deletes every namespace, veth, route and the bridge the agent made.
Each step is one ``ip -batch`` process for the node side and one ``ip -n <netns> -batch``
for the pod side: ~5-10 ms per pod here (``bench/podnet.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from setpoint.meta.privatefiles import private_dir

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
POD_INTERFACE = "eth0"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
# the routing protocol number marking the agent's routes to other nodes' pods, so that
# removing them never removes a route someone else made to the same place
ROUTE_PROTO = 240


class NetworkError(Exception):
    """The pod network could not be set up; the text says why (a FailedCreatePodSandBox)."""


class PodCIDRExhaustedError(NetworkError):
    """Every address of the node's podCIDR is taken."""


@dataclass(frozen=True)
class PodAddress:
    ip: str
    netns: str  # the path of the pod's network namespace


def node_key(data_dir: Path) -> str:
    return hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:8]


def bridge_name(key: str) -> str:
    return f"spbr{key}"


def netns_name(key: str, uid: str) -> str:
    return f"sp-{key}-{uid}"


def veth_name(key: str, uid: str) -> str:
    return "spv" + hashlib.sha256(f"{key}/{uid}".encode()).hexdigest()[:12]


def gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address + 1


def link_exists(name: str) -> bool:
    """Whether this process's network namespace has the interface ``name``. (Not through
    /sys: that shows the namespace sysfs was mounted in, not ours.)"""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def run_ip(lines: list[str], *, netns: str | None = None, force: bool = False) -> str:
    """Run ``lines`` as one ``ip -batch``; raise :class:`NetworkError` with ip's complaint.
    ``force``: go on past failing lines (teardown of what may be gone already)."""
    argv = ["ip", *(["-n", netns] if netns else []), *(["-force"] if force else []), "-batch", "-"]
    done = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if done.returncode != 0 and not force:
        raise NetworkError(done.stderr.strip() or f"ip exited {done.returncode}")
    return done.stderr


def pod_network_unavailable() -> str:
    """Why this agent cannot give pods network namespaces ("" if it can)."""
    if os.geteuid() != 0:
        return "the setpoint agent is not running as root"
    if not shutil.which("ip"):
        return "iproute2 (the ip command) is not installed"
    return ""


# ------------------------------------------------------------------ host-local addresses


class HostLocalIPAM:
    """Pod addresses of one subnet, each a file named by the address holding the pod uid."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._by_uid: dict[str, str] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in directory.iterdir():
                with contextlib.suppress(ValueError, OSError):
                    ipaddress.ip_address(entry.name)
                    self._by_uid[entry.read_text().strip()] = entry.name

    def lookup(self, uid: str) -> str | None:
        return self._by_uid.get(uid)

    def uids(self) -> set[str]:
        return set(self._by_uid)

    def allocate(self, subnet: ipaddress.IPv4Network, uid: str) -> str:
        """The pod's address: the one it has (in ``subnet``), else the next free one."""
        held = self._by_uid.get(uid)
        if held is not None and ipaddress.ip_address(held) in subnet:
            return held
        if held is not None:  # of a podCIDR the node no longer has
            self.release(uid)
        private_dir(self.directory)
        hosts = [h for h in subnet.hosts() if h != gateway(subnet)]
        last = self._read_last()
        start = next((i + 1 for i, h in enumerate(hosts) if str(h) == last), 0)
        for offset in range(len(hosts)):
            candidate = str(hosts[(start + offset) % len(hosts)])
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
                fd = os.open(self.directory / candidate, flags, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(uid)
            (self.directory / "last_reserved_ip").write_text(candidate)
            self._by_uid[uid] = candidate
            return candidate
        raise PodCIDRExhaustedError(f"no free address left in the node's podCIDR {subnet}")

    def release(self, uid: str) -> None:
        address = self._by_uid.pop(uid, None)
        if address is not None:
            (self.directory / address).unlink(missing_ok=True)

    def _read_last(self) -> str:
        with contextlib.suppress(OSError):
            return (self.directory / "last_reserved_ip").read_text().strip()
        return ""


# ------------------------------------------------------------------ the node's pod network


class PodNetwork:
    """The bridge, pod namespaces and routes of the agent with data dir ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir.absolute() / "network"
        self.key = node_key(data_dir)
        self.bridge = bridge_name(self.key)
        self.ipam = HostLocalIPAM(self.directory / "ipam")
        self.subnet: ipaddress.IPv4Network | None = None
        self._bridge_ready: str | None = None  # the subnet the bridge was set up for
        self._lock = asyncio.Lock()  # bridge and IPAM changes; pod namespaces are per pod
        self.routes: dict[str, str] = self._load_routes()

    def set_pod_cidr(self, cidr: str | None) -> None:
        """The Node's ``spec.podCIDR`` (None while it has none)."""
        network = ipaddress.ip_network(cidr, strict=False) if cidr else None
        if network is not None and not isinstance(network, ipaddress.IPv4Network):
            log.warning("pod network: podCIDR %s is not IPv4; pods use the node's network", cidr)
            network = None
        self.subnet = network

    def netns_path(self, uid: str) -> Path:
        return NETNS_DIR / netns_name(self.key, uid)

    def attached(self, uid: str) -> PodAddress | None:
        """The pod's address if its namespace exists (set up, by us or an agent before)."""
        ip = self.ipam.lookup(uid)
        path = self.netns_path(uid)
        return PodAddress(ip, str(path)) if ip and path.exists() else None

    def on_disk(self) -> set[str]:
        """Pod uids with an address or a namespace of this node."""
        prefix = f"sp-{self.key}-"
        with contextlib.suppress(FileNotFoundError):
            names = [p.name for p in NETNS_DIR.iterdir()]
            return {n[len(prefix) :] for n in names if n.startswith(prefix)} | self.ipam.uids()
        return self.ipam.uids()

    async def setup(self, uid: str) -> PodAddress:
        """The pod's namespace, veth and address, made if missing (idempotent)."""
        subnet = self.subnet
        if subnet is None:
            raise NetworkError("the node has no spec.podCIDR yet")
        async with self._lock:
            await self._ensure_bridge(subnet)
            ip = self.ipam.allocate(subnet, uid)
        name, veth, path = netns_name(self.key, uid), veth_name(self.key, uid), self.netns_path(uid)
        if path.exists() and link_exists(veth):
            return PodAddress(ip, str(path))
        await asyncio.to_thread(self._create, name, veth, f"{ip}/{subnet.prefixlen}", subnet)
        return PodAddress(ip, str(path))

    def _create(self, name: str, veth: str, address: str, subnet: ipaddress.IPv4Network) -> None:
        if NETNS_DIR.joinpath(name).exists() or link_exists(veth):  # half made: start over
            run_ip([f"link del {veth}", f"netns del {name}"], force=True)
        try:
            run_ip(
                [
                    f"netns add {name}",
                    f"link add {veth} type veth peer name {POD_INTERFACE} netns {name}",
                    f"link set {veth} master {self.bridge} up",
                ]
            )
            run_ip(
                [
                    "link set lo up",
                    f"addr add {address} dev {POD_INTERFACE}",
                    f"link set {POD_INTERFACE} up",
                    f"route add default via {gateway(subnet)} dev {POD_INTERFACE}",
                ],
                netns=name,
            )
        except NetworkError:
            run_ip([f"link del {veth}", f"netns del {name}"], force=True)
            raise

    async def _ensure_bridge(self, subnet: ipaddress.IPv4Network) -> None:
        if self._bridge_ready == str(subnet) and link_exists(self.bridge):
            return
        await asyncio.to_thread(self._make_bridge, subnet)
        self._bridge_ready = str(subnet)

    def _make_bridge(self, subnet: ipaddress.IPv4Network) -> None:
        address = f"{gateway(subnet)}/{subnet.prefixlen}"
        if not link_exists(self.bridge):
            run_ip([f"link add {self.bridge} type bridge"])
        shown = subprocess.run(
            ["ip", "-j", "addr", "show", "dev", self.bridge], capture_output=True, text=True
        ).stdout
        have = {
            f"{a['local']}/{a['prefixlen']}"
            for link in json.loads(shown or "[]")
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        }
        lines = [f"addr del {a} dev {self.bridge}" for a in have - {address}]
        if address not in have:
            lines.append(f"addr add {address} dev {self.bridge}")
        run_ip([*lines, f"link set {self.bridge} up"])
        # as the CNI bridge plugin does: a pod calling a Service whose endpoint is a pod of
        # this node is DNATed by the node proxy and must then be forwarded bridge to bridge
        enable_forwarding("pods reach Services whose endpoints are pods of this node")

    async def teardown(self, uid: str) -> None:
        """Remove the pod's veth, namespace and address (its containers are gone)."""
        name, veth = netns_name(self.key, uid), veth_name(self.key, uid)
        if NETNS_DIR.joinpath(name).exists() or link_exists(veth):
            await asyncio.to_thread(run_ip, [f"link del {veth}", f"netns del {name}"], force=True)
        async with self._lock:
            self.ipam.release(uid)

    # ------------------------------------------------------------- other nodes

    async def sync_routes(self, wanted: dict[str, str]) -> None:
        """Route each other node's podCIDR (key) via its InternalIP (value), and remove the
        routes of nodes that went. A route the kernel refuses (the node is not on our L2
        segment) is logged and tried again at the next sync."""
        async with self._lock:
            lines = [route_del(c, v) for c, v in self.routes.items() if wanted.get(c) != v]
            lines += [
                f"route replace {cidr} via {via} proto {ROUTE_PROTO}"
                for cidr, via in wanted.items()
                if self.routes.get(cidr) != via
            ]
            if not lines:
                return
            errors = await asyncio.to_thread(run_ip, lines, force=True)
            failed = {lines[int(n) - 1] for n in re.findall(r"Command failed -:(\d+)", errors)}
            if failed:
                log.warning("pod network: routes to other nodes: %s", errors.strip())
            self.routes = {
                c: v
                for c, v in wanted.items()
                if f"route replace {c} via {v} proto {ROUTE_PROTO}" not in failed
            }
            if self.routes:
                await asyncio.to_thread(enable_forwarding, "pods reach other nodes' pods")
            await asyncio.to_thread(self._save_routes)

    def _load_routes(self) -> dict[str, str]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((self.directory / "routes.json").read_text()))
        return {}

    def _save_routes(self) -> None:
        private_dir(self.directory)
        (self.directory / "routes.json").write_text(json.dumps(self.routes))


def route_del(cidr: str, via: str) -> str:
    return f"route del {cidr} via {via} proto {ROUTE_PROTO}"


def enable_forwarding(why: str) -> None:
    """Turn on IPv4 forwarding in this network namespace, saying ``why`` once."""
    with contextlib.suppress(OSError):
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1")
            log.info("pod network: enabled net.ipv4.ip_forward: %s", why)


def other_node_routes(nodes: list[dict[str, object]], own_name: str) -> dict[str, str]:
    """podCIDR -> InternalIP of every other Node that has both (not loopback ones: hollow
    nodes have no pods to reach)."""
    routes: dict[str, str] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        if not isinstance(meta, dict) or meta.get("name") == own_name:
            continue
        cidr = spec.get("podCIDR") if isinstance(spec, dict) else None
        addresses = status.get("addresses") if isinstance(status, dict) else None
        internal = next(
            (a.get("address") for a in addresses or [] if a.get("type") == "InternalIP"), None
        )
        if not cidr or not internal:
            continue
        with contextlib.suppress(ValueError):
            if not ipaddress.ip_address(internal).is_loopback:
                routes[str(cidr)] = str(internal)
    return routes


def remove_all(data_dir: Path) -> None:
    """Remove every pod namespace, veth, route and the bridge of the agent with
    ``data_dir`` (its containers must be gone): for ``setpoint killall``."""
    if pod_network_unavailable():
        return
    network = PodNetwork(data_dir)
    lines = []
    for uid in network.on_disk():
        lines += [f"link del {veth_name(network.key, uid)}"]
        lines += [f"netns del {netns_name(network.key, uid)}"]
    lines += [route_del(cidr, via) for cidr, via in network.routes.items()]
    if link_exists(network.bridge):
        lines.append(f"link del {network.bridge}")
    if lines:
        run_ip(lines, force=True)
    shutil.rmtree(network.directory, ignore_errors=True)
