"""Graceful node shutdown: what the agent does with its pods when its node goes down.

The kubelet's GracefulNodeShutdown (``pkg/kubelet/nodeshutdown``) learns from systemd that
the machine is shutting down and then, within ``shutdownGracePeriod``, marks its Node not
ready (Ready False, reason ``KubeletNotReady``, message "node is shutting down") and
terminates its pods by priority: regular pods first, within ``shutdownGracePeriod -
shutdownGracePeriodCriticalPods``, critical pods last, within
``shutdownGracePeriodCriticalPods`` (``migrateConfig``: two groups, split at
``SystemCriticalPriority``). Each pod gets the smaller of its own
``terminationGracePeriodSeconds`` and its group's period; a group's pods are killed at once
and the next group starts when they are all gone or the group's period is over. Every pod
killed so is reported ``Failed`` (unless it had already succeeded) with reason
``Terminated``, the message "Pod was terminated in response to imminent node shutdown." and
a ``DisruptionTarget`` condition (reason ``TerminationByKubelet``): the pod object stays,
and its controller replaces it elsewhere.

setpoint's agent does this when it gets SIGTERM with ``--shutdown-grace-period`` set (it
has no systemd inhibitor lock to wait on), then exits. Pods are critical by
``spec.priority``, or, where no admission plugin has resolved the priority, by the two
system priority classes' names.

The decisions are pure functions of the pods and the configuration: the agent asks
:func:`shutdown_groups` in which order and how fast to kill, and passes every status it is
about to write through :func:`node_shutdown_status`, which also keeps a pod that was failed
for a shutdown failed when the next agent starts (its killed containers would, under
``restartPolicy: Always``, otherwise make it look ``Running``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from setpoint.agent import pods as podspec
from setpoint.client.api import Obj
from setpoint.node.podstatus import pod_condition

SHUTDOWN_REASON = "Terminated"
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
NODE_SHUTTING_DOWN = "node is shutting down"
DISRUPTION_TARGET = "DisruptionTarget"
TERMINATION_BY_KUBELET = "TerminationByKubelet"
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000  # scheduling.SystemCriticalPriority
# what the Priority admission plugin resolves the system priority classes to
SYSTEM_PRIORITY_CLASSES = {
    "system-cluster-critical": SYSTEM_CRITICAL_PRIORITY,
    "system-node-critical": SYSTEM_CRITICAL_PRIORITY + 1000,
}


@dataclass(frozen=True)
class ShutdownGroup:
    """Pods killed together, each within ``min(its own grace period, grace_seconds)``; the
    next group starts once they are gone or ``grace_seconds`` are over."""

    grace_seconds: float
    pods: list[Obj]


def pod_priority(pod: Obj) -> int:
    spec = pod.get("spec") or {}
    priority = spec.get("priority")
    if isinstance(priority, int) and not isinstance(priority, bool):
        return priority
    return SYSTEM_PRIORITY_CLASSES.get(spec.get("priorityClassName") or "", 0)


def is_active(pod: Obj) -> bool:
    """Not finished: the kubelet's active pods, which a shutdown terminates."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def shutdown_groups(
    pods: list[Obj], *, grace_period: float, critical_grace_period: float
) -> list[ShutdownGroup]:
    """The active ``pods`` in the order a shutdown kills them: regular pods within
    ``grace_period - critical_grace_period``, then critical ones within
    ``critical_grace_period``; groups without pods are left out."""
    active = [p for p in pods if is_active(p)]
    critical = [p for p in active if pod_priority(p) >= SYSTEM_CRITICAL_PRIORITY]
    regular = [p for p in active if pod_priority(p) < SYSTEM_CRITICAL_PRIORITY]
    groups = [
        ShutdownGroup(grace_period - critical_grace_period, regular),
        ShutdownGroup(critical_grace_period, critical),
    ]
    return [g for g in groups if g.pods]


def pod_grace_seconds(pod: Obj, group: ShutdownGroup) -> float:
    """The pod's own ``terminationGracePeriodSeconds`` when it is shorter than its
    group's period, else the group's."""
    return min(podspec.termination_grace_seconds(pod), group.grace_seconds)


def failed_for_shutdown(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return (status.get("phase"), status.get("reason"), status.get("message")) == (
        "Failed",
        SHUTDOWN_REASON,
        SHUTDOWN_MESSAGE,
    )


def node_shutdown_status(pod: Obj, status: Obj, *, now: float, terminated: bool) -> Obj:
    """``status`` (as computed from the containers) as the kubelet reports a pod the node
    shutdown ``terminated`` (or that was failed for a shutdown before); otherwise
    ``status`` unchanged."""
    if not (terminated or failed_for_shutdown(pod)):
        return status
    result = copy.deepcopy(status)
    phase = "Succeeded" if status.get("phase") == "Succeeded" else "Failed"
    result.update({"phase": phase, "reason": SHUTDOWN_REASON, "message": SHUTDOWN_MESSAGE})
    before = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    result["conditions"] = [
        *podspec.pod_conditions(
            pod,
            result.get("containerStatuses") or [],
            phase,
            now,
            status.get("conditions"),
            result.get("initContainerStatuses"),
        ),
        pod_condition(
            DISRUPTION_TARGET,
            True,
            now,
            previous=before.get(DISRUPTION_TARGET),
            reason=TERMINATION_BY_KUBELET,
            message=SHUTDOWN_MESSAGE,
        ),
    ]
    return result
