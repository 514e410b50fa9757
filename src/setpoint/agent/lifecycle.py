"""Pod lifecycle limits the agent enforces on a running pod: ``activeDeadlineSeconds``.

A pod may say how long it is allowed to be active on its node: ``spec.activeDeadlineSeconds``
counted from ``status.startTime`` (which the agent sets when it first reports the pod). As the
kubelet's ``activeDeadlineHandler`` (``pkg/kubelet/active_deadline.go``) does, once that time
has passed the agent kills the pod's containers, records a ``DeadlineExceeded`` event and
reports the pod ``Failed`` with reason ``DeadlineExceeded`` and the message
"Pod was active on the node longer than the specified deadline". The pod object stays (it is
not deleted); a Job or a user sees why it ended.

The decisions are pure functions of the pod and the time, so the agent only has to ask
:func:`active_deadline` when to look again (it requeues the pod for that moment) and pass
every status it is about to write through :func:`deadline_exceeded_status`, which keeps a
pod that ran out of time ``Failed`` even though its killed containers would, under
``restartPolicy: Always``, otherwise make it look ``Running``.
"""

from __future__ import annotations

import copy

from setpoint.agent import pods as podspec
from setpoint.client.api import Obj
from setpoint.meta.timestamps import parse_epoch

DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"

_TERMINAL = ("Succeeded", "Failed")


def active_deadline(pod: Obj, status: Obj | None = None) -> float | None:
    """The Unix time at which ``pod`` runs out of its ``activeDeadlineSeconds``; None when it
    has no deadline or has not started (no ``startTime`` in ``status``, default the pod's)."""
    seconds = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    if status is None:
        status = pod.get("status") or {}
    started = parse_epoch(status.get("startTime"))
    if started is None:
        return None
    return started + seconds


def deadline_exceeded(pod: Obj, now: float) -> bool:
    """The pod ran past its active deadline, or was already failed for it."""
    status = pod.get("status") or {}
    if status.get("phase") == "Failed" and status.get("reason") == DEADLINE_REASON:
        return True
    if status.get("phase") in _TERMINAL:
        return False  # finished in time: a deadline no longer applies
    deadline = active_deadline(pod)
    return deadline is not None and now >= deadline


def deadline_exceeded_status(pod: Obj, status: Obj, *, now: float) -> Obj:
    """``status`` (as computed from the containers) turned ``Failed`` for the deadline when
    the pod ran out of time; otherwise ``status`` unchanged."""
    if not deadline_exceeded(pod, now):
        return status
    failed = copy.deepcopy(status)
    failed.update({"phase": "Failed", "reason": DEADLINE_REASON, "message": DEADLINE_MESSAGE})
    failed["conditions"] = podspec.pod_conditions(
        pod,
        failed.get("containerStatuses") or [],
        "Failed",
        now,
        status.get("conditions"),
        failed.get("initContainerStatuses"),
    )
    return failed
