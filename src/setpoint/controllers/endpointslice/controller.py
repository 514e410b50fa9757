"""The EndpointSlice controller: keeps each Service's EndpointSlices listing the pods it
selects (``pkg/controller/endpointslice/endpointslice_controller.go``).

For a Service with a selector, ``reconcile`` reads the pods and the Service's managed slices
from the caches and applies the plan of :mod:`~setpoint.controllers.endpointslice.reconciler`
through the API. Services without a selector are left alone: their slices belong to whoever
writes them (the API server, for ``kubernetes``). A deleted Service's slices go with it
through their ownerReference (the garbage collector).

*Stale caches.* Right after creating a slice the cache may not hold it yet, and a second
reconcile would create another. Kubernetes' ``EndpointSliceTracker`` remembers the
generation of each slice the controller wrote (and the ones it deleted); a reconcile whose
cache is behind those waits for it. The same here: :class:`SliceTracker`.
A change anyone else makes to a managed slice (or its deletion) wakes the Service, which puts
the slice back.
"""

from __future__ import annotations

import logging

from setpoint.client.api import ENDPOINTSLICES, ApiError, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace
from setpoint.client.workqueue import Requeue
from setpoint.controllers.endpointslice import reconciler
from setpoint.controllers.util.endpoints import SERVICE_NAME_LABEL, service_selector
from setpoint.controllers.util.servicepods import ServicePodsController
from setpoint.meta.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

STALE_CACHE_RETRY = 0.05


def _generation(obj: Obj) -> int:
    return int(obj["metadata"].get("generation") or 0)


class SliceTracker:
    """The slices this controller wrote (uid -> generation) or deleted, per Service."""

    def __init__(self) -> None:
        self._written: dict[str, dict[str, int]] = {}
        self._deleted: dict[str, set[str]] = {}

    def wrote(self, service: str, endpoint_slice: Obj) -> None:
        uid = endpoint_slice["metadata"]["uid"]
        self._written.setdefault(service, {})[uid] = _generation(endpoint_slice)

    def deleted(self, service: str, endpoint_slice: Obj) -> None:
        self._deleted.setdefault(service, set()).add(endpoint_slice["metadata"]["uid"])
        self._written.get(service, {}).pop(endpoint_slice["metadata"]["uid"], None)

    def stale(self, service: str, cached: list[Obj]) -> bool:
        """The cache does not show every write yet; forget what it shows."""
        by_uid = {s["metadata"]["uid"]: s for s in cached}
        written, deleted = self._written.get(service, {}), self._deleted.get(service, set())
        for uid, generation in list(written.items()):
            if uid in by_uid and _generation(by_uid[uid]) >= generation:
                del written[uid]
        deleted &= set(by_uid)
        return bool(written) or bool(deleted)

    def forget(self, service: str) -> None:
        self._written.pop(service, None)
        self._deleted.pop(service, None)


def _service_key(endpoint_slice: Obj) -> str | None:
    labels = endpoint_slice["metadata"].get("labels") or {}
    if labels.get(reconciler.MANAGED_BY_LABEL) != reconciler.CONTROLLER_NAME:
        return None
    name = labels.get(SERVICE_NAME_LABEL)
    return f"{endpoint_slice['metadata'].get('namespace')}/{name}" if name else None


class EndpointSliceController(ServicePodsController):
    name = "endpointslice"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        max_endpoints_per_slice: int = reconciler.MAX_ENDPOINTS_PER_SLICE,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.max_per_slice = max_endpoints_per_slice
        self.tracker = SliceTracker()
        self.slices = informers.informer(
            ENDPOINTSLICES, indexers={"service": _service_index, "namespace": by_namespace}
        )
        self.slices.add_handler(
            EventHandler(
                on_add=self._enqueue_owner,
                on_update=lambda old, new: self._enqueue_owner(new),
                on_delete=self._enqueue_owner,
            )
        )

    def _enqueue_owner(self, endpoint_slice: Obj) -> None:
        key = _service_key(endpoint_slice)
        if key is not None:
            self.queue.add(key)

    async def reconcile(self, key: str) -> Requeue | None:
        svc = self.services.get(key)
        if svc is None or service_selector(svc) is None:
            self.tracker.forget(key)
            return None
        if svc["metadata"].get("deletionTimestamp"):
            return None
        existing = self.slices.by_index("service", key)
        if self.tracker.stale(key, existing):
            return Requeue(after=STALE_CACHE_RETRY)
        plan = reconciler.reconcile(
            svc, self.selected_pods(svc), existing, max_per_slice=self.max_per_slice
        )
        namespace = svc["metadata"]["namespace"]
        for endpoint_slice in plan.create:
            try:
                created = await self.client.create(ENDPOINTSLICES, endpoint_slice, namespace)
            except ApiError as exc:
                if exc.is_namespace_terminating:
                    return None
                raise
            self.tracker.wrote(key, created)
        for endpoint_slice in plan.update:
            try:
                updated = await self.client.update(ENDPOINTSLICES, endpoint_slice)
            except ApiError as exc:
                if exc.is_conflict or exc.is_not_found:
                    return Requeue()  # the cache was behind; look again
                raise
            self.tracker.wrote(key, updated)
        for endpoint_slice in plan.delete:
            meta = endpoint_slice["metadata"]
            try:
                await self.client.delete(
                    ENDPOINTSLICES, meta["name"], namespace, preconditions_uid=meta["uid"]
                )
            except ApiError as exc:
                if not (exc.is_not_found or exc.is_conflict):
                    raise
            self.tracker.deleted(key, endpoint_slice)
        return None


def _service_index(endpoint_slice: Obj) -> list[str]:
    key = _service_key(endpoint_slice)
    return [key] if key is not None else []
