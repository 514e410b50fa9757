"""The taint eviction controller: removes pods from nodes with ``NoExecute`` taints they do
not tolerate (``pkg/controller/tainteviction/taint_eviction.go``, the "taint manager").

Its work items are pods. A pod is looked at when it is bound to a node or its tolerations
change, and every pod of a node when the node's ``NoExecute`` taints change;
``reconcile(pod)`` computes when the pod must go (:func:`~.eviction.eviction_time`) and either
comes back then (``Requeue(after=...)``) or evicts it now: a ``TaintManagerEviction`` event,
the ``DisruptionTarget`` condition (reason ``DeletionByTaintManager``) through
``pods/status``, then an ordinary graceful delete. Taints removed before a deadline simply
leave nothing to do when the pod comes back. It makes no difference who tainted the node: the
node lifecycle controller (``not-ready``, ``unreachable``) or a user with
``kubectl taint node n key=value:NoExecute``.
"""

from __future__ import annotations

from setpoint.client.api import NODES, PODS, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_node_name, object_key, split_key
from setpoint.client.workqueue import Requeue
from setpoint.controllers.tainteviction.eviction import eviction_time
from setpoint.controllers.util.disruption import disrupt_and_delete
from setpoint.controllers.util.pods import is_terminating
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.taints import Taint, no_execute_taints
from setpoint.meta.timestamps import parse_epoch

NODE_NAME_INDEX = "spec.nodeName"


class TaintEvictionController(Controller[str]):
    name = "taint-eviction-controller"
    workers = 8

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.nodes = informers.informer(NODES)
        self.pods = informers.informer(PODS, indexers={NODE_NAME_INDEX: by_node_name})
        # node -> (key, effect) -> when this controller first saw that NoExecute taint
        self._first_seen: dict[str, dict[tuple[str, str], float]] = {}
        self.nodes.add_handler(
            EventHandler(
                on_add=lambda node: self._taints_changed(None, node),
                on_update=self._taints_changed,
                on_delete=self._node_deleted,
            )
        )
        self.pods.add_handler(
            EventHandler(
                on_add=lambda pod: self.queue.add(object_key(pod)), on_update=self._pod_changed
            )
        )

    def _taints_changed(self, old: Obj | None, new: Obj) -> None:
        taints = no_execute_taints(new)
        if old is not None and no_execute_taints(old) == taints:
            return
        name = new["metadata"]["name"]
        now, seen = self.clock.time(), self._first_seen.get(name, {})
        self._first_seen[name] = {_taint_id(t): seen.get(_taint_id(t), now) for t in taints}
        for pod in self.pods.by_index(NODE_NAME_INDEX, name):
            self.queue.add(object_key(pod))

    def _node_deleted(self, node: Obj) -> None:
        self._first_seen.pop(node["metadata"]["name"], None)

    def _pod_changed(self, old: Obj, new: Obj) -> None:
        before, after = old.get("spec") or {}, new.get("spec") or {}
        if before.get("nodeName") != after.get("nodeName") or before.get(
            "tolerations"
        ) != after.get("tolerations"):
            self.queue.add(object_key(new))

    def _taint_start(self, node_name: str, taint: Taint) -> float:
        added = parse_epoch(taint.get("timeAdded"))
        if added is not None:
            return added
        seen = self._first_seen.setdefault(node_name, {})
        return seen.setdefault(_taint_id(taint), self.clock.time())

    async def reconcile(self, key: str) -> Requeue | None:
        pod = self.pods.get(key)
        if pod is None or is_terminating(pod):
            return None
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        node = self.nodes.get(node_name) if node_name else None
        if node is None:
            return None
        now = self.clock.time()
        at = eviction_time(
            pod,
            no_execute_taints(node),
            taint_start=lambda taint: self._taint_start(node_name, taint),
            now=now,
        )
        if at is None:
            return None
        if at > now:
            return Requeue(after=at - now)
        namespace, name = split_key(key)
        await self.recorder.record(
            pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}"
        )
        await disrupt_and_delete(
            self.client,
            pod,
            now=self.clock.now(),
            reason="DeletionByTaintManager",
            message="Taint manager: deleting due to NoExecute taint",
        )
        return None


def _taint_id(taint: Taint) -> tuple[str, str]:
    return (str(taint.get("key", "")), str(taint.get("effect", "")))
