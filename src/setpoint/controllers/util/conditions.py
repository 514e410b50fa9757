"""``status.conditions``: find, test, build and remove one condition by type.

Every kind with conditions keeps a list of ``{type, status, reason, message,
lastTransitionTime}`` entries, at most one per type. Kinds add one timestamp of their own
that says when the condition was last confirmed: a Job's ``lastProbeTime``, a Deployment's
``lastUpdateTime`` (``JobCondition`` / ``DeploymentCondition`` in the API); the others have
none. :func:`new_condition` builds any of them with the same key order Kubernetes writes.
How a kind *merges* a new condition into its list differs and stays with its controller
(``ensureJobConditionStatus``, ``SetDeploymentCondition``).
"""

from __future__ import annotations

from datetime import datetime

from setpoint.client.api import Obj
from setpoint.meta.timestamps import format_time


def get_condition(status: Obj, kind: str) -> Obj | None:
    """A copy of the condition of type ``kind`` in ``status``, if there is one."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def condition_true(status: Obj, kind: str) -> bool:
    condition = get_condition(status, kind)
    return condition is not None and condition.get("status") == "True"


def remove_condition(status: Obj, kind: str) -> None:
    remaining = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if remaining:
        status["conditions"] = remaining
    else:
        status.pop("conditions", None)


def new_condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    *,
    heartbeat: str | None = None,
) -> Obj:
    """A condition that changed ``now``; ``heartbeat`` names the kind's own "last
    confirmed" field (``lastProbeTime``, ``lastUpdateTime``), stamped ``now`` too."""
    stamp = format_time(now)
    condition: Obj = {"type": kind, "status": status}
    if heartbeat is not None:
        condition[heartbeat] = stamp
    condition.update(lastTransitionTime=stamp, reason=reason, message=message)
    return condition
