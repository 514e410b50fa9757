"""The StatefulSet's decisions for one sync, pure: which pods to create, delete or mend, in
which order, and where to stop. Follows ``updateStatefulSet`` and its ``processReplica``,
``processCondemned`` and rolling-update loop in
``pkg/controller/statefulset/stateful_set_control.go``.

The pods the set wants are its *replicas*, one per ordinal in range; pods of the set beyond
the range are *condemned*. One pass goes:

1. every replica, lowest ordinal first: a missing one is created (from the current
   revision below the partition, else the update revision; claims first); a failed or
   succeeded one is deleted (and recreated, with the same name, on a later pass); a pod
   whose identity labels drifted is mended;
2. every condemned pod, highest ordinal first, is deleted;
3. with the ``RollingUpdate`` strategy, the highest-ordinal replica at or above the
   partition that is not of the update revision is deleted (it comes back updated), one
   at a time: the loop stops at the first pod that is not healthy.

With ``OrderedReady`` (*monotonic*) the pass stops at the first thing it must wait for: a
pod it has just created or deleted, a replica that is not Running and Ready (and available
for ``minReadySeconds``), a terminating pod. So pods are created one at a time in ordinal
order, each after all its predecessors are ready, and deleted one at a time from the top
(a condemned pod that is itself the first unhealthy one may go without waiting). With
``Parallel`` every replica and condemned pod is acted on at once and nothing waits but the
rolling update. ``OnDelete`` stops after step 2: pods pick up a new template only when
deleted by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from setpoint.client.api import Obj
from setpoint.controllers.statefulset.utils import (
    identity_matches,
    is_created,
    is_finished,
    is_healthy,
    is_monotonic,
    is_running_and_available,
    is_running_and_ready,
    ordinal,
    partition,
    pod_revision,
    replicas,
    start_ordinal,
    storage_matches,
    update_strategy,
)
from setpoint.controllers.util import pods as podutil


@dataclass(frozen=True)
class Create:
    """Create the pod of ``ordinal`` from the current (``updated`` False) or update revision."""

    ordinal: int
    updated: bool


@dataclass(frozen=True)
class Delete:
    """Delete ``pod``: ``why`` is ``finished``, ``scale`` or ``update``."""

    pod: Obj
    why: str


@dataclass
class Plan:
    """What one sync does, in order; ``blocked_on`` names the pod it stopped at (or "")."""

    create: list[Create] = field(default_factory=list)
    delete: list[Delete] = field(default_factory=list)
    mend: list[Obj] = field(default_factory=list)
    # pending pods whose claims are created again if missing
    pending: list[Obj] = field(default_factory=list)
    blocked_on: str = ""


def split_pods(sts: Obj, pods: list[Obj]) -> tuple[list[Obj | None], list[Obj]]:
    """The replicas (by ordinal from the start, None where missing) and the condemned pods
    (highest ordinal first); pods whose names carry no ordinal are ignored."""
    start, count = start_ordinal(sts), replicas(sts)
    slots: list[Obj | None] = [None] * count
    condemned: list[Obj] = []
    for pod in pods:
        index = ordinal(pod)
        if start <= index < start + count:
            slots[index - start] = pod
        elif index >= 0:
            condemned.append(pod)
    condemned.sort(key=ordinal, reverse=True)
    return slots, condemned


def first_unhealthy(slots: list[Obj | None], condemned: list[Obj]) -> Obj | None:
    """The unhealthy pod with the lowest ordinal, replicas and condemned alike."""
    unhealthy = [p for p in [*slots, *condemned] if p is not None and not is_healthy(p)]
    return min(unhealthy, key=ordinal, default=None)


def created_from_current(sts: Obj, index: int, current_replicas: int) -> bool:
    """``newVersionedStatefulSetPod``'s choice: with ``RollingUpdate``, ordinals below the
    partition (or, without a ``rollingUpdate``, below the current replicas) stay on the
    current revision."""
    if update_strategy(sts) != "RollingUpdate":
        return False
    bound = partition(sts)
    limit = current_replicas if bound is None else bound
    return index < start_ordinal(sts) + limit


def plan_sync(sts: Obj, pods: list[Obj], update_revision: str, now: datetime) -> Plan:
    """``updateStatefulSet``'s decisions for ``pods`` (the set's own, as cached)."""
    plan = Plan()
    monotonic = is_monotonic(sts)
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    current_replicas = int((sts.get("status") or {}).get("currentReplicas") or 0)
    slots, condemned = split_pods(sts, pods)
    start = start_ordinal(sts)

    def blocked(pod: Obj | None, index: int) -> Plan:
        plan.blocked_on = pod["metadata"]["name"] if pod else f"{sts['metadata']['name']}-{index}"
        return plan

    for i, pod in enumerate(slots):
        index = start + i
        if pod is None or not is_created(pod):
            plan.create.append(
                Create(index, not created_from_current(sts, index, current_replicas))
            )
            if monotonic:
                return blocked(pod, index)
            continue
        if is_finished(pod):
            if not podutil.is_terminating(pod):
                plan.delete.append(Delete(pod, "finished"))
            if monotonic:
                return blocked(pod, index)
            continue
        if podutil.pod_phase(pod) == "Pending":
            plan.pending.append(pod)
        if monotonic and (
            podutil.is_terminating(pod)
            or not is_running_and_ready(pod)
            or not is_running_and_available(pod, min_ready, now)
        ):
            return blocked(pod, index)
        if not (identity_matches(sts, pod) and storage_matches(sts, pod)):
            plan.mend.append(pod)

    unhealthy = first_unhealthy(slots, condemned)
    for pod in condemned:
        if podutil.is_terminating(pod):
            if monotonic:
                return blocked(pod, ordinal(pod))
            continue
        waiting = not is_running_and_ready(pod) or not is_running_and_available(pod, min_ready, now)
        if monotonic and waiting and pod is not unhealthy:
            return blocked(pod, ordinal(pod))
        plan.delete.append(Delete(pod, "scale"))
        if monotonic:
            return blocked(pod, ordinal(pod))

    if update_strategy(sts) == "OnDelete":
        return plan
    lowest = partition(sts) or 0
    for target in range(len(slots) - 1, lowest - 1, -1):
        pod = slots[target]
        if pod is None or not is_created(pod):
            return blocked(pod, start + target)  # created this pass: not healthy yet
        if pod_revision(pod) != update_revision and not podutil.is_terminating(pod):
            if not any(d.pod is pod for d in plan.delete):
                plan.delete.append(Delete(pod, "update"))
            return blocked(pod, start + target)
        if not is_healthy(pod):
            return blocked(pod, start + target)
    return plan
