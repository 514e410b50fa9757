"""Containers and volumes of a pod spec: the checks Kubernetes' ``ValidatePodSpec`` makes on them.

Every container, regular or init, needs a DNS-label name unique in the pod and an image, and
its ports, environment, volume mounts, resources, probes and lifecycle hooks are checked the
way Kubernetes checks them, with its messages and field paths (including a few odd paths that
Kubernetes itself reports, noted where they occur). Volumes need unique DNS-label names and
exactly one source; a mount may only name a volume that passed its own checks.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from typing import Any

from setpoint.meta.quantity import (
    Quantity,
    QuantityError,
    canonical,
    parse_quantity,
    parse_quantity_or_none,
)
from setpoint.meta.validation import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
)
from setpoint.resources.checks import nonnegative
from setpoint.resources.fielderrors import (
    FieldError,
    duplicate,
    forbidden,
    invalid_value,
    not_found,
    not_supported,
    required,
)
from setpoint.resources.registry import Obj

PORT_RANGE = "must be between 1 and 65535, inclusive"
FILE_MODE = "must be a number between 0 and 0777 (octal), both inclusive"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
QOS_RESOURCES = ("cpu", "memory")
_QUIRKY_SOURCE_PATHS = {"cephfs": "cephFS", "downwardAPI": "downwarAPI"}
VOLUME_SOURCES = (
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
)
"""Volume source keys in the order Kubernetes checks them."""
_ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_DOWNWARD_LABELS = (
    *_ENV_FIELD_PATHS,
    "metadata.annotations",
    "metadata.labels",
    "spec.restartPolicy",
    "spec.schedulerName",
    "status.phase",
    "spec.host",
)
_ENV_RESOURCE_FIELDS = tuple(
    f"{kind}.{name}"
    for kind in ("limits", "requests")
    for name in ("cpu", "ephemeral-storage", "memory")
)
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_STANDARD_RESOURCES = frozenset(
    {
        "cpu",
        "memory",
        "ephemeral-storage",
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "persistentvolumeclaims",
        "configmaps",
        "services.nodeports",
        "services.loadbalancers",
        "requests.storage",
    }
) | {f"{kind}.{name}" for kind in ("requests", "limits") for name in _CONTAINER_RESOURCES}
_RELAXED_ENV_NAME = (
    "a valid environment variable name must consist only of printable ASCII characters "
    "other than '='"
)


def validate_containers(spec: Obj, volumes: set[str], path: str) -> list[FieldError]:
    """``validateContainers``: at least one, uniquely named; ``volumes`` are the valid ones."""
    containers = spec.get("containers") or []
    list_path = f"{path}.containers"
    if not containers:
        return [required(list_path)]
    grace = spec.get("terminationGracePeriodSeconds")
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, container in enumerate(containers):
        item = f"{list_path}[{i}]"
        errors += _validate_container(container, volumes, item)
        name = container.get("name", "")
        if name in names:
            errors.append(duplicate(f"{item}.name", name))
        names.add(name)
        errors += _validate_hooks_and_probes(container, grace, item)
        if "restartPolicy" in container:
            errors.append(
                forbidden(f"{item}.restartPolicy", "may not be set for non-init containers")
            )
    return errors + _host_port_conflicts(containers, list_path)


def validate_init_containers(spec: Obj, volumes: set[str], path: str) -> list[FieldError]:
    """``validateInitContainers``: only sidecars (``restartPolicy: Always``) take probes and
    lifecycle hooks; names are unique across regular and init containers."""
    names = {c.get("name", "") for c in spec.get("containers") or []}
    grace = spec.get("terminationGracePeriodSeconds")
    list_path = f"{path}.initContainers"
    errors: list[FieldError] = []
    for i, container in enumerate(spec.get("initContainers") or []):
        item = f"{list_path}[{i}]"
        errors += _validate_container(container, volumes, item)
        policy = container.get("restartPolicy")
        if policy is not None and policy != "Always":
            errors.append(not_supported(f"{item}.restartPolicy", policy, ["Always"]))
        name = container.get("name", "")
        if name in names:
            errors.append(duplicate(f"{item}.name", name))
        elif name:
            names.add(name)
        errors += _host_port_conflicts([container], list_path)
        if policy == "Always":
            errors += _validate_hooks_and_probes(container, grace, item)
            continue
        for key in ("lifecycle", *PROBES):
            if container.get(key) is not None:
                errors.append(
                    forbidden(
                        f"{item}.{key}",
                        "may not be set for init containers without restartPolicy=Always",
                    )
                )
    return errors


# what an ephemeral container may not set (Kubernetes lists what it may, in
# ``allowedEphemeralContainerFields``): it is not part of the workload, so nothing that
# serves the workload (ports, probes, hooks, resources, restarts) is allowed
_EPHEMERAL_FORBIDDEN_FIELDS = (
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "restartPolicyRules",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
)
EPHEMERAL_FORBIDDEN = "cannot be set for an Ephemeral Container"


def validate_ephemeral_containers(spec: Obj, volumes: set[str], path: str) -> list[FieldError]:
    """``validateEphemeralContainers``: each is checked as any container, named uniquely
    among all the pod's containers, targets a regular or init container if it names one,
    and sets none of the fields that would make it part of the workload."""
    others = {
        c.get("name", "") for key in ("containers", "initContainers") for c in spec.get(key) or []
    }
    names = set(others)
    errors: list[FieldError] = []
    for i, container in enumerate(spec.get("ephemeralContainers") or []):
        item = f"{path}.ephemeralContainers[{i}]"
        errors += _validate_container(container, volumes, item)
        name = container.get("name", "")
        if name in names:
            errors.append(duplicate(f"{item}.name", name))
        else:
            names.add(name)
        target = container.get("targetContainerName") or ""
        if target and target not in others:
            errors.append(not_found(f"{item}.targetContainerName", target))
        for key in _EPHEMERAL_FORBIDDEN_FIELDS:
            if container.get(key) not in (None, {}, [], ""):
                errors.append(forbidden(f"{item}.{key}", EPHEMERAL_FORBIDDEN))
        for j, mount in enumerate(container.get("volumeMounts") or []):
            for key in ("subPath", "subPathExpr"):
                if mount.get(key):
                    errors.append(forbidden(f"{item}.volumeMounts[{j}].{key}", EPHEMERAL_FORBIDDEN))
    return errors


def _validate_container(container: Obj, volumes: set[str], path: str) -> list[FieldError]:
    """``validateContainerCommon``."""
    errors: list[FieldError] = []
    name = container.get("name", "")
    if not name:
        errors.append(required(f"{path}.name"))
    errors += name_errors(name, f"{path}.name", dns1123_label_errors)
    if not container.get("image"):
        errors.append(required(f"{path}.image"))
    errors += one_of(
        container.get("terminationMessagePolicy", ""),
        f"{path}.terminationMessagePolicy",
        ("File", "FallbackToLogsOnError"),
    )
    errors += _validate_ports(container.get("ports") or [], f"{path}.ports")
    errors += _validate_env(container.get("env") or [], f"{path}.env")
    errors += _validate_env_from(container.get("envFrom") or [], f"{path}.envFrom")
    errors += _validate_volume_mounts(
        container.get("volumeMounts") or [], volumes, f"{path}.volumeMounts"
    )
    errors += one_of(
        container.get("imagePullPolicy", ""),
        f"{path}.imagePullPolicy",
        ("Always", "IfNotPresent", "Never"),
    )
    errors += validate_resources(container.get("resources") or {}, f"{path}.resources")
    return errors


def _validate_ports(ports: list[Obj], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        item = f"{path}[{i}]"
        name = port.get("name", "")
        if name:
            messages = port_name_errors(name)
            errors += [invalid_value(f"{item}.name", name, m) for m in messages]
            if not messages and name in names:
                errors.append(duplicate(f"{item}.name", name))
            names.add(name)
        container_port = port.get("containerPort", 0)
        if not container_port:
            errors.append(required(f"{item}.containerPort"))
        errors += _port_number(container_port or 1, f"{item}.containerPort")
        errors += _port_number(port.get("hostPort") or 1, f"{item}.hostPort")
        errors += one_of(port.get("protocol", ""), f"{item}.protocol", ("SCTP", "TCP", "UDP"))
    return errors


def _port_number(value: int, path: str) -> list[FieldError]:
    return [] if 1 <= value <= 65535 else [invalid_value(path, value, PORT_RANGE)]


def port_name_errors(name: str) -> list[str]:
    """``IsValidPortName``."""
    messages = []
    if len(name) > 15:
        messages.append("must be no more than 15 characters")
    if not name or any(c not in "-abcdefghijklmnopqrstuvwxyz0123456789" for c in name):
        messages.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not any("a" <= c <= "z" for c in name):
        messages.append("must contain at least one letter (a-z)")
    if "--" in name:
        messages.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        messages.append("must not begin or end with a hyphen")
    return messages


def _validate_env(env: list[Obj], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, var in enumerate(env):
        item = f"{path}[{i}]"
        name = var.get("name", "")
        if not name:
            errors.append(required(f"{item}.name"))
        elif not _is_env_name(name):
            errors.append(invalid_value(f"{item}.name", name, _RELAXED_ENV_NAME))
        errors += _validate_value_from(var, f"{item}.valueFrom")
    return errors


def _is_env_name(name: str) -> bool:
    """``IsRelaxedEnvVarName``: printable ASCII other than ``=``."""
    return all(" " <= c <= "~" and c != "=" for c in name)


def _validate_value_from(var: Obj, path: str) -> list[FieldError]:
    source = var.get("valueFrom")
    if source is None:
        return []
    checks = (
        ("fieldRef", _validate_field_ref),
        ("resourceFieldRef", _validate_resource_field_ref),
        ("configMapKeyRef", _validate_key_selector),
        ("secretKeyRef", _validate_key_selector),
    )
    errors: list[FieldError] = []
    count = 0
    for key, check in checks:
        if key in source:
            count += 1
            errors += check(source[key], f"{path}.{key}")
    if count == 0:
        detail = (
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
            "`secretKeyRef`"
        )
        errors.append(invalid_value(path, "", detail))
    elif var.get("value"):
        errors.append(invalid_value(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        detail = "may not have more than one field specified at a time"
        errors.append(invalid_value(path, "", detail))
    return errors


def _validate_field_ref(ref: Obj, path: str) -> list[FieldError]:
    """``validateObjectFieldSelector`` for environment variables."""
    if not ref.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    field_path = ref.get("fieldPath", "")
    if not field_path:
        return [required(f"{path}.fieldPath")]
    conversion_error = _downward_label_error(ref["apiVersion"], field_path)
    if conversion_error:
        detail = f"error converting fieldPath: {conversion_error}"
        return [invalid_value(f"{path}.fieldPath", field_path, detail)]
    base, subscript = split_subscripted_path(field_path)
    if subscript is None:
        if base not in _ENV_FIELD_PATHS:
            return [not_supported(f"{path}.fieldPath", base, _ENV_FIELD_PATHS)]
        return []
    key = subscript.lower() if base == "metadata.annotations" else subscript
    return [invalid_value(path, key, message) for message in label_key_errors(key)]


def _downward_label_error(api_version: str, label: str) -> str:
    """``ConvertDownwardAPIFieldLabel``'s error, or ``""``."""
    if api_version != "v1":
        return f"unsupported pod version: {api_version}"
    base, subscript = split_subscripted_path(label)
    if subscript is not None:
        if base in ("metadata.annotations", "metadata.labels"):
            return ""
        return f"field label does not support subscript: {label}"
    if label in _DOWNWARD_LABELS:
        return ""
    return f"field label not supported: {label}"


def split_subscripted_path(field_path: str) -> tuple[str, str | None]:
    """``metadata.labels['app']`` -> (``metadata.labels``, ``app``); else (path, None)."""
    if not field_path.endswith("']"):
        return field_path, None
    base, sep, subscript = field_path[:-2].partition("['")
    if not sep or not base:
        return field_path, None
    return base, subscript


def _validate_resource_field_ref(ref: Obj, path: str) -> list[FieldError]:
    resource = ref.get("resource", "")
    if not resource:
        return [required(f"{path}.resource")]
    if resource in _ENV_RESOURCE_FIELDS or resource.startswith(
        ("requests.hugepages-", "limits.hugepages-")
    ):
        return []
    return [not_supported(f"{path}.resource", resource, _ENV_RESOURCE_FIELDS)]


def _validate_key_selector(selector: Obj, path: str) -> list[FieldError]:
    """``validateConfigMapKeySelector`` / ``validateSecretKeySelector``."""
    name = selector.get("name", "")
    errors = [invalid_value(f"{path}.name", name, m) for m in dns1123_subdomain_errors(name)]
    key = selector.get("key", "")
    if not key:
        errors.append(required(f"{path}.key"))
    errors += [invalid_value(f"{path}.key", key, m) for m in config_key_errors(key) if key]
    return errors


def _validate_env_from(sources: list[Obj], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, source in enumerate(sources):
        item = f"{path}[{i}]"
        prefix = source.get("prefix", "")
        if prefix and not _is_env_name(prefix):
            errors.append(invalid_value(f"{item}.prefix", prefix, _RELAXED_ENV_NAME))
        refs = [key for key in ("configMapRef", "secretRef") if key in source]
        for key in refs:
            errors += _prefix_name_errors(source[key].get("name", ""), f"{item}.{key}.name")
        if not refs:
            detail = "must specify one of: `configMapRef` or `secretRef`"
            errors.append(invalid_value(path, "", detail))
        elif len(refs) > 1:
            detail = "may not have more than one field specified at a time"
            errors.append(invalid_value(path, "", detail))
    return errors


def _prefix_name_errors(name: str, path: str) -> list[FieldError]:
    """``NameIsDNSSubdomain(name, prefix=true)``: a trailing dash is allowed."""
    if not name:
        return [required(path)]
    masked = name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name
    return [invalid_value(path, name, m) for m in dns1123_subdomain_errors(masked)]


def config_key_errors(key: str) -> list[str]:
    """``IsConfigMapKey``: ``[-._a-zA-Z0-9]+``, at most 253 characters, not ``.``/``..``."""
    messages = []
    if len(key) > 253:
        messages.append("must be no more than 253 characters")
    allowed = "-._abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    if not key or any(c not in allowed for c in key):
        messages.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')"
        )
    if key == ".":
        messages.append("must not be '.'")
    elif key == "..":
        messages.append("must not be '..'")
    elif key.startswith(".."):
        messages.append("must not start with '..'")
    return messages


def _validate_volume_mounts(mounts: list[Obj], volumes: set[str], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    mount_paths: set[str] = set()
    for i, mount in enumerate(mounts):
        item = f"{path}[{i}]"
        name, mount_path = mount.get("name", ""), mount.get("mountPath", "")
        if not name:
            errors.append(required(f"{item}.name"))
        if name not in volumes:
            errors.append(not_found(f"{item}.name", name))
        if not mount_path:
            errors.append(required(f"{item}.mountPath"))
        if mount_path in mount_paths:
            errors.append(invalid_value(f"{item}.mountPath", mount_path, "must be unique"))
        mount_paths.add(mount_path)
        if mount.get("subPath"):
            errors += _descending_path_errors(mount["subPath"], f"{path}.subPath")
        if mount.get("subPathExpr"):
            if mount.get("subPath"):
                detail = "subPathExpr and subPath are mutually exclusive"
                errors.append(invalid_value(f"{item}.subPathExpr", mount["subPathExpr"], detail))
            errors += _descending_path_errors(mount["subPathExpr"], f"{path}.subPathExpr")
    return errors


def _descending_path_errors(target: str, path: str) -> list[FieldError]:
    """``validateLocalDescendingPath``: relative, without ``..`` elements."""
    errors = []
    if posixpath.isabs(target):
        errors.append(invalid_value(path, target, "must be a relative path"))
    if ".." in target.split("/"):
        errors.append(invalid_value(path, target, "must not contain '..'"))
    return errors


def _local_path_errors(target: str, path: str) -> list[FieldError]:
    """``ValidateLocalNonReservedPath``."""
    errors = _descending_path_errors(target, path)
    if target.startswith("..") and not target.startswith("../"):
        errors.append(invalid_value(path, target, "must not start with '..'"))
    return errors


def validate_resources(resources: Obj, path: str) -> list[FieldError]:
    """``ValidateContainerResourceRequirements``."""
    errors: list[FieldError] = []
    limits = _parsed_quantities(resources.get("limits"), f"{path}.limits", errors)
    requests = _parsed_quantities(resources.get("requests"), f"{path}.requests", errors)
    for name, request in requests.items():
        limit = limits.get(name)
        if limit is not None and request.value != limit.value and not _overcommit_allowed(name):
            detail = f"must be equal to {name} limit of {canonical(limit)}"
            errors.append(invalid_value(f"{path}.requests", canonical(request), detail))
        elif limit is not None and request.value > limit.value:
            detail = f"must be less than or equal to {name} limit of {canonical(limit)}"
            errors.append(invalid_value(f"{path}.requests", canonical(request), detail))
        elif limit is None and not _overcommit_allowed(name):
            detail = "Limit must be set for non overcommitable resources"
            errors.append(required(f"{path}.limits", detail))
    names = set(limits) | set(requests)
    if any(n.startswith("hugepages-") for n in names) and not names & set(QOS_RESOURCES):
        errors.append(forbidden(path, "HugePages require cpu or memory"))
    return errors


def _parsed_quantities(quantities: Any, path: str, errors: list[FieldError]) -> dict[str, Quantity]:
    parsed: dict[str, Quantity] = {}
    for name, text in (quantities or {}).items():
        item = f"{path}[{name}]"
        errors.extend(_resource_name_errors(name, item))
        try:
            quantity = parse_quantity(str(text))
        except QuantityError as exc:
            errors.append(invalid_value(item, str(text), str(exc)))
            continue
        if quantity.value < 0:
            errors.append(
                invalid_value(item, canonical(quantity), "must be greater than or equal to 0")
            )
        if _is_extended(name) and quantity.value.denominator != 1:
            errors.append(invalid_value(item, canonical(quantity), "must be an integer"))
        parsed[name] = quantity
    return parsed


def _resource_name_errors(name: str, path: str) -> list[FieldError]:
    """``validateContainerResourceName``."""
    messages = label_key_errors(name)
    if messages:
        return [invalid_value(path, name, m) for m in messages]
    errors = []
    if "/" not in name:
        if name not in _STANDARD_RESOURCES and not name.startswith("hugepages-"):
            detail = "must be a standard resource type or fully qualified"
            errors.append(invalid_value(path, name, detail))
        if name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            errors.append(invalid_value(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        detail = "doesn't follow extended resource name standard"
        errors.append(invalid_value(path, name, detail))
    return errors


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    if _is_native(name) or name.startswith("requests."):
        return False
    return not label_key_errors(f"requests.{name}")


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not name.startswith("hugepages-")


def _validate_hooks_and_probes(container: Obj, grace: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for hook in ("postStart", "preStop"):
        handler = (container.get("lifecycle") or {}).get(hook)
        if handler is not None:
            errors += _validate_handler(handler, grace, f"{path}.lifecycle.{hook}")
    for kind in PROBES:
        probe = container.get(kind)
        if probe is None:
            continue
        item = f"{path}.{kind}"
        errors += _validate_probe(probe, grace, item)
        threshold = probe.get("successThreshold", 1)
        if kind != "readinessProbe" and threshold != 1:
            errors.append(invalid_value(f"{item}.successThreshold", threshold, "must be 1"))
        if kind == "readinessProbe" and probe.get("terminationGracePeriodSeconds") is not None:
            value = probe["terminationGracePeriodSeconds"]
            detail = "must not be set for readinessProbes"
            errors.append(invalid_value(f"{item}.terminationGracePeriodSeconds", value, detail))
    return errors


def _validate_probe(probe: Obj, grace: Any, path: str) -> list[FieldError]:
    errors = _validate_handler(probe, grace, path)
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        errors += nonnegative(probe.get(key), f"{path}.{key}")
    grace_override = probe.get("terminationGracePeriodSeconds")
    if grace_override is not None and grace_override <= 0:
        detail = "must be greater than 0"
        errors.append(
            invalid_value(f"{path}.terminationGracePeriodSeconds", grace_override, detail)
        )
    return errors


def _validate_handler(handler: Obj, grace: Any, path: str) -> list[FieldError]:
    """``validateHandler``: exactly one of exec, httpGet, tcpSocket, grpc, sleep."""
    errors: list[FieldError] = []
    found = 0
    for kind in ("exec", "httpGet", "tcpSocket", "grpc", "sleep"):
        action = handler.get(kind)
        if action is None:
            continue
        if found:
            errors.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        found += 1
        errors += _validate_action(kind, action, grace, f"{path}.{kind}")
    if not found:
        errors.append(required(path, "must specify a handler type"))
    return errors


def _validate_action(kind: str, action: Obj, grace: Any, path: str) -> list[FieldError]:
    if kind == "exec":
        return [] if action.get("command") else [required(f"{path}.command")]
    if kind == "httpGet":
        errors = [] if action.get("path") else [required(f"{path}.path")]
        errors += port_errors(action.get("port"), f"{path}.port")
        if action.get("scheme") not in ("HTTP", "HTTPS"):
            errors.append(
                not_supported(f"{path}.scheme", action.get("scheme", ""), ("HTTP", "HTTPS"))
            )
        for header in action.get("httpHeaders") or []:
            name = header.get("name", "")
            if not name or any(not (c.isascii() and (c.isalnum() or c == "-")) for c in name):
                detail = (
                    "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. "
                    "'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"
                )
                errors.append(invalid_value(f"{path}.httpHeaders", name, detail))
        return errors
    if kind in ("tcpSocket", "grpc"):
        return port_errors(action.get("port"), f"{path}.port")
    seconds = action.get("seconds", 0)
    if isinstance(grace, int) and not 0 <= seconds <= grace:
        detail = f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"
        return [invalid_value(path, seconds, detail)]
    return []


def port_errors(port: Any, path: str) -> list[FieldError]:
    """``ValidatePortNumOrName`` for an int-or-string port."""
    if isinstance(port, str):
        return [invalid_value(path, port, m) for m in port_name_errors(port)]
    return _port_number(port if isinstance(port, int) else 0, path)


def _host_port_conflicts(containers: list[Obj], path: str) -> list[FieldError]:
    """``AccumulateUniqueHostPorts``: one protocol/hostIP/hostPort per pod."""
    seen: set[str] = set()
    errors: list[FieldError] = []
    for i, container in enumerate(containers):
        for j, port in enumerate(container.get("ports") or []):
            if not port.get("hostPort"):
                continue
            key = f"{port.get('protocol', '')}/{port.get('hostIP', '')}/{port['hostPort']}"
            if key in seen:
                errors.append(duplicate(f"{path}[{i}].ports[{j}].hostPort", key))
            seen.add(key)
    return errors


def validate_volumes(volumes: list[Obj], path: str) -> tuple[set[str], list[FieldError]]:
    """``ValidateVolumes``: also returns the names of the valid volumes, for mounts."""
    names: set[str] = set()
    errors: list[FieldError] = []
    for i, volume in enumerate(volumes):
        item = f"{path}[{i}]"
        found = _validate_volume_source(volume, item)
        name = volume.get("name", "")
        if not name:
            found.append(required(f"{item}.name"))
        found += name_errors(name, f"{item}.name", dns1123_label_errors)
        if name in names:
            found.append(duplicate(f"{item}.name", name))
        if found:
            errors += found
        else:
            names.add(name)
    return names, errors


def _validate_volume_source(volume: Obj, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    found = False
    for key in VOLUME_SOURCES:
        if volume.get(key) is None:
            continue
        if found:
            detail = "may not specify more than 1 volume type"
            errors.append(forbidden(f"{path}.{_QUIRKY_SOURCE_PATHS.get(key, key)}", detail))
            continue
        found = True
        errors += _validate_source(key, volume[key], f"{path}.{key}")
    if not found:
        errors.append(required(path, "must specify a volume type"))
    return errors


def _validate_source(kind: str, source: Obj, path: str) -> list[FieldError]:
    required_names = {
        "hostPath": "path",
        "secret": "secretName",
        "configMap": "name",
        "persistentVolumeClaim": "claimName",
        "nfs": "server",
    }
    errors: list[FieldError] = []
    key = required_names.get(kind)
    if key and not source.get(key):
        errors.append(required(f"{path}.{key}"))
    if kind == "nfs":
        if not source.get("path"):
            errors.append(required(f"{path}.path"))
        if not posixpath.isabs(source.get("path", "")):
            errors.append(
                invalid_value(f"{path}.path", source.get("path", ""), "must be an absolute path")
            )
    if kind == "hostPath" and source.get("path") and ".." in source["path"].split("/"):
        errors.append(invalid_value(f"{path}.path", source["path"], "must not contain '..'"))
    if kind == "emptyDir" and source.get("sizeLimit") is not None:
        limit = parse_quantity_or_none(source["sizeLimit"])
        if limit is not None and limit.value < 0:
            detail = "SizeLimit field must be a valid resource quantity"
            errors.append(forbidden(f"{path}.sizeLimit", detail))
    if kind in ("secret", "configMap"):
        errors += _file_mode_errors(source.get("defaultMode"), f"{path}.defaultMode")
        for i, item in enumerate(source.get("items") or []):
            errors += _key_to_path_errors(item, f"{path}.items[{i}]")
    return errors


def _key_to_path_errors(item: Obj, path: str) -> list[FieldError]:
    errors = [] if item.get("key") else [required(f"{path}.key")]
    if not item.get("path"):
        errors.append(required(f"{path}.path"))
    errors += _local_path_errors(item.get("path", ""), f"{path}.path")
    return errors + _file_mode_errors(item.get("mode"), f"{path}.mode")


def _file_mode_errors(mode: Any, path: str) -> list[FieldError]:
    if mode is not None and not 0 <= mode <= 0o777:
        return [invalid_value(path, mode, FILE_MODE)]
    return []


def one_of(value: str, path: str, supported: Iterable[str]) -> list[FieldError]:
    """An enumerated field: required, and one of ``supported``."""
    if not value:
        return [required(path)]
    if value not in supported:
        return [not_supported(path, value, supported)]
    return []


def name_errors(value: Any, path: str, check: Callable[[str], list[str]]) -> list[FieldError]:
    """An optional name checked by ``check`` (a DNS label or subdomain rule)."""
    if not value:
        return []
    return [invalid_value(path, value, message) for message in check(value)]
