"""How long a Job waits before it replaces a failed pod.

After ``n`` consecutive failed pods (since the last success), the next pod is created
``initial * 2**(n-1)`` seconds after the last failure, capped at ``maximum`` (setpoint's
defaults: 1 s doubling to 60 s; Kubernetes' 10 s to 6 min). A pod's finish time is its
latest container termination, else the time its Ready condition turned False, else its
deletion or creation time. Kubernetes keeps the streak in an in-memory backoff record;
setpoint recomputes it from the pods each time, which is level-triggered and survives a
restart. Follows ``pkg/controller/job/backoff_utils.go``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from setpoint.client.api import Obj
from setpoint.controllers.job.failure_policy import match_pod_failure_policy
from setpoint.controllers.job.util import is_pod_failed
from setpoint.controllers.util.pods import pod_phase
from setpoint.meta.timestamps import parse_time


def pod_finish_time(pod: Obj) -> datetime:
    """``getFinishedTime``: the latest container termination, else the Ready=False
    transition, else the deletion or creation time."""
    status = pod.get("status") or {}
    finished = [
        parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for cs in (status.get("initContainerStatuses") or [])
        + (status.get("containerStatuses") or [])
    ]
    known = [t for t in finished if t is not None]
    if known:
        return max(known)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "False":
            moment = parse_time(condition.get("lastTransitionTime"))
            if moment:
                return moment
    meta = pod["metadata"]
    return (
        parse_time(meta.get("deletionTimestamp"))
        or parse_time(meta.get("creationTimestamp"))
        or datetime.now(UTC)
    )


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """The pause before recreating a pod after ``failures`` consecutive failures:
    ``initial * 2**(failures-1)``, capped at ``maximum``; no pause without failures."""
    if failures <= 0:
        return 0.0
    delay = initial
    for _ in range(1, failures):
        delay *= 2
        if delay >= maximum:
            return maximum
    return min(delay, maximum)


class FailureStreak(NamedTuple):
    failures: int
    last_failure: datetime | None


def failures_since_last_success(pods: Iterable[Obj], job: Obj) -> FailureStreak:
    """Counted pod failures that finished after the last successful pod (Kubernetes keeps
    this in an in-memory backoff record; recomputing it from the pods is level-triggered)."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    finished: list[tuple[datetime, bool]] = []
    for pod in pods:
        if pod_phase(pod) == "Succeeded":
            finished.append((pod_finish_time(pod), True))
        elif is_pod_failed(pod, job):
            match = match_pod_failure_policy(policy, pod)
            if match is None or match.count_failed:
                finished.append((pod_finish_time(pod), False))
    finished.sort(key=lambda item: item[0])
    failures, last = 0, None
    for moment, success in finished:
        if success:
            failures, last = 0, None
        else:
            failures, last = failures + 1, moment
    return FailureStreak(failures, last)


def remaining_backoff(
    streak: FailureStreak, now: datetime, initial: float, maximum: float
) -> float:
    delay = backoff_delay(streak.failures, initial, maximum)
    if delay <= 0 or streak.last_failure is None:
        return 0.0
    return max(0.0, delay - (now - streak.last_failure).total_seconds())
