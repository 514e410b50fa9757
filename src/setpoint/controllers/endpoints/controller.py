"""The Endpoints controller: keeps each Service's Endpoints (same name, same namespace)
listing the pods it selects (``pkg/controller/endpoint/endpoints_controller.go``).

A pod that belongs in the Endpoints (see :mod:`setpoint.controllers.util.endpoints`; a
terminating pod does not, unless the Service ``publishNotReadyAddresses``) is an address —
its IP, ``nodeName``, ``targetRef`` and, where it names the Service as its subdomain, its
hostname — under ``addresses`` when it is Ready (or the Service publishes not-ready
addresses) and ``notReadyAddresses`` otherwise, with the ports it serves for each of the
Service's ports. Addresses serving the same ports share a subset (``RepackSubsets``);
subsets, addresses and ports are sorted so an unchanged set of pods is an unchanged object.
A headless Service without ports lists its pods' addresses with no ports. More than
:data:`MAX_CAPACITY` addresses are truncated, with the
``endpoints.kubernetes.io/over-capacity: truncated`` annotation, as Kubernetes does.

The Endpoints carry the Service's labels (and ``service.kubernetes.io/headless`` for a
headless one), and no ownerReference, as upstream's: when a Service goes, this controller
deletes its Endpoints. Services without a selector are left alone: their Endpoints are
whoever wrote them.
"""

from __future__ import annotations

import copy
import logging

from setpoint.client.api import ENDPOINTS, ApiError, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, object_key
from setpoint.client.workqueue import Requeue
from setpoint.controllers.util import endpoints as eputil
from setpoint.controllers.util.servicepods import ServicePodsController
from setpoint.meta.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


def _address(pod: Obj, svc: Obj, ip: str) -> Obj:
    address: Obj = {"ip": ip}
    if eputil.should_set_hostname(pod, svc):
        address["hostname"] = pod["spec"]["hostname"]
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    address["targetRef"] = eputil.target_ref(pod)
    return address


def _port(key: eputil.PortKey) -> Obj:
    port: Obj = {"name": key.name, "port": key.port, "protocol": key.protocol}
    if key.app_protocol is not None:
        port["appProtocol"] = key.app_protocol
    if not key.name:
        del port["name"]
    return port


def desired_subsets(svc: Obj, pods: list[Obj]) -> tuple[list[Obj], bool]:
    """The Endpoints' subsets for ``pods``, and whether they were truncated."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    family = eputil.service_family(svc)
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    # ports of a subset -> (ready addresses, not-ready addresses)
    groups: dict[tuple[eputil.PortKey, ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not eputil.should_pod_be_in_endpoints(pod, include_terminating=publish):
            continue
        ip = eputil.pod_address(pod, family)
        if ip is None:
            continue  # no address of the Service's family
        ports = tuple(sorted(eputil.endpoint_ports(svc, pod), key=lambda p: (p.name, p.port)))
        if has_ports and not ports:
            continue  # none of the Service's ports resolves on this pod
        listed_ready = publish or eputil.endpoint_readiness(pod, svc).serving
        group = groups.setdefault(ports, ([], []))
        group[0 if listed_ready else 1].append(_address(pod, svc, ip))
    subsets = []
    total = 0
    truncated = False
    for ports, (ready, not_ready) in sorted(groups.items(), key=lambda g: [p.port for p in g[0]]):
        subset: Obj = {}
        for field, addresses in (("addresses", ready), ("notReadyAddresses", not_ready)):
            addresses.sort(key=lambda a: (a["ip"], a["targetRef"]["uid"]))
            room = MAX_CAPACITY - total
            if len(addresses) > room:
                addresses, truncated = addresses[:room], True
            total += len(addresses)
            if addresses:
                subset[field] = addresses
        if not subset:
            continue
        if ports:
            subset["ports"] = [_port(p) for p in ports]
        subsets.append(subset)
    return subsets, truncated


class EndpointsController(ServicePodsController):
    name = "endpoints"

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.endpoints = informers.informer(ENDPOINTS, indexers={"namespace": by_namespace})
        self.endpoints.add_handler(
            EventHandler(on_delete=lambda ep: self.queue.add(object_key(ep)))
        )

    async def reconcile(self, key: str) -> Requeue | None:
        namespace, name = key.split("/", 1)
        svc = self.services.get(key)
        if svc is None:
            await self._delete(namespace, name)
            return None
        if eputil.service_selector(svc) is None or svc["metadata"].get("deletionTimestamp"):
            return None
        subsets, truncated = desired_subsets(svc, self.selected_pods(svc))
        current = self.endpoints.get(key)
        labels = eputil.copied_labels(svc)
        annotations = dict(((current or {}).get("metadata") or {}).get("annotations") or {})
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if current is None:
            endpoints: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "subsets": subsets,
            }
            if annotations:
                endpoints["metadata"]["annotations"] = annotations
            try:
                await self.client.create(ENDPOINTS, endpoints, namespace)
            except ApiError as exc:
                if exc.is_already_exists:
                    return Requeue()  # the cache is behind
                if exc.is_namespace_terminating:
                    return None
                raise
            return None
        meta = current["metadata"]
        if (
            (current.get("subsets") or []) == subsets
            and (meta.get("labels") or {}) == labels
            and (meta.get("annotations") or {}) == annotations
        ):
            return None
        updated = copy.deepcopy(current)
        updated["subsets"] = subsets
        updated["metadata"]["labels"] = labels
        if annotations:
            updated["metadata"]["annotations"] = annotations
        else:
            updated["metadata"].pop("annotations", None)
        try:
            await self.client.update(ENDPOINTS, updated)
        except ApiError as exc:
            if exc.is_conflict or exc.is_not_found:
                return Requeue()
            raise
        return None

    async def _delete(self, namespace: str, name: str) -> None:
        if self.endpoints.get(f"{namespace}/{name}") is None:
            return
        try:
            await self.client.delete(ENDPOINTS, name, namespace)
        except ApiError as exc:
            if not exc.is_not_found:
                raise
