"""The policy API group's one kind, declared whole (``KINDS``): PodDisruptionBudget.

A PodDisruptionBudget (PDB) says how many of the pods its selector picks must stay up while
someone disrupts them on purpose (``kubectl drain``, anything that uses the Eviction API):
either ``minAvailable`` or ``maxUnavailable``, each a number of pods or a percentage. The
disruption controller keeps its ``status`` (how many pods are healthy, how many must be, how
many disruptions are allowed now); the eviction subresource of pods
(:mod:`setpoint.api.eviction`) reads and spends that budget.

Validation is Kubernetes' ``ValidatePodDisruptionBudget`` (``pkg/apis/policy/validation``):
``minAvailable`` and ``maxUnavailable`` may not both be set (policy/v1 allows neither: such a
budget asks nothing), each is a non-negative number or a percentage of at most 100%, the
selector is a valid label selector (in policy/v1 an empty one selects no pods) and
``unhealthyPodEvictionPolicy`` is ``IfHealthyBudget`` or ``AlwaysAllow`` (unset means the
first). A status write keeps its counts non-negative
(``ValidatePodDisruptionBudgetStatusUpdate``). Nothing is defaulted in policy/v1.
"""

from __future__ import annotations

from typing import Any

from setpoint.meta.conditions import set_status_condition
from setpoint.resources.checks import (
    label_selector_errors,
    nonnegative,
    not_more_than_100_percent,
    positive_int_or_percent_errors,
)
from setpoint.resources.fielderrors import FieldError, invalid_rendered, not_supported
from setpoint.resources.printers.workloads import PDB_PRINTER
from setpoint.resources.registry import SPEC_AND_STATUS, Obj, ResourceType

IF_HEALTHY_BUDGET = "IfHealthyBudget"
ALWAYS_ALLOW = "AlwaysAllow"
UNHEALTHY_POD_EVICTION_POLICIES = (ALWAYS_ALLOW, IF_HEALTHY_BUDGET)
# the condition the disruption controller and the eviction subresource keep, and its reasons
# (``policy.DisruptionAllowedCondition`` and friends)
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
_STATUS_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")


def _validate_pdb(pdb: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidatePodDisruptionBudget`` and, for the status, its status-update checks."""
    spec = pdb.get("spec") or {}
    errors: list[FieldError] = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        detail = "minAvailable and maxUnavailable cannot be both set"
        errors.append(invalid_rendered("spec", _sharp_v_spec(spec), detail))
    for name, value in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
        if value is not None:
            errors += positive_int_or_percent_errors(value, f"spec.{name}")
            errors += not_more_than_100_percent(value, f"spec.{name}")
    if spec.get("selector") is not None:
        errors += label_selector_errors(spec["selector"], "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        path = "spec.unhealthyPodEvictionPolicy"
        errors.append(not_supported(path, policy, UNHEALTHY_POD_EVICTION_POLICIES))
    status = pdb.get("status") or {}
    for name in _STATUS_COUNTS:
        errors += nonnegative(status.get(name), f"status.{name}")
    return errors


def _sharp_v_spec(spec: Obj) -> str:
    """``%#v`` of the internal ``policy.PodDisruptionBudgetSpec`` (its pointers as Go prints
    them, with a stand-in address)."""

    def pointer(go_type: str, value: Any) -> str:
        return f"(*{go_type})({'nil' if value is None else '0xc000000000'})"

    policy = spec.get("unhealthyPodEvictionPolicy")
    return (
        "policy.PodDisruptionBudgetSpec{"
        f"MinAvailable:{pointer('intstr.IntOrString', spec.get('minAvailable'))}, "
        f"Selector:{pointer('v1.LabelSelector', spec.get('selector'))}, "
        f"MaxUnavailable:{pointer('intstr.IntOrString', spec.get('maxUnavailable'))}, "
        f"UnhealthyPodEvictionPolicy:{pointer('policy.UnhealthyPodEvictionPolicyType', policy)}"
        "}"
    )


def update_disruption_allowed_condition(status: Obj, now: str) -> None:
    """Make ``status``'s DisruptionAllowed condition agree with ``disruptionsAllowed`` (in
    place), as ``UpdateDisruptionAllowedCondition`` of Kubernetes' component-helpers, which
    the eviction subresource and the disruption controller share."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    condition: Obj = {
        "type": DISRUPTION_ALLOWED,
        "status": "True" if allowed else "False",
        "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS,
        "message": "",
    }
    if status.get("observedGeneration"):
        condition["observedGeneration"] = status["observedGeneration"]
    set_status_condition(status.setdefault("conditions", []), condition, now)


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="policy",
        version="v1",
        kind="PodDisruptionBudget",
        plural="poddisruptionbudgets",
        singular="poddisruptionbudget",
        namespaced=True,
        short_names=("pdb",),
        subresources=("status",),
        definition="io.k8s.api.policy.v1.PodDisruptionBudget",
        printer=PDB_PRINTER,
        protobuf="k8s.io.api.policy.v1.PodDisruptionBudget",
        has_status=True,
        tracks_generation=True,
        # PodDisruptionBudgetStatus's counts are int32s without omitempty: Go writes them
        # even when zero, and the Python client's model requires them
        always_encoded={
            **SPEC_AND_STATUS,
            **{f"status.{name}": 0 for name in _STATUS_COUNTS},
        },
        validator=_validate_pdb,
    ),
)
