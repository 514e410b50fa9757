"""Facts about a Job and its pods that every part of the Job controller reads.

Whether a Job is finished (``Complete`` or ``Failed`` is True, upstream's
``pkg/controller/job/util/utils.go``), and when one of its pods counts as failed
(``isPodFailed`` / ``onlyReplaceFailedPods`` in ``job_controller.go``, kept here so that the
failure policy, backoff and indexed code can share them without importing the controller):
a pod in phase ``Failed``, or, unless the Job only replaces failed pods
(``podReplacementPolicy: Failed`` or a ``podFailurePolicy``), a pod deleted before it
succeeded, which may never reach the Failed phase.
"""

from __future__ import annotations

from setpoint.client.api import Obj
from setpoint.controllers.util.conditions import get_condition
from setpoint.controllers.util.pods import is_terminating, pod_phase


def find_condition(job: Obj, kind: str) -> Obj | None:
    return get_condition(job.get("status") or {}, kind)


def condition_true(job: Obj, kind: str) -> bool:
    condition = find_condition(job, kind)
    return condition is not None and condition.get("status") == "True"


def is_job_finished(job: Obj) -> bool:
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def only_replace_failed_pods(job: Obj) -> bool:
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or (unless only failed pods are replaced) deleted before succeeding: a deleted
    pod may never reach the Failed phase."""
    if pod_phase(pod) == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    return is_terminating(pod) and pod_phase(pod) != "Succeeded"
