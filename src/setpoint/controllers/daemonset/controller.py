"""The DaemonSet controller: its informers, event handlers and ``syncDaemonSet``.

It watches DaemonSets, their pods, their ControllerRevisions and the Nodes. A node that is
added, or whose labels, taints or conditions change so that some DaemonSet's placement on it
changes, wakes that DaemonSet; pods and revisions wake their owner (orphans wake every
DaemonSet that might adopt them). One reconcile:

1. claims the DaemonSet's pods and revisions (adopting matching orphans, releasing what no
   longer matches: :func:`setpoint.controllers.util.ownerrefs.claim`);
2. builds its history and finds the current revision's hash
   (:func:`~setpoint.controllers.daemonset.update.construct_history`);
3. unless creations or deletions it asked for are still unseen in the cache (expectations),
   makes every node right (:mod:`~setpoint.controllers.daemonset.manage`): creates pods on
   nodes that need one, deletes surplus, misplaced, succeeded and failed pods (failed ones
   at most as often as a per-node backoff allows, 1 s doubling to 60 s; Kubernetes' is 1 s to
   15 min), in slow-start batches of at most ``burst_replicas``; then, if that changed
   nothing, takes the next rolling-update step
   (:func:`~setpoint.controllers.daemonset.update.rolling_update_plan`) and deletes
   revisions beyond the history limit;
4. writes ``status``: desired, current, misscheduled, ready, up-to-date, available and
   unavailable node counts, and ``observedGeneration`` (only when step 3 ran).

A DaemonSet being deleted is left alone (its pods and revisions go with it through the
garbage collector). Like Kubernetes' controller, it writes no ``status.conditions``.
Follows ``pkg/controller/daemon/daemon_controller.go``.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from setpoint.client.api import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, by_owner_uid, object_key
from setpoint.client.workqueue import Requeue
from setpoint.controllers.daemonset.manage import (
    node_decision,
    pods_by_node,
    pods_without_node,
    status_counts,
)
from setpoint.controllers.daemonset.update import (
    cleanup_history,
    construct_history,
    rolling_update_plan,
)
from setpoint.controllers.daemonset.util import (
    API_VERSION,
    HASH_LABEL,
    KIND,
    Placement,
    create_pod_template,
    is_rolling_update,
    node_placement,
    pin_to_node,
)
from setpoint.controllers.util import ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.controllers.util.backoff import Backoff
from setpoint.controllers.util.expectations import ControllerExpectations
from setpoint.controllers.util.slowstart import BatchError, slow_start_batch
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.labels import Selector, selector_from_label_selector

log = logging.getLogger(__name__)

BURST_REPLICAS = 250
FAILED_POD_BACKOFF_INITIAL = 1.0
FAILED_POD_BACKOFF_MAX = 60.0
_STATUS_FIELDS = (
    "currentNumberScheduled",
    "numberMisscheduled",
    "desiredNumberScheduled",
    "numberReady",
    "updatedNumberScheduled",
    "numberAvailable",
    "numberUnavailable",
)


def daemon_set_selector(ds: Obj) -> Selector:
    return selector_from_label_selector((ds.get("spec") or {}).get("selector"))


def _same_conditions(old: Obj, new: Obj) -> bool:
    """``nodeInSameCondition``: the same condition types with the same statuses."""

    def statuses(node: Obj) -> dict[str, str]:
        conditions = (node.get("status") or {}).get("conditions") or []
        return {str(c.get("type")): str(c.get("status")) for c in conditions}

    return statuses(old) == statuses(new)


def ignore_node_update(old: Obj, new: Obj) -> bool:
    """``shouldIgnoreNodeUpdate``: only heartbeats changed (condition times, resourceVersion)."""
    if not _same_conditions(old, new):
        return False

    def stripped(node: Obj) -> Obj:
        meta = {k: v for k, v in node["metadata"].items() if k != "resourceVersion"}
        status = {k: v for k, v in (node.get("status") or {}).items() if k != "conditions"}
        return {**node, "metadata": meta, "status": status}

    return stripped(old) == stripped(new)


class DaemonSetController(Controller[str]):
    name = "daemonset"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        burst_replicas: int = BURST_REPLICAS,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.burst_replicas = burst_replicas
        self.expectations = ControllerExpectations()
        self.failed_pods_backoff = Backoff(
            FAILED_POD_BACKOFF_INITIAL, FAILED_POD_BACKOFF_MAX, clock=clock
        )
        self.daemon_sets = informers.informer(DAEMONSETS, indexers={"namespace": by_namespace})
        self.revisions = informers.informer(
            CONTROLLERREVISIONS, indexers={"namespace": by_namespace}
        )
        self.pods = informers.informer(
            PODS, indexers={"namespace": by_namespace, "owner": by_owner_uid}
        )
        self.nodes = informers.informer(NODES)
        self.daemon_sets.add_handler(
            EventHandler(
                on_add=lambda ds: self.queue.add(object_key(ds)),
                on_update=lambda old, new: self.queue.add(object_key(new)),
                on_delete=self._on_daemon_set_delete,
            )
        )
        self.revisions.add_handler(
            EventHandler(
                on_add=self._on_owned_change,
                on_update=self._on_owned_update,
                on_delete=self._on_owned_change,
            )
        )
        self.pods.add_handler(
            EventHandler(
                on_add=self._on_pod_add,
                on_update=self._on_pod_update,
                on_delete=self._on_pod_delete,
            )
        )
        self.nodes.add_handler(
            EventHandler(
                on_add=self._on_node_add,
                on_update=self._on_node_update,
                on_delete=lambda node: self._enqueue_all(),
            )
        )

    # ------------------------------------------------------------- event handlers

    def _on_daemon_set_delete(self, ds: Obj) -> None:
        key = object_key(ds)
        self.expectations.delete_expectations(key)
        self.queue.add(key)

    def _owner_key(self, obj: Obj) -> str | None:
        return ownerrefs.resolve_controller_ref(obj, KIND, self.daemon_sets)

    def _enqueue_matching(self, obj: Obj) -> None:
        """An orphan: wake every DaemonSet that might adopt it."""
        for key in ownerrefs.selecting_owners(obj, self.daemon_sets, daemon_set_selector):
            self.queue.add(key)

    def _enqueue_all(self) -> None:
        for ds in self.daemon_sets.objects():
            self.queue.add(object_key(ds))

    def _on_owned_change(self, obj: Obj) -> None:
        key = self._owner_key(obj)
        if key is not None:
            self.queue.add(key)
        elif ownerrefs.controller_ref(obj) is None:
            self._enqueue_matching(obj)

    def _on_owned_update(self, old: Obj, new: Obj) -> None:
        old_key = self._owner_key(old)
        if old_key is not None and old_key != self._owner_key(new):
            self.queue.add(old_key)
        self._on_owned_change(new)

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
        if podutil.is_terminating(new):
            # graceful deletion: act on it now, not once the node confirms it
            if not podutil.is_terminating(old):
                self._on_pod_delete(new)
            else:
                self._on_owned_change(new)
            return
        old_key, key = self._owner_key(old), self._owner_key(new)
        if old_key is not None and old_key != key:
            self.queue.add(old_key)
        if key is not None:
            self.queue.add(key)
            ds = self.daemon_sets.get(key)
            min_ready = int(((ds or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not podutil.is_pod_ready(old) and podutil.is_pod_ready(new):
                self.queue.add_after(key, float(min_ready) + 1.0)
            return
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if ownerrefs.controller_ref(new) is None and (
            labels_changed or ownerrefs.controller_ref(old) is not None
        ):
            self._enqueue_matching(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            return
        self.expectations.deletion_observed(key)
        self.queue.add(key)

    def _on_node_add(self, node: Obj) -> None:
        for ds in self.daemon_sets.objects():
            if node_placement(ds, node).should_run:
                self.queue.add(object_key(ds))

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        if ignore_node_update(old, new):
            return
        for ds in self.daemon_sets.objects():
            if node_placement(ds, old) != node_placement(ds, new):
                self.queue.add(object_key(ds))

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        try:
            return await self._sync(key)
        except ApiError as exc:
            if not (exc.is_conflict or exc.is_already_exists):
                raise
            # a write raced the cache, or a revision name collided: look again once the
            # cache has caught up, backing off while it races
            log.debug("daemonset %s: %s; requeued", key, exc)
            return Requeue()

    async def _sync(self, key: str) -> Requeue | None:
        cached = self.daemon_sets.get(key)
        if cached is None:
            self.expectations.delete_expectations(key)
            return None
        ds = copy.deepcopy(cached)
        if (ds["spec"].get("selector") or {}) == {}:
            await self.recorder.record(
                ds,
                "Warning",
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            return None
        if podutil.is_terminating(ds):
            return None
        nodes = {node["metadata"]["name"]: node for node in self.nodes.objects()}
        pods = await self._claim_pods(ds)
        current, old = await construct_history(self, ds)
        hash_value = (current["metadata"].get("labels") or {}).get(HASH_LABEL, "")
        by_node = pods_by_node(pods)
        requeue: Requeue | None = None
        manage_error: ApiError | None = None
        synced = self.expectations.satisfied(key)
        if synced:
            try:
                requeue = await self._update_daemon_set(key, ds, nodes, by_node, hash_value)
                await cleanup_history(self, ds, old)
            except ApiError as exc:
                manage_error = exc
        status_requeue = await self._write_status(ds, nodes, by_node, hash_value, synced)
        if manage_error is not None:
            raise manage_error
        return _sooner(requeue, status_requeue)

    async def _update_daemon_set(
        self,
        key: str,
        ds: Obj,
        nodes: dict[str, Obj],
        by_node: dict[str, list[Obj]],
        hash_value: str,
    ) -> Requeue | None:
        """``updateDaemonSet``: ``manage``, then (if that changed nothing) a rolling step."""
        requeue = await self._manage(key, ds, nodes, by_node, hash_value)
        if self.expectations.satisfied(key) and is_rolling_update(ds):
            plan = rolling_update_plan(ds, nodes, by_node, hash_value, self.clock.now())
            await self._sync_nodes(key, ds, plan.delete, plan.create, hash_value)
        return requeue

    async def _manage(
        self,
        key: str,
        ds: Obj,
        nodes: dict[str, Obj],
        by_node: dict[str, list[Obj]],
        hash_value: str,
    ) -> Requeue | None:
        """``manage``: every node's decision, then the creates and deletes."""
        now = self.clock.now()
        create: list[str] = []
        delete: list[Obj] = []
        retry_in: float | None = None
        for name in sorted(nodes):
            placement: Placement = node_placement(ds, nodes[name])
            decision = node_decision(ds, placement, by_node.get(name), hash_value, now)
            if decision.create:
                create.append(name)
            delete += decision.delete
            for pod in decision.failed:
                backoff_key = f"{ds['metadata']['uid']}/{name}"
                if self.failed_pods_backoff.in_backoff(backoff_key):
                    delay = self.failed_pods_backoff.get(backoff_key)
                    retry_in = delay if retry_in is None else min(retry_in, delay)
                    continue
                self.failed_pods_backoff.next(backoff_key)
                message = (
                    f"Found failed daemon pod {pod['metadata']['namespace']}/"
                    f"{pod['metadata']['name']} on node {name}, will try to kill it"
                )
                await self.recorder.record(ds, "Warning", "FailedDaemonPod", message)
                delete.append(pod)
        delete += pods_without_node(nodes, by_node)
        await self._sync_nodes(key, ds, delete, create, hash_value)
        return Requeue(after=retry_in) if retry_in is not None else None

    async def _sync_nodes(
        self, key: str, ds: Obj, delete: list[Obj], create: list[str], hash_value: str
    ) -> None:
        """``syncNodes``: create pods pinned to ``create``'s nodes in slow-start batches and
        delete ``delete``, each at most ``burst_replicas``; expectations first."""
        create, delete = create[: self.burst_replicas], delete[: self.burst_replicas]
        self.expectations.set_expectations(key, len(create), len(delete))
        if not create and not delete:
            return
        template = create_pod_template(ds, hash_value)
        ref = ownerrefs.new_controller_ref(ds, API_VERSION, KIND)
        errors: list[ApiError] = []

        async def create_one(node_name: str) -> None:
            pod = podutil.pod_from_template(template, ds, ref)
            pin_to_node(pod["spec"], node_name)
            try:
                created = await self.client.create(PODS, pod)
            except ApiError as exc:
                if exc.is_namespace_terminating:
                    return  # every later create fails too: nothing to report
                await self.recorder.record(ds, "Warning", "FailedCreate", f"Error creating: {exc}")
                raise
            name = created["metadata"]["name"]
            await self.recorder.record(ds, "Normal", "SuccessfulCreate", f"Created pod: {name}")

        try:
            await slow_start_batch(create, create_one)
        except BatchError as failed:
            for _ in range(len(create) - failed.successes):
                self.expectations.creation_observed(key)  # those will never show up
            errors.append(_as_api_error(failed.cause))

        async def delete_one(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                await self.client.delete(
                    PODS, meta["name"], meta["namespace"], preconditions_uid=meta["uid"]
                )
            except ApiError as exc:
                self.expectations.deletion_observed(key)
                if exc.is_not_found or exc.code == 409:
                    return
                await self.recorder.record(ds, "Warning", "FailedDelete", f"Error deleting: {exc}")
                errors.append(exc)
                return
            await self.recorder.record(
                ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}"
            )

        await asyncio.gather(*(delete_one(pod) for pod in delete))
        if errors:
            raise errors[0]

    async def _write_status(
        self,
        ds: Obj,
        nodes: dict[str, Obj],
        by_node: dict[str, list[Obj]],
        hash_value: str,
        observed: bool,
    ) -> Requeue | None:
        """``updateDaemonSetStatus`` / ``storeDaemonSetStatus``: write the counts if they or
        (when ``observed``) the observed generation changed."""
        counts = status_counts(ds, nodes.values(), by_node, hash_value, self.clock.now())
        old = ds.get("status") or {}
        generation = int(ds["metadata"].get("generation") or 1)
        stale = observed and int(old.get("observedGeneration") or 0) < generation
        if stale or any(int(old.get(k) or 0) != v for k, v in counts.items()):
            updated = copy.deepcopy(ds)
            status = {**old, **counts}
            if observed:
                status["observedGeneration"] = generation
            updated["status"] = status
            try:
                await self.client.update_status(DAEMONSETS, updated)
            except ApiError as exc:
                if not exc.is_not_found:
                    raise
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        if min_ready > 0 and counts["numberReady"] != counts["numberAvailable"]:
            return Requeue(after=float(min_ready))
        return None

    # ------------------------------------------------------------------ claiming

    def daemon_pods(self, ds: Obj) -> list[Obj]:
        """The pods ``ds`` controls, as cached."""
        return [
            p
            for p in self.pods.by_index("owner", ds["metadata"]["uid"])
            if ownerrefs.is_controlled_by(p, ds)
        ]

    async def _claim_pods(self, ds: Obj) -> list[Obj]:
        """``getDaemonPods``: adopt matching orphans, release what stopped matching."""
        candidates = self.pods.by_index("namespace", ds["metadata"]["namespace"])
        target = ownerrefs.ClaimTarget(ds, DAEMONSETS, API_VERSION, KIND, PODS)
        return await ownerrefs.claim(self.client, target, daemon_set_selector(ds), candidates)

    async def claim_revisions(self, ds: Obj) -> list[Obj]:
        """``controlledHistories``: the same for ControllerRevisions."""
        candidates = self.revisions.by_index("namespace", ds["metadata"]["namespace"])
        target = ownerrefs.ClaimTarget(ds, DAEMONSETS, API_VERSION, KIND, CONTROLLERREVISIONS)
        return await ownerrefs.claim(self.client, target, daemon_set_selector(ds), candidates)


def _as_api_error(cause: BaseException) -> ApiError:
    if isinstance(cause, ApiError):
        return cause
    return ApiError(500, {"reason": "InternalError", "message": str(cause)})


def _sooner(*requeues: Requeue | None) -> Requeue | None:
    delays = [r.after for r in requeues if r is not None and r.after is not None]
    return Requeue(after=min(delays)) if delays else None
