"""The coordination.k8s.io API group's one kind, declared whole (``KINDS``): Lease.

A Lease is a small lock record (holder, duration, renew time) used for leader election and
node heartbeats. Kubernetes checks only that durations and transition counts make sense and
that a preferred holder comes with a strategy; nothing is defaulted.
"""

from __future__ import annotations

from setpoint.meta.validation import label_key_errors
from setpoint.resources.fielderrors import FieldError, forbidden, invalid_value, not_supported
from setpoint.resources.printers.workloads import LEASE_PRINTER
from setpoint.resources.registry import Obj, ResourceType

_STRATEGIES = ("OldestEmulationVersion",)


def _validate_lease(lease: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateLeaseSpec``."""
    spec = lease.get("spec") or {}
    errors: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        path = "spec.leaseDurationSeconds"
        errors.append(invalid_value(path, duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        path = "spec.leaseTransitions"
        errors.append(invalid_value(path, transitions, "must be greater than or equal to 0"))
    strategy = spec.get("strategy")
    if strategy is not None:
        errors += _strategy_errors(strategy, "spec.strategy")
    if spec.get("preferredHolder") and not strategy:
        detail = "may only be specified if `strategy` is defined"
        errors.append(forbidden("spec.preferredHolder", detail))
    return errors


def _strategy_errors(strategy: str, path: str) -> list[FieldError]:
    """Kubernetes' own strategies are bare names; custom ones must be qualified names."""
    if "/" not in strategy:
        if strategy in _STRATEGIES:
            return []
        return [not_supported(path, strategy, _STRATEGIES)]
    messages = label_key_errors(strategy)
    return [invalid_value(path, strategy, ",".join(messages))] if messages else []


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="coordination.k8s.io",
        version="v1",
        kind="Lease",
        plural="leases",
        singular="lease",
        namespaced=True,
        definition="io.k8s.api.coordination.v1.Lease",
        printer=LEASE_PRINTER,
        protobuf="k8s.io.api.coordination.v1.Lease",
        allow_create_on_update=True,
        always_encoded={"spec": {}},
        validator=_validate_lease,
    ),
)
