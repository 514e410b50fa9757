"""What the EndpointSlice and Endpoints controllers agree on: which pods back a Service, at
which address and on which ports, and how each one's readiness reads.

Kubernetes keeps this once too (``pkg/api/v1/pod`` ``FindPort``,
``staging/src/k8s.io/endpointslice/util`` ``ShouldPodBeInEndpoints``, ``podToEndpoint``,
``ShouldSetHostname``):

* a pod belongs in a Service's endpoints if its labels match the Service's selector, it has
  an IP, and it has not finished (``Succeeded``/``Failed``); a terminating pod stays in
  EndpointSlices (``serving``/``terminating``), but leaves Endpoints unless the Service
  ``publishNotReadyAddresses``;
* a Service port's ``targetPort`` is a number, or the name of a container port of the pod
  (of the same protocol), so each pod may listen on a port of its own; a pod without the
  named port is left out of that port; a pod the agent gave node ports of its own (no pod
  network: ``setpoint.io/assigned-ports``, a setpoint difference) is reached on the port
  assigned to that containerPort;
* an endpoint is ``ready`` when the pod is Ready and not terminating (always, when the
  Service publishes not-ready addresses), ``serving`` when it is Ready, ``terminating`` while
  it is being deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from setpoint.client.api import Obj
from setpoint.controllers.util.pods import is_pod_ready, is_terminating, pod_phase
from setpoint.meta.assignedports import assigned_ports, port_key
from setpoint.meta.labels import Selector, selector_from_set

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def service_selector(svc: Obj) -> Selector | None:
    """The Service's selector, or None for a Service without one (its endpoints are
    someone else's business)."""
    selector = (svc.get("spec") or {}).get("selector")
    return selector_from_set(selector) if selector else None


def selects(svc: Obj, pod: Obj) -> bool:
    selector = service_selector(svc)
    if selector is None or svc["metadata"].get("namespace") != pod["metadata"].get("namespace"):
        return False
    return selector.matches(pod["metadata"].get("labels") or {})


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def address_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def service_family(svc: Obj) -> str:
    """The address type of the Service's endpoints: its first IP family."""
    families = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return str(families[0])


def pod_address(pod: Obj, family: str) -> str | None:
    """The pod's IP of ``family``."""
    return next((ip for ip in pod_ips(pod) if address_family(ip) == family), None)


def should_pod_be_in_endpoints(pod: Obj, *, include_terminating: bool) -> bool:
    """``ShouldPodBeInEndpoints``."""
    if pod_phase(pod) in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not is_terminating(pod)


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """``FindPort``: the pod's port a Service port's ``targetPort`` names, then the node port
    the agent assigned that containerPort if it did (:mod:`setpoint.meta.assignedports`)."""
    number = find_container_port(pod, service_port)
    if number is None:
        return None
    protocol = service_port.get("protocol") or "TCP"
    return assigned_ports(pod).get(port_key(number, protocol), number)


def find_container_port(pod: Obj, service_port: Obj) -> int | None:
    """Upstream's ``FindPort``: a number, or the containerPort of the named port."""
    target: Any = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        return int(service_port.get("port", 0)) or None
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


@dataclass(frozen=True)
class PortKey:
    """One endpoint port: the Service port's name and protocol, the pod's number."""

    name: str
    port: int
    protocol: str
    app_protocol: str | None = None


def endpoint_ports(svc: Obj, pod: Obj) -> tuple[PortKey, ...]:
    """The pod's ports for each of the Service's ports it has (``getEndpointPorts``)."""
    out = []
    for service_port in (svc.get("spec") or {}).get("ports") or []:
        number = find_port(pod, service_port)
        if number is None:
            continue
        out.append(
            PortKey(
                name=str(service_port.get("name") or ""),
                port=number,
                protocol=str(service_port.get("protocol") or "TCP"),
                app_protocol=service_port.get("appProtocol"),
            )
        )
    return tuple(out)


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    """``ShouldSetHostname``: the pod names this (headless) Service as its subdomain."""
    spec = pod.get("spec") or {}
    return bool(
        spec.get("hostname")
        and spec.get("subdomain") == svc["metadata"]["name"]
        and svc["metadata"].get("namespace") == pod["metadata"].get("namespace")
    )


def target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
    }


@dataclass(frozen=True)
class Readiness:
    ready: bool
    serving: bool
    terminating: bool


def endpoint_readiness(pod: Obj, svc: Obj) -> Readiness:
    """The conditions of the pod's endpoint (``podToEndpoint``)."""
    serving = is_pod_ready(pod)
    terminating = is_terminating(pod)
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    return Readiness(
        ready=publish or (serving and not terminating), serving=serving, terminating=terminating
    )


def copied_labels(svc: Obj) -> dict[str, str]:
    """The Service's labels its endpoint objects carry, with the headless marker."""
    labels = dict(svc["metadata"].get("labels") or {})
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels
