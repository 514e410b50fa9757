"""The arithmetic of a PodDisruptionBudget's status, as pure functions.

From the pods a budget selects and, where a percentage or ``maxUnavailable`` needs it, the
scale of the controllers that own them, the disruption controller computes (following
``pkg/controller/disruption/disruption.go``):

- ``expectedPods``: how many pods there should be — the pods found, when ``minAvailable`` is
  a number; otherwise the sum of the scales of their controllers (:func:`needs_scale`).
- ``desiredHealthy``: ``minAvailable`` (a number, or its percentage of the expected pods
  rounded up), or the expected pods less ``maxUnavailable`` (rounded up likewise), not below 0.
- ``currentHealthy``: the pods that are Ready, not being deleted, and not recently evicted.
- ``disruptedPods``: the evictions the API server approved that have not yet turned into a
  deletion; one older than :data:`DELETION_TIMEOUT` (2 minutes) is dropped, since the pod
  evidently was not deleted after all, and the budget looked at again when the next one
  would expire.
- ``disruptionsAllowed``: ``currentHealthy - desiredHealthy``, never below 0, and 0 while no
  pod is expected (a budget whose first pods appear before this controller has seen them
  allows nothing).

The ``DisruptionAllowed`` condition follows ``disruptionsAllowed`` (``SufficientPods`` /
``InsufficientPods``); when the numbers cannot be computed (a pod's controller cannot be
found) the budget fails safe: nothing allowed, reason ``SyncFailed``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta

from setpoint.client.api import Obj
from setpoint.controllers.util.pods import is_pod_ready, is_terminating
from setpoint.meta.conditions import set_status_condition
from setpoint.meta.intstr import is_percent, scaled_value
from setpoint.meta.timestamps import format_time, parse_time
from setpoint.resources.policy import (
    DISRUPTION_ALLOWED,
    INSUFFICIENT_PODS,
    SUFFICIENT_PODS,
    SYNC_FAILED,
    update_disruption_allowed_condition,
)

DELETION_TIMEOUT = timedelta(minutes=2)


def needs_scale(pdb: Obj) -> bool:
    """Whether the expected pod count comes from the pods' controllers (``maxUnavailable``,
    or a percentage ``minAvailable``) rather than from the pods found."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        return True
    return is_percent(spec.get("minAvailable"))


def expected_and_desired(pdb: Obj, pods_found: int, scale: int) -> tuple[int, int]:
    """``getExpectedPodCount``: (expectedPods, desiredHealthy); ``scale`` is the summed scale
    of the pods' controllers, used only where :func:`needs_scale`."""
    spec = pdb.get("spec") or {}
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        unavailable = scaled_value(max_unavailable, scale, True)
        return scale, max(scale - unavailable, 0)
    if min_available is None:
        return 0, 0
    if is_percent(min_available):
        return scale, scaled_value(min_available, scale, True)
    return pods_found, int(min_available)


@dataclass(frozen=True)
class Disrupted:
    """What :func:`disrupted_pods` keeps, and what it found expired."""

    pods: dict[str, str]  # pod name -> when its eviction was approved (RFC 3339)
    recheck_at: datetime | None  # when the first of them expires
    expired: list[str]  # pods evicted too long ago that still exist, not being deleted


def disrupted_pods(pods: list[Obj], pdb: Obj, now: datetime) -> Disrupted:
    """``buildDisruptedPodMap``: the recorded evictions still to wait for."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    expired: list[str] = []
    for pod in pods:
        name = pod["metadata"]["name"]
        if is_terminating(pod) or name not in recorded:
            continue
        since = parse_time(recorded[name])
        deadline = (since or now) + DELETION_TIMEOUT
        if deadline < now:
            expired.append(name)
            continue
        kept[name] = recorded[name]
        if recheck is None or deadline < recheck:
            recheck = deadline
    return Disrupted(kept, recheck, expired)


def count_healthy(pods: list[Obj], disrupted: dict[str, str], now: datetime) -> int:
    """``countHealthyPods``: Ready pods neither being deleted nor recently evicted."""
    healthy = 0
    for pod in pods:
        if is_terminating(pod):
            continue
        since = parse_time(disrupted.get(pod["metadata"]["name"]))
        if since is not None and since + DELETION_TIMEOUT > now:
            continue
        if is_pod_ready(pod):
            healthy += 1
    return healthy


def _conditions_up_to_date(pdb: Obj) -> bool:
    """``ConditionsAreUpToDate``."""
    status = pdb.get("status") or {}
    condition = next(
        (c for c in status.get("conditions") or [] if c.get("type") == DISRUPTION_ALLOWED), None
    )
    if condition is None or status.get("observedGeneration") != pdb["metadata"].get("generation"):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return condition.get("status") == "True" and condition.get("reason") == SUFFICIENT_PODS
    return condition.get("status") == "False" and condition.get("reason") == INSUFFICIENT_PODS


def new_status(
    pdb: Obj,
    *,
    current_healthy: int,
    desired_healthy: int,
    expected: int,
    disrupted: dict[str, str],
    now: datetime,
) -> Obj | None:
    """``updatePdbStatus``: the budget's new status, or None when it says so already."""
    allowed = current_healthy - desired_healthy
    if expected <= 0 or allowed <= 0:
        allowed = 0
    status = pdb.get("status") or {}
    generation = pdb["metadata"].get("generation")
    if (
        status.get("currentHealthy", 0) == current_healthy
        and status.get("desiredHealthy", 0) == desired_healthy
        and status.get("expectedPods", 0) == expected
        and status.get("disruptionsAllowed", 0) == allowed
        and (status.get("disruptedPods") or {}) == disrupted
        and status.get("observedGeneration") == generation
        and _conditions_up_to_date(pdb)
    ):
        return None
    updated: Obj = {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": current_healthy,
        "desiredHealthy": desired_healthy,
        "expectedPods": expected,
    }
    if disrupted:
        updated["disruptedPods"] = dict(disrupted)
    if status.get("conditions"):
        updated["conditions"] = copy.deepcopy(status["conditions"])
    update_disruption_allowed_condition(updated, format_time(now))
    return updated


def fail_safe_status(pdb: Obj, message: str, now: datetime) -> Obj:
    """``failSafe``: nothing allowed while the numbers cannot be computed."""
    status = copy.deepcopy(pdb.get("status") or {})
    status["disruptionsAllowed"] = 0
    condition: Obj = {
        "type": DISRUPTION_ALLOWED,
        "status": "False",
        "reason": SYNC_FAILED,
        "message": message,
    }
    if status.get("observedGeneration"):
        condition["observedGeneration"] = status["observedGeneration"]
    set_status_condition(status.setdefault("conditions", []), condition, format_time(now))
    return status
