"""The StatefulSet controller: its informers, event handlers and sync, and the pod and claim
writes. Follows ``pkg/controller/statefulset/stateful_set.go`` (informers, ``sync``),
``stateful_set_control.go`` (``UpdateStatefulSet``: revisions, update, status, history) and
``stateful_pod_control.go`` (creating claims and pods, the events they leave).

It watches StatefulSets, their pods, their ControllerRevisions and the claims. Pods and
revisions wake their owner (orphans wake every set that might adopt them). One sync:

1. claims the set's pods (those named ``<set>-<ordinal>``) and revisions, adopting orphans
   that match and releasing what stopped matching;
2. finds the update revision (the set's template: an existing equal revision, renumbered if
   it is not the newest, or a new one) and the current one (``status.currentRevision``,
   else the update revision) — the history of :mod:`setpoint.controllers.util.history`,
   shared with the DaemonSet controller;
3. carries out :func:`~setpoint.controllers.statefulset.control.plan_sync`: claims before
   each pod they belong to, then pods, with upstream's events (``SuccessfulCreate`` "create
   Pod web-0 in StatefulSet web successful", ``SuccessfulDelete``, ``Failed...``);
4. writes ``status`` (counts, revisions, ``observedGeneration``, ``collisionCount``) and
   deletes revisions beyond ``revisionHistoryLimit`` that no pod runs.

There are no expectations: pods have fixed names, so a create that races the cache fails
with AlreadyExists and the set is looked at again.

Claims follow ``persistentVolumeClaimRetentionPolicy``: with ``whenDeleted: Delete`` each
claim is owned by the set (the garbage collector deletes it with the set); with
``whenScaled: Delete`` the claim of a pod removed by a scale-down is given to that pod before
it is deleted, so it goes with it. ``Retain`` leaves claims alone. (A claim given to a pod
that is scaled back up before it goes is not taken back, unlike upstream.)
"""

from __future__ import annotations

import copy
import logging

from setpoint.client.api import (
    CONTROLLERREVISIONS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    STATEFULSETS,
    ApiError,
    Obj,
)
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, by_owner_uid
from setpoint.client.workqueue import Requeue
from setpoint.controllers.statefulset.control import Plan, plan_sync
from setpoint.controllers.statefulset.utils import (
    API_VERSION,
    KIND,
    claims_for,
    compute_status,
    identity_patch,
    is_member_of,
    new_pod,
    ordinal,
    pod_revision,
    retention,
)
from setpoint.controllers.util import ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.controllers.util.history import (
    HistoryOwner,
    by_revision,
    create_revision,
    delete_revision,
    label_unhashed,
    max_revision,
    renumber_revision,
    revision_matches,
    revision_template,
    revisions_to_clean_up,
)
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.labels import Selector, selector_from_label_selector

log = logging.getLogger(__name__)

STATEFUL_SET_HISTORY = HistoryOwner(STATEFULSETS, API_VERSION, KIND)
_STATUS_FIELDS = (
    "replicas",
    "readyReplicas",
    "availableReplicas",
    "currentReplicas",
    "updatedReplicas",
    "currentRevision",
    "updateRevision",
    "observedGeneration",
    "collisionCount",
)


def stateful_set_selector(sts: Obj) -> Selector:
    return selector_from_label_selector((sts.get("spec") or {}).get("selector"))


class StatefulSetController(Controller[str]):
    name = "statefulset"

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.sets = informers.informer(STATEFULSETS, indexers={"namespace": by_namespace})
        self.pods = informers.informer(
            PODS, indexers={"namespace": by_namespace, "owner": by_owner_uid}
        )
        self.revisions = informers.informer(
            CONTROLLERREVISIONS, indexers={"namespace": by_namespace}
        )
        self.claims = informers.informer(PERSISTENTVOLUMECLAIMS)
        self.watch_owned(self.sets)
        for informer in (self.pods, self.revisions):
            informer.add_handler(
                EventHandler(
                    on_add=self._on_owned_change,
                    on_update=self._on_owned_update,
                    on_delete=self._on_owned_change,
                )
            )

    # ------------------------------------------------------------- event handlers

    def _owner_key(self, obj: Obj) -> str | None:
        return ownerrefs.resolve_controller_ref(obj, KIND, self.sets)

    def _on_owned_change(self, obj: Obj) -> None:
        key = self._owner_key(obj)
        if key is not None:
            self.queue.add(key)
        elif ownerrefs.controller_ref(obj) is None:
            for owner in ownerrefs.selecting_owners(obj, self.sets, stateful_set_selector):
                self.queue.add(owner)

    def _on_owned_update(self, old: Obj, new: Obj) -> None:
        old_key = self._owner_key(old)
        if old_key is not None and old_key != self._owner_key(new):
            self.queue.add(old_key)
        self._on_owned_change(new)
        key = self._owner_key(new)
        sts = self.sets.get(key) if key else None
        min_ready = int(((sts or {}).get("spec") or {}).get("minReadySeconds") or 0)
        if key and min_ready and not podutil.is_pod_ready(old) and podutil.is_pod_ready(new):
            self.queue.add_after(key, float(min_ready) + 1.0)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        try:
            return await self._sync(key)
        except ApiError as exc:
            if not (exc.is_conflict or exc.is_already_exists or exc.is_not_found):
                raise
            # a write raced the cache (a pod or claim that exists already, one gone), or a
            # revision name collided: look again once the cache has caught up
            log.debug("statefulset %s: %s; requeued", key, exc)
            return Requeue()

    async def _sync(self, key: str) -> Requeue | None:
        cached = self.sets.get(key)
        if cached is None:
            return None
        sts = copy.deepcopy(cached)
        if podutil.is_terminating(sts):
            return None  # its pods, revisions and owned claims go with it (garbage collector)
        pods = await self._claim_pods(sts)
        revisions = await self._claim_revisions(sts)
        current, update, collision_count = await self._revisions(sts, revisions)
        now = self.clock.now()
        plan = plan_sync(sts, pods, update["metadata"]["name"], now)
        error: ApiError | None = None
        try:
            await self._carry_out(sts, plan, current, update)
        except ApiError as exc:
            error = exc
        status = compute_status(
            sts, pods, current["metadata"]["name"], update["metadata"]["name"], now
        )
        status["observedGeneration"] = int(sts["metadata"].get("generation") or 1)
        status["collisionCount"] = collision_count
        await self._write_status(sts, status)
        live = {pod_revision(p) for p in pods}
        names = {current["metadata"]["name"], update["metadata"]["name"]}
        old = [r for r in revisions if r["metadata"]["name"] not in names]
        for revision in revisions_to_clean_up(sts, old, live):
            await delete_revision(self.client, revision)
        if error is not None:
            raise error
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        if min_ready and status["readyReplicas"] != status["availableReplicas"]:
            return Requeue(after=float(min_ready))
        return None

    async def _revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """``getStatefulSetRevisions``: the current and update revisions and the collision
        count."""
        revisions = by_revision(revisions)
        collision_count = int((sts.get("status") or {}).get("collisionCount") or 0)
        equal = [r for r in revisions if revision_matches(sts, r)]
        if equal and equal[-1] is revisions[-1]:
            update = revisions[-1]  # the newest already holds the template
        elif equal:
            update = await renumber_revision(self.client, equal[-1], max_revision(revisions) + 1)
        else:
            number = max_revision(revisions) + 1
            update = await create_revision(self.client, STATEFUL_SET_HISTORY, sts, number)
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == wanted), update)
        return current, update, collision_count

    # ------------------------------------------------------------------ writes

    async def _carry_out(self, sts: Obj, plan: Plan, current: Obj, update: Obj) -> None:
        for pod in plan.pending:
            await self._create_claims(sts, pod["metadata"]["name"], ordinal(pod))
        for step in plan.create:
            revision = update if step.updated else current
            template = revision_template(revision)
            pod = new_pod(sts, template, step.ordinal, revision["metadata"]["name"])
            await self._create_pod(sts, pod, step.ordinal)
        namespace = sts["metadata"]["namespace"]
        for pod in plan.mend:
            await self.client.patch(PODS, pod["metadata"]["name"], identity_patch(pod), namespace)
        for delete in plan.delete:
            if delete.why == "scale" and retention(sts, "whenScaled") == "Delete":
                await self._give_claims_to(sts, delete.pod)
            await self._delete_pod(sts, delete.pod)

    async def _create_claims(self, sts: Obj, pod_name: str, index: int) -> None:
        """``createPersistentVolumeClaims``: each missing claim of the pod, owned by the set
        when ``whenDeleted`` is ``Delete``."""
        for claim in claims_for(sts, index).values():
            meta = claim["metadata"]
            existing = self.claims.get(f"{meta['namespace']}/{meta['name']}")
            if existing is not None:
                if podutil.is_terminating(existing):
                    detail = f"pvc {meta['name']} is being deleted"
                    raise ApiError(409, {"reason": "Conflict", "message": detail})
                continue
            if retention(sts, "whenDeleted") == "Delete":
                meta["ownerReferences"] = [_owner_reference(sts, API_VERSION, KIND)]
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, claim)
            except ApiError as exc:
                if exc.is_already_exists:
                    continue
                message = (
                    f"create Claim {meta['name']} for Pod {pod_name} in StatefulSet "
                    f"{sts['metadata']['name']} failed error: {exc}"
                )
                await self.recorder.record(sts, "Warning", "FailedCreate", message)
                raise
            message = (
                f"create Claim {meta['name']} Pod {pod_name} in StatefulSet "
                f"{sts['metadata']['name']} success"
            )
            await self.recorder.record(sts, "Normal", "SuccessfulCreate", message)

    async def _create_pod(self, sts: Obj, pod: Obj, index: int) -> None:
        """``CreateStatefulPod``: its claims, then the pod."""
        name = pod["metadata"]["name"]
        try:
            await self._create_claims(sts, name, index)
            await self.client.create(PODS, pod)
        except ApiError as exc:
            if not (exc.is_already_exists or exc.is_namespace_terminating):
                await self._record_pod_event("create", sts, name, exc)
            raise
        await self._record_pod_event("create", sts, name)

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(
                PODS, meta["name"], meta["namespace"], preconditions_uid=meta["uid"]
            )
        except ApiError as exc:
            if exc.is_not_found or exc.is_conflict:
                return  # already gone, or a new pod of the same name
            await self._record_pod_event("delete", sts, meta["name"], exc)
            raise
        await self._record_pod_event("delete", sts, meta["name"])

    async def _record_pod_event(
        self, verb: str, sts: Obj, pod_name: str, error: ApiError | None = None
    ) -> None:
        """``recordPodEvent``: ``Successful<Verb>`` or a ``Failed<Verb>`` Warning."""
        subject = f"{verb} Pod {pod_name} in StatefulSet {sts['metadata']['name']}"
        if error is None:
            await self.recorder.record(
                sts, "Normal", f"Successful{verb.title()}", f"{subject} successful"
            )
        else:
            message = f"{subject} failed error: {error}"
            await self.recorder.record(sts, "Warning", f"Failed{verb.title()}", message)

    async def _give_claims_to(self, sts: Obj, pod: Obj) -> None:
        """``whenScaled: Delete``: the condemned pod owns its claims, which go with it."""
        ref = _owner_reference(pod, "v1", "Pod")
        for claim in claims_for(sts, ordinal(pod)).values():
            meta = claim["metadata"]
            existing = self.claims.get(f"{meta['namespace']}/{meta['name']}")
            if existing is None:
                continue
            refs = existing["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == ref["uid"] for r in refs):
                continue
            patch = {
                "metadata": {
                    "ownerReferences": [*refs, ref],
                    "resourceVersion": existing["metadata"]["resourceVersion"],
                }
            }
            await self.client.patch(PERSISTENTVOLUMECLAIMS, meta["name"], patch, meta["namespace"])

    async def _write_status(self, sts: Obj, status: Obj) -> None:
        old = sts.get("status") or {}
        if all(old.get(k) == status.get(k) for k in _STATUS_FIELDS):
            return
        updated = copy.deepcopy(sts)
        updated["status"] = {**old, **status}
        try:
            await self.client.update_status(STATEFULSETS, updated)
        except ApiError as exc:
            if not exc.is_not_found:
                raise

    # ------------------------------------------------------------------ claiming

    async def _claim_pods(self, sts: Obj) -> list[Obj]:
        """``getPodsForStatefulSet``: adopt matching orphans named as its members, release
        what stopped matching."""
        candidates = [
            p
            for p in self.pods.by_index("namespace", sts["metadata"]["namespace"])
            if is_member_of(sts, p)
        ]
        target = ownerrefs.ClaimTarget(sts, STATEFULSETS, API_VERSION, KIND, PODS)
        return await ownerrefs.claim(self.client, target, stateful_set_selector(sts), candidates)

    async def _claim_revisions(self, sts: Obj) -> list[Obj]:
        """``ListRevisions`` + ``ClaimControllerRevisions``."""
        candidates = self.revisions.by_index("namespace", sts["metadata"]["namespace"])
        target = ownerrefs.ClaimTarget(sts, STATEFULSETS, API_VERSION, KIND, CONTROLLERREVISIONS)
        claimed = await ownerrefs.claim(self.client, target, stateful_set_selector(sts), candidates)
        return [await label_unhashed(self.client, r) for r in claimed]


def _owner_reference(owner: Obj, api_version: str, kind: str) -> Obj:
    """A plain (not controller) owner reference, as ``setOwnerRef`` writes on claims."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"]}
