"""The discovery.k8s.io API group: EndpointSlice, declared whole (``KINDS``).

An EndpointSlice lists some of the endpoints (addresses, with readiness conditions, the node
and the pod behind each) of a Service and the ports they serve; a Service's slices carry the
``kubernetes.io/service-name`` label. The EndpointSlice controller writes them for Services
with a selector (``setpoint.controllers.endpointslice``); the API server writes the
``kubernetes`` Service's. Defaults and validation follow ``pkg/apis/discovery``: ports default
to name ``""`` and protocol TCP; ``addressType`` is IPv4, IPv6 or FQDN and cannot change;
at most 1000 endpoints of 1 to 100 addresses each, of the slice's type, and 100 uniquely named
ports.
"""

from __future__ import annotations

import ipaddress

from setpoint.meta.validation import dns1123_label_errors, dns1123_subdomain_errors
from setpoint.resources.checks import immutable, kube_finalizer_errors
from setpoint.resources.containers import PORT_RANGE, one_of
from setpoint.resources.fielderrors import (
    FieldError,
    duplicate,
    invalid_value,
    required,
    too_many,
)
from setpoint.resources.printers.network import ENDPOINT_SLICE_PRINTER
from setpoint.resources.registry import Obj, ResourceType

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 100


def _default_slice(endpoint_slice: Obj) -> None:
    for port in endpoint_slice.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("name", "")
            port.setdefault("protocol", "TCP")


def _address_errors(address: str, address_type: str, path: str) -> list[str]:
    if address_type == "FQDN":
        return dns1123_subdomain_errors(address)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return ["must be a valid IP address"]
    if parsed.version != (4 if address_type == "IPv4" else 6):
        return [f"must be an {address_type} address"]
    return []


def _validate_slice(endpoint_slice: Obj, old: Obj | None) -> list[FieldError]:
    errors = kube_finalizer_errors(endpoint_slice)
    address_type = endpoint_slice.get("addressType", "")
    errors += one_of(address_type, "addressType", ADDRESS_TYPES)
    if old is not None:
        errors += immutable(address_type, old.get("addressType", ""), "addressType")
    endpoints = endpoint_slice.get("endpoints") or []
    if len(endpoints) > MAX_ENDPOINTS:
        errors.append(too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
    for i, endpoint in enumerate(endpoints):
        path = f"endpoints[{i}]"
        addresses = endpoint.get("addresses") or []
        if not addresses:
            errors.append(required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            errors.append(too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
        elif address_type in ADDRESS_TYPES:
            for j, address in enumerate(addresses):
                for message in _address_errors(address, address_type, f"{path}.addresses[{j}]"):
                    errors.append(invalid_value(f"{path}.addresses[{j}]", address, message))
        hostname = endpoint.get("hostname")
        if hostname:
            errors += [
                invalid_value(f"{path}.hostname", hostname, m)
                for m in dns1123_label_errors(hostname)
            ]
    ports = endpoint_slice.get("ports") or []
    if len(ports) > MAX_PORTS:
        errors.append(too_many("ports", len(ports), MAX_PORTS))
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            errors += [invalid_value(f"{path}.name", name, m) for m in dns1123_label_errors(name)]
        if name in names:
            errors.append(duplicate(f"{path}.name", name))
        names.add(name)
        number = port.get("port")
        if number is not None and not 1 <= number <= 65535:
            errors.append(invalid_value(f"{path}.port", number, PORT_RANGE))
        errors += one_of(port.get("protocol") or "", f"{path}.protocol", ("SCTP", "TCP", "UDP"))
    return errors


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="discovery.k8s.io",
        version="v1",
        kind="EndpointSlice",
        plural="endpointslices",
        singular="endpointslice",
        namespaced=True,
        definition="io.k8s.api.discovery.v1.EndpointSlice",
        printer=ENDPOINT_SLICE_PRINTER,
        protobuf="k8s.io.api.discovery.v1.EndpointSlice",
        tracks_generation=True,
        defaulter=_default_slice,
        validator=_validate_slice,
    ),
)
