"""``ttlSecondsAfterFinished``: a finished Job deletes itself once its TTL has passed.

The TTL counts from ``status.completionTime`` (or the finishing condition's transition).
Before deleting, the Job is read fresh, so a TTL changed meanwhile, or a Job recreated under
the same name, is honoured; the deletion carries the uid as a precondition and propagates in
the background, so the garbage collector removes the pods. Kubernetes does this in a
controller of its own (``pkg/controller/ttlafterfinished/ttlafterfinished_controller.go``);
setpoint's Job controller does it as part of its sync.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from setpoint.client.api import JOBS, ApiClient, ApiError, Obj
from setpoint.controllers.job.util import find_condition, is_job_finished
from setpoint.meta.timestamps import parse_time


def ttl_expires_at(job: Obj) -> datetime | None:
    """When a finished Job with ``ttlSecondsAfterFinished`` may be deleted."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or not is_job_finished(job):
        return None
    finished = parse_time((job.get("status") or {}).get("completionTime"))
    if finished is None:
        for kind in ("Complete", "Failed"):
            condition = find_condition(job, kind)
            if condition and condition.get("status") == "True":
                finished = parse_time(condition.get("lastTransitionTime"))
    if finished is None:
        return None
    return finished + timedelta(seconds=int(ttl))


async def expire_after_ttl(
    client: ApiClient, job: Obj, now: Callable[[], datetime]
) -> float | None:
    """Delete the finished ``job`` if its TTL has passed; return the seconds left until it
    does, if it has not yet (``processJob``)."""
    expires = ttl_expires_at(job)
    if expires is None:
        return None
    wait = (expires - now()).total_seconds()
    if wait > 0:
        return wait
    meta = job["metadata"]
    try:
        fresh = await client.get(JOBS, meta["name"], meta.get("namespace"))
        fresh_expires = ttl_expires_at(fresh)
        if fresh_expires is None or fresh_expires > now():
            return None
        await client.delete(
            JOBS,
            meta["name"],
            meta.get("namespace"),
            propagation_policy="Background",
            preconditions_uid=fresh["metadata"].get("uid"),
        )
    except ApiError as exc:
        if not (exc.is_not_found or exc.code == 409):
            raise
    return None
