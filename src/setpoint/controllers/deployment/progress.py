"""Rollout progress: the ``Progressing`` condition, ``ReplicaFailure``, and the deadline.

After every rollout step the Deployment's status is recomputed from its ReplicaSets
(:func:`rollout_status`): ``Progressing`` says NewReplicaSetAvailable once the rollout is
complete, ReplicaSetUpdated while pods move, and ProgressDeadlineExceeded when nothing moved
within ``progressDeadlineSeconds``; a ReplicaSet's ``ReplicaFailure`` is copied up. When
nothing changed, a Deployment still rolling asks to be seen again when its deadline passes
(:func:`stuck_requeue_after`, upstream's ``requeueStuckDeployment``). That is what
``kubectl rollout status`` reads. Follows ``pkg/controller/deployment/progress.go``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from setpoint.client.api import Obj
from setpoint.client.workqueue import Requeue
from setpoint.controllers.deployment.sync import calculate_status, refresh, update_status
from setpoint.controllers.deployment.util import (
    NEW_RS_AVAILABLE_REASON,
    RS_UPDATED_REASON,
    TIMED_OUT_REASON,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    has_progress_deadline,
    new_deployment_condition,
    set_condition,
)
from setpoint.controllers.util import conditions
from setpoint.meta.timestamps import parse_time

if TYPE_CHECKING:
    from setpoint.controllers.deployment.controller import DeploymentController


def rollout_status(all_rss: list[Obj], new_rs: Obj | None, d: Obj, now: datetime) -> Obj:
    """``syncRolloutStatus``' new status: counts, Available, Progressing, ReplicaFailure."""
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        conditions.remove_condition(status, "Progressing")
    current = conditions.get_condition(d.get("status") or {}, "Progressing")
    complete_before = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE_REASON
    )
    name = d["metadata"]["name"]
    subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{name}"'
    if has_progress_deadline(d) and not complete_before:
        if deployment_complete(d, status):
            set_condition(
                status,
                new_deployment_condition(
                    "Progressing",
                    "True",
                    NEW_RS_AVAILABLE_REASON,
                    f"{subject} has successfully progressed.",
                    now,
                ),
            )
        elif deployment_progressing(d, status):
            condition = new_deployment_condition(
                "Progressing", "True", RS_UPDATED_REASON, f"{subject} is progressing.", now
            )
            if current is not None:
                if current.get("status") == "True":
                    condition["lastTransitionTime"] = current.get("lastTransitionTime")
                conditions.remove_condition(status, "Progressing")
            set_condition(status, condition)
        elif deployment_timed_out(d, status, now):
            set_condition(
                status,
                new_deployment_condition(
                    "Progressing",
                    "False",
                    TIMED_OUT_REASON,
                    f"{subject} has timed out progressing.",
                    now,
                ),
            )
    failures = replica_failures(all_rss, new_rs)
    if failures:
        set_condition(status, failures[0])
    else:
        conditions.remove_condition(status, "ReplicaFailure")
    return status


def replica_failures(all_rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    def of(rs: Obj) -> list[Obj]:
        return [
            {
                "type": "ReplicaFailure",
                "status": c.get("status"),
                "lastUpdateTime": c.get("lastTransitionTime"),
                "lastTransitionTime": c.get("lastTransitionTime"),
                "reason": c.get("reason"),
                "message": c.get("message"),
            }
            for c in (rs.get("status") or {}).get("conditions") or []
            if c.get("type") == "ReplicaFailure"
        ]

    if new_rs is not None and (found := of(new_rs)):
        return found
    return [c for rs in all_rss for c in of(rs)]


def stuck_requeue_after(d: Obj, status: Obj, now: datetime) -> float | None:
    """``requeueStuckDeployment``: seconds until the progress deadline should be checked
    again (None when there is nothing to wait for)."""
    current = conditions.get_condition(d.get("status") or {}, "Progressing")
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, status) or current.get("reason") == TIMED_OUT_REASON:
        return None
    since = parse_time(current.get("lastUpdateTime"))
    if since is None:
        return None
    deadline = since + timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))
    remaining = (deadline - now).total_seconds()
    return 0.0 if remaining < 1 else remaining + 1


async def sync_rollout_status(
    dc: DeploymentController, d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None
) -> Requeue | None:
    """``syncRolloutStatus``: write the new status; when nothing changed, come back
    when the progress deadline passes (``requeueStuckDeployment``)."""
    fresh = refresh(dc, all_rss)
    new_fresh = refresh(dc, [new_rs])[0] if new_rs is not None else None
    now = dc.clock.now()
    status = rollout_status(fresh, new_fresh, d, now)
    if status == (d.get("status") or {}):
        after = stuck_requeue_after(d, status, now)
        if after is None:
            return None
        return Requeue() if after <= 0 else Requeue(after=after)
    await update_status(dc, d, status)
    return None
