"""Taints and tolerations: the well-known taint keys, and whether a toleration tolerates a taint.

A Node's ``spec.taints`` repel pods; a pod's ``spec.tolerations`` let it stay despite them.
Several components read them the same way: the scheduler (``NoSchedule`` and ``NoExecute``
taints keep pods off a node) and the DaemonSet controller (which decides itself whether a
node should run a daemon pod, with the tolerations it adds to every daemon pod). The
matching rules are ``Toleration.ToleratesTaint`` of ``k8s.io/api/core/v1`` and
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
