"""The CronJob controller: create a Job at each time a cron schedule names.

A CronJob holds a cron ``schedule`` (optionally in ``spec.timeZone``) and a Job template.
At each reconcile the controller looks for the most recent scheduled time that has passed
since the last one it acted on (``status.lastScheduleTime``, or the CronJob's creation): if
there is one, and it is not too late (``startingDeadlineSeconds``), it starts a Job named
``<cronjob>-<scheduled time in Unix minutes>``, so that the name itself makes a second start
for the same time impossible, even after a crash between creating the Job and writing the
status. Missed times in between are not run one by one: only the most recent counts, and if
more than 100 were missed an event suggests setting ``startingDeadlineSeconds`` (Kubernetes'
"too many missed start times" rule). Then it asks to be woken just after the next scheduled
time.

``concurrencyPolicy`` decides what happens while an earlier Job still runs: ``Allow`` starts
the new one anyway, ``Forbid`` skips this start, ``Replace`` deletes the running Jobs first.
``suspend`` stops new starts. Status keeps references to the active Jobs, the last schedule
time and the last successful completion time; finished Jobs beyond
``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` are deleted, oldest first.

The clock is injectable (``clock=``, see :mod:`setpoint.meta.clock`), so tests can move time
by hand.

Reference: ``pkg/controller/cronjob/cronjob_controllerv2.go`` and ``utils.go``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from setpoint.client.api import CRONJOBS, JOBS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_owner_uid
from setpoint.client.workqueue import Requeue
from setpoint.controllers.util import ownerrefs
from setpoint.meta import cron
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.timestamps import format_time, parse_time

log = logging.getLogger(__name__)

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100
NEXT_SCHEDULE_DELTA = timedelta(milliseconds=100)


# ------------------------------------------------------------------------------- time


# ---------------------------------------------------------------------- schedules


def schedule_for(cron_job: Obj) -> cron.Schedule:
    """``formatSchedule``: ``spec.timeZone`` becomes the schedule's ``TZ=`` prefix."""
    spec = cron_job.get("spec") or {}
    text = str(spec.get("schedule", ""))
    zone = spec.get("timeZone")
    if zone and "TZ=" not in text:
        text = f"TZ={zone} {text}"
    return cron.parse(text)


class Missed(Enum):
    NONE = "none"
    FEW = "few"
    MANY = "many"


class MostRecent(NamedTuple):
    earliest: datetime
    scheduled: datetime | None
    missed: Missed
    missed_count: int


def most_recent_schedule_time(
    cron_job: Obj,
    now: datetime,
    schedule: cron.Schedule,
    *,
    include_starting_deadline: bool = True,
) -> MostRecent:
    """``mostRecentScheduleTime``: the latest scheduled time in (earliest, now], where
    earliest is the last schedule time (or creation), moved up to ``now -
    startingDeadlineSeconds`` when that is later. The number of missed times is estimated
    from the distance between two consecutive runs, as Kubernetes does."""
    meta, spec = cron_job["metadata"], cron_job.get("spec") or {}
    status = cron_job.get("status") or {}
    earliest = (
        parse_time(status.get("lastScheduleTime"))
        or parse_time(meta.get("creationTimestamp"))
        or now
    )
    deadline = spec.get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=int(deadline)))
    t1 = schedule.next_after(earliest)
    if t1 is None or now < t1:
        return MostRecent(earliest, None, Missed.NONE, 0)
    t2 = schedule.next_after(t1)
    if t2 is None or now < t2:
        return MostRecent(earliest, t1, Missed.FEW, 1)
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    elapsed = int((now - t1).total_seconds())
    missed = elapsed // between + 1
    # Start one interval early and walk forward: exact for irregular schedules too.
    moment: datetime | None = schedule.next_after(t1 + timedelta(seconds=(missed - 2) * between))
    most_recent = t1
    while moment is not None and moment <= now:
        most_recent = moment
        moment = schedule.next_after(moment)
    kind = Missed.MANY if missed > TOO_MANY_MISSED else Missed.FEW
    return MostRecent(earliest, most_recent, kind, missed)


def next_schedule_delay(cron_job: Obj, now: datetime, schedule: cron.Schedule) -> float | None:
    """Seconds until just after the next scheduled time (``nextScheduleTimeDuration``)."""
    try:
        recent = most_recent_schedule_time(cron_job, now, schedule, include_starting_deadline=False)
    except ValueError:
        return None
    base = recent.scheduled or recent.earliest
    following = schedule.next_after(base)
    if following is None:
        return None
    return max(0.0, (following + NEXT_SCHEDULE_DELTA - now).total_seconds())


def too_late(scheduled: datetime, cron_job: Obj, now: datetime) -> bool:
    deadline = (cron_job.get("spec") or {}).get("startingDeadlineSeconds")
    return deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now


# ----------------------------------------------------------------------------- jobs


def job_name(cron_job: Obj, scheduled: datetime) -> str:
    """``<cronjob>-<scheduled Unix time in minutes>``: deterministic per scheduled time."""
    return f"{cron_job['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cron_job: Obj, scheduled: datetime) -> Obj:
    """``getJobFromTemplate2``: the template's labels, annotations and spec, the scheduled
    time as an annotation (RFC 3339 in the CronJob's zone) and the CronJob as controller."""
    spec = cron_job.get("spec") or {}
    template = spec.get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    zone = spec.get("timeZone")
    local = scheduled
    if zone:
        try:
            local = scheduled.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            local = scheduled.astimezone(UTC)
    else:
        local = scheduled.astimezone(UTC)
    stamp = local.isoformat().replace("+00:00", "Z")
    annotations = dict(template_meta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = stamp
    meta = cron_job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cron_job, scheduled),
            "namespace": meta.get("namespace"),
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [ownerrefs.new_controller_ref(cron_job, "batch/v1", "CronJob")],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def job_ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {
        "kind": "Job",
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta.get("uid"),
        "apiVersion": "batch/v1",
        "resourceVersion": meta.get("resourceVersion"),
    }


def job_finished_condition(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has that condition True."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


# ------------------------------------------------------------------- decisions


class StartDecision(Enum):
    START = "start"
    SKIP_FORBID = "forbid"
    REPLACE = "replace"


def concurrency_decision(policy: str, active_count: int) -> StartDecision:
    """What to do at a due start while ``active_count`` Jobs still run."""
    if active_count > 0 and policy == "Forbid":
        return StartDecision.SKIP_FORBID
    if active_count > 0 and policy == "Replace":
        return StartDecision.REPLACE
    return StartDecision.START


def _start_time_key(job: Obj) -> tuple[int, float, str]:
    started = parse_time((job.get("status") or {}).get("startTime"))
    # Jobs that never started sort after those that did (``byJobStartTime``).
    return (0 if started else 1, started.timestamp() if started else 0.0, job["metadata"]["name"])


def jobs_to_clean_up(
    jobs: Iterable[Obj], successful_limit: int | None, failed_limit: int | None
) -> list[Obj]:
    """Finished Jobs beyond the history limits, oldest first (``cleanupFinishedJobs``)."""
    doomed: list[Obj] = []
    for kind, limit in (("Complete", successful_limit), ("Failed", failed_limit)):
        if limit is None:
            continue
        finished = sorted(
            (j for j in jobs if job_finished_condition(j) == kind), key=_start_time_key
        )
        doomed += finished[: max(0, len(finished) - limit)]
    return doomed


# ------------------------------------------------------------------ the controller


class CronJobController(Controller):
    name = "cronjob"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.cron_jobs = informers.informer(CRONJOBS)
        self.jobs = informers.informer(JOBS, indexers={"owner": by_owner_uid})
        self.watch_owned(self.cron_jobs)
        self.jobs.add_handler(
            EventHandler(
                on_add=self._job_changed,
                on_update=lambda old, new: self._job_changed(new),
                on_delete=self._job_changed,
            )
        )

    def _job_changed(self, job: Obj) -> None:
        for ref in job["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "CronJob":
                self.queue.add(f"{job['metadata'].get('namespace')}/{ref.get('name')}")

    async def reconcile(self, key: str) -> Requeue | None:
        cached = self.cron_jobs.get(key)
        if cached is None:
            return None
        cron_job = copy.deepcopy(cached)
        before = copy.deepcopy(cron_job.get("status") or {})
        jobs = [
            j
            for j in self.jobs.by_index("owner", cron_job["metadata"]["uid"])
            if ownerrefs.is_controlled_by(j, cron_job)
        ]
        await self._sync_active(cron_job, jobs)
        delay: float | None = None
        if not cron_job["metadata"].get("deletionTimestamp"):
            delay = await self._maybe_start(cron_job)
            await self._clean_up_history(cron_job, jobs)
        if (cron_job.get("status") or {}) != before:
            try:
                await self.client.update_status(CRONJOBS, cron_job)
            except ApiError as exc:
                if not exc.is_conflict:
                    raise
                # A stale cache: start over from the newer CronJob. A Job created above
                # is found again by its name, so it is not created twice.
                log.debug("%s: conflict writing status; retrying", key)
                return Requeue(after=0.05)
        return None if delay is None else Requeue(after=delay)

    async def _sync_active(self, cron_job: Obj, jobs: list[Obj]) -> None:
        """Drop finished or vanished Jobs from ``status.active``; note the last success."""
        status = cron_job.setdefault("status", {})
        active = list(status.get("active") or [])
        active_uids = {ref.get("uid") for ref in active}
        children = {j["metadata"].get("uid") for j in jobs}
        for job in jobs:
            uid = job["metadata"].get("uid")
            finished = job_finished_condition(job)
            if uid not in active_uids and finished is None:
                fresh = await self._fresh_active_uids(cron_job)
                if uid not in fresh:
                    message = (
                        "Saw a job that the controller did not create or forgot: "
                        f"{job['metadata']['name']}"
                    )
                    await self.recorder.record(cron_job, "Warning", "UnexpectedJob", message)
            elif uid in active_uids and finished is not None:
                active = [ref for ref in active if ref.get("uid") != uid]
                message = f"Saw completed job: {job['metadata']['name']}, condition: {finished}"
                await self.recorder.record(cron_job, "Normal", "SawCompletedJob", message)
            if finished == "Complete":
                completed = (job.get("status") or {}).get("completionTime")
                last = parse_time(status.get("lastSuccessfulTime"))
                moment = parse_time(completed)
                if moment is not None and (last is None or moment > last):
                    status["lastSuccessfulTime"] = completed
        for ref in list(active):
            if ref.get("uid") in children:
                continue
            # A slow watch may not show a new Job yet: ask the server before forgetting it.
            try:
                await self.client.get(JOBS, ref["name"], ref.get("namespace"))
            except ApiError as exc:
                if not exc.is_not_found:
                    raise
                message = f"Active job went missing: {ref['name']}"
                await self.recorder.record(cron_job, "Normal", "MissingJob", message)
                active = [r for r in active if r.get("uid") != ref.get("uid")]
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _fresh_active_uids(self, cron_job: Obj) -> set[str]:
        meta = cron_job["metadata"]
        try:
            fresh = await self.client.get(CRONJOBS, meta["name"], meta.get("namespace"))
        except ApiError:
            return set()
        return {ref.get("uid") for ref in (fresh.get("status") or {}).get("active") or []}

    async def _maybe_start(self, cron_job: Obj) -> float | None:
        """Start the Job that is due now, if any; return the delay to the next schedule."""
        spec = cron_job.get("spec") or {}
        status = cron_job.setdefault("status", {})
        zone = spec.get("timeZone")
        if zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                message = f"invalid timeZone: {zone!r}"
                await self.recorder.record(cron_job, "Warning", "UnknownTimeZone", message)
                return None
        if spec.get("suspend"):
            return None
        try:
            schedule = schedule_for(cron_job)
        except cron.CronError as exc:
            message = f"unparseable schedule: {spec.get('schedule')!r} : {exc}"
            await self.recorder.record(cron_job, "Warning", "UnparseableSchedule", message)
            return None
        now = self.clock.now()
        try:
            recent = most_recent_schedule_time(cron_job, now, schedule)
        except ValueError as exc:
            message = f"invalid schedule: {spec.get('schedule')} : {exc}"
            await self.recorder.record(cron_job, "Warning", "InvalidSchedule", message)
            return None
        delay = next_schedule_delay(cron_job, now, schedule)
        scheduled = recent.scheduled
        if scheduled is None:
            return delay
        if recent.missed is Missed.MANY:
            message = (
                f"too many missed start times: {recent.missed_count}. Set or decrease "
                ".spec.startingDeadlineSeconds or check clock skew"
            )
            await self.recorder.record(cron_job, "Warning", "TooManyMissedTimes", message)
        if too_late(scheduled, cron_job, now):
            stamp = scheduled.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
            message = f"Missed scheduled time to start a job: {stamp}"
            await self.recorder.record(cron_job, "Warning", "MissSchedule", message)
            return delay
        name = job_name(cron_job, scheduled)
        active = list(status.get("active") or [])
        last = parse_time(status.get("lastScheduleTime"))
        if any(ref.get("name") == name for ref in active) or last == scheduled:
            return delay
        decision = concurrency_decision(spec.get("concurrencyPolicy", "Allow"), len(active))
        if decision is StartDecision.SKIP_FORBID:
            message = (
                "Not starting job because prior execution is running and concurrency "
                "policy is Forbid"
            )
            await self.recorder.record(cron_job, "Normal", "JobAlreadyActive", message)
            return delay
        if decision is StartDecision.REPLACE:
            for ref in active:
                await self._delete_job(cron_job, ref["name"])
            status.pop("active", None)
        job = await self._create_job(cron_job, scheduled)
        status["active"] = [*(status.get("active") or []), job_ref(job)]
        status["lastScheduleTime"] = format_time(scheduled)
        return delay

    async def _create_job(self, cron_job: Obj, scheduled: datetime) -> Obj:
        body = job_from_template(cron_job, scheduled)
        namespace = cron_job["metadata"].get("namespace")
        try:
            job = await self.client.create(JOBS, body, namespace)
        except ApiError as exc:
            if not exc.is_already_exists:
                message = f"Error creating job: {exc}"
                await self.recorder.record(cron_job, "Warning", "FailedCreate", message)
                raise
            # The name is the lock: an earlier attempt (ours, before a crash) made it.
            job = await self.client.get(JOBS, body["metadata"]["name"], namespace)
            if not ownerrefs.is_controlled_by(job, cron_job):
                raise
            return job
        await self.recorder.record(
            cron_job, "Normal", "SuccessfulCreate", f"Created job {job['metadata']['name']}"
        )
        return job

    async def _delete_job(self, cron_job: Obj, name: str) -> None:
        try:
            await self.client.delete(
                JOBS, name, cron_job["metadata"].get("namespace"), propagation_policy="Background"
            )
        except ApiError as exc:
            if not exc.is_not_found:
                await self.recorder.record(
                    cron_job, "Warning", "FailedDelete", f"Deleted job: {exc}"
                )
                raise
        await self.recorder.record(cron_job, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    async def _clean_up_history(self, cron_job: Obj, jobs: list[Obj]) -> None:
        spec = cron_job.get("spec") or {}
        successful = spec.get("successfulJobsHistoryLimit")
        failed = spec.get("failedJobsHistoryLimit")
        if successful is None and failed is None:
            return
        status = cron_job.setdefault("status", {})
        for job in jobs_to_clean_up(jobs, successful, failed):
            name = job["metadata"]["name"]
            await self._delete_job(cron_job, name)
            active = [r for r in status.get("active") or [] if r.get("name") != name]
            if active:
                status["active"] = active
            else:
                status.pop("active", None)
