"""What the node proxy serves: each Service port and the endpoints it sends traffic to.

A pure function of the Services and EndpointSlices the agent's informers hold, as
kube-proxy's ``ServicePortMap`` and ``EndpointsMap`` (``pkg/proxy/servicechangetracker.go``,
``endpointschangetracker.go``, ``topology.go``):

- a Service is proxied if it has a cluster IP (not headless ``None``, not ``ExternalName``);
  each of its ports is one :class:`ServicePort`, with its ``nodePort`` for NodePort and
  LoadBalancer Services;
- its endpoints come from the EndpointSlices labelled ``kubernetes.io/service-name`` in its
  namespace, IPv4 ones only, from the slice port of the same name and protocol;
- which endpoints take traffic (``CategorizeEndpoints``): the *ready* ones; when none is
  ready, those both *serving* and *terminating* (a rolling update's last replicas finish their
  connections); an unset ``ready`` counts as ready and an unset ``serving`` as its ``ready``,
  as the API says. Endpoints repeated across slices count once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from setpoint.client.api import Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' default sessionAffinityConfig timeout


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, as the data path sees it."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # TCP, UDP or SCTP
    cluster_ip: str
    port: int
    node_port: int | None
    endpoints: tuple[Endpoint, ...]  # the ones taking traffic, sorted
    affinity_seconds: int | None = None  # sessionAffinity ClientIP's timeout

    @property
    def name(self) -> str:
        """``namespace/service/protocol/port-name``, kube-proxy's ServicePortName."""
        return f"{self.namespace}/{self.service}/{self.protocol.lower()}/{self.port_name}"


def _ready(endpoint: Obj) -> tuple[bool, bool, bool]:
    """(ready, serving, terminating) with the API's defaults for unset conditions."""
    conditions = endpoint.get("conditions") or {}
    ready = conditions.get("ready")
    ready = True if ready is None else bool(ready)
    serving = conditions.get("serving")
    serving = ready if serving is None else bool(serving)
    return ready, serving, bool(conditions.get("terminating"))


def usable_endpoints(slices: Iterable[Obj], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """The endpoints of ``slices`` that take traffic for the Service port named
    ``port_name``: the ready ones, else the serving and terminating ones."""
    ready: set[Endpoint] = set()
    fallback: set[Endpoint] = set()
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        number = next(
            (
                p.get("port")
                for p in endpoint_slice.get("ports") or []
                if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol
            ),
            None,
        )
        if not number:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            is_ready, serving, terminating = _ready(endpoint)
            for address in endpoint.get("addresses") or []:
                if is_ready:
                    ready.add(Endpoint(str(address), int(number)))
                elif serving and terminating:
                    fallback.add(Endpoint(str(address), int(number)))
    return tuple(sorted(ready or fallback))


def _affinity_seconds(spec: Obj) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    return int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)


def service_ports(services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServicePort]:
    """Every Service port to proxy, sorted by name, with the endpoints taking its traffic."""
    by_service: dict[tuple[str, str], list[Obj]] = defaultdict(list)
    for endpoint_slice in slices:
        meta = endpoint_slice.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service[(meta.get("namespace") or "", owner)].append(endpoint_slice)
    found = []
    for service in services:
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        cluster_ip = spec.get("clusterIP")
        if spec.get("type") == "ExternalName" or not cluster_ip or cluster_ip == "None":
            continue
        if ":" in cluster_ip:  # IPv4 only, like the pod network
            continue
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
        for port in spec.get("ports") or []:
            protocol = port.get("protocol") or "TCP"
            if protocol not in PROTOCOLS:
                continue
            port_name = port.get("name") or ""
            found.append(
                ServicePort(
                    namespace=namespace,
                    service=name,
                    port_name=port_name,
                    protocol=protocol,
                    cluster_ip=cluster_ip,
                    port=int(port["port"]),
                    node_port=int(port["nodePort"])
                    if node_ports and port.get("nodePort")
                    else None,
                    endpoints=usable_endpoints(
                        by_service.get((namespace, name), []), port_name, protocol
                    ),
                    affinity_seconds=_affinity_seconds(spec),
                )
            )
    return sorted(found, key=lambda p: p.name)
