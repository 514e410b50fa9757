"""``podFailurePolicy``: rules that decide what a failed pod means for its Job.

Rules are matched in order against a failed pod, on the exit codes of its containers (init
containers first; exit code 0 never matches) or on its conditions (e.g. ``DisruptionTarget``).
The first match decides: ``FailJob`` fails the whole Job at once (with a message naming the
container or condition), ``Ignore`` does not count the failure against ``backoffLimit``,
``Count`` counts it, and ``FailIndex`` fails just the pod's completion index. A failure no
rule matches counts. Follows ``pkg/controller/job/pod_failure_policy.go``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from setpoint.client.api import Obj
from setpoint.controllers.job.util import is_pod_failed


class PolicyMatch(NamedTuple):
    action: str
    rule_index: int
    message: str | None  # only for FailJob

    @property
    def count_failed(self) -> bool:
        return self.action != "Ignore"


def _exit_code_container(status: Obj, requirement: Obj) -> Obj | None:
    """The first container (init containers first) that terminated with a non-zero exit
    code matching the requirement; exit code 0 never matches."""
    name = requirement.get("containerName")
    operator = requirement.get("operator")
    values = set(requirement.get("values") or [])
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if name is not None and cs.get("name") != name:
            continue
        terminated = (cs.get("state") or {}).get("terminated")
        if not terminated:
            continue
        code = int(terminated.get("exitCode") or 0)
        if code == 0:
            continue
        if (operator == "In" and code in values) or (operator == "NotIn" and code not in values):
            return dict(cs)
    return None


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> PolicyMatch | None:
    """The first rule that matches a failed pod (``matchPodFailurePolicy``); None when no
    rule matches (the failure then counts)."""
    if not policy:
        return None
    meta, status = pod["metadata"], pod.get("status") or {}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    for index, rule in enumerate(policy.get("rules") or []):
        action = str(rule.get("action", ""))
        if rule.get("onExitCodes"):
            container = _exit_code_container(status, rule["onExitCodes"])
            if container is not None:
                code = container["state"]["terminated"].get("exitCode")
                message = (
                    f"Container {container.get('name')} for pod {where} failed with exit code "
                    f"{code} matching {action} rule at index {index}"
                )
                return PolicyMatch(action, index, message if action == "FailJob" else None)
        for pattern in rule.get("onPodConditions") or []:
            for condition in status.get("conditions") or []:
                if condition.get("type") == pattern.get("type") and condition.get(
                    "status"
                ) == pattern.get("status", "True"):
                    message = (
                        f"Pod {where} has condition {pattern.get('type')} matching {action} "
                        f"rule at index {index}"
                    )
                    return PolicyMatch(action, index, message if action == "FailJob" else None)
    return None


def fail_job_message(job: Obj, pods: Iterable[Obj]) -> str | None:
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if not policy:
        return None
    for pod in pods:
        if is_pod_failed(pod, job):
            match = match_pod_failure_policy(policy, pod)
            if match is not None and match.message:
                return match.message
    return None
