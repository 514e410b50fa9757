"""Taints and tolerations: the well-known taint keys, and whether a toleration tolerates a taint.

A Node's ``spec.taints`` repel pods; a pod's ``spec.tolerations`` let it stay despite them.
Four components read them the same way: the scheduler (``NoSchedule`` and ``NoExecute``
taints keep pods off a node), the taint eviction controller (``NoExecute`` taints remove pods
already there, at once or after a toleration's ``tolerationSeconds``), the DaemonSet
controller (which decides itself which nodes should run a daemon pod) and the API server's
DefaultTolerationSeconds admission. The matching rules are ``Toleration.ToleratesTaint`` and
``GetMatchingTolerations`` of ``k8s.io/api/core/v1`` and ``pkg/apis/core/v1/helper``, and
``FindMatchingUntoleratedTaint`` of ``k8s.io/component-helpers/scheduling/corev1``; the keys
are the ``TaintNode*`` constants of ``k8s.io/api/core/v1/well_known_taints.go``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

Taint = Mapping[str, Any]
Toleration = Mapping[str, Any]


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """``Toleration.ToleratesTaint``: an empty effect or key matches any; ``Exists`` matches
    any value, ``Equal`` (the default operator) only the taint's."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def same_taint(a: Taint, b: Taint) -> bool:
    """``Taint.MatchTaint``: the same key and effect (a node has at most one such taint)."""
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def has_taint(taints: Iterable[Taint], taint: Taint) -> bool:
    return any(same_taint(t, taint) for t in taints)


def no_execute_taints(node: Mapping[str, Any]) -> list[Taint]:
    return [
        t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == NO_EXECUTE
    ]


def matching_tolerations(
    taints: Iterable[Taint], tolerations: Iterable[Toleration]
) -> list[Toleration] | None:
    """``GetMatchingTolerations``: for every taint the first toleration that tolerates it,
    or None when some taint is tolerated by none."""
    tolerations = list(tolerations)
    used: list[Toleration] = []
    for taint in taints:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return None
        used.append(match)
    return used


def untolerated_taint(
    taints: Iterable[Taint],
    tolerations: Iterable[Toleration],
    considered: Callable[[Taint], bool],
) -> Taint | None:
    """``FindMatchingUntoleratedTaint``: the first taint ``considered`` picks out that no
    toleration tolerates, or None."""
    tolerations = list(tolerations)
    for taint in taints:
        if considered(taint) and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None
