"""When a pod on a ``NoExecute``-tainted node must go: the toleration arithmetic, pure.

Upstream's ``processPodOnNode`` (``pkg/controller/tainteviction/taint_eviction.go``): a pod
that does not tolerate every ``NoExecute`` taint of its node goes at once; one that tolerates
them all stays forever unless a matching toleration has ``tolerationSeconds``, and then goes
when the shortest of them runs out (a toleration of zero or fewer seconds means at once).

setpoint measures each toleration from the later of two moments it can read back after a
restart, rather than from when the controller happened to notice: when the taint was added
(its ``timeAdded``, which the node lifecycle controller writes; for a taint without one, when
this controller first saw it) and when the pod was bound to the node (its ``PodScheduled``
condition, else its creation). So a controller restart neither forgets nor restarts a
countdown, and a pod that tolerates a taint for 10 s gets 10 s on the node even if it landed
there after the taint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from setpoint.client.api import Obj
from setpoint.controllers.util.conditions import get_condition
from setpoint.meta.taints import Taint, matching_tolerations
from setpoint.meta.timestamps import parse_epoch

TaintStart = Callable[[Taint], float]
"""When (Unix time) a taint of the pod's node was added, or first seen."""


def bound_at(pod: Obj) -> float | None:
    """When the pod was bound to its node: its PodScheduled condition, else its creation."""
    scheduled = get_condition(pod.get("status") or {}, "PodScheduled") or {}
    return parse_epoch(scheduled.get("lastTransitionTime")) or parse_epoch(
        pod["metadata"].get("creationTimestamp")
    )


def eviction_time(
    pod: Obj, taints: Sequence[Taint], *, taint_start: TaintStart, now: float
) -> float | None:
    """The Unix time at which the pod must leave a node with these ``NoExecute`` taints:
    ``now`` for an untolerated taint, the earliest running-out toleration otherwise, None
    when it may stay (no taints, or tolerated without a time limit)."""
    if not taints:
        return None
    used = matching_tolerations(taints, (pod.get("spec") or {}).get("tolerations") or [])
    if used is None:
        return now
    bound = bound_at(pod) or 0.0
    deadlines = []
    for taint, toleration in zip(taints, used, strict=True):
        seconds = toleration.get("tolerationSeconds")
        if seconds is None:
            continue
        if seconds <= 0:
            return now
        deadlines.append(max(taint_start(taint), bound) + seconds)
    return min(deadlines, default=None)
