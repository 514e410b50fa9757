"""Pod status as a node reports it: the pieces the kubelet's shapes are built from.

A node agent writes a pod's ``status`` the way the kubelet does: pod conditions whose
``lastTransitionTime`` moves only when their status changes (``status.GeneratePodReadyCondition``
and friends), containers' ``state.terminated`` (``ContainerStateTerminated``), and a status
write only when something changed. The real agent fills them from what its supervisor says
about processes, the hollow nodes from the clock; both build them with the functions here.

"Changed" needs care: a server may or may not echo explicit nulls back (a condition's
``lastProbeTime: null``), so :func:`same_status` compares statuses up to those nulls.
"""

from __future__ import annotations

from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.meta.timestamps import rfc3339

__all__ = [
    "NODE_CONDITIONS",
    "others_conditions",
    "pod_condition",
    "same_status",
    "terminated_state",
    "without_nulls",
]

# The pod conditions a node writes (the kubelet's PodConditionByKubelet, plus PodScheduled,
# which it keeps as the scheduler wrote it); every other type belongs to someone else.
NODE_CONDITIONS = frozenset(
    {"PodScheduled", "PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"}
)


def pod_condition(
    kind: str,
    ok: bool,
    at: float,
    *,
    previous: Obj | None = None,
    reason: str = "",
    message: str = "",
) -> Obj:
    """The pod condition ``kind`` (``Ready``, ``Initialized``, ...) at Unix time ``at``; it
    keeps ``previous``'s ``lastTransitionTime`` when its status is the same."""
    status = "True" if ok else "False"
    condition: Obj = {"type": kind, "status": status, "lastProbeTime": None}
    if previous is not None and previous.get("status") == status:
        condition["lastTransitionTime"] = previous.get("lastTransitionTime") or rfc3339(at)
    else:
        condition["lastTransitionTime"] = rfc3339(at)
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def others_conditions(previous: list[Obj] | None) -> list[Obj]:
    """The conditions of ``previous`` that a node does not own — ``DisruptionTarget`` from
    an eviction, a readiness gate's — kept as they are, as the kubelet's
    ``generateAPIPodStatus`` keeps them."""
    return [dict(c) for c in previous or [] if c.get("type") not in NODE_CONDITIONS]


def terminated_state(
    exit_code: int,
    reason: str,
    started_at: float | None,
    finished_at: float,
    *,
    container_id: str | None = None,
    signal: int | None = None,
    message: str = "",
) -> Obj:
    """A container's ``state.terminated`` (``ContainerStateTerminated``); ``startedAt`` only
    when it started (a container that failed to start never did), ``signal`` and
    ``message`` only when there are any."""
    term: Obj = {}
    if container_id is not None:
        term["containerID"] = container_id
    term["exitCode"] = exit_code
    term["reason"] = reason
    if started_at is not None:
        term["startedAt"] = rfc3339(started_at)
    term["finishedAt"] = rfc3339(finished_at)
    if signal:
        term["signal"] = signal
    if message:
        term["message"] = message
    return term


def without_nulls(value: Any) -> Any:
    """``value`` without the members of its objects that are ``null``, at any depth."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def same_status(a: Obj, b: Obj) -> bool:
    """Equal up to explicit nulls (``lastProbeTime: null``), which a server may or may not
    echo back."""
    return a == b or bool(without_nulls(a) == without_nulls(b))
