"""PodGC: force-deletes the pods nobody else will ever finish (``pkg/controller/podgc``).

A periodic pass (every ``GC_CHECK_PERIOD``) picks pods, each with the reason it must go, and
puts them on the work queue; ``reconcile`` re-checks one against the cache (the API for a
missing node) and deletes it. As upstream's ``gc``:

- ``terminated``: finished pods (``Succeeded``/``Failed``) beyond
  ``--terminated-pod-gc-threshold``, evicted ones first, then oldest first;
- ``orphaned``: pods bound to a Node that does not exist — not in the cache for
  ``QUARANTINE_SECONDS`` and confirmed gone by a GET — get phase ``Failed`` and
  ``DisruptionTarget`` (``DeletionByPodGC``, "PodGC: node no longer exists");
- ``unscheduled-terminating``: pods being deleted that were never bound (no agent will
  confirm their deletion);
- ``out-of-service``: pods being deleted on a node that is not Ready and carries the
  ``node.kubernetes.io/out-of-service`` taint (non-graceful node shutdown).

All of them are deleted with grace period 0 after being marked ``Failed`` (unless finished).

setpoint adds one case, ``lost-node``: a pod being deleted on a node that is *lost* (its
Ready condition ``Unknown``: its Lease expired) whose grace period is over
(``deletionTimestamp`` passed) is treated as an orphan (``Failed``, ``DisruptionTarget`` with
``DeletionByPodGC``, force-deleted). Kubernetes leaves such a pod Terminating until the node
answers again, so ``kubectl drain`` of a dead node, and a Job with a ``podFailurePolicy``
(which waits for its pods to be ``Failed``), hang. It is not done while *every* node is lost:
then the control plane is the likelier one to be cut off. The copy still running on a
partitioned node is stopped by its agent when it reconnects and finds the pod gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from setpoint.client.api import NODES, PODS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import by_node_name, object_key
from setpoint.client.nodes import ready_status
from setpoint.client.tasks import cancel_all, run_periodically
from setpoint.client.workqueue import Requeue
from setpoint.controllers.util.disruption import disrupt_and_delete
from setpoint.controllers.util.pods import is_terminating, pod_phase
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.taints import TAINT_OUT_OF_SERVICE
from setpoint.meta.timestamps import parse_epoch, parse_time

log = logging.getLogger(__name__)

# Kubernetes: 20 s and 40 s
GC_CHECK_PERIOD = 2.0
QUARANTINE_SECONDS = 5.0
DEFAULT_TERMINATED_POD_THRESHOLD = 12500
NODE_NAME_INDEX = "spec.nodeName"
GC_INDEX = "podgc"


class Reason(StrEnum):
    TERMINATED = "terminated"
    ORPHANED = "orphaned"
    UNSCHEDULED_TERMINATING = "unscheduled-terminating"
    OUT_OF_SERVICE = "out-of-service"
    LOST_NODE = "lost-node"


class Item(NamedTuple):
    key: str
    reason: Reason


# ------------------------------------------------------------------ the decisions


def gc_index(pod: Obj) -> list[str]:
    """The pod informer index PodGC reads instead of walking every pod."""
    values = []
    if pod_phase(pod) in ("Succeeded", "Failed"):
        values.append("terminated")
    if is_terminating(pod):
        values.append("terminating")
    return values


def excess_terminated(pods: Iterable[Obj], threshold: int) -> list[Obj]:
    """The finished pods beyond ``threshold``: evicted first, then oldest, then by name
    (``byEvictionAndCreationTimestamp``)."""
    terminated = list(pods)
    excess = len(terminated) - threshold
    if threshold <= 0 or excess <= 0:
        return []

    def order(pod: Obj) -> tuple[bool, float, str]:
        evicted = (
            pod_phase(pod) == "Failed" and (pod.get("status") or {}).get("reason") == "Evicted"
        )
        created = parse_time(pod["metadata"].get("creationTimestamp"))
        return (not evicted, created.timestamp() if created else 0.0, pod["metadata"]["name"])

    return sorted(terminated, key=order)[:excess]


def terminating_reason(
    pod: Obj, node: Obj | None, *, now: float, lost_nodes_allowed: bool
) -> Reason | None:
    """Why a pod being deleted must be force-deleted now, if it must (``node`` is its node
    from the cache; a missing node is the orphan check's business)."""
    if not is_terminating(pod):
        return None
    if not (pod.get("spec") or {}).get("nodeName"):
        return Reason.UNSCHEDULED_TERMINATING
    if node is None:
        return None
    ready = ready_status(node)
    taints = (node.get("spec") or {}).get("taints") or []
    if ready != "True" and any(t.get("key") == TAINT_OUT_OF_SERVICE for t in taints):
        return Reason.OUT_OF_SERVICE
    deadline = parse_epoch(pod["metadata"].get("deletionTimestamp"))
    if lost_nodes_allowed and ready == "Unknown" and deadline is not None and now >= deadline:
        return Reason.LOST_NODE
    return None


# ------------------------------------------------------------------ the controller


class PodGCController(Controller[Item]):
    name = "pod-garbage-collector"
    workers = 4

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        terminated_pod_threshold: int = DEFAULT_TERMINATED_POD_THRESHOLD,
        quarantine: float = QUARANTINE_SECONDS,
        period: float = GC_CHECK_PERIOD,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.terminated_pod_threshold = terminated_pod_threshold
        self.quarantine = quarantine
        self.period = period
        self.nodes = informers.informer(NODES)
        self.pods = informers.informer(
            PODS, indexers={NODE_NAME_INDEX: by_node_name, GC_INDEX: gc_index}
        )
        self._missing_since: dict[str, float] = {}  # node name -> when first not in the cache

    async def run(self) -> None:
        passes = asyncio.create_task(
            run_periodically(self.period, self.gc_pass, name=self.name), name=f"{self.name}-passes"
        )
        try:
            await super().run()
        finally:
            await cancel_all([passes])

    def lost_nodes_allowed(self) -> bool:
        """Some node is Ready: a lost one is lost, not the control plane cut off."""
        return any(ready_status(n) == "True" for n in self.nodes.objects())

    async def gc_pass(self) -> None:
        """Queue every pod that must go, with its reason (``gc``)."""
        now = self.clock.time()
        for pod in excess_terminated(
            self.pods.by_index(GC_INDEX, "terminated"), self.terminated_pod_threshold
        ):
            self.queue.add(Item(object_key(pod), Reason.TERMINATED))
        terminating = self.pods.by_index(GC_INDEX, "terminating")
        allowed = bool(terminating) and self.lost_nodes_allowed()
        for pod in terminating:
            node_name = (pod.get("spec") or {}).get("nodeName")
            node = self.nodes.get(node_name) if node_name else None
            reason = terminating_reason(pod, node, now=now, lost_nodes_allowed=allowed)
            if reason is not None:
                self.queue.add(Item(object_key(pod), reason))
        bound_to = set(self.pods.index_values(NODE_NAME_INDEX))
        for name in list(self._missing_since):
            if name not in bound_to or self.nodes.get(name) is not None:
                del self._missing_since[name]
        for name in bound_to:
            if self.nodes.get(name) is not None:
                continue
            since = self._missing_since.setdefault(name, now)
            if now - since >= self.quarantine:
                for pod in self.pods.by_index(NODE_NAME_INDEX, name):
                    self.queue.add(Item(object_key(pod), Reason.ORPHANED))

    async def reconcile(self, item: Item) -> Requeue | None:
        pod = self.pods.get(item.key)
        if pod is None:
            return None
        node_name = (pod.get("spec") or {}).get("nodeName")
        reason: str | None = None
        message = ""
        if item.reason == Reason.TERMINATED:
            if pod_phase(pod) not in ("Succeeded", "Failed"):
                return None
        elif item.reason == Reason.ORPHANED:
            if not node_name or await self._node_exists(node_name):
                return None
            reason, message = "DeletionByPodGC", "PodGC: node no longer exists"
        else:
            node = self.nodes.get(node_name) if node_name else None
            now = self.clock.time()
            allowed = self.lost_nodes_allowed()
            if terminating_reason(pod, node, now=now, lost_nodes_allowed=allowed) != item.reason:
                return None
            if item.reason == Reason.LOST_NODE:
                reason = "DeletionByPodGC"
                message = "PodGC: node is lost and the pod's grace period is over"
        log.info("force-deleting pod %s (%s)", item.key, item.reason)
        await disrupt_and_delete(
            self.client,
            pod,
            now=self.clock.now(),
            reason=reason,
            message=message,
            mark_failed=True,
            grace_period_seconds=0,
        )
        return None

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.client.get(NODES, name)
        except ApiError as exc:
            if exc.is_not_found:
                return False
            raise
        return True
