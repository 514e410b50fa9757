"""Node health: when a node was last heard from, and what the controller writes when it was not.

The node lifecycle controller never trusts timestamps written by the node (clocks differ);
it keeps, per node, the controller's own time at which it last *saw* a heartbeat
(:class:`NodeHealth`, upstream's ``nodeHealthData.probeTimestamp``): a change of the Ready
condition's ``lastHeartbeatTime`` in the Node's status, or of the Lease's ``renewTime``
(:func:`observe_node`, :func:`observe_lease`). A node not heard from for longer than its grace
period (:func:`grace_period`: the startup grace while it never posted a Ready condition) is
lost: every kubelet condition becomes ``Unknown`` (:func:`lost_conditions`, as
``tryUpdateNodeHealth``).

From the conditions follow the node's ``NoSchedule`` taints (:func:`no_schedule_taints`,
``doNoScheduleTaintingPass``: TaintNodesByCondition) and the ``NoExecute`` taint the controller
wants (:func:`wanted_no_execute_taint`): ``not-ready`` when the node itself reports Ready
``False``, ``unreachable`` when it is ``Unknown``, none when it is ``True``. Everything here is
pure: dicts and times in, decisions out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from datetime import datetime

from setpoint.client.api import Obj
from setpoint.client.nodes import ready_status
from setpoint.controllers.util.conditions import get_condition
from setpoint.meta.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    Taint,
    same_taint,
)
from setpoint.meta.timestamps import format_time, parse_time

# the conditions a kubelet owns, set Unknown when it goes silent (NetworkUnavailable belongs
# to the control plane and is left alone, as upstream)
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

# nodeConditionToTaintKeyStatusMap
CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): TAINT_NOT_READY,
    ("Ready", "Unknown"): TAINT_UNREACHABLE,
    ("MemoryPressure", "True"): TAINT_MEMORY_PRESSURE,
    ("DiskPressure", "True"): TAINT_DISK_PRESSURE,
    ("NetworkUnavailable", "True"): TAINT_NETWORK_UNAVAILABLE,
    ("PIDPressure", "True"): TAINT_PID_PRESSURE,
}
_MANAGED_NO_SCHEDULE = {*CONDITION_TAINTS.values(), TAINT_UNSCHEDULABLE}

NOT_READY_NO_EXECUTE: Taint = {"key": TAINT_NOT_READY, "effect": NO_EXECUTE}
UNREACHABLE_NO_EXECUTE: Taint = {"key": TAINT_UNREACHABLE, "effect": NO_EXECUTE}


@dataclass(frozen=True)
class NodeHealth:
    """When (controller time, seconds) a heartbeat of the node was last seen, and the
    heartbeats seen then, to tell a new one from an old one."""

    probe: float
    heartbeat: str | None = None  # the Ready condition's lastHeartbeatTime
    renew_time: str | None = None  # the Lease's spec.renewTime


def observe_node(health: NodeHealth | None, node: Obj, now: float) -> NodeHealth:
    """A first sight of the node, or a new status heartbeat, counts as hearing from it."""
    condition = get_condition(node.get("status") or {}, "Ready") or {}
    heartbeat = condition.get("lastHeartbeatTime")
    if health is None:
        return NodeHealth(probe=now, heartbeat=heartbeat)
    if heartbeat != health.heartbeat:
        return replace(health, probe=now, heartbeat=heartbeat)
    return health


def observe_lease(health: NodeHealth | None, lease: Obj, now: float) -> NodeHealth:
    """A renewal newer than the last one seen counts as hearing from the node."""
    renew_time = (lease.get("spec") or {}).get("renewTime")
    if health is None:
        return NodeHealth(probe=now, renew_time=renew_time)
    seen, renewed = parse_time(health.renew_time), parse_time(renew_time)
    if renewed is not None and (seen is None or renewed > seen):
        return replace(health, probe=now, renew_time=renew_time)
    return health


def grace_period(node: Obj, *, grace: float, startup_grace: float) -> float:
    """A node that never posted a Ready condition gets the (longer) startup grace."""
    return startup_grace if ready_status(node) is None else grace


def silent_for(health: NodeHealth, now: float) -> float:
    return now - health.probe


def lost_conditions(node: Obj, now: datetime) -> list[Obj] | None:
    """The node's conditions with every kubelet condition ``Unknown`` (reason
    ``NodeStatusUnknown``; ``NodeStatusNeverUpdated`` for one never posted), or None when Ready
    is ``Unknown`` already (nothing to write)."""
    if ready_status(node) == "Unknown":
        return None
    stamp = format_time(now)
    conditions = copy.deepcopy((node.get("status") or {}).get("conditions") or [])
    by_type = {c.get("type"): c for c in conditions}
    for kind in KUBELET_CONDITIONS:
        condition = by_type.get(kind)
        if condition is None:
            conditions.append(
                {
                    "type": kind,
                    "status": "Unknown",
                    "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                    "lastTransitionTime": stamp,
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                }
            )
        elif condition.get("status") != "Unknown":
            condition.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
                lastTransitionTime=stamp,
            )
    return conditions


def no_schedule_taints(node: Obj) -> list[Taint]:
    """The ``NoSchedule`` taints the node's conditions and ``spec.unschedulable`` call for."""
    wanted: list[Taint] = []
    for condition in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((condition.get("type"), condition.get("status")))
        if key is not None:
            wanted.append({"key": key, "effect": NO_SCHEDULE})
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append({"key": TAINT_UNSCHEDULABLE, "effect": NO_SCHEDULE})
    return wanted


def wanted_no_execute_taint(node: Obj) -> Taint | None:
    """``not-ready`` for Ready ``False``, ``unreachable`` for ``Unknown``, else none (the two
    are exclusive, mirroring the Ready condition)."""
    status = ready_status(node)
    if status == "False":
        return NOT_READY_NO_EXECUTE
    if status == "Unknown":
        return UNREACHABLE_NO_EXECUTE
    return None


def reconciled_taints(
    node: Obj, *, no_execute: Taint | None, keep_no_execute: bool, now: datetime
) -> list[Obj]:
    """The node's taints with the controller's ones made right: the condition ``NoSchedule``
    taints exactly as :func:`no_schedule_taints` says, and of the two ``NoExecute`` ones only
    ``no_execute`` (when given) — or, with ``keep_no_execute``, whatever is there (the taint is
    waiting for its turn under the eviction rate limit). Other taints are kept as they are.
    A taint added gets ``timeAdded`` = ``now`` when it is ``NoExecute``."""
    current = list((node.get("spec") or {}).get("taints") or [])
    wanted = no_schedule_taints(node)
    result = []
    for taint in current:
        managed_no_schedule = (
            taint.get("effect") == NO_SCHEDULE and taint.get("key") in _MANAGED_NO_SCHEDULE
        )
        managed_no_execute = any(
            same_taint(taint, t) for t in (NOT_READY_NO_EXECUTE, UNREACHABLE_NO_EXECUTE)
        )
        if managed_no_schedule and not any(same_taint(taint, t) for t in wanted):
            continue
        unwanted = no_execute is None or not same_taint(taint, no_execute)
        if managed_no_execute and not keep_no_execute and unwanted:
            continue
        result.append(taint)
    for taint in wanted:
        if not any(same_taint(taint, t) for t in result):
            result.append(dict(taint))
    if no_execute is not None and not any(same_taint(no_execute, t) for t in result):
        result.append({**no_execute, "timeAdded": format_time(now)})
    return result
