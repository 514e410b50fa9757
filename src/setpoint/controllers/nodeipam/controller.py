"""Node IPAM: each Node gets a pod subnet from the cluster CIDR (``pkg/controller/nodeipam``).

As upstream's range allocator (``ipam/range_allocator.go``), for every Node without
``spec.podCIDRs`` the controller takes the next free subnet of ``--cluster-cidr``
(:class:`~setpoint.controllers.nodeipam.cidrset.CIDRSet`, ``--node-cidr-mask-size`` bits) and
patches ``spec.podCIDR`` and ``spec.podCIDRs`` onto the Node; the node's agent gives its pods
addresses from it (:mod:`setpoint.agent.network`). Nothing is stored besides the Nodes: before
allocating anything, the controller marks taken every subnet the Nodes in its cache already
carry, so a restarted (or newly elected) controller never hands out a subnet twice. A deleted
Node's subnet is released, and Nodes that were waiting for one are looked at again.

When every subnet is taken the Node gets upstream's event (Normal ``CIDRNotAvailable``,
"Node <name> status is now: CIDRNotAvailable", from ``cidrAllocator``) and is retried every
``EXHAUSTED_RETRY_SECONDS`` (upstream waits for the Node's next update); a Node whose
``podCIDR`` lies outside the cluster CIDR (the flag changed) keeps it and gets a Warning
``CIDRNotInClusterCIDR``, where upstream refuses to start. A failed patch releases the
subnet and the key is retried with backoff. IPv4 or IPv6, one family (no dual stack).
"""

from __future__ import annotations

import logging

from setpoint.client.api import NODES, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler
from setpoint.client.workqueue import Requeue
from setpoint.controllers.nodeipam.cidrset import CIDRRangeFullError, CIDRSet, CIDRSetError
from setpoint.meta.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_NODE_CIDR_MASK_SIZE = 24  # upstream's default for IPv4
EXHAUSTED_RETRY_SECONDS = 30.0


def pod_cidrs(node: Obj) -> list[str]:
    """The Node's ``spec.podCIDRs`` (or its older ``spec.podCIDR`` alone)."""
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or [] if c]
    return cidrs or ([str(spec["podCIDR"])] if spec.get("podCIDR") else [])


def status_change_message(node_name: str, status: str) -> str:
    """``RecordNodeStatusChange``'s message."""
    return f"Node {node_name} status is now: {status}"


class NodeIPAMController(Controller[str]):
    name = "nodeipam"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
        node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.cidrs = CIDRSet(cluster_cidr, node_cidr_mask_size)
        self.nodes = informers.informer(NODES)
        self._held: dict[str, list[str]] = {}  # node name -> the subnets marked taken for it
        self._seeded = False
        self.nodes.add_handler(
            EventHandler(
                on_add=lambda n: self.queue.add(n["metadata"]["name"]),
                on_update=lambda old, new: self.queue.add(new["metadata"]["name"]),
                on_delete=lambda n: self.queue.add(n["metadata"]["name"]),
            )
        )

    def _seed(self) -> None:
        """Mark taken what every cached Node carries (the informers are synced by now)."""
        if self._seeded:
            return
        self._seeded = True
        for node in self.nodes.objects():
            self._occupy(node)

    def _occupy(self, node: Obj) -> bool:
        """Hold the Node's subnets; False if one lies outside the cluster CIDR."""
        name, cidrs = node["metadata"]["name"], pod_cidrs(node)
        if not cidrs:
            return True
        try:
            for cidr in cidrs:
                self.cidrs.occupy(cidr)
        except CIDRSetError:
            return False
        self._held[name] = cidrs
        return True

    def _release(self, name: str) -> None:
        for cidr in self._held.pop(name, []):
            self.cidrs.release(cidr)

    async def reconcile(self, key: str) -> Requeue | None:
        self._seed()
        node = self.nodes.get(key)
        if node is None:
            if key in self._held:
                self._release(key)
                self._wake_waiting()
            return None
        if pod_cidrs(node):
            if self._held.get(key) != pod_cidrs(node):
                self._release(key)
                if not self._occupy(node):
                    message = (
                        f"Node {key} has podCIDR {pod_cidrs(node)[0]}, outside the cluster "
                        f"CIDR {self.cidrs.cluster}"
                    )
                    await self.recorder.record(node, "Warning", "CIDRNotInClusterCIDR", message)
            return None
        if key in self._held:  # patched by us, the cache does not show it yet
            return None
        try:
            subnet = str(self.cidrs.allocate_next())
        except CIDRRangeFullError:
            message = status_change_message(key, "CIDRNotAvailable")
            await self.recorder.record(node, "Normal", "CIDRNotAvailable", message)
            return Requeue(after=EXHAUSTED_RETRY_SECONDS)
        self._held[key] = [subnet]
        try:
            await self.client.patch(NODES, key, {"spec": {"podCIDR": subnet, "podCIDRs": [subnet]}})
        except ApiError as exc:
            self._release(key)
            if exc.is_not_found:
                return None
            message = status_change_message(key, "CIDRAssignmentFailed")
            await self.recorder.record(node, "Normal", "CIDRAssignmentFailed", message)
            raise
        except BaseException:
            self._release(key)
            raise
        log.info("node %s: podCIDR %s", key, subnet)
        return None

    def _wake_waiting(self) -> None:
        for node in self.nodes.objects():
            if not pod_cidrs(node):
                self.queue.add(node["metadata"]["name"])
