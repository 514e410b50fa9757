"""The EndpointSlice reconciler: from a Service and the pods it selects to the slices that
list them — pure, so that it is tested on its own (``staging/src/k8s.io/endpointslice``'s
``reconciler.go``).

Endpoints are grouped by the ports they serve (a named ``targetPort`` can resolve to a
different number on each pod), one set of slices per group, at most ``max_per_slice``
(Kubernetes' ``--max-endpoints-per-slice``, 100) endpoints each. The reconciler changes as
few slices as it can: an existing slice keeps the endpoints that are still wanted (with their
conditions brought up to date) and loses the others, new endpoints fill existing slices with
room before new slices are made, and a slice left empty is deleted. A Service with no
endpoints at all keeps one empty *placeholder* slice, as Kubernetes does, so that "no
endpoints" is something clients can see rather than the absence of anything.

Each slice carries ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/
managed-by: endpointslice-controller.k8s.io``, the Service's labels (and
``service.kubernetes.io/headless`` for a headless one), and a controller ownerReference to
the Service, so the garbage collector removes it with the Service.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from setpoint.client.api import Obj
from setpoint.controllers.util import endpoints as eputil
from setpoint.controllers.util.ownerrefs import new_controller_ref

MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100

PortsKey = tuple[eputil.PortKey, ...]


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def ports_key(ports: Any) -> PortsKey:
    return tuple(sorted(ports, key=lambda p: (p.name, p.port, p.protocol)))


def slice_ports_key(endpoint_slice: Obj) -> PortsKey:
    return ports_key(
        eputil.PortKey(
            name=str(p.get("name") or ""),
            port=int(p.get("port") or 0),
            protocol=str(p.get("protocol") or "TCP"),
            app_protocol=p.get("appProtocol"),
        )
        for p in endpoint_slice.get("ports") or []
    )


def _port_objects(key: PortsKey) -> list[Obj]:
    out = []
    for port in key:
        item: Obj = {"name": port.name, "port": port.port, "protocol": port.protocol}
        if port.app_protocol is not None:
            item["appProtocol"] = port.app_protocol
        out.append(item)
    return out


def pod_endpoint(pod: Obj, svc: Obj, address: str) -> Obj:
    """``podToEndpoint``: the pod as one endpoint of the Service."""
    readiness = eputil.endpoint_readiness(pod, svc)
    endpoint: Obj = {
        "addresses": [address],
        "conditions": {
            "ready": readiness.ready,
            "serving": readiness.serving,
            "terminating": readiness.terminating,
        },
        "targetRef": eputil.target_ref(pod),
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    if eputil.should_set_hostname(pod, svc):
        endpoint["hostname"] = pod["spec"]["hostname"]
    return endpoint


EndpointKey = tuple[tuple[str, ...], str, str, str]


def endpoint_key(endpoint: Obj) -> EndpointKey:
    """An endpoint's identity (upstream's ``hashEndpoint``): its addresses, hostname and the
    pod it stands for, so that pods sharing an address (host network) stay apart."""
    ref = endpoint.get("targetRef") or {}
    return (
        tuple(sorted(endpoint.get("addresses") or [])),
        str(endpoint.get("hostname") or ""),
        str(ref.get("namespace") or ""),
        str(ref.get("name") or ""),
    )


def desired_endpoints(svc: Obj, pods: list[Obj]) -> dict[PortsKey, dict[EndpointKey, Obj]]:
    """Ports group -> endpoint identity -> endpoint, for every pod that belongs in the
    slices."""
    family = eputil.service_family(svc)
    out: dict[PortsKey, dict[EndpointKey, Obj]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not eputil.should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        address = eputil.pod_address(pod, family)
        if address is None:
            continue
        key = ports_key(eputil.endpoint_ports(svc, pod))
        endpoint = pod_endpoint(pod, svc, address)
        out.setdefault(key, {})[endpoint_key(endpoint)] = endpoint
    return out


def slice_labels(svc: Obj) -> dict[str, str]:
    labels = eputil.copied_labels(svc)
    labels[eputil.SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def new_slice(svc: Obj, key: PortsKey, endpoints: list[Obj]) -> Obj:
    meta = svc["metadata"]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": slice_labels(svc),
            "ownerReferences": [new_controller_ref(svc, "v1", "Service")],
        },
        "addressType": eputil.service_family(svc),
        "endpoints": sorted(endpoints, key=endpoint_key),
        "ports": _port_objects(key),
    }


def is_placeholder(endpoint_slice: Obj) -> bool:
    return not endpoint_slice.get("endpoints") and not endpoint_slice.get("ports")


def reconcile(
    svc: Obj,
    pods: list[Obj],
    existing: list[Obj],
    *,
    max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
) -> SlicePlan:
    """What to create, update and delete so that ``existing`` (the Service's managed slices)
    list exactly the endpoints of ``pods``."""
    wanted = desired_endpoints(svc, pods)
    family = eputil.service_family(svc)
    labels = slice_labels(svc)
    plan = SlicePlan()
    kept: list[Obj] = []  # slices that stay, changed or not, with their new contents
    changed: set[int] = set()
    for current in sorted(existing, key=lambda s: s["metadata"]["name"]):
        key = slice_ports_key(current)
        group = wanted.get(key)
        if current.get("addressType") != family or group is None or is_placeholder(current):
            plan.delete.append(current)
            continue
        new = copy.deepcopy(current)
        new["endpoints"] = [
            group.pop(endpoint_key(e))
            for e in current.get("endpoints") or []
            if endpoint_key(e) in group
        ]
        if not new["endpoints"]:
            plan.delete.append(current)
            continue
        new["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}), **labels}
        if new != current:
            changed.add(id(new))
        kept.append(new)
    for key, group in wanted.items():
        remaining = list(group.values())
        for target in kept:
            if not remaining:
                break
            if slice_ports_key(target) != key:
                continue
            room = max_per_slice - len(target["endpoints"])
            if room > 0:
                target["endpoints"] += remaining[:room]
                remaining = remaining[room:]
                changed.add(id(target))
        while remaining:
            plan.create.append(new_slice(svc, key, remaining[:max_per_slice]))
            remaining = remaining[max_per_slice:]
    for target in kept:
        if id(target) in changed:
            target["endpoints"].sort(key=endpoint_key)
            plan.update.append(target)
    if not kept and not plan.create:
        placeholder = next((s for s in existing if is_placeholder(s)), None)
        if placeholder is not None and placeholder.get("addressType") == family:
            plan.delete = [s for s in plan.delete if s is not placeholder]
            if (placeholder["metadata"].get("labels") or {}) != {
                **(placeholder["metadata"].get("labels") or {}),
                **labels,
            }:
                fixed = copy.deepcopy(placeholder)
                fixed["metadata"]["labels"] = {**fixed["metadata"].get("labels", {}), **labels}
                plan.update.append(fixed)
        else:
            plan.create.append(new_slice(svc, (), []))
    return plan
