"""The node lifecycle controller: notices lost nodes, taints them, and marks their pods not ready.

It follows ``pkg/controller/nodelifecycle/node_lifecycle_controller.go``, event-driven where
upstream polls. Informers on Nodes and on the Leases in ``kube-node-lease`` record when each
node was last heard from (:mod:`~setpoint.controllers.nodelifecycle.health`); a monitor pass
every ``--node-monitor-period`` only compares those times with the grace period, computes each
zone's state (:mod:`~setpoint.controllers.nodelifecycle.zones`) and queues the nodes that need
work, so a pass over thousands of healthy nodes costs a dictionary walk, not API calls.

``reconcile(node name)`` does what upstream's ``monitorNodeHealth`` does per node:

1. a node silent for longer than its grace period gets every kubelet condition ``Unknown``
   (``NodeStatusUnknown``, "Kubelet stopped posting node status.") and a ``NodeNotReady``
   event;
2. its ``NoSchedule`` taints follow its conditions (``not-ready``, ``unreachable``, the
   pressure ones) and ``spec.unschedulable`` (``doNoScheduleTaintingPass``);
3. its ``NoExecute`` taint follows the Ready condition (``processTaintBaseEviction``):
   removed when Ready is ``True``, swapped at once between ``not-ready`` and ``unreachable``,
   and otherwise added through the zone's rate-limited :class:`~.zones.ZoneTainter` (a
   tainting pass every 100 ms, ``doNoExecuteTaintingPass``) — the taint eviction controller
   then removes the pods that do not tolerate it;
4. pods on a node that is not Ready get their Ready condition ``False`` (``MarkPodsNotReady``);
   only pods that became ready before the node stopped being Ready, so that an agent that is
   alive and knows better is never fought.

When every zone is in ``FullDisruption`` (the control plane, not the nodes, probably lost its
network) no ``NoExecute`` taint is added and those already there are removed; when a zone
leaves that state every node's clock starts afresh (``handleDisruption``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from setpoint.client.api import LEASES, NODES, PODS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_node_name
from setpoint.client.nodes import LEASE_NAMESPACE, ready_status
from setpoint.client.tasks import cancel_all, run_periodically
from setpoint.client.workqueue import Requeue
from setpoint.controllers.nodelifecycle.health import (
    NOT_READY_NO_EXECUTE,
    UNREACHABLE_NO_EXECUTE,
    NodeHealth,
    grace_period,
    lost_conditions,
    observe_lease,
    observe_node,
    reconciled_taints,
    silent_for,
    wanted_no_execute_taint,
)
from setpoint.controllers.nodelifecycle.zones import (
    ZoneState,
    ZoneTainter,
    compute_zone_state,
    excluded_from_disruption,
    zone_eviction_rate,
    zone_key,
)
from setpoint.controllers.util.conditions import get_condition
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.taints import Taint, has_taint
from setpoint.meta.timestamps import format_time, parse_time

log = logging.getLogger(__name__)

NODE_NAME_INDEX = "spec.nodeName"
# how often the rate-limited NoExecute tainting runs (upstream's NodeEvictionPeriod)
NODE_EVICTION_PERIOD = 0.1


@dataclass(frozen=True)
class NodeLifecycleSettings:
    """The controller manager's node lifecycle flags. Kubernetes' defaults, where setpoint's
    differ: grace 50 s, startup grace 60 s, monitor period 5 s, eviction rate 0.1 and 0.01
    nodes per second."""

    monitor_period: float = 1.0
    grace_period: float = 15.0
    startup_grace_period: float = 30.0
    eviction_rate: float = 1.0
    secondary_eviction_rate: float = 0.1
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50


class NodeLifecycleController(Controller[str]):
    name = "node-lifecycle-controller"
    workers = 8

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        settings: NodeLifecycleSettings | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.settings = settings or NodeLifecycleSettings()
        self.nodes = informers.informer(NODES)
        self.leases = informers.informer(
            LEASES, field_selector=f"metadata.namespace={LEASE_NAMESPACE}"
        )
        self.pods = informers.informer(PODS, indexers={NODE_NAME_INDEX: by_node_name})
        self._health: dict[str, NodeHealth] = {}
        self._tainters: dict[str, ZoneTainter] = {}
        self.zone_states: dict[str, ZoneState] = {}
        self.nodes.add_handler(
            EventHandler(
                on_add=self._node_changed,
                on_update=lambda old, new: self._node_changed(new),
                on_delete=self._node_deleted,
            )
        )
        self.leases.add_handler(
            EventHandler(
                on_add=self._lease_changed, on_update=lambda old, new: self._lease_changed(new)
            )
        )
        self.pods.add_handler(EventHandler(on_add=self._pod_bound, on_update=self._pod_rebound))

    # ------------------------------------------------------------------ events

    def _node_changed(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        self._health[name] = observe_node(self._health.get(name), node, self.clock.time())
        self._tainter(zone_key(node))
        self.queue.add(name)

    def _node_deleted(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        self._health.pop(name, None)
        for tainter in self._tainters.values():
            tainter.remove(name)

    def _lease_changed(self, lease: Obj) -> None:
        name = lease["metadata"]["name"]
        self._health[name] = observe_lease(self._health.get(name), lease, self.clock.time())

    def _pod_bound(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        cached = self.nodes.get(node) if node else None
        if cached is not None and ready_status(cached) != "True":
            self.queue.add(cached["metadata"]["name"])

    def _pod_rebound(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName"):
            self._pod_bound(new)

    def _tainter(self, zone: str) -> ZoneTainter:
        tainter = self._tainters.get(zone)
        if tainter is None:
            tainter = self._tainters[zone] = ZoneTainter(self.settings.eviction_rate)
            self.zone_states[zone] = ZoneState.INITIAL
        return tainter

    @property
    def all_disrupted(self) -> bool:
        """Every zone is in FullDisruption: the controller taints nothing ``NoExecute``."""
        return bool(self.zone_states) and all(
            s == ZoneState.FULL_DISRUPTION for s in self.zone_states.values()
        )

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        loops = [
            asyncio.create_task(
                run_periodically(self.settings.monitor_period, self.monitor, name=self.name)
            ),
            asyncio.create_task(
                run_periodically(NODE_EVICTION_PERIOD, self.taint_pass, name=self.name)
            ),
        ]
        try:
            await super().run()
        finally:
            await cancel_all(loops)

    def _silent_too_long(self, node: Obj, now: float) -> bool:
        name = node["metadata"]["name"]
        health = self._health.get(name)
        if health is None:
            health = self._health[name] = NodeHealth(probe=now)
        grace = grace_period(
            node,
            grace=self.settings.grace_period,
            startup_grace=self.settings.startup_grace_period,
        )
        return silent_for(health, now) > grace

    async def monitor(self) -> None:
        """Queue the nodes that went silent, then update every zone's state
        (``monitorNodeHealth``'s loop and ``handleDisruption``)."""
        now = self.clock.time()
        zones: dict[str, list[str | None]] = {}
        for node in self.nodes.objects():
            status = ready_status(node)
            if self._silent_too_long(node, now) and status != "Unknown":
                self.queue.add(node["metadata"]["name"])
                status = "Unknown"  # as it is about to be written
            if not excluded_from_disruption(node):
                zones.setdefault(zone_key(node), []).append(status)
        self._handle_disruption(zones, now)

    def _handle_disruption(self, zones: dict[str, list[str | None]], now: float) -> None:
        new_states = {
            zone: compute_zone_state(statuses, self.settings.unhealthy_zone_threshold)[1]
            for zone, statuses in zones.items()
        }
        for zone in list(self.zone_states):
            if zone not in zones:  # its last node is gone
                del self.zone_states[zone]
                self._tainters.pop(zone, None)
        for zone in zones:
            self._tainter(zone)
        was_all = self.all_disrupted
        all_now = bool(new_states) and all(
            s == ZoneState.FULL_DISRUPTION for s in new_states.values()
        )
        if all_now and was_all:
            return  # still cut off: nothing changes
        if all_now:
            log.warning("every node is not Ready: no NoExecute taints until some come back")
            for zone, tainter in self._tainters.items():
                tainter.swap_rate(0.0)
                self.zone_states[zone] = ZoneState.FULL_DISRUPTION
            for node in self.nodes.objects():
                self.queue.add(node["metadata"]["name"])  # to remove their NoExecute taints
            return
        if was_all:
            log.warning("some nodes are Ready again: evictions resume")
            for name in self._health:
                self._health[name] = NodeHealth(probe=now)
        for zone, state in new_states.items():
            if state == self.zone_states.get(zone) and not was_all:
                continue
            if state != self.zone_states.get(zone):
                log.info("zone %r is now %s", zone, state)
            self._tainters[zone].swap_rate(
                zone_eviction_rate(
                    state,
                    len(zones[zone]),
                    rate=self.settings.eviction_rate,
                    secondary_rate=self.settings.secondary_eviction_rate,
                    large_cluster_threshold=self.settings.large_cluster_size_threshold,
                )
            )
            self.zone_states[zone] = state

    async def taint_pass(self) -> None:
        """Taint ``NoExecute`` the nodes whose turn it is in their zone."""
        for tainter in list(self._tainters.values()):
            for name in tainter.take():
                node = self.nodes.get(name)
                if node is None or (taint := wanted_no_execute_taint(node)) is None:
                    continue
                try:
                    await self._write_taints(node, no_execute=taint, keep_no_execute=False)
                except Exception as exc:
                    log.warning("tainting node %s failed: %s; will retry", name, exc)
                    tainter.add(name)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        if self._silent_too_long(node, self.clock.time()):
            node = await self._mark_lost(node)
        zone = zone_key(node)
        tainter = self._tainter(zone)
        wanted = wanted_no_execute_taint(node)
        taints = (node.get("spec") or {}).get("taints") or []
        keep = False
        if wanted is None or self.all_disrupted:
            tainter.remove(key)
            wanted = None
        elif not has_taint(taints, wanted) and not (
            has_taint(taints, NOT_READY_NO_EXECUTE) or has_taint(taints, UNREACHABLE_NO_EXECUTE)
        ):
            tainter.add(key)  # its turn comes in the tainting pass
            keep = True
        node = await self._write_taints(node, no_execute=wanted, keep_no_execute=keep)
        if ready_status(node) != "True" and not await self._mark_pods_not_ready(node):
            return Requeue()  # a pod changed meanwhile: look again when the cache has it
        return None

    async def _mark_lost(self, node: Obj) -> Obj:
        conditions = lost_conditions(node, self.clock.now())
        if conditions is None:
            return node
        name = node["metadata"]["name"]
        log.info("node %s: no heartbeat within its grace period; marking it lost", name)
        update = {**node, "status": {**(node.get("status") or {}), "conditions": conditions}}
        written = await self.client.update_status(NODES, update)
        await self.recorder.record(
            written, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
        )
        return written

    async def _write_taints(
        self, node: Obj, *, no_execute: Taint | None, keep_no_execute: bool
    ) -> Obj:
        current = (node.get("spec") or {}).get("taints") or []
        taints = reconciled_taints(
            node, no_execute=no_execute, keep_no_execute=keep_no_execute, now=self.clock.now()
        )
        if taints == current:
            return node
        update = {**node, "spec": {**(node.get("spec") or {}), "taints": taints or None}}
        if not taints:
            update["spec"].pop("taints")
        return await self.client.update(NODES, update)

    async def _mark_pods_not_ready(self, node: Obj) -> bool:
        """``MarkPodsNotReady`` for the pods that were ready before the node stopped being;
        False if a write lost to a newer version of a pod."""
        done = True
        node_ready = get_condition(node.get("status") or {}, "Ready") or {}
        since = parse_time(node_ready.get("lastTransitionTime"))
        for pod in self.pods.by_index(NODE_NAME_INDEX, node["metadata"]["name"]):
            condition = get_condition(pod.get("status") or {}, "Ready")
            if condition is None or condition.get("status") != "True":
                continue
            ready_since = parse_time(condition.get("lastTransitionTime"))
            if since is not None and ready_since is not None and ready_since > since:
                continue  # its node's agent said so after the node went: it knows better
            status = pod.get("status") or {}
            conditions = [
                {
                    **c,
                    "status": "False",
                    "lastTransitionTime": format_time(self.clock.now()),
                }
                if c.get("type") == "Ready"
                else c
                for c in status.get("conditions") or []
            ]
            try:
                await self.client.update_status(
                    PODS, {**pod, "status": {**status, "conditions": conditions}}
                )
            except ApiError as exc:
                if exc.is_conflict:
                    done = False
                    continue
                if exc.is_not_found:
                    continue  # gone meanwhile: nothing to mark
                raise
            await self.recorder.record(pod, "Warning", "NodeNotReady", "Node is not ready")
        return done
