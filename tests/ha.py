"""Several API servers on one etcd cluster, with agents: the harness of the HA fault tests.

An :class:`HACluster` is three etcd members (:func:`tests.etcd.running_etcd_cluster`), N
``setpoint server`` processes on them (``--datastore-endpoint etcd://m0,m1,m2``, each on a
port of its own, each with its controller manager and scheduler competing for the Lease
``kube-system/setpoint-controller-manager``, no local agent: agents of one machine would
clash on node names) and M ``setpoint agent`` processes, each a node of its own
(:class:`tests.cluster.ClusterNode`, in a network namespace of its own where root allows).

Faults are methods: SIGKILL a server, kill / stop (SIGSTOP) / restart an etcd member. Every
process started here is killed by :meth:`HACluster.close`, and every pod an agent left is
killed with ``setpoint killall``.

The servers share one identity (CA, service-account and node-credential keys, encryption
config, tokens): every server after the first joins the first one's cluster with
``setpoint server --server URL --token-file`` (:func:`join_flags`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.cluster import ClusterNode, TestNetwork, can_make_network_namespaces, node_ready
from tests.etcd import Etcd, running_etcd_cluster, start_member
from tests.support import Kubectl, Server, start_server, unused_cluster_cidr, wait_for

LEASE_PATH = (
    "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/setpoint-controller-manager"
)


# What makes servers one cluster: the CA (so every server's serving certificate and every
# client certificate verify everywhere), the keys that sign ServiceAccount tokens and node
# credentials, the encryption-at-rest keys, and the static tokens.
def join_flags(first: Server) -> list[str]:
    """The flags with which a server joins ``first``'s cluster (its secrets fetched with the
    first server's server-token, see ``setpoint server --server``)."""
    return ["--server", first.url, "--token-file", str(first.data_dir / "server-token")]


def lease_holder(server: Server) -> str:
    """The controller-manager Lease's holder as ``server`` reads it ("" if none or unread)."""
    status, body, _ = server.request("GET", LEASE_PATH)
    return (
        str(((body or {}).get("spec") or {}).get("holderIdentity") or "") if status == 200 else ""
    )


class HACluster:
    """Three etcd members, ``servers`` API servers and ``agents`` nodes. The first server's
    controller manager leads (the others start once it holds the Lease); every agent talks
    to the last server."""

    def __init__(self, work: Path, *, servers: int = 2, agents: int = 2) -> None:
        self.work = work
        self.servers: list[Server] = []
        self.nodes: list[ClusterNode] = []
        self.network = TestNetwork() if can_make_network_namespaces() else None
        self._etcd = contextlib.ExitStack()
        try:
            self.members: list[Etcd] = self._etcd.enter_context(
                running_etcd_cluster(work / "etcd", size=3)
            )
            self.endpoint = "etcd://" + ",".join(m.hosts[0] for m in self.members)
            self.cluster_cidr = unused_cluster_cidr()
            for index in range(servers):
                self.servers.append(self._start_server(index))
                if index == 0:
                    wait_for(self.leader, timeout=30, what="the first controller manager to lead")
            for index in range(agents):
                self._add_node(f"ha-{index}-{uuid.uuid4().hex[:4]}")
            wait_for(
                lambda: all(node_ready(self.servers[-1], n.name) == "True" for n in self.nodes),
                timeout=60,
                what="every node Ready",
            )
            # an agent that cannot renew its Lease while it starts exits: started means renewed
            wait_for(
                lambda: all(self._has_lease(n.name) for n in self.nodes),
                timeout=30,
                what="every node's Lease",
            )
            if self.network:
                for node in self.nodes:
                    assert node.link is not None
                    cidr = wait_for(lambda n=node: self._pod_cidr(n.name), what="a podCIDR")
                    self.network.route_pods(node.link, cidr)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ servers

    def server_flags(self) -> list[str]:
        return ["--datastore-endpoint", self.endpoint, "--cluster-cidr", self.cluster_cidr]

    def _start_server(self, index: int, port: int | None = None) -> Server:
        data_dir = self.work / f"server-{index}"
        extra = self.server_flags()
        if index:
            extra += join_flags(self.servers[0])
        return start_server(
            data_dir,
            port=port,
            controllers=True,
            extra=extra,
            bind_address=self.network.gateway if self.network else "127.0.0.1",
        )

    def restart_server(self, index: int) -> Server:
        """Start server ``index`` again (after a kill) on its data dir and port."""
        self.servers[index] = self._start_server(index, self.servers[index].port)
        return self.servers[index]

    @property
    def live_servers(self) -> list[Server]:
        return [s for s in self.servers if s.process.poll() is None]

    def leader(self) -> Server | None:
        """The server whose controller manager holds the Lease (it logs its identity when it
        becomes leader), None if no live server's does."""
        for reader in self.live_servers:
            holder = lease_holder(reader)
            if holder:
                return next((s for s in self.servers if f"{holder} became leader" in s.log()), None)
        return None

    def kill_server(self, server: Server) -> None:
        """SIGKILL ``server``: its controller manager child follows it within a second."""
        server.stop(signal.SIGKILL)

    def kubectl(self, server: Server, namespace: str | None = None) -> Kubectl:
        return Kubectl(server, namespace)

    def _has_lease(self, node: str) -> bool:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        return self.servers[-1].request("GET", path)[0] == 200

    def _pod_cidr(self, name: str) -> str:
        status, body, _ = self.servers[-1].request("GET", f"/api/v1/nodes/{name}")
        return str((body.get("spec") or {}).get("podCIDR") or "") if status == 200 else ""

    # ------------------------------------------------------------------ agents

    def _add_node(self, name: str) -> ClusterNode:
        link = self.network.add_node() if self.network else None
        node = ClusterNode(
            self.servers[-1], name, self.work / name / "agent", self.work / f"{name}.log", link
        )
        self.nodes.append(node)
        node.start()
        return node

    # ------------------------------------------------------------------ etcd members

    def kill_member(self, index: int) -> None:
        """SIGKILL etcd member ``index`` (its data stays; :meth:`restart_member` brings it back)."""
        self.members[index].kill()

    def stop_member(self, index: int) -> None:
        """SIGSTOP member ``index``: alive but silent, as a hung machine."""
        self.members[index].process.send_signal(signal.SIGSTOP)

    def restart_member(self, index: int) -> None:
        """Bring member ``index`` back: SIGCONT if stopped, else started again on its data dir
        and ports (it rejoins the cluster it was part of)."""
        member = self.members[index]
        if member.process.poll() is None:
            member.process.send_signal(signal.SIGCONT)
            return
        name = f"m{index}"
        initial = ",".join(
            f"m{i}=http://127.0.0.1:{m.peer_port}" for i, m in enumerate(self.members)
        )
        self.members[index] = start_member(
            self.work / "etcd" / name, name, member.client_port, member.peer_port, initial
        )

    def etcd_leader(self) -> int | None:
        """The index of the member that leads the etcd cluster now (its ``/metrics`` says so)."""
        for index, member in enumerate(self.members):
            with contextlib.suppress(OSError):
                url = f"http://{member.hosts[0]}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if b"\netcd_server_is_leader 1" in response.read():
                        return index
        return None

    def members_healthy(self) -> bool:
        """Every member answers its ``/health`` and says the cluster has a leader."""

        def healthy(member: Etcd) -> bool:
            url = f"http://{member.hosts[0]}/health"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    answer = json.loads(response.read())
            except (OSError, ValueError):
                return False
            return bool(answer.get("health") == "true")

        return all(healthy(m) for m in self.members)

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
            with contextlib.suppress(Exception):
                node.crash()
        for server in self.servers:
            server.stop(signal.SIGKILL)
        for member in getattr(self, "members", []):
            if member.process.poll() is None:
                member.process.send_signal(signal.SIGCONT)  # a stopped member cannot die
        self._etcd.close()
        for member in getattr(self, "members", []):
            member.kill()  # restarted members are not the context manager's
        if self.network:
            self.network.close()

    def tracebacks(self) -> list[str]:
        """Python tracebacks in any server's or agent's log (a bug wherever they came from)."""
        logs = {s.data_dir.name: s.log() for s in self.servers}
        logs |= {n.name: n.log() for n in self.nodes}
        return [
            f"{name}:\n" + "\n".join(text.splitlines()[i : i + 40])
            for name, text in logs.items()
            for i, line in enumerate(text.splitlines())
            if line.startswith("Traceback")
        ]


@contextlib.contextmanager
def running_ha_cluster(*, servers: int = 2, agents: int = 2) -> Iterator[HACluster]:
    work = Path(tempfile.mkdtemp(prefix="sp-ha-"))
    cluster = HACluster(work, servers=servers, agents=agents)
    try:
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)
