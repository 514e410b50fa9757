"""The event plumbing the EndpointSlice and Endpoints controllers share: a Service's key is
queued when the Service changes and when a pod it selects appears, changes in a way its
endpoints show, or goes (``pkg/controller/endpoint`` and ``endpointslice``'s ``addPod`` /
``updatePod`` / ``deletePod``, through ``GetPodServiceMemberships``)."""

from __future__ import annotations

from typing import Any

from setpoint.client.api import PODS, SERVICES, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, object_key
from setpoint.controllers.util import endpoints as eputil
from setpoint.controllers.util.pods import is_pod_ready
from setpoint.meta.assignedports import assigned_ports
from setpoint.meta.clock import REAL_CLOCK, Clock


def endpoint_facts(pod: Obj) -> tuple[Any, ...]:
    """What of a pod its endpoints show: a change elsewhere (a restart count, a probe's
    time) wakes no Service."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    return (
        pod["metadata"].get("labels"),
        pod["metadata"].get("deletionTimestamp"),
        eputil.pod_ips(pod),
        status.get("phase"),
        is_pod_ready(pod),
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
        [c.get("ports") for c in spec.get("containers") or []],
        assigned_ports(pod),
    )


class ServicePodsController(Controller[str]):
    """A controller of Services, woken by the pods they select."""

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.services = informers.informer(SERVICES, indexers={"namespace": by_namespace})
        self.pods = informers.informer(PODS, indexers={"namespace": by_namespace})
        self.watch_owned(self.services)
        self.pods.add_handler(
            EventHandler(
                on_add=self._enqueue_selecting,
                on_update=self._on_pod_update,
                on_delete=self._enqueue_selecting,
            )
        )

    def _enqueue_selecting(self, pod: Obj) -> None:
        namespace = pod["metadata"].get("namespace", "")
        for svc in self.services.by_index("namespace", namespace):
            if eputil.selects(svc, pod):
                self.queue.add(object_key(svc))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if endpoint_facts(old) == endpoint_facts(new):
            return
        if old["metadata"].get("labels") != new["metadata"].get("labels"):
            self._enqueue_selecting(old)
        self._enqueue_selecting(new)

    def selected_pods(self, svc: Obj) -> list[Obj]:
        namespace = svc["metadata"]["namespace"]
        return [p for p in self.pods.by_index("namespace", namespace) if eputil.selects(svc, p)]
