"""Pod and ownership helpers shared by the workload controllers.

Two ideas live here, both pure functions over Kubernetes-shaped dicts.

*Pod health.* A pod is *active* while it is neither terminating (``deletionTimestamp``) nor
finished (phase ``Succeeded``/``Failed``); only active pods count towards a ReplicaSet's
replicas. It is *ready* when its ``Ready`` condition is ``True``, and *available* when it has
been ready for at least ``minReadySeconds`` (measured from the Ready condition's
``lastTransitionTime``), as ``k8s.io/kubernetes/pkg/api/v1/pod.IsPodAvailable``.

*Controller ownership.* An object has at most one ``ownerReference`` with ``controller:
true``: its controller. A controller *claims* the objects its selector matches
(``ClaimObject`` in ``pkg/controller/controller_ref_manager.go``): it keeps what it already
owns and still matches, adopts orphans that match (adding its controller reference), and
releases what it owns that no longer matches (removing the reference). Objects controlled by
someone else are never touched. :func:`classify_claims` makes that decision;
:func:`adoption_patch` / :func:`release_patch` are the merge patches that carry it out, pinned
to the object's resourceVersion so a concurrent change makes them fail with a conflict
instead of clobbering someone else's reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from setpoint.client.api import Obj
from setpoint.meta.labels import Selector
from setpoint.meta.timestamps import parse_time

POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# ------------------------------------------------------------------------------- time


def now_utc() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------- pod health


def pod_phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminating(obj: Obj) -> bool:
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


def deletion_cost(pod: Obj) -> int:
    raw = (pod["metadata"].get("annotations") or {}).get(POD_DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


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


# ----------------------------------------------------------- controller references


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any (``GetControllerOf``)."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def new_controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """``NewControllerRef``: a controller reference that blocks the owner's foreground
    deletion until this object is gone."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


@dataclass
class Claims:
    """What a controller does with the candidates in its namespace."""

    owned: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def classify_claims(owner: Obj, selector: Selector, candidates: Iterable[Obj]) -> Claims:
    """``ClaimObject`` for every candidate, as a decision (no API calls)."""
    claims = Claims()
    owner_uid = owner["metadata"].get("uid")
    owner_deleting = is_terminating(owner)
    owner_ns = owner["metadata"].get("namespace")
    for obj in candidates:
        matches = selector.matches(obj["metadata"].get("labels") or {})
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches:
                claims.owned.append(obj)
            elif not owner_deleting:
                claims.release.append(obj)
            continue
        if owner_deleting or not matches or is_terminating(obj):
            continue
        if owner_ns and obj["metadata"].get("namespace") != owner_ns:
            continue
        claims.adopt.append(obj)
    return claims


def adoption_patch(obj: Obj, ref: Obj) -> Obj:
    """A merge patch adding controller ``ref`` to ``obj``'s ownerReferences."""
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
    return {
        "metadata": {
            "ownerReferences": [*refs, ref],
            "resourceVersion": obj["metadata"].get("resourceVersion"),
        }
    }


def release_patch(obj: Obj, owner_uid: str) -> Obj:
    """A merge patch removing the reference to ``owner_uid`` from ``obj``."""
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
    return {
        "metadata": {
            "ownerReferences": refs or None,
            "resourceVersion": obj["metadata"].get("resourceVersion"),
        }
    }


# --------------------------------------------------------------------- conditions


def get_condition(status: Obj, kind: str) -> Obj | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def remove_condition(status: Obj, kind: str) -> None:
    remaining = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if remaining:
        status["conditions"] = remaining
    else:
        status.pop("conditions", None)
