"""The networking.k8s.io API group's kinds, declared whole (``KINDS``): Ingress and
IngressClass.

An Ingress routes HTTP by host and path to Services; an IngressClass names the controller
that implements the Ingresses of its class. Kubernetes itself ships no ingress controller:
without one installed, Ingresses are stored, validated and listed but route nothing, and
setpoint is the same (it ships none either). They are served so that manifests and tools
written for Kubernetes work unchanged: a file holding a Deployment, a Service and an Ingress
applies whole, and ``kubectl apply --prune``'s default allow-list names Ingress.

Validation is ``ValidateIngressCreate``/``ValidateIngressSpec`` and ``ValidateIngressClass``
of ``pkg/apis/networking/validation``: either a default backend or rules; hosts are DNS
names (a leading ``*.`` wildcard allowed), not IPs; each HTTP path has a ``pathType``
(Exact and Prefix paths are absolute and free of ``//``, ``/./``, ``/../`` and encoded
slashes); each backend is a Service (name, and a port name or number) or a resource, not
both; an IngressClass names its controller as a domain-prefixed path, which never changes.
"""

from __future__ import annotations

import ipaddress

from setpoint.meta.validation import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    wildcard_dns1123_subdomain_errors,
)
from setpoint.resources.checks import immutable
from setpoint.resources.containers import PORT_RANGE, port_name_errors
from setpoint.resources.fielderrors import (
    FieldError,
    invalid_rendered,
    invalid_value,
    not_supported,
    required,
    too_long,
)
from setpoint.resources.printers.network import INGRESS_CLASS_PRINTER, INGRESS_PRINTER
from setpoint.resources.registry import SPEC_AND_STATUS, Obj, ResourceType

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
_ANNOTATION_INGRESS_CLASS = "kubernetes.io/ingress.class"
_MAX_CONTROLLER_LENGTH = 250


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _validate_ingress(ingress: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateIngressCreate`` / ``ValidateIngressUpdate``."""
    spec = ingress.get("spec") or {}
    errors: list[FieldError] = []
    rules = spec.get("rules") or []
    default_backend = spec.get("defaultBackend")
    if not rules and default_backend is None:
        detail = "either `defaultBackend` or `rules` must be specified"
        errors.append(invalid_rendered("spec", "[]networking.IngressRule(nil)", detail))
    if default_backend is not None:
        errors += _backend_errors(default_backend, "spec.defaultBackend")
    for i, rule in enumerate(rules):
        errors += _rule_errors(rule or {}, f"spec.rules[{i}]")
    for i, tls in enumerate(spec.get("tls") or []):
        for j, host in enumerate((tls or {}).get("hosts") or []):
            checks = wildcard_dns1123_subdomain_errors if "*" in host else dns1123_subdomain_errors
            path = f"spec.tls[{i}].hosts[{j}]"
            errors += [invalid_value(path, host, m) for m in checks(host)]
        secret_name = (tls or {}).get("secretName") or ""
        if secret_name:
            path = f"spec.tls[{i}].secretName"
            errors += [
                invalid_value(path, secret_name, m) for m in dns1123_subdomain_errors(secret_name)
            ]
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        path = "spec.ingressClassName"
        errors += [invalid_value(path, class_name, m) for m in dns1123_subdomain_errors(class_name)]
    annotation = ((ingress.get("metadata") or {}).get("annotations") or {}).get(
        _ANNOTATION_INGRESS_CLASS
    )
    if (
        old is None
        and annotation is not None
        and class_name is not None
        and annotation != class_name
    ):
        path = f"annotations.{_ANNOTATION_INGRESS_CLASS}"
        errors.append(
            invalid_value(path, annotation, "must match `ingressClassName` when both are specified")
        )
    return errors


def _rule_errors(rule: Obj, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    host = rule.get("host") or ""
    if host:
        if _is_ip(host):
            errors.append(
                invalid_value(f"{path}.host", host, "must be a DNS name, not an IP address")
            )
        checks = wildcard_dns1123_subdomain_errors if "*" in host else dns1123_subdomain_errors
        errors += [invalid_value(f"{path}.host", host, m) for m in checks(host)]
    http = rule.get("http")
    if http is not None:
        paths = http.get("paths") or []
        if not paths:
            errors.append(required(f"{path}.http.paths"))
        for i, http_path in enumerate(paths):
            errors += _http_path_errors(http_path or {}, f"{path}.http.paths[{i}]")
    return errors


def _http_path_errors(http_path: Obj, path: str) -> list[FieldError]:
    path_type = http_path.get("pathType")
    if path_type is None:
        return [required(f"{path}.pathType", "pathType must be specified")]
    errors: list[FieldError] = []
    value = http_path.get("path") or ""
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errors.append(invalid_value(f"{path}.path", value, "must be an absolute path"))
        if value:
            for sequence in _INVALID_PATH_SEQUENCES:
                if sequence in value:
                    detail = f"must not contain '{sequence}'"
                    errors.append(invalid_value(f"{path}.path", value, detail))
            for suffix in _INVALID_PATH_SUFFIXES:
                if value.endswith(suffix):
                    detail = f"cannot end with '{suffix}'"
                    errors.append(invalid_value(f"{path}.path", value, detail))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errors.append(invalid_value(f"{path}.path", value, "must be an absolute path"))
    else:
        errors.append(not_supported(f"{path}.pathType", path_type, PATH_TYPES))
    return errors + _backend_errors(http_path.get("backend") or {}, f"{path}.backend")


def _backend_errors(backend: Obj, path: str) -> list[FieldError]:
    """``validateIngressBackend``: a Service (name and port) or a resource, not both."""
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid_value(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        errors = []
        if not resource.get("kind"):
            errors.append(required(f"{path}.resource.kind"))
        if not resource.get("name"):
            errors.append(required(f"{path}.resource.name"))
        return errors
    if service is None:
        return [invalid_value(path, "", "resource or service backend is required")]
    errors = []
    name = service.get("name") or ""
    if not name:
        errors.append(required(f"{path}.service.name"))
    else:
        errors += [
            invalid_value(f"{path}.service.name", name, m) for m in dns1123_label_errors(name)
        ]
    port = service.get("port") or {}
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        errors.append(invalid_value(path, "", "cannot set both port name & port number"))
    elif port_name:
        errors += [
            invalid_value(f"{path}.service.port.name", port_name, m)
            for m in port_name_errors(port_name)
        ]
    elif number:
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(invalid_value(f"{path}.service.port.number", number, PORT_RANGE))
    else:
        errors.append(required(path, "port name or number is required"))
    return errors


def _validate_ingress_class(ingress_class: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateIngressClass`` (+ ``validateIngressClassSpecUpdate``)."""
    spec = ingress_class.get("spec") or {}
    controller = spec.get("controller") or ""
    errors: list[FieldError] = []
    if old is not None:
        old_controller = (old.get("spec") or {}).get("controller")
        errors += immutable(controller, old_controller, "spec.controller")
    if not controller:
        return [*errors, required("spec.controller")]
    if len(controller) > _MAX_CONTROLLER_LENGTH:
        errors.append(too_long("spec.controller", _MAX_CONTROLLER_LENGTH))
    errors += _domain_prefixed_path_errors(controller, "spec.controller")
    parameters = spec.get("parameters")
    if parameters is not None:
        for key in ("kind", "name"):
            if not parameters.get(key):
                errors.append(required(f"spec.parameters.{key}"))
        scope = parameters.get("scope")
        if scope is not None and scope not in ("Cluster", "Namespace"):
            errors.append(not_supported("spec.parameters.scope", scope, ("Cluster", "Namespace")))
    return errors


def _domain_prefixed_path_errors(value: str, path: str) -> list[FieldError]:
    """``IsDomainPrefixedPath``: ``example.com/path``, the domain a DNS subdomain."""
    domain, slash, rest = value.partition("/")
    if not slash or not rest:
        return [
            invalid_value(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')
        ]
    return [invalid_value(path, domain, m) for m in dns1123_subdomain_errors(domain)]


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="networking.k8s.io",
        version="v1",
        kind="Ingress",
        plural="ingresses",
        singular="ingress",
        namespaced=True,
        short_names=("ing",),
        subresources=("status",),
        definition="io.k8s.api.networking.v1.Ingress",
        printer=INGRESS_PRINTER,
        protobuf="k8s.io.api.networking.v1.Ingress",
        has_status=True,
        tracks_generation=True,
        always_encoded=SPEC_AND_STATUS,
        validator=_validate_ingress,
    ),
    ResourceType(
        group="networking.k8s.io",
        version="v1",
        kind="IngressClass",
        plural="ingressclasses",
        singular="ingressclass",
        namespaced=False,
        definition="io.k8s.api.networking.v1.IngressClass",
        printer=INGRESS_CLASS_PRINTER,
        protobuf="k8s.io.api.networking.v1.IngressClass",
        tracks_generation=True,
        always_encoded={"spec": {}},
        validator=_validate_ingress_class,
    ),
)
