"""Tables for Services, Endpoints, EndpointSlices, Ingresses and IngressClasses.

Each printer reproduces the matching ``print*`` function of Kubernetes'
``pkg/printers/internalversion/printers.go``: ``printService`` (TYPE, CLUSTER-IP,
EXTERNAL-IP, PORT(S) as ``80/TCP`` or ``80:30080/TCP``, and the selector with ``-o wide``),
``printEndpoints`` (the first three ``ip:port`` pairs, then ``+ N more...``) and
``printEndpointSlice`` (ADDRESSTYPE, PORTS and ENDPOINTS, each the first three, ``<unset>``
when empty), ``printIngress`` (CLASS, the first three HOSTS or ``*``, the load balancer's
ADDRESS, PORTS ``80`` or ``80, 443`` with TLS) and ``printIngressClass``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.resources.printers.base import (
    AGE_COLUMN,
    NAME_COLUMN,
    Printer,
    age_of,
    column,
    dig,
    items,
    name_of,
    text,
)

_MORE_AFTER = 3  # the printers list this many values, then "+ N more..."

# --- services -----------------------------------------------------------------------------

SERVICE_COLUMNS = [
    NAME_COLUMN,
    column(
        "Type",
        description="type determines how the Service is exposed. Defaults to ClusterIP. Valid "
        "options are ExternalName, ClusterIP, NodePort, and LoadBalancer.",
    ),
    column(
        "Cluster-IP",
        description="clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    column(
        "External-IP",
        description="externalIPs is a list of IP addresses for which nodes in the cluster will "
        "also accept traffic for this service.  These IPs are not managed by Kubernetes.",
    ),
    column(
        "Port(s)",
        description="The list of ports that are exposed by this service. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/"
        "#virtual-ips-and-service-proxies",
    ),
    AGE_COLUMN,
    column(
        "Selector",
        priority=1,
        description="Route service traffic to pods with label keys and values matching this "
        "selector. If empty or not present, the service is assumed to have an external process "
        "managing its endpoints, which Kubernetes will not modify.",
    ),
]


def service_ports(ports: list[Any]) -> str:
    """``makePortString``: ``80/TCP``, or ``80:30080/TCP`` with a node port, comma-joined."""
    pieces = []
    for port in ports:
        if not isinstance(port, Mapping):
            continue
        number, protocol = port.get("port", 0), port.get("protocol", "")
        node_port = port.get("nodePort") or 0
        pieces.append(
            f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}"
        )
    return ",".join(pieces)


def _load_balancer_ips(service: Obj) -> list[str]:
    """``loadBalancerStatusStringer`` (wide, as the server prints): ingress IPs or hostnames."""
    out = []
    for ingress in items(service, "status", "loadBalancer", "ingress"):
        if isinstance(ingress, Mapping):
            value = ingress.get("ip") or ingress.get("hostname")
            if value:
                out.append(str(value))
    return out


def service_external_ip(service: Obj) -> str:
    """``getServiceExternalIP``: what EXTERNAL-IP shows for each type of Service."""
    kind = text(service, "spec", "type")
    external = [str(ip) for ip in items(service, "spec", "externalIPs")]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        shown = _load_balancer_ips(service) + external
        return ",".join(shown) if shown else "<pending>"
    if kind == "ExternalName":
        return text(service, "spec", "externalName")
    return "<unknown>"


def _format_labels(labels: Mapping[str, Any] | None) -> str:
    """``labels.FormatLabels``: ``k=v,...`` sorted by key, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def service_cells(service: Obj, now: datetime) -> list[Any]:
    cluster_ips = items(service, "spec", "clusterIPs")
    internal = str(cluster_ips[0]) if cluster_ips else "<none>"
    ports = service_ports(items(service, "spec", "ports")) or "<none>"
    return [
        name_of(service),
        text(service, "spec", "type"),
        internal,
        service_external_ip(service),
        ports,
        age_of(service, now),
        _format_labels(dig(service, "spec", "selector")),
    ]


# --- endpoints ----------------------------------------------------------------------------

ENDPOINTS_COLUMNS = [
    NAME_COLUMN,
    column(
        "Endpoints",
        description="The set of all endpoints is the union of all subsets. Addresses are placed "
        "into subsets according to the IPs they share.",
    ),
    AGE_COLUMN,
]


def _join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _with_more(shown: list[str], count: int, *, empty: str) -> str:
    """``listWithMoreString``: the values shown, ``+ N more...`` for the rest."""
    joined = ",".join(shown)
    if count > len(shown):
        return f"{joined} + {count - len(shown)} more..."
    return joined or empty


def format_endpoints(endpoints: Obj) -> str:
    """``formatEndpoints`` (every port): ``ip:port`` for each ready address and port, the
    first three of them, ``<none>`` without subsets."""
    subsets = items(endpoints, "subsets")
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [str(a.get("ip", "")) for a in items(subset, "addresses")]
        ports = items(subset, "ports")
        if not ports:  # a headless service without ports
            count += len(addresses)
            shown += addresses[: _MORE_AFTER - len(shown)]
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == _MORE_AFTER:
                    break
                shown.append(_join_host_port(address, int(port.get("port", 0))))
    joined = ",".join(shown)
    return f"{joined} + {count - _MORE_AFTER} more..." if count > _MORE_AFTER else joined


def endpoints_cells(endpoints: Obj, now: datetime) -> list[Any]:
    return [name_of(endpoints), format_endpoints(endpoints), age_of(endpoints, now)]


# --- endpoint slices ----------------------------------------------------------------------

ENDPOINT_SLICE_COLUMNS = [
    NAME_COLUMN,
    column(
        "AddressType",
        description="addressType specifies the type of address carried by this EndpointSlice. "
        "All addresses in this slice must be the same type. This field is immutable after "
        "creation.",
    ),
    column(
        "Ports",
        description="ports specifies the list of network ports exposed by each endpoint in "
        "this slice. Each port must have a unique name.",
    ),
    column(
        "Endpoints",
        description="endpoints is a list of unique endpoints in this slice. Each slice may "
        "include a maximum of 1000 endpoints.",
    ),
    AGE_COLUMN,
]


def format_slice_ports(ports: list[Any]) -> str:
    """``formatDiscoveryPorts``: each port's number (its name if it has none, else ``*``)."""
    shown = []
    for port in ports[:_MORE_AFTER]:
        number, name = port.get("port"), port.get("name")
        shown.append(str(number) if number is not None else name if name is not None else "*")
    return _with_more(shown, len(ports), empty="<unset>")


def format_slice_endpoints(endpoints: list[Any]) -> str:
    """``formatDiscoveryEndpoints``: every endpoint's addresses, the first three."""
    addresses = [str(a) for e in endpoints for a in (e.get("addresses") or [])]
    return _with_more(addresses[:_MORE_AFTER], len(addresses), empty="<unset>")


def endpoint_slice_cells(endpoint_slice: Obj, now: datetime) -> list[Any]:
    return [
        name_of(endpoint_slice),
        text(endpoint_slice, "addressType"),
        format_slice_ports(items(endpoint_slice, "ports")),
        format_slice_endpoints(items(endpoint_slice, "endpoints")),
        age_of(endpoint_slice, now),
    ]


# --- ingresses ----------------------------------------------------------------------------

INGRESS_COLUMNS = [
    NAME_COLUMN,
    column("Class", description="The name of the IngressClass resource."),
    column("Hosts", description="Hosts that incoming requests are matched against."),
    column(
        "Address", description="Address is a list containing ingress points for the load-balancer"
    ),
    column("Ports", description="Ports of TLS configurations that open"),
    AGE_COLUMN,
]


def format_ingress_hosts(rules: list[Any]) -> str:
    """``formatHosts``: the first three rules' hosts, ``*`` when none has one."""
    hosts = [str(rule.get("host")) for rule in rules[:_MORE_AFTER] if rule.get("host")]
    if not hosts:
        return "*"
    joined = ",".join(hosts)
    if len(rules) > _MORE_AFTER:
        return f"{joined} + {len(rules) - _MORE_AFTER} more..."
    return joined


def format_load_balancer(status: Mapping[str, Any] | None, *, wide: bool = False) -> str:
    """``ingressLoadBalancerStatusStringer``: IPs and hostnames, cut at 16 characters."""
    addresses = []
    for point in items(status, "ingress"):
        addresses += [str(point[key]) for key in ("ip", "hostname") if point.get(key)]
    joined = ",".join(addresses)
    return joined[:13] + "..." if not wide and len(joined) > 16 else joined


def ingress_cells(ingress: Obj, now: datetime) -> list[Any]:
    spec = dig(ingress, "spec") or {}
    return [
        name_of(ingress),
        spec.get("ingressClassName") or "<none>",
        format_ingress_hosts(items(spec, "rules")),
        format_load_balancer(dig(ingress, "status", "loadBalancer")),
        "80, 443" if items(spec, "tls") else "80",
        age_of(ingress, now),
    ]


INGRESS_CLASS_COLUMNS = [
    NAME_COLUMN,
    column(
        "Controller",
        description="Controller that is responsible for handling this class",
    ),
    column(
        "Parameters",
        description="A reference to a resource with additional parameters",
    ),
    AGE_COLUMN,
]


def ingress_class_cells(ingress_class: Obj, now: datetime) -> list[Any]:
    parameters = dig(ingress_class, "spec", "parameters")
    shown = "<none>"
    if isinstance(parameters, Mapping):
        shown = str(parameters.get("kind", ""))
        if parameters.get("apiGroup") is not None:
            shown += "." + str(parameters["apiGroup"])
        shown += "/" + str(parameters.get("name", ""))
    return [
        name_of(ingress_class),
        text(ingress_class, "spec", "controller"),
        shown,
        age_of(ingress_class, now),
    ]


SERVICE_PRINTER = Printer(SERVICE_COLUMNS, service_cells)
ENDPOINTS_PRINTER = Printer(ENDPOINTS_COLUMNS, endpoints_cells)
ENDPOINT_SLICE_PRINTER = Printer(ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells)
INGRESS_PRINTER = Printer(INGRESS_COLUMNS, ingress_cells)
INGRESS_CLASS_PRINTER = Printer(INGRESS_CLASS_COLUMNS, ingress_class_cells)
