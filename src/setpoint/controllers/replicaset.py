"""The ReplicaSet controller: keep ``spec.replicas`` active pods running from a template.

A ReplicaSet owns the pods its selector matches and that carry its controller
ownerReference. Each reconcile claims pods (adopting matching orphans, releasing owned pods
that stopped matching), counts the *active* ones (not terminating, not finished), and creates
or deletes the difference, then writes ``status`` (replicas, fullyLabeledReplicas,
readyReplicas, availableReplicas, observedGeneration, and a ``ReplicaFailure`` condition while
creates or deletes fail). This follows ``pkg/controller/replicaset/replica_set.go``.

*Expectations.* The informer cache lags the controller's own writes: right after creating
three pods, the cache may still show none, and a naive second reconcile would create three
more. So before acting the controller records what it expects to see (N adds, or the keys of
the pods it deletes: :mod:`setpoint.controllers.util.expectations`) and does not manage
replicas again for that ReplicaSet until the informer has delivered those events, or the
expectations expired (five minutes like Kubernetes, a safety net for lost
events). Status is still written every time. Claiming pods (adopt, keep, release) is
:func:`setpoint.controllers.util.ownerrefs.claim`.

*Creating and deleting.* Creates go out in slow-start batches of 1, 2, 4, ... pods and stop
at the first failure (:mod:`setpoint.controllers.util.slowstart`), so a quota or admission
error costs one request, not hundreds; at most ``burst_replicas`` pods are created or
deleted per reconcile. Pods get ``generateName: <rs>-`` (the server adds five random
characters), the template's labels, annotations and spec, and a controller ownerReference to
the ReplicaSet. Surplus pods are deleted in Kubernetes' order (unscheduled, pending, not
ready, ... first; see :func:`setpoint.controllers.util.pods.pods_to_delete`).

*ReplicationControllers* are run by the same controller, as Kubernetes' replication manager
is the ReplicaSet controller behind a conversion: a :class:`ReplicatedKind` says which
resource it follows and how its selector reads (a LabelSelector, or a ReplicationController's
plain label map); everything else, events included, is the same.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from setpoint.client.api import PODS, REPLICASETS, REPLICATIONCONTROLLERS, ApiError, Obj, Resource
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, by_owner_uid, object_key
from setpoint.client.workqueue import Requeue
from setpoint.controllers.util import conditions, ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.controllers.util.expectations import UIDTrackingControllerExpectations
from setpoint.controllers.util.slowstart import BatchError, slow_start_batch
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.labels import Selector, selector_from_label_selector, selector_from_set

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicatedKind:
    """A kind the controller runs: its resource and how its selector reads."""

    resource: Resource
    selector: Callable[[Obj], Selector]

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def api_version(self) -> str:
        group, version = self.resource.group, self.resource.version
        return f"{group}/{version}" if group else version


def rs_selector(rs: Obj) -> Selector:
    return selector_from_label_selector((rs.get("spec") or {}).get("selector"))


def rc_selector(rc: Obj) -> Selector:
    """A ReplicationController's selector: a label map; empty selects nothing."""
    labels = (rc.get("spec") or {}).get("selector")
    return selector_from_set(labels) if labels else Selector.nothing()


REPLICA_SET = ReplicatedKind(REPLICASETS, rs_selector)
REPLICATION_CONTROLLER = ReplicatedKind(REPLICATIONCONTROLLERS, rc_selector)


# ------------------------------------------------------------------------- pure logic


def replica_diff(active: int, desired: int, burst: int) -> int:
    """Pods to create (positive) or delete (negative), at most ``burst`` either way."""
    diff = desired - active
    return max(-burst, min(burst, diff))


def pod_from_template(rs: Obj, kind: ReplicatedKind = REPLICA_SET) -> Obj:
    """A new pod for ``rs`` (``GetPodFromTemplate``)."""
    template = rs["spec"].get("template") or {}
    return podutil.pod_from_template(
        template, rs, ownerrefs.new_controller_ref(rs, kind.api_version, kind.kind)
    )


def calculate_status(
    rs: Obj, active_pods: list[Obj], manage_error: str | None, now: datetime
) -> Obj:
    """The ReplicaSet's new status (``calculateStatus``); ``observedGeneration`` is the
    caller's business."""
    spec = rs.get("spec") or {}
    template_labels = selector_from_set(
        ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    )
    min_ready = int(spec.get("minReadySeconds") or 0)
    status = copy.deepcopy(rs.get("status") or {})
    labeled = ready = available = 0
    for pod in active_pods:
        if template_labels.matches(pod["metadata"].get("labels") or {}):
            labeled += 1
        if podutil.is_pod_ready(pod):
            ready += 1
            if podutil.is_pod_available(pod, min_ready, now):
                available += 1
    status["replicas"] = len(active_pods)
    status["fullyLabeledReplicas"] = labeled
    status["readyReplicas"] = ready
    status["availableReplicas"] = available
    failure = conditions.get_condition(status, "ReplicaFailure")
    if manage_error is not None and failure is None:
        diff = len(active_pods) - int(spec.get("replicas", 1))
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        status.setdefault("conditions", []).append(
            conditions.new_condition("ReplicaFailure", "True", reason, manage_error, now)
        )
    elif manage_error is None and failure is not None:
        conditions.remove_condition(status, "ReplicaFailure")
    return status


# ------------------------------------------------------------------------ controller


class ReplicaSetController(Controller):
    """Runs ReplicaSets, or with ``kind=REPLICATION_CONTROLLER`` ReplicationControllers."""

    name = "replicaset"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        kind: ReplicatedKind = REPLICA_SET,
        burst_replicas: int = 500,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.name = kind.resource.plural.removesuffix("s")
        super().__init__(informers, recorder, clock=clock)
        self.kind = kind
        self.burst_replicas = burst_replicas
        self.expectations = UIDTrackingControllerExpectations()
        self.replica_sets = informers.informer(kind.resource, indexers={"namespace": by_namespace})
        self.pods = informers.informer(
            PODS, indexers={"namespace": by_namespace, "owner": by_owner_uid}
        )
        self.replica_sets.add_handler(
            EventHandler(
                on_add=lambda rs: self.queue.add(object_key(rs)),
                on_update=lambda old, new: self.queue.add(object_key(new)),
                on_delete=self._on_rs_delete,
            )
        )
        self.pods.add_handler(
            EventHandler(
                on_add=self._on_pod_add,
                on_update=self._on_pod_update,
                on_delete=self._on_pod_delete,
            )
        )

    # ------------------------------------------------------------- event handlers

    def _on_rs_delete(self, rs: Obj) -> None:
        key = object_key(rs)
        self.expectations.delete_expectations(key)
        self.queue.add(key)

    def _owner_key(self, pod: Obj) -> str | None:
        return ownerrefs.resolve_controller_ref(pod, self.kind.kind, self.replica_sets)

    def _enqueue_matching(self, pod: Obj) -> None:
        """Orphans: wake every ReplicaSet that might adopt the pod."""
        for key in ownerrefs.selecting_owners(pod, self.replica_sets, self.kind.selector):
            self.queue.add(key)

    def _on_pod_add(self, pod: Obj) -> None:
        if podutil.is_terminating(pod):
            self._on_pod_delete(pod)  # a restart may find a pod already being deleted
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif ownerrefs.controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if podutil.is_terminating(new):
            self._on_pod_delete(new)
            if labels_changed:
                self._on_pod_delete(old)
            return
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key is not None and old_key != new_key:
            self.queue.add(old_key)
        if new_key is not None:
            self.queue.add(new_key)
            rs = self.replica_sets.get(new_key)
            min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not podutil.is_pod_ready(old) and podutil.is_pod_ready(new):
                self.queue.add_after(new_key, float(min_ready))
            return
        if ownerrefs.controller_ref(new) is None and (
            labels_changed or ownerrefs.controller_ref(old) is not None
        ):
            self._enqueue_matching(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            ref = ownerrefs.controller_ref(pod)
            if ref is None or ref.get("kind") != self.kind.kind:
                return
            key = f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        rs = self.replica_sets.get(key)
        if rs is None:
            self.expectations.delete_expectations(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        namespace = rs["metadata"]["namespace"]
        candidates = [
            p for p in self.pods.by_index("namespace", namespace) if podutil.is_pod_active(p)
        ]
        active = await self._claim_pods(rs, candidates)

        manage_error: ApiError | None = None
        if needs_sync and not podutil.is_terminating(rs):
            try:
                await self._manage_replicas(key, rs, active)
            except ApiError as exc:
                manage_error = exc

        try:
            updated = await self._write_status(
                rs, active, str(manage_error) if manage_error is not None else None
            )
        except ApiError as exc:
            if not exc.is_conflict:
                raise
            updated = None  # the cache is behind; try again once it has caught up
        if manage_error is not None:
            # the API's answer (a quota exceeded, a pod refused): the work queue logs it in
            # one line and retries with backoff, as client-go's handleErr does
            raise manage_error
        if updated is None:
            return Requeue()
        spec = updated.get("spec") or {}
        status = updated.get("status") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        desired = int(spec.get("replicas", 1))
        if (
            min_ready > 0
            and status.get("readyReplicas", 0) == desired
            and status.get("availableReplicas", 0) != desired
        ):
            # guard against missing the moment pods become available
            return Requeue(after=float(min_ready))
        return None

    # ------------------------------------------------------------------- helpers

    async def _claim_pods(self, rs: Obj, candidates: list[Obj]) -> list[Obj]:
        """Adopt matching orphans and release non-matching pods; return the owned ones."""
        kind = self.kind
        target = ownerrefs.ClaimTarget(rs, kind.resource, kind.api_version, kind.kind, PODS)
        return await ownerrefs.claim(self.client, target, kind.selector(rs), candidates)

    async def _manage_replicas(self, key: str, rs: Obj, active: list[Obj]) -> None:
        desired = int(rs["spec"].get("replicas", 1))
        diff = replica_diff(len(active), desired, self.burst_replicas)
        if diff > 0:
            await self._create_pods(key, rs, diff)
        elif diff < 0:
            await self._delete_pods(key, rs, active, -diff)

    async def _create_pods(self, key: str, rs: Obj, count: int) -> None:
        self.expectations.expect_creations(key, count)
        pod = pod_from_template(rs, self.kind)

        async def create_one(_: int) -> None:
            try:
                created = await self.client.create(PODS, copy.deepcopy(pod))
            except ApiError as exc:
                if not exc.is_namespace_terminating:  # nothing to report as the namespace goes
                    await self.recorder.record(
                        rs, "Warning", "FailedCreate", f"Error creating: {exc}"
                    )
                raise
            await self.recorder.record(
                rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
            )

        try:
            await slow_start_batch(range(count), create_one)
        except BatchError as failed:
            for _ in range(count - failed.successes):
                self.expectations.creation_observed(key)  # those will never show up
            if isinstance(failed.cause, ApiError):
                raise failed.cause from None
            raise ApiError(500, {"reason": "InternalError", "message": str(failed.cause)}) from (
                failed.cause
            )

    async def _delete_pods(self, key: str, rs: Obj, active: list[Obj], count: int) -> None:
        related = [
            p
            for p in self.pods.by_index("namespace", rs["metadata"]["namespace"])
            if ownerrefs.is_controlled_by(p, rs)
        ]
        victims = podutil.pods_to_delete(active, related, count)
        self.expectations.expect_deletions(key, [object_key(p) for p in victims])

        async def delete_one(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete(
                    PODS,
                    name,
                    pod["metadata"]["namespace"],
                    preconditions_uid=pod["metadata"]["uid"],
                )
            except ApiError as exc:
                self.expectations.deletion_observed(key, object_key(pod))
                if exc.is_not_found or exc.code == 409:
                    return
                await self.recorder.record(rs, "Warning", "FailedDelete", f"Error deleting: {exc}")
                raise
            await self.recorder.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

        results = await asyncio.gather(*(delete_one(p) for p in victims), return_exceptions=True)
        for result in results:
            if isinstance(result, ApiError):
                raise result
            if isinstance(result, BaseException):
                raise result

    async def _write_status(self, rs: Obj, active: list[Obj], manage_error: str | None) -> Obj:
        status = calculate_status(rs, active, manage_error, self.clock.now())
        generation = rs["metadata"].get("generation", 1)
        old = rs.get("status") or {}
        status["observedGeneration"] = generation
        if status == old:
            return rs
        updated = copy.deepcopy(rs)
        updated["status"] = status
        try:
            return await self.client.update_status(self.kind.resource, updated)
        except ApiError as exc:
            if exc.is_not_found:
                return rs
            raise
