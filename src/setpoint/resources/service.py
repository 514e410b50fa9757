"""Services and Endpoints: their defaults, validation and update strategy, and the facts about
a Service that the API server's allocators and the controllers read.

A Service names a set of pods (``spec.selector``) and the ports it offers for them; the API
server gives it a virtual IP (``spec.clusterIP``, from ``--service-cluster-ip-range``) and, for
``type: NodePort`` (and ``LoadBalancer``), a port on every node (``nodePort``, from
``--service-node-port-range``). Allocation lives in :mod:`setpoint.api.services`, because it
needs the store; what is here is pure:

* **Defaults** (``SetDefaults_Service``): ``type: ClusterIP``, ``sessionAffinity: None``,
  ``internalTrafficPolicy: Cluster``, each port's ``protocol: TCP`` and ``targetPort`` equal
  to its ``port``; ``externalTrafficPolicy: Cluster`` for NodePort and LoadBalancer,
  ``allocateLoadBalancerNodePorts: true`` for LoadBalancer; ``clusterIPs`` follows a given
  ``clusterIP``.
* **Validation** (``ValidateService`` / ``ValidateServiceUpdate`` of
  ``pkg/apis/core/validation``): type, ports (number, protocol, names unique and required when
  there are several, no duplicate port/protocol or nodePort), the cluster IP (``None``, empty
  or an IP, immutable once set), selector labels, session affinity, ExternalName.
* **Update strategy** (the Service REST's ``patchAllocatedValues`` and the strategy's
  ``dropTypeDependentFields``): an update that omits the allocated ``clusterIP`` or a port's
  ``nodePort`` keeps the old ones, and one that changes the type to one that needs them no
  longer drops them, so they can be released.

Endpoints get the structural checks of ``ValidateEndpoints`` (addresses are IPs, ports are
numbers with protocols). setpoint allows loopback addresses in them, unlike Kubernetes: a
single-machine cluster serves its API on 127.0.0.1, and the ``kubernetes`` Service's
Endpoints say so.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from setpoint.meta.validation import dns1123_label_errors, dns1123_subdomain_errors
from setpoint.resources.checks import kube_finalizer_errors, label_errors
from setpoint.resources.containers import PORT_RANGE, one_of, port_errors
from setpoint.resources.fielderrors import (
    FieldError,
    duplicate,
    forbidden,
    invalid_value,
    not_supported,
    required,
)
from setpoint.resources.registry import Obj

CLUSTER_IP_NONE = "None"
SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
IP_FAMILIES = ("IPv4", "IPv6")
DEFAULT_CLIENT_IP_TIMEOUT = 10800  # sessionAffinityConfig.clientIP.timeoutSeconds
MAX_CLIENT_IP_TIMEOUT = 86400


# ------------------------------------------------------------------------------- facts


def service_type(svc: Obj) -> str:
    return str((svc.get("spec") or {}).get("type") or "ClusterIP")


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == CLUSTER_IP_NONE


def needs_cluster_ip(svc: Obj) -> bool:
    """Every type but ExternalName has a cluster IP (or is headless)."""
    return service_type(svc) != "ExternalName"


def needs_node_ports(svc: Obj) -> bool:
    return service_type(svc) in ("NodePort", "LoadBalancer")


def allocates_node_ports(svc: Obj) -> bool:
    """Whether ports without a ``nodePort`` get one (``shouldAllocateNodePorts``): NodePort
    always, LoadBalancer unless ``allocateLoadBalancerNodePorts`` is false."""
    spec = svc.get("spec") or {}
    if service_type(svc) == "NodePort":
        return True
    return service_type(svc) == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True)


def cluster_ip(svc: Obj) -> str:
    """The Service's allocated virtual IP ("" when it has none or is headless)."""
    value = str((svc.get("spec") or {}).get("clusterIP") or "")
    return "" if value == CLUSTER_IP_NONE else value


def node_ports(svc: Obj) -> set[int]:
    """Every nodePort the Service's ports hold."""
    ports = (svc.get("spec") or {}).get("ports") or []
    return {int(p["nodePort"]) for p in ports if isinstance(p, dict) and p.get("nodePort")}


def ip_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


# ------------------------------------------------------------------------------ defaults


def default_service(svc: Obj) -> None:
    """``SetDefaults_Service`` (in place)."""
    spec = svc.setdefault("spec", {})
    spec.setdefault("sessionAffinity", "None")
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    kind = spec["type"]
    for port in spec.get("ports") or []:
        if not isinstance(port, dict):
            continue
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port", 0)
    if kind in ("NodePort", "LoadBalancer") and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if kind != "ExternalName" and not spec.get("internalTrafficPolicy"):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if spec.get("sessionAffinity") == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        config.setdefault("timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT)
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif spec.get("clusterIPs") and not spec.get("clusterIP"):
        spec["clusterIP"] = spec["clusterIPs"][0]
    status = svc.setdefault("status", {})
    status.setdefault("loadBalancer", {})


def prepare_service_update(svc: Obj, old: Obj) -> None:
    """What an update keeps or drops of the allocated values (in place): Kubernetes'
    ``patchAllocatedValues`` and ``dropTypeDependentFields``."""
    spec, old_spec = svc.setdefault("spec", {}), old.get("spec") or {}
    if needs_cluster_ip(old) and needs_cluster_ip(svc):
        if not spec.get("clusterIP") and not spec.get("clusterIPs"):
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if key in old_spec and key not in spec:
                    spec[key] = old_spec[key]
    elif needs_cluster_ip(old) and not needs_cluster_ip(svc):
        if spec.get("clusterIP") == old_spec.get("clusterIP"):
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(key, None)
        for key in ("internalTrafficPolicy",):
            if spec.get(key) == old_spec.get(key):
                spec.pop(key, None)
    if needs_node_ports(old) and needs_node_ports(svc):
        _keep_node_ports(spec, old_spec)
    elif needs_node_ports(old) and not needs_node_ports(svc):
        if node_ports(svc) == node_ports(old):
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
        if spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
            spec.pop("externalTrafficPolicy", None)


def _keep_node_ports(spec: Obj, old_spec: Obj) -> None:
    """Ports sent without their nodePort keep the one of the old port of the same name,
    unless another port of the new spec already uses it."""
    old_ports = [p for p in old_spec.get("ports") or [] if isinstance(p, dict)]
    new_ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    old_used = {p.get("nodePort") for p in old_ports if p.get("nodePort")}
    new_used = {p.get("nodePort") for p in new_ports if p.get("nodePort")}
    taken = old_used & new_used
    by_name = {p.get("name", ""): p.get("nodePort") for p in old_ports}
    for port in new_ports:
        if not port.get("nodePort"):
            previous = by_name.get(port.get("name", ""))
            if previous and previous not in taken:
                port["nodePort"] = previous


# ---------------------------------------------------------------------------- validation


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_service(svc: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateService``, and on update ``ValidateServiceUpdate``'s immutable cluster IP."""
    errors = kube_finalizer_errors(svc)
    spec = svc.get("spec") or {}
    kind = spec.get("type", "")
    errors += one_of(kind, "spec.type", SERVICE_TYPES)
    errors += _cluster_ip_errors(spec, kind)
    errors += _ports_errors(spec, kind)
    if spec.get("selector"):
        errors += label_errors(spec["selector"], "spec.selector")
    errors += _affinity_errors(spec)
    for key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        value = spec.get(key)
        if value and value not in TRAFFIC_POLICIES:
            errors.append(not_supported(f"spec.{key}", value, TRAFFIC_POLICIES))
    if spec.get("externalTrafficPolicy") and kind not in ("NodePort", "LoadBalancer"):
        errors.append(
            invalid_value(
                "spec.externalTrafficPolicy",
                spec["externalTrafficPolicy"],
                "may only be set for externally-accessible services",
            )
        )
    for i, ip in enumerate(spec.get("externalIPs") or []):
        if not _is_ip(ip):
            errors.append(invalid_value(f"spec.externalIPs[{i}]", ip, "must be a valid IP address"))
    if old is not None:
        errors += _cluster_ip_update_errors(svc, old)
    return errors


def _cluster_ip_errors(spec: Obj, kind: str) -> list[FieldError]:
    errors: list[FieldError] = []
    ip = spec.get("clusterIP", "")
    ips = spec.get("clusterIPs") or []
    if kind == "ExternalName":
        if ip:
            errors.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        if ips:
            errors.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.get("ipFamilies"):
            errors.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy"):
            errors.append(
                forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
            )
        external = spec.get("externalName", "")
        if not external:
            errors.append(required("spec.externalName"))
        else:
            # a CNAME, which may end in a dot to say it is fully qualified
            cname = external.removesuffix(".")
            errors += [
                invalid_value("spec.externalName", cname, m)
                for m in dns1123_subdomain_errors(cname)
            ]
        return errors
    if ips and ip != ips[0]:
        errors.append(invalid_value("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    if len(ips) > 2:
        errors.append(invalid_value("spec.clusterIPs", ips, "may only hold up to 2 values"))
    for i, value in enumerate(ips):
        if value == CLUSTER_IP_NONE:
            if i > 0:
                errors.append(
                    invalid_value(f"spec.clusterIPs[{i}]", value, "may not be set to 'None'")
                )
            elif kind in ("NodePort", "LoadBalancer"):
                errors.append(
                    invalid_value(
                        "spec.clusterIPs[0]", value, f"may not be set to 'None' for {kind} services"
                    )
                )
        elif not _is_ip(value):
            errors.append(
                invalid_value(
                    f"spec.clusterIPs[{i}]", value, "must be empty, 'None', or a valid IP address"
                )
            )
    for i, family in enumerate(spec.get("ipFamilies") or []):
        if family not in IP_FAMILIES:
            errors.append(not_supported(f"spec.ipFamilies[{i}]", family, IP_FAMILIES))
    policy = spec.get("ipFamilyPolicy")
    if policy and policy not in IP_FAMILY_POLICIES:
        errors.append(not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    return errors


def _ports_errors(spec: Obj, kind: str) -> list[FieldError]:
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    errors: list[FieldError] = []
    if not ports and spec.get("clusterIP") != CLUSTER_IP_NONE and kind != "ExternalName":
        errors.append(required("spec.ports"))
    errors += _named_ports_errors(ports, "spec.ports")
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        number = port.get("port", 0)
        errors += port_errors(port.get("targetPort"), f"{path}.targetPort")
        node_port = port.get("nodePort") or 0
        if node_port:
            if kind == "ClusterIP":
                errors.append(
                    forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'")
                )
            elif not 1 <= node_port <= 65535:
                errors.append(invalid_value(f"{path}.nodePort", node_port, PORT_RANGE))
            key = (port.get("protocol", ""), node_port)
            if key in seen_node_ports:
                errors.append(duplicate(f"{path}.nodePort", node_port))
            seen_node_ports.add(key)
        key = (port.get("protocol", ""), number)
        if key in seen_ports:
            errors.append(
                FieldError(
                    "FieldValueDuplicate",
                    path,
                    f'Duplicate value: core.ServicePort{{Name:"", Protocol:"{key[0]}", '
                    f"AppProtocol:(*string)(nil), Port:{key[1]}, TargetPort:intstr.IntOrString"
                    '{Type:0, IntVal:0, StrVal:""}, NodePort:0}',
                )
            )
        seen_ports.add(key)
    return errors


def _affinity_errors(spec: Obj) -> list[FieldError]:
    affinity = spec.get("sessionAffinity", "")
    errors = one_of(affinity, "spec.sessionAffinity", SESSION_AFFINITIES)
    config = spec.get("sessionAffinityConfig")
    if affinity == "None" and config:
        errors.append(
            forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")
        )
    if affinity == "ClientIP":
        timeout = ((config or {}).get("clientIP") or {}).get("timeoutSeconds")
        if timeout is not None and not 0 < timeout <= MAX_CLIENT_IP_TIMEOUT:
            errors.append(
                invalid_value(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    timeout,
                    f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}",
                )
            )
    return errors


def _cluster_ip_update_errors(svc: Obj, old: Obj) -> list[FieldError]:
    """The cluster IP cannot change once set, except by going to or from ExternalName."""
    if not needs_cluster_ip(svc) or not needs_cluster_ip(old):
        return []
    old_ip = (old.get("spec") or {}).get("clusterIP", "")
    new_ip = (svc.get("spec") or {}).get("clusterIP", "")
    if old_ip and new_ip != old_ip:
        return [invalid_value("spec.clusterIP", new_ip, "field is immutable")]
    return []


# ------------------------------------------------------------------------------ Endpoints


def validate_endpoints(endpoints: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateEndpoints``' structural checks (see the module's docs for loopback)."""
    errors = kube_finalizer_errors(endpoints)
    for i, subset in enumerate(endpoints.get("subsets") or []):
        path = f"subsets[{i}]"
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(key) or []):
                ip = address.get("ip", "")
                if not _is_ip(ip):
                    errors.append(
                        invalid_value(f"{path}.{key}[{j}].ip", ip, "must be a valid IP address")
                    )
        errors += _named_ports_errors(subset.get("ports") or [], f"{path}.ports")
    return errors


def _named_ports_errors(ports: list[Any], path: str) -> list[FieldError]:
    """What a Service's and an Endpoints' ports share: names (required when there are
    several, DNS labels, unique), numbers and protocols."""
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        item = f"{path}[{i}]"
        name = port.get("name", "")
        if len(ports) > 1 and not name:
            errors.append(required(f"{item}.name"))
        elif name:
            errors += [invalid_value(f"{item}.name", name, m) for m in dns1123_label_errors(name)]
            if name in names:
                errors.append(duplicate(f"{item}.name", name))
            names.add(name)
        number = port.get("port", 0)
        if not 1 <= number <= 65535:
            errors.append(invalid_value(f"{item}.port", number, PORT_RANGE))
        errors += one_of(port.get("protocol", ""), f"{item}.protocol", PROTOCOLS)
    return errors


def default_endpoints(endpoints: Obj) -> None:
    """``SetDefaults_EndpointPort``: ports default to TCP."""
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            if isinstance(port, dict) and not port.get("protocol"):
                port["protocol"] = "TCP"
