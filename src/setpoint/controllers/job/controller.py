"""The Job controller's sync: observe a Job's pods, decide, act, then account for them.

One reconcile of a Job (upstream's ``syncJob``) reads the Job and the pods it controls from
the cache, counts them (active, terminating, succeeded and failed, including pods finished
but not yet counted), decides whether the Job has failed (an earlier ``FailureTarget``, a
``FailJob`` rule, ``backoffLimit``, ``activeDeadlineSeconds``, too many failed indexes) or
succeeded, then either deletes the active pods of a failing Job or creates and deletes pods
toward ``min(parallelism, completions - succeeded)`` (``manageJob``: slow-start batches,
backoff before replacing failed pods, suspend), and finally writes status in the three
steps of exact accounting (``trackJobStatusAndRemoveFinalizers``, see
:mod:`~setpoint.controllers.job.tracking`) with the terminal condition last. What it needs to
see again (the active deadline, a backoff, terminating pods, the TTL) it returns as the
soonest :class:`~setpoint.client.workqueue.Requeue`. Expectations stop a lagging cache from
causing duplicate pods. Follows ``pkg/controller/job/job_controller.go``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from setpoint.client.api import JOBS, PODS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace
from setpoint.client.workqueue import Requeue
from setpoint.controllers.job.backoff import failures_since_last_success, remaining_backoff
from setpoint.controllers.job.failure_policy import fail_job_message, match_pod_failure_policy
from setpoint.controllers.job.indexed import (
    add_completion_index,
    completion_index,
    first_pending_indexes,
    format_indexes,
    is_index_failed,
    next_index_failure_counts,
    parse_indexes,
    pod_generate_name,
    pods_to_remove,
)
from setpoint.controllers.job.tracking import (
    JOB_TRACKING_FINALIZER,
    FinalizerExpectations,
    compact_status,
    has_tracking_finalizer,
)
from setpoint.controllers.job.ttl import expire_after_ttl
from setpoint.controllers.job.util import (
    condition_true,
    find_condition,
    is_job_finished,
    is_pod_failed,
    only_replace_failed_pods,
)
from setpoint.controllers.util import ownerrefs
from setpoint.controllers.util.conditions import new_condition
from setpoint.controllers.util.expectations import UIDTrackingControllerExpectations
from setpoint.controllers.util.pods import (
    active_pods_order,
    is_pod_active,
    is_pod_ready,
    is_terminating,
    pod_phase,
    pod_uid,
)
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.labels import SelectorParseError, selector_from_label_selector
from setpoint.meta.timestamps import format_time, parse_time

log = logging.getLogger(__name__)

MAX_UNCOUNTED_PODS = 500  # bounds the size of status.uncountedTerminatedPods per write
MAX_POD_CHANGES_PER_SYNC = 500


def new_job_condition(kind: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    """``newCondition``: a Job condition, with ``lastProbeTime``."""
    return new_condition(kind, status, reason, message, now, heartbeat="lastProbeTime")


def ensure_condition(
    conditions: list[Obj], kind: str, status: str, reason: str, message: str, now: datetime
) -> bool:
    """``ensureJobConditionStatus``: set or append a condition; a False condition that does
    not exist yet is not added. Returns whether the list changed."""
    for i, condition in enumerate(conditions):
        if condition.get("type") == kind:
            current = (condition.get("status"), condition.get("reason"), condition.get("message"))
            if current != (status, reason, message):
                conditions[i] = new_job_condition(kind, status, reason, message, now)
                return True
            return False
    if status != "False":
        conditions.append(new_job_condition(kind, status, reason, message, now))
        return True
    return False


def want_active(*, completions: int | None, parallelism: int, succeeded: int, active: int) -> int:
    """How many pods should be running now (``manageJob``)."""
    if completions is None:
        # A work queue: once any pod succeeded, let the others finish, start no more.
        return active if succeeded > 0 else parallelism
    return max(0, min(completions - succeeded, parallelism))


def past_backoff_limit_on_failure(job: Obj, pods: Iterable[Obj]) -> bool:
    """With ``restartPolicy: OnFailure`` container restarts of running pods count as
    failures against ``backoffLimit``."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        if pod_phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for cs in (status.get("initContainerStatuses") or []) + (
                status.get("containerStatuses") or []
            ):
                restarts += int(cs.get("restartCount") or 0)
    limit = int(spec.get("backoffLimit", 6))
    return restarts > 0 if limit == 0 else restarts >= limit


def past_active_deadline(job: Obj, now: datetime) -> bool:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    deadline = spec.get("activeDeadlineSeconds")
    start = parse_time(status.get("startTime"))
    if deadline is None or start is None or spec.get("suspend"):
        return False
    return (now - start).total_seconds() >= deadline


def new_pod(
    job: Obj, index: int | None = None, failure_counts: tuple[int, int] | None = None
) -> Obj:
    """A pod for the Job from its template, tracked by the finalizer and, in Indexed mode,
    carrying its completion index."""
    name = job["metadata"]["name"]
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    template_meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    labels = dict(template_meta.get("labels") or {})
    annotations = dict(template_meta.get("annotations") or {})
    meta: Obj = {
        "generateName": f"{name}-" if index is None else pod_generate_name(name, index),
        "namespace": job["metadata"].get("namespace"),
        "labels": labels,
        "annotations": annotations,
        "finalizers": [JOB_TRACKING_FINALIZER],
        "ownerReferences": [ownerrefs.new_controller_ref(job, "batch/v1", "Job")],
    }
    if index is not None:
        add_completion_index(
            job,
            index,
            labels=labels,
            annotations=annotations,
            spec=spec,
            failure_counts=failure_counts,
        )
    if not annotations:
        meta.pop("annotations")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


@dataclass
class _Sync:
    """What one reconcile of one Job knows and decides."""

    job: Obj
    pods: list[Obj]
    now: datetime
    active: list[Obj] = field(default_factory=list)
    terminating: int = 0
    succeeded: int = 0
    failed: int = 0
    succeeded_indexes: set[int] = field(default_factory=set)
    failed_indexes: set[int] | None = None
    finished: Obj | None = None  # FailureTarget / SuccessCriteriaMet (or their final form)
    wake_after: float | None = None  # seconds until this Job needs another look

    def wake_in(self, seconds: float) -> None:
        """Ask to see the Job again in ``seconds`` (the soonest of all asks wins: that
        reconcile works out the later ones again)."""
        if self.wake_after is None or seconds < self.wake_after:
            self.wake_after = seconds

    def result(self) -> Requeue | None:
        return None if self.wake_after is None else Requeue(after=self.wake_after)

    @property
    def spec(self) -> Obj:
        return self.job.get("spec") or {}

    @property
    def status(self) -> Obj:
        status: Obj = self.job.setdefault("status", {})
        return status

    @property
    def indexed(self) -> bool:
        return self.spec.get("completionMode") == "Indexed"

    @property
    def completions(self) -> int | None:
        value = self.spec.get("completions")
        return None if value is None else int(value)


class JobController(Controller):
    name = "job"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.expectations = UIDTrackingControllerExpectations()
        self.finalizer_expectations = FinalizerExpectations()
        self.jobs = informers.informer(JOBS, indexers={"namespace": by_namespace})
        self.pods = informers.informer(PODS, indexers={"namespace": by_namespace})
        self.watch_owned(self.jobs)
        self.pods.add_handler(
            EventHandler(
                on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
            )
        )

    # ------------------------------------------------------------ event handlers

    def _owner_key(self, pod: Obj) -> str | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Job":
                return f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
        return None

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            return
        self.expectations.creation_observed(key)
        if is_terminating(pod):
            self.expectations.deletion_observed(key, pod_uid(pod))
        self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = self._owner_key(new)
        if key is None:
            return
        if is_terminating(new):
            self.expectations.deletion_observed(key, pod_uid(new))
        if not has_tracking_finalizer(new):
            self.finalizer_expectations.removal_observed(key, pod_uid(new))
        self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            return
        self.expectations.deletion_observed(key, pod_uid(pod))
        self.finalizer_expectations.removal_observed(key, pod_uid(pod))
        self.queue.add(key)

    # ---------------------------------------------------------------- reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        cached = self.jobs.get(key)
        if cached is None:
            await self._release_orphaned_pods(key)
            self.expectations.delete_expectations(key)
            self.finalizer_expectations.delete_expectations(key)
            return None
        job = copy.deepcopy(cached)
        pods = self._pods_for(job)
        if is_job_finished(job) or job["metadata"].get("deletionTimestamp"):
            # Nothing left to count: let every remaining pod go.
            await self._remove_finalizers(key, [p for p in pods if has_tracking_finalizer(p)])
            wait = await expire_after_ttl(self.client, job, self.clock.now)
            return None if wait is None else Requeue(after=wait)

        sync = self._observe(key, job, pods)
        self._decide_failure(sync)
        try:
            if sync.finished is not None and sync.finished["type"] == "FailureTarget":
                await self._delete_active_pods(key, sync, keep_finalizers=True)
            else:
                await self._manage(key, sync)
            await self._track_and_flush(key, sync)
        except ApiError as exc:
            if not exc.is_conflict:
                raise
            # Our cached Job is older than the server's (often our own last status write);
            # the watch delivers the newer one, and we start over from it.
            log.debug("%s: conflict writing status; retrying from a fresher cache", key)
            return Requeue(after=0.05)
        return sync.result()

    def _pods_for(self, job: Obj) -> list[Obj]:
        """The pods this Job controls: its selector matches and its controllerRef is the Job
        (orphan adoption is not done here)."""
        uid = job["metadata"].get("uid")
        try:
            selector = selector_from_label_selector((job.get("spec") or {}).get("selector"))
        except SelectorParseError:
            return []
        namespace = job["metadata"].get("namespace", "")
        return [
            pod
            for pod in self.pods.by_index("namespace", namespace)
            if ownerrefs.controller_uid(pod) == uid
            and selector.matches(pod["metadata"].get("labels") or {})
        ]

    def _observe(self, key: str, job: Obj, pods: list[Obj]) -> _Sync:
        """Counters including what is finished but not yet counted; startTime."""
        sync = _Sync(job=job, pods=pods, now=self.clock.now())
        status = sync.status
        uncounted = status.get("uncountedTerminatedPods") or {}
        uncounted_succeeded = set(uncounted.get("succeeded") or [])
        uncounted_failed = set(uncounted.get("failed") or [])
        removed = self.finalizer_expectations.removed(key)
        policy = sync.spec.get("podFailurePolicy")
        sync.active = [p for p in pods if is_pod_active(p)]
        sync.terminating = sum(
            1 for p in pods if is_terminating(p) and pod_phase(p) not in ("Succeeded", "Failed")
        )
        tracked = [p for p in pods if has_tracking_finalizer(p) and pod_uid(p) not in removed]
        new_succeeded = [
            p
            for p in tracked
            if pod_phase(p) == "Succeeded" and pod_uid(p) not in uncounted_succeeded
        ]
        new_failed = [
            p
            for p in tracked
            if is_pod_failed(p, job)
            and pod_uid(p) not in uncounted_failed
            and ((m := match_pod_failure_policy(policy, p)) is None or m.count_failed)
        ]
        sync.succeeded = (
            int(status.get("succeeded") or 0) + len(new_succeeded) + len(uncounted_succeeded)
        )
        sync.failed = int(status.get("failed") or 0) + len(new_failed) + len(uncounted_failed)
        if sync.indexed:
            completions = sync.completions or 0
            sync.succeeded_indexes = parse_indexes(status.get("completedIndexes"), completions)
            for pod in pods:
                index = completion_index(pod)
                if pod_phase(pod) == "Succeeded" and index is not None and index < completions:
                    sync.succeeded_indexes.add(index)
            sync.succeeded = len(sync.succeeded_indexes)
            if sync.spec.get("backoffLimitPerIndex") is not None:
                failed = parse_indexes(status.get("failedIndexes"), completions)
                for pod in pods:
                    index = completion_index(pod)
                    if (
                        index is not None
                        and index < completions
                        and has_tracking_finalizer(pod)
                        and is_index_failed(job, pod)
                    ):
                        failed.add(index)
                sync.failed_indexes = failed - sync.succeeded_indexes
        if not status.get("startTime") and not sync.spec.get("suspend"):
            status["startTime"] = format_time(sync.now)
        return sync

    def _decide_failure(self, sync: _Sync) -> None:
        """Whether the Job has failed: an earlier FailureTarget, a FailJob rule, the backoff
        limit, the active deadline, or too many failed indexes (in that order)."""
        job, spec = sync.job, sync.spec
        if condition_true(job, "SuccessCriteriaMet"):
            sync.finished = find_condition(job, "SuccessCriteriaMet")
            return
        target = find_condition(job, "FailureTarget")
        message = fail_job_message(job, sync.pods)
        if target is not None and target.get("status") == "True":
            sync.finished = target
        elif message is not None:
            sync.finished = new_job_condition(
                "FailureTarget", "True", "PodFailurePolicy", message, sync.now
            )
        elif sync.failed > int(spec.get("backoffLimit", 6)) or past_backoff_limit_on_failure(
            job, sync.pods
        ):
            sync.finished = self._failure("BackoffLimitExceeded", sync)
        elif past_active_deadline(job, sync.now):
            sync.finished = self._failure("DeadlineExceeded", sync)
        elif spec.get("activeDeadlineSeconds") is not None and not spec.get("suspend"):
            start = parse_time(sync.status.get("startTime")) or sync.now
            remaining = spec["activeDeadlineSeconds"] - (sync.now - start).total_seconds()
            sync.wake_in(max(remaining, 0.0) + 0.01)
        if sync.finished is None and sync.failed_indexes is not None:
            failed = len(sync.failed_indexes)
            max_failed = spec.get("maxFailedIndexes")
            if max_failed is not None and failed > int(max_failed):
                sync.finished = self._failure("MaxFailedIndexesExceeded", sync)
            elif failed > 0 and failed + len(sync.succeeded_indexes) >= (sync.completions or 0):
                sync.finished = self._failure("FailedIndexes", sync)

    @staticmethod
    def _failure(reason: str, sync: _Sync) -> Obj:
        messages = {
            "BackoffLimitExceeded": "Job has reached the specified backoff limit",
            "DeadlineExceeded": "Job was active longer than specified deadline",
            "MaxFailedIndexesExceeded": (
                "Job has exceeded the specified maximal number of failed indexes"
            ),
            "FailedIndexes": "Job has failed indexes",
        }
        return new_job_condition("FailureTarget", "True", reason, messages[reason], sync.now)

    # ------------------------------------------------------------ managing pods

    async def _manage(self, key: str, sync: _Sync) -> None:
        """Create or delete pods toward the wanted number of active pods; then decide
        success and the Suspended condition."""
        managed = self.expectations.satisfied(key) and not sync.job["metadata"].get(
            "deletionTimestamp"
        )
        if managed:
            if sync.spec.get("suspend"):
                await self._delete_active_pods(key, sync, keep_finalizers=False)
            else:
                await self._scale(key, sync)
        active = len(sync.active)
        if sync.completions is None:
            complete = sync.succeeded > 0 and active == 0
        else:
            complete = sync.succeeded >= sync.completions and active == 0
        if complete:
            sync.finished = new_job_condition(
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                sync.now,
            )
        elif managed:
            await self._update_suspended_condition(sync)

    async def _update_suspended_condition(self, sync: _Sync) -> None:
        conditions = sync.status.setdefault("conditions", [])
        if sync.spec.get("suspend"):
            if ensure_condition(
                conditions, "Suspended", "True", "JobSuspended", "Job suspended", sync.now
            ):
                await self.recorder.record(sync.job, "Normal", "Suspended", "Job suspended")
        elif ensure_condition(
            conditions, "Suspended", "False", "JobResumed", "Job resumed", sync.now
        ):
            await self.recorder.record(sync.job, "Normal", "Resumed", "Job resumed")
            # activeDeadlineSeconds counts continuous activity: restart the clock.
            sync.status["startTime"] = format_time(sync.now)

    async def _scale(self, key: str, sync: _Sync) -> None:
        removable = self._pods_to_remove(sync)
        active_valid = len(sync.active) - len(removable)
        want = want_active(
            completions=sync.completions,
            parallelism=int(sync.spec.get("parallelism", 1)),
            succeeded=sync.succeeded,
            active=active_valid,
        )
        surplus = [p for p in sorted(sync.active, key=active_pods_order) if p not in removable]
        removable += surplus[: max(0, active_valid - want)]
        if removable:
            await self._delete_pods(key, sync, removable[:MAX_POD_CHANGES_PER_SYNC])
            return
        terminating = sync.terminating if only_replace_failed_pods(sync.job) else 0
        missing = min(want - terminating - len(sync.active), MAX_POD_CHANGES_PER_SYNC)
        if missing <= 0:
            return
        if sync.indexed:
            await self._create_indexed(key, sync, missing)
            return
        if self._backing_off(sync):
            return
        await self._create_pods(key, sync, [None] * missing)

    def _backing_off(self, sync: _Sync) -> bool:
        """Still in the pod-failure backoff: wake the Job when it ends, create nothing now."""
        wait = remaining_backoff(
            failures_since_last_success(sync.pods, sync.job),
            sync.now,
            self.backoff_initial,
            self.backoff_max,
        )
        if wait > 0:
            sync.wake_in(wait)
        return wait > 0

    def _pods_to_remove(self, sync: _Sync) -> list[Obj]:
        if not sync.indexed:
            return []
        return pods_to_remove(
            sync.active,
            sync.completions or 0,
            succeeded=sync.succeeded_indexes,
            failed=sync.failed_indexes or set(),
        )

    async def _create_indexed(self, key: str, sync: _Sync, missing: int) -> None:
        active_indexes = {i for p in sync.active if (i := completion_index(p)) is not None}
        indexes = first_pending_indexes(
            sync.completions or 0,
            missing,
            succeeded=sync.succeeded_indexes,
            failed=sync.failed_indexes or set(),
            active=active_indexes,
        )
        if sync.spec.get("backoffLimitPerIndex") is None:
            if self._backing_off(sync):
                return
            await self._create_pods(key, sync, list(indexes))
            return
        # Each index backs off on its own failures.
        counts = next_index_failure_counts(sync.job, sync.pods)
        ready: list[int | None] = []
        soonest = 0.0
        for index in indexes:
            index_pods = [p for p in sync.pods if completion_index(p) == index]
            streak = failures_since_last_success(index_pods, sync.job)
            wait = remaining_backoff(streak, sync.now, self.backoff_initial, self.backoff_max)
            if wait > 0:
                soonest = wait if soonest == 0 else min(soonest, wait)
            else:
                ready.append(index)
        if soonest > 0:
            sync.wake_in(soonest)
        await self._create_pods(key, sync, ready, counts)

    async def _create_pods(
        self,
        key: str,
        sync: _Sync,
        indexes: Sequence[int | None],
        counts: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        """Create in slow-start batches (1, 2, 4, ...), stopping at the first batch with an
        error, as ``manageJob`` does, so a broken template costs one failed request."""
        job = sync.job
        pending = list(indexes)
        if not pending:
            return
        self.expectations.expect_creations(key, len(pending))
        batch = 1
        while pending:
            chunk, pending = pending[:batch], pending[batch:]
            bodies = [
                new_pod(job, i, (counts or {}).get(i) if i is not None else None) for i in chunk
            ]
            results = await asyncio.gather(
                *(self.client.create(PODS, body) for body in bodies), return_exceptions=True
            )
            errors = 0
            for result in results:
                if isinstance(result, BaseException):
                    errors += 1
                    self.expectations.creation_observed(key)
                    if not (isinstance(result, ApiError) and result.is_namespace_terminating):
                        await self.recorder.record(
                            job, "Warning", "FailedCreate", f"Error creating: {result}"
                        )
                else:
                    sync.active.append(result)
                    await self.recorder.record(
                        job,
                        "Normal",
                        "SuccessfulCreate",
                        f"Created pod: {result['metadata']['name']}",
                    )
            if errors:
                # the pods of later batches are never created: do not wait for them
                self.expectations.lower_creations(key, len(pending))
                error = next(r for r in results if isinstance(r, BaseException))
                if isinstance(error, ApiError):
                    raise error
                raise RuntimeError(f"creating pods for {key}: {error!r}")
            batch *= 2

    async def _delete_pods(self, key: str, sync: _Sync, pods: list[Obj]) -> int:
        """Scale down / suspend: the finalizer goes first, so these pods are not counted as
        failures (``deleteJobPods``)."""
        self.expectations.expect_deletions(key, [pod_uid(p) for p in pods])

        async def delete(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                if has_tracking_finalizer(pod):
                    await self._patch_out_finalizer(key, pod)
                await self.client.delete(PODS, meta["name"], meta.get("namespace"))
            except ApiError as exc:
                self.expectations.deletion_observed(key, pod_uid(pod))
                if not exc.is_not_found:
                    raise
            await self.recorder.record(
                sync.job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}"
            )

        await asyncio.gather(*(delete(p) for p in pods))
        gone = {pod_uid(p) for p in pods}
        sync.active = [p for p in sync.active if pod_uid(p) not in gone]
        sync.terminating += len(gone)
        return len(gone)

    async def _delete_active_pods(self, key: str, sync: _Sync, *, keep_finalizers: bool) -> None:
        if not keep_finalizers:
            await self._delete_pods(key, sync, list(sync.active))
            return
        # A failing Job: delete, keeping finalizers; they are counted as failed below.
        deleted = 0
        for pod in list(sync.active):
            meta = pod["metadata"]
            try:
                await self.client.delete(PODS, meta["name"], meta.get("namespace"))
            except ApiError as exc:
                if not exc.is_not_found:
                    raise
            deleted += 1
        if deleted != len(sync.active) or not self.expectations.satisfied(key):
            sync.finished = None
        sync.terminating += deleted
        sync.active = []

    # ---------------------------------------------------- accounting and status

    async def _track_and_flush(self, key: str, sync: _Sync) -> None:
        """``trackJobStatusAndRemoveFinalizers``: uncounted uids, finalizer removal, counters,
        then the terminal condition once nothing is left uncounted or terminating."""
        job, status = sync.job, sync.status
        before = copy.deepcopy(status)
        removed = self.finalizer_expectations.removed(key)
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        succeeded_uids: list[str] = list(uncounted.get("succeeded") or [])
        failed_uids: list[str] = list(uncounted.get("failed") or [])
        policy = sync.spec.get("podFailurePolicy")
        failing = sync.finished is not None and sync.finished["type"] == "FailureTarget"
        to_release: list[Obj] = []
        for pod in sync.pods:
            uid = pod_uid(pod)
            if not has_tracking_finalizer(pod) or uid in removed:
                continue
            considered_failed = is_pod_failed(pod, job)
            if not (
                sync.finished is not None or pod_phase(pod) == "Succeeded" or considered_failed
            ):
                continue
            to_release.append(pod)
            index = completion_index(pod)
            valid_index = not sync.indexed or (
                index is not None and index < (sync.completions or 0)
            )
            if pod_phase(pod) == "Succeeded":
                if not sync.indexed and uid not in succeeded_uids and uid not in failed_uids:
                    succeeded_uids.append(uid)
            elif (considered_failed or failing) and uid not in failed_uids and valid_index:
                match = match_pod_failure_policy(policy, pod) if considered_failed else None
                if match is None or match.count_failed:
                    failed_uids.append(uid)
            if len(succeeded_uids) + len(failed_uids) >= MAX_UNCOUNTED_PODS:
                sync.wake_in(0.0)  # more to count than one write holds
                break
        uncounted["succeeded"], uncounted["failed"] = succeeded_uids, failed_uids
        self._write_fields(sync)
        conditions = status.setdefault("conditions", [])
        final: Obj | None = None
        if sync.finished is not None:
            kind = sync.finished["type"]
            interim = (
                "FailureTarget" if kind in ("FailureTarget", "Failed") else "SuccessCriteriaMet"
            )
            if not condition_true(job, interim):
                conditions.append({**sync.finished, "type": interim})
            final_type = "Failed" if interim == "FailureTarget" else "Complete"
            final = new_job_condition(
                final_type, "True", sync.finished["reason"], sync.finished["message"], sync.now
            )
        compact_status(status)
        if status != before:
            job = sync.job = await self.client.update_status(JOBS, sync.job)
            status = sync.status

        # Step 2: let the finished pods go.
        released = await self._remove_finalizers(key, to_release)
        # Step 3: count what is now free of the finalizer.
        still_tracked = {
            pod_uid(p)
            for p in sync.pods
            if has_tracking_finalizer(p)
            and pod_uid(p) not in released
            and pod_uid(p) not in removed
        }
        before = copy.deepcopy(status)
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        for kind in ("succeeded", "failed"):
            uids = list(uncounted.get(kind) or [])
            kept = [u for u in uids if u in still_tracked]
            status[kind] = int(status.get(kind) or 0) + len(uids) - len(kept)
            uncounted[kind] = kept
        if sync.indexed:
            status["succeeded"] = len(sync.succeeded_indexes)
        finished_now = False
        if final is not None and not uncounted["succeeded"] and not uncounted["failed"]:
            if sync.terminating == 0:
                ensure_condition(
                    status.setdefault("conditions", []),
                    final["type"],
                    "True",
                    final["reason"],
                    final["message"],
                    sync.now,
                )
                if final["type"] == "Complete":
                    status["completionTime"] = format_time(sync.now)
                finished_now = True
            else:
                sync.wake_in(1.0)
        compact_status(status)
        if status != before:
            sync.job = await self.client.update_status(JOBS, sync.job)
        if finished_now:
            await self._record_finished(sync.job, final)
            wait = await expire_after_ttl(self.client, sync.job, self.clock.now)
            if wait is not None:
                sync.wake_in(wait)

    def _write_fields(self, sync: _Sync) -> None:
        status = sync.status
        status["active"] = len(sync.active)
        status["ready"] = sum(1 for p in sync.active if is_pod_ready(p))
        status["terminating"] = sync.terminating
        if sync.indexed:
            status["completedIndexes"] = format_indexes(sync.succeeded_indexes)
            if sync.failed_indexes is not None:
                status["failedIndexes"] = format_indexes(sync.failed_indexes)

    async def _record_finished(self, job: Obj, final: Obj | None) -> None:
        if final is None:
            return
        if final["type"] == "Complete":
            await self.recorder.record(job, "Normal", "Completed", "Job completed")
        else:
            await self.recorder.record(job, "Warning", final["reason"], final["message"])

    async def _remove_finalizers(self, key: str, pods: list[Obj]) -> set[str]:
        """Remove the tracking finalizer; return the uids that are free of it (a pod that is
        already gone counts as freed)."""
        freed: set[str] = set()

        async def release(pod: Obj) -> None:
            try:
                await self._patch_out_finalizer(key, pod)
            except ApiError as exc:
                if not exc.is_not_found:
                    raise
            freed.add(pod_uid(pod))

        results = await asyncio.gather(*(release(p) for p in pods), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("%s: removing finalizer failed: %s", key, result)
        return freed

    async def _patch_out_finalizer(self, key: str, pod: Obj) -> None:
        meta = pod["metadata"]
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}}
        # Expect first: the watch may report the change before the patch call returns.
        self.finalizer_expectations.expect_removal(key, pod_uid(pod))
        try:
            await self.client.patch(
                PODS,
                meta["name"],
                patch,
                meta.get("namespace"),
                patch_type="application/strategic-merge-patch+json",
            )
        except ApiError as exc:
            if not exc.is_not_found:
                self.finalizer_expectations.removal_observed(key, pod_uid(pod))
            raise

    async def _release_orphaned_pods(self, key: str) -> None:
        """The Job is gone: its pods must not be held by the finalizer forever."""
        namespace, _, name = key.partition("/")
        orphans = [
            pod
            for pod in self.pods.by_index("namespace", namespace)
            if has_tracking_finalizer(pod)
            and any(
                ref.get("controller") and ref.get("kind") == "Job" and ref.get("name") == name
                for ref in pod["metadata"].get("ownerReferences") or []
            )
            and (ownerrefs.controller_uid(pod) or "") not in self._live_job_uids(namespace, name)
        ]
        await self._remove_finalizers(key, orphans)

    def _live_job_uids(self, namespace: str, name: str) -> set[str]:
        job = self.jobs.get(f"{namespace}/{name}")
        return {job["metadata"].get("uid", "")} if job else set()
