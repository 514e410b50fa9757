"""Facts about a pod that every workload controller reads the same way.

A pod is *active* while it is neither terminating (``deletionTimestamp``) nor finished (phase
``Succeeded``/``Failed``); only active pods count towards a ReplicaSet's replicas or a Job's
running pods. It is *ready* when its ``Ready`` condition is ``True``, and *available* when it
has been ready for at least ``minReadySeconds`` (measured from the Ready condition's
``lastTransitionTime``), as ``k8s.io/kubernetes/pkg/api/v1/pod.IsPodAvailable``.

When a controller has more active pods than it wants, it gives up the ones least worth
keeping first. Two orders exist upstream and both live here: the ReplicaSet's
``ActivePodsWithRanks`` (:func:`pods_to_delete`, which also weighs pod-deletion-cost and how
crowded a pod's node is) and the plain ``ActivePods`` order the Job controller sorts by
(:func:`active_pods_order`). Both are in ``pkg/controller/controller_utils.go``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from setpoint.client.api import Obj
from setpoint.meta.timestamps import parse_time

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# ------------------------------------------------------------------------- pod health


def pod_phase(pod: Obj) -> str:
    """``status.phase``; a pod without one is ``Pending``, the phase the API server gives
    every pod it creates."""
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pod_uid(pod: Obj) -> str:
    return str(pod["metadata"].get("uid", ""))


def is_terminating(obj: Obj) -> bool:
    """Being deleted: ``metadata.deletionTimestamp`` is set (any kind, not only pods)."""
    return bool(obj["metadata"].get("deletionTimestamp"))


def is_pod_active(pod: Obj) -> bool:
    """Kubernetes' ``IsPodActive``: not finished and not being deleted."""
    return pod_phase(pod) not in ("Succeeded", "Failed") and not is_terminating(pod)


def ready_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def is_pod_ready(pod: Obj) -> bool:
    condition = ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready, and ready for longer than ``min_ready_seconds`` (``IsPodAvailable``)."""
    condition = ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time(condition.get("lastTransitionTime"))
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def max_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def total_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def deletion_cost(pod: Obj) -> int:
    raw = (pod["metadata"].get("annotations") or {}).get(POD_DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def pod_from_template(template: Obj, owner: Obj, controller_ref: Obj) -> Obj:
    """A new pod for ``owner`` from ``template`` (``GetPodFromTemplate``): ``generateName
    <owner>-``, the template's labels, annotations, finalizers and spec, and
    ``controller_ref``."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"]["namespace"],
        "ownerReferences": [controller_ref],
    }
    for key in ("labels", "annotations", "finalizers"):
        if tmeta.get(key):
            meta[key] = copy.deepcopy(tmeta[key])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


# ------------------------------------------------------------------ deletion ranking

_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def _time_key_newer_first(value: str | None) -> float:
    """Sort key placing missing times first, then newer before older."""
    moment = parse_time(value)
    return -math.inf if moment is None else -moment.timestamp()


def deletion_rank_key(pod: Obj, doubled_up: int) -> tuple[Any, ...]:
    """Sort key ordering pods from "delete first" to "delete last", Kubernetes'
    ``ActivePodsWithRanks.Less`` (without the logarithmic age bucketing): unassigned before
    assigned; Pending < Unknown < Running; not ready before ready; lower
    pod-deletion-cost first; more pods of the same owner on its node first; ready for less
    time first; more container restarts first; newer before older."""
    ready = is_pod_ready(pod)
    ready_since = (ready_condition(pod) or {}).get("lastTransitionTime") if ready else None
    return (
        bool((pod.get("spec") or {}).get("nodeName")),
        _PHASE_ORDINAL.get(pod_phase(pod), 0),
        ready,
        deletion_cost(pod),
        -doubled_up,
        _time_key_newer_first(ready_since) if ready else 0.0,
        -max_restarts(pod),
        _time_key_newer_first(pod["metadata"].get("creationTimestamp")),
    )


def pods_to_delete(pods: list[Obj], related: Iterable[Obj], count: int) -> list[Obj]:
    """The ``count`` pods a ReplicaSet should delete first (``getPodsToDelete``): ranks
    each pod by how many ``related`` active pods share its node, then sorts."""
    if count >= len(pods):
        return list(pods)
    per_node: dict[str, int] = {}
    for other in related:
        node = (other.get("spec") or {}).get("nodeName")
        if node and is_pod_active(other):
            per_node[node] = per_node.get(node, 0) + 1

    def key(pod: Obj) -> tuple[Any, ...]:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        return deletion_rank_key(pod, per_node.get(node, 0) if node else 0)

    ranked = sorted(pods, key=key)
    return ranked[:count]


def active_pods_order(pod: Obj) -> tuple[Any, ...]:
    """``controller.ActivePods`` ordering: the pods least worth keeping come first
    (unscheduled, pending, not ready, most restarts, newest)."""
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    return (
        bool((pod.get("spec") or {}).get("nodeName")),
        _PHASE_ORDINAL.get(pod_phase(pod), 1),
        is_pod_ready(pod),
        -total_restarts(pod),
        -(created.timestamp() if created else 0.0),
    )
