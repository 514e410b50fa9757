"""The disruption controller: keeps every PodDisruptionBudget's status true to its pods.

It follows ``pkg/controller/disruption/disruption.go``. A budget is reconciled whenever it
changes or one of the pods it selects does (a pod event enqueues every budget of the pod's
namespace whose selector matches the pod, before or after the change). ``reconcile``:

1. finds the budget's pods: those of its namespace its selector matches (a missing selector
   matches none; in policy/v1 an empty one matches all);
2. where the budget needs it (:func:`~setpoint.controllers.disruption.budget.needs_scale`),
   adds up the scale of the controllers of those pods: a Deployment through its
   ReplicaSet, a ReplicaSet of its own, or any other owner that serves a ``scale``
   subresource (asked of the API: a StatefulSet, a custom resource). A pod without a
   controller is *unmanaged*: the budget can still count it with an integer
   ``minAvailable``, and an ``UnmanagedPods`` warning says so; a controller that has no
   scale (a Job) cannot be counted, and the budget fails safe (``SyncFailed``);
3. computes the status (:mod:`~setpoint.controllers.disruption.budget`) and writes it
   through ``/status`` when it changed — a conflict with the eviction subresource, which
   writes the same status, is retried with the fresh budget;
4. asks to look again when the oldest approved eviction times out.

Upstream's second queue, which clears a ``DisruptionTarget`` condition left on a pod whose
eviction never became a deletion (``syncStalePodDisruption``), is not here yet.
"""

from __future__ import annotations

import logging
from datetime import datetime

from setpoint.client.api import (
    DEPLOYMENTS,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    ApiError,
    Obj,
    Resource,
)
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, object_key
from setpoint.client.workqueue import Requeue
from setpoint.controllers.disruption import budget as logic
from setpoint.controllers.util.ownerrefs import controller_ref
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.labels import selector_from_label_selector

log = logging.getLogger(__name__)


class SyncFailed(Exception):
    """The budget's numbers cannot be computed; its message goes into the SyncFailed
    condition."""


class DisruptionController(Controller[str]):
    name = "disruption"

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.budgets = informers.informer(
            PODDISRUPTIONBUDGETS, indexers={"namespace": by_namespace}
        )
        self.pods = informers.informer(PODS, indexers={"namespace": by_namespace})
        self.replica_sets = informers.informer(REPLICASETS)
        self.deployments = informers.informer(DEPLOYMENTS)
        self.watch_owned(self.budgets)
        self.pods.add_handler(
            EventHandler(
                on_add=self._on_pod,
                on_update=self._on_pod_update,
                on_delete=self._on_pod,
            )
        )

    # ------------------------------------------------------------- event handlers

    def _on_pod(self, pod: Obj) -> None:
        for budget in self._budgets_of(pod):
            self.queue.add(object_key(budget))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)
        if old["metadata"].get("labels") != new["metadata"].get("labels"):
            self._on_pod(old)

    def _budgets_of(self, pod: Obj) -> list[Obj]:
        """``getPdbForPod``, keeping every match (upstream keeps the first and warns)."""
        labels = pod["metadata"].get("labels") or {}
        found = []
        for budget in self.budgets.by_index("namespace", pod["metadata"].get("namespace", "")):
            try:
                selector = selector_from_label_selector((budget.get("spec") or {}).get("selector"))
            except ValueError:
                continue
            if selector.matches(labels):
                found.append(budget)
        return found

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        budget = self.budgets.get(key)
        if budget is None:
            return None
        now = self.clock.now()
        try:
            return await self._sync(budget, now)
        except ApiError as exc:
            if exc.is_conflict or exc.is_not_found:
                raise  # the cache is behind: look again with the newer budget
            message = str(exc.status.get("message") or exc)
        except SyncFailed as exc:
            message = str(exc)
        log.info("failed to sync PodDisruptionBudget %s: %s", key, message)
        await self._write_status(budget, logic.fail_safe_status(budget, message, now))
        return None

    async def _sync(self, budget: Obj, now: datetime) -> Requeue | None:
        """``trySync``."""
        pods = self._pods_of(budget)
        if not pods:
            await self.recorder.record(budget, "Normal", "NoPods", "No matching pods found")
        scale = 0
        if logic.needs_scale(budget):
            try:
                scale = await self._expected_scale(budget, pods)
            except SyncFailed as exc:
                await self.recorder.record(
                    budget,
                    "Warning",
                    "CalculateExpectedPodCountFailed",
                    f"Failed to calculate the number of expected pods: {exc}",
                )
                raise
        expected, desired = logic.expected_and_desired(budget, len(pods), scale)
        disrupted = logic.disrupted_pods(pods, budget, now)
        for name in disrupted.expired:
            pod = self.pods.get(f"{budget['metadata']['namespace']}/{name}")
            if pod is not None:
                meta = budget["metadata"]
                await self.recorder.record(
                    pod,
                    "Warning",
                    "NotDeleted",
                    f"Pod was expected by PDB {meta['namespace']}/{meta['name']} to be deleted "
                    "but it wasn't",
                )
        status = logic.new_status(
            budget,
            current_healthy=logic.count_healthy(pods, disrupted.pods, now),
            desired_healthy=desired,
            expected=expected,
            disrupted=disrupted.pods,
            now=now,
        )
        if status is not None:
            await self._write_status(budget, status)
        if disrupted.recheck_at is not None:
            return Requeue(after=max((disrupted.recheck_at - now).total_seconds(), 0.0))
        return None

    def _pods_of(self, budget: Obj) -> list[Obj]:
        """``getPodsForPdb``; an invalid selector fails the sync."""
        try:
            selector = selector_from_label_selector((budget.get("spec") or {}).get("selector"))
        except ValueError as exc:
            raise SyncFailed(str(exc)) from None
        namespace = budget["metadata"]["namespace"]
        return [
            pod
            for pod in self.pods.by_index("namespace", namespace)
            if selector.matches(pod["metadata"].get("labels") or {})
        ]

    async def _write_status(self, budget: Obj, status: Obj) -> None:
        updated = {**budget, "status": status}
        await self.client.update_status(PODDISRUPTIONBUDGETS, updated)

    # ------------------------------------------------------------ expected scale

    async def _expected_scale(self, budget: Obj, pods: list[Obj]) -> int:
        """``getExpectedScale``: the summed scale of the pods' controllers, each counted
        once; unmanaged pods are reported, a controller without a scale fails the sync."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = await self._controller_scale(ref, pod["metadata"]["namespace"])
            if found is None:
                raise SyncFailed(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            uid, scale = found
            scales[uid] = scale
        if unmanaged:
            await self.recorder.record(
                budget,
                "Warning",
                "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: "
                f"{_selector_text(budget)}) were found to be unmanaged. As a result, the status "
                "of the PDB cannot be calculated correctly, which may result in undefined "
                'behavior. To account for these pods please set ".spec.minAvailable" field of '
                "the PDB to an integer value.",
            )
        return sum(scales.values())

    async def _controller_scale(self, ref: Obj, namespace: str) -> tuple[str, int] | None:
        """(uid, replicas) of the controller ``ref`` names: a Deployment for its
        ReplicaSets (``getPodDeployment``), a ReplicaSet of its own (``getPodReplicaSet``),
        else whatever serves a ``scale`` subresource (``getScaleController``)."""
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        if group == "apps" and ref.get("kind") == "ReplicaSet":
            replica_set = self.replica_sets.get(f"{namespace}/{ref.get('name')}")
            if replica_set is None or replica_set["metadata"].get("uid") != ref.get("uid"):
                return None
            owner = controller_ref(replica_set)
            if owner is not None and owner.get("kind") == "Deployment":
                deployment = self.deployments.get(f"{namespace}/{owner.get('name')}")
                if deployment is None or deployment["metadata"].get("uid") != owner.get("uid"):
                    return None
                return str(owner["uid"]), _replicas(deployment)
            return str(ref["uid"]), _replicas(replica_set)
        return await self._scale_subresource(ref, namespace)

    async def _scale_subresource(self, ref: Obj, namespace: str) -> tuple[str, int] | None:
        api_version = str(ref.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        try:
            listing = await self.client.request("GET", path)
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise
        names = {str(r.get("name")) for r in listing.get("resources") or []}
        plural = next(
            (
                str(r["name"])
                for r in listing.get("resources") or []
                if r.get("kind") == ref.get("kind") and "/" not in str(r.get("name"))
            ),
            None,
        )
        if plural is None or f"{plural}/scale" not in names:
            return None
        resource = Resource(group, version, plural, True)
        try:
            scale = await self.client.request(
                "GET", resource.path(namespace, str(ref.get("name")), "scale")
            )
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise
        if scale.get("metadata", {}).get("uid") != ref.get("uid"):
            return None
        return str(ref["uid"]), int((scale.get("spec") or {}).get("replicas") or 0)


def _replicas(obj: Obj) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _selector_text(budget: Obj) -> str:
    """The selector as ``%v`` of a ``*metav1.LabelSelector`` prints it, near enough: its
    canonical string form."""
    try:
        return str(selector_from_label_selector((budget.get("spec") or {}).get("selector")))
    except ValueError:
        return "<error>"
