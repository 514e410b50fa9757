"""Deleting a pod because of a disruption, saying why first (``DisruptionTarget``).

When the control plane rather than the pod's owner removes a pod — the taint eviction
controller because of a ``NoExecute`` taint, PodGC because the pod's node is gone — it first
adds the pod condition ``DisruptionTarget`` (``True``, with a reason naming who and why) through
``pods/status``, and PodGC also moves the pod to phase ``Failed`` (nothing else would: the
pod's node is not there to do it). A Job's ``podFailurePolicy`` can then tell such a failure
from the program's own (``onPodConditions: [{type: DisruptionTarget}]``). Follows
``addConditionAndDeletePod`` (``pkg/controller/tainteviction``) and
``markFailedAndDeletePodWithCondition`` (``pkg/controller/podgc``); the condition is merged
as ``UpdatePodCondition`` (``pkg/api/v1/pod/util.go``) does.
"""

from __future__ import annotations

import copy
from datetime import datetime

from setpoint.client.api import PODS, ApiClient, ApiError, Obj
from setpoint.controllers.util.pods import pod_phase
from setpoint.meta.timestamps import format_time

DISRUPTION_TARGET = "DisruptionTarget"


def update_pod_condition(status: Obj, condition: Obj, now: datetime) -> bool:
    """Put ``condition`` into ``status`` (in place); its ``lastTransitionTime`` is ``now``
    when its status changes and kept otherwise. True when anything changed."""
    conditions = status.setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old.get("type") != condition["type"]:
            continue
        merged = dict(condition)
        same_status = old.get("status") == condition.get("status")
        merged["lastTransitionTime"] = (
            old.get("lastTransitionTime") if same_status else format_time(now)
        )
        if all(old.get(k) == v for k, v in merged.items()):
            return False
        conditions[i] = merged
        return True
    conditions.append({**condition, "lastTransitionTime": format_time(now)})
    return True


async def disrupt_and_delete(
    client: ApiClient,
    pod: Obj,
    *,
    now: datetime,
    reason: str | None = None,
    message: str = "",
    mark_failed: bool = False,
    grace_period_seconds: int | None = None,
) -> bool:
    """Write the ``DisruptionTarget`` condition (when ``reason`` is given) and, with
    ``mark_failed``, phase ``Failed`` (unless the pod already finished), then delete the pod
    (only this pod: the uid is a precondition). False when the pod was gone already."""
    meta = pod["metadata"]
    status = copy.deepcopy(pod.get("status") or {})
    changed = False
    if reason is not None:
        condition = {"type": DISRUPTION_TARGET, "status": "True", "reason": reason}
        if message:
            condition["message"] = message
        changed = update_pod_condition(status, condition, now)
    if mark_failed and pod_phase(pod) not in ("Succeeded", "Failed"):
        status["phase"] = "Failed"
        changed = True
    try:
        if changed:
            await client.update_status(PODS, {**pod, "status": status})
        await client.delete(
            PODS,
            meta["name"],
            meta.get("namespace"),
            grace_period_seconds=grace_period_seconds,
            preconditions_uid=meta.get("uid"),
        )
    except ApiError as exc:
        if exc.is_not_found:
            return False
        raise
    return True
