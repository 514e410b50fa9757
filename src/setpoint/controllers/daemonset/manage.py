"""The DaemonSet controller's decisions per node, as pure functions: which nodes need a daemon
pod, which pods must go, and the status counts. Follows ``manage``, ``podsShouldBeOnNode``,
``getNodesToDaemonPods`` and ``updateDaemonSetStatus`` of
``pkg/controller/daemon/daemon_controller.go``.

Pods are grouped by the node they are for (:func:`pods_by_node`: ``spec.nodeName``, or the
node their required node affinity pins them to before they are bound); a pod that is
terminating and already finished is left out, the DaemonSet has nothing more to do with it.
A terminating pod that still runs *is* counted: its node is not given a second pod until it
is gone (unless the update strategy surges).

Per node (:func:`node_decision`): a node that should run a pod and has none gets one. A node
that may keep its pods has its failed ones deleted (the controller rate-limits that per node,
as the kubelet may keep failing them), its succeeded ones too, and its surplus: without
surge all running pods but the oldest; with surge at most one pod of the current revision
and one older one, the older leaving once the newer is available (or once itself is no
longer ready). A node that may not keep daemon pods loses them all. Pods for nodes that no
longer exist are deleted too (:func:`pods_without_node`); Kubernetes deletes only those not yet
bound and leaves bound ones to its pod garbage collector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from setpoint.client.api import Obj
from setpoint.controllers.daemonset.util import (
    HASH_LABEL,
    Placement,
    allows_surge,
    creation_order,
    is_pod_updated,
    node_placement,
    target_node_name,
)
from setpoint.controllers.util import pods as podutil


def pods_by_node(
    pods: Iterable[Obj], *, include_deleted_terminal: bool = False
) -> dict[str, list[Obj]]:
    """``getNodesToDaemonPods``: the DaemonSet's pods grouped by their target node."""
    grouped: dict[str, list[Obj]] = {}
    for pod in pods:
        terminal = podutil.pod_phase(pod) in ("Succeeded", "Failed")
        if not include_deleted_terminal and terminal and podutil.is_terminating(pod):
            continue
        node = target_node_name(pod)
        if node is not None:
            grouped.setdefault(node, []).append(pod)
    return grouped


@dataclass
class NodeDecision:
    """What one node needs: a new pod, pods deleted, and failed pods to delete unless their
    node is backing off."""

    create: bool = False
    delete: list[Obj] = field(default_factory=list)
    failed: list[Obj] = field(default_factory=list)


def node_decision(
    ds: Obj,
    placement: Placement,
    daemon_pods: list[Obj] | None,
    hash_value: str,
    now: datetime,
) -> NodeDecision:
    """``podsShouldBeOnNode`` for one node (failed pods reported, not yet deleted)."""
    decision = NodeDecision()
    if placement.should_run and daemon_pods is None:
        decision.create = True
        return decision
    pods = daemon_pods or []
    if not placement.should_continue_running:
        decision.delete = [p for p in pods if not podutil.is_terminating(p)]
        return decision
    running: list[Obj] = []
    for pod in pods:
        if podutil.is_terminating(pod):
            continue
        phase = podutil.pod_phase(pod)
        if phase == "Failed":
            decision.failed.append(pod)
        elif phase == "Succeeded":
            decision.delete.append(pod)
        else:
            running.append(pod)
    running.sort(key=creation_order)
    if not allows_surge(ds):
        decision.delete += running[1:]
        return decision
    if not running:
        decision.create = placement.should_run
        return decision
    oldest_new: Obj | None = None
    oldest_old: Obj | None = None
    for pod in running:
        if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == hash_value:
            if oldest_new is None:
                oldest_new = pod
                continue
        elif oldest_old is None:
            oldest_old = pod
            continue
        decision.delete.append(pod)
    if oldest_new is not None and oldest_old is not None:
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        if not podutil.is_pod_ready(oldest_old) or podutil.is_pod_available(
            oldest_new, min_ready, now
        ):
            decision.delete.append(oldest_old)
    return decision


def pods_without_node(nodes: Mapping[str, Obj], by_node: Mapping[str, list[Obj]]) -> list[Obj]:
    """Live pods whose target node does not exist (upstream's
    ``getUnscheduledPodsWithoutNode``, widened to bound pods: see the module docs)."""
    return [
        pod
        for node, pods in sorted(by_node.items())
        if node not in nodes
        for pod in pods
        if not podutil.is_terminating(pod)
    ]


def status_counts(
    ds: Obj,
    nodes: Iterable[Obj],
    by_node: Mapping[str, list[Obj]],
    hash_value: str,
    now: datetime,
) -> dict[str, int]:
    """``updateDaemonSetStatus``' counts: per node that should run a pod, its oldest pod
    decides ready, available and up to date; pods on nodes that should not run one are
    misscheduled."""
    desired = current = misscheduled = ready = updated = available = 0
    min_ready = int(ds["spec"].get("minReadySeconds") or 0)
    for node in nodes:
        placement = node_placement(ds, node)
        pods = by_node.get(node["metadata"]["name"]) or []
        if not placement.should_run:
            misscheduled += bool(pods)
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = min(pods, key=creation_order)
        if podutil.is_pod_ready(pod):
            ready += 1
            if podutil.is_pod_available(pod, min_ready, now):
                available += 1
        if is_pod_updated(pod, hash_value):
            updated += 1
    return {
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
    }
