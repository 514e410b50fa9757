"""Pod specs and pod templates: the defaults and checks shared by every kind that runs pods.

Pods, Deployments, ReplicaSets, Jobs and CronJobs all carry a ``PodSpec``, and Kubernetes
defaults and validates it the same way wherever it appears (``SetDefaults_PodSpec`` and the
generated container/volume/probe defaulters; ``ValidatePodSpec``). A few rules apply to real
Pods only, not to templates: ``enableServiceLinks``, requests copied from limits, host ports
following container ports under ``hostNetwork``, and the update restrictions of a running pod.

Container resources are canonicalized as Kubernetes stores them (``0.5`` -> ``500m``,
rounded up to milli units), which is also what the QoS class is computed from.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from setpoint.meta.labels import SelectorParseError, selector_from_label_selector
from setpoint.meta.validation import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
)
from setpoint.resources.checks import (
    go_label_selector,
    go_string_map,
    invalid_rendered,
    invalid_value,
    label_errors,
    nonnegative,
    not_found,
)
from setpoint.resources.meta import validate_annotations
from setpoint.resources.quantity import (
    Quantity,
    QuantityError,
    canonical,
    parse_quantity,
    round_to_milli,
)
from setpoint.resources.registry import (
    FieldError,
    Obj,
    duplicate,
    forbidden,
    not_supported,
    required,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
PORT_RANGE = "must be between 1 and 65535, inclusive"
FILE_MODE = "must be a number between 0 and 0777 (octal), both inclusive"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
DEFAULT_FILE_MODE = 0o644

# Volume source keys in the order Kubernetes checks them, with the name it uses in the
# "more than 1 volume type" path (two differ from the JSON key, as in Kubernetes).
_VOLUME_SOURCES = (
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
)
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
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_ENV_RESOURCE_FIELDS = tuple(
    f"{kind}.{name}"
    for kind in ("limits", "requests")
    for name in ("cpu", "ephemeral-storage", "memory")
)
_STANDARD_RESOURCES = frozenset(
    {"cpu", "memory", "ephemeral-storage", "pods", "resourcequotas", "services"}
    | {"replicationcontrollers", "secrets", "persistentvolumeclaims", "configmaps"}
    | {"services.nodeports", "services.loadbalancers", "requests.storage"}
    | {
        f"{kind}.{name}"
        for kind in ("requests", "limits")
        for name in ("cpu", "memory", "ephemeral-storage")
    }
)
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_QOS_RESOURCES = ("cpu", "memory")
_RELAXED_ENV_NAME = (
    "a valid environment variable name must consist only of printable ASCII characters "
    "other than '='"
)
_MAX_INT32 = 2**31 - 1
UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)"
)


# ------------------------------------------------------------------------------ defaults


def default_pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` and the generated defaults of everything inside a PodSpec."""
    for key, value in (
        ("dnsPolicy", "ClusterFirst"),
        ("restartPolicy", "Always"),
        ("schedulerName", "default-scheduler"),
    ):
        if not spec.get(key):
            spec[key] = value
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for container in _all_containers(spec):
        _default_container(container)
    for volume in spec.get("volumes") or []:
        _default_volume(volume)
    if spec.get("resources"):
        _canonicalize_resources(spec["resources"])


def default_template(owner_spec: Obj) -> None:
    """Defaults of the pod template inside a workload's spec (``spec.template``)."""
    template = owner_spec.get("template")
    if isinstance(template, dict):
        default_pod_spec(template.setdefault("spec", {}))


def default_pod(pod: Obj) -> None:
    """A Pod's defaults: its spec's, plus the ones Kubernetes applies to real pods only."""
    spec = pod.setdefault("spec", {})
    default_pod_spec(spec)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = container.get("resources") or {}
        if resources.get("limits"):
            requests = resources.setdefault("requests", {})
            for name, value in resources["limits"].items():
                requests.setdefault(name, value)
        if spec.get("hostNetwork"):
            for port in container.get("ports") or []:
                if not port.get("hostPort"):
                    port["hostPort"] = port.get("containerPort", 0)


def _all_containers(spec: Obj) -> list[Obj]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def _default_container(container: Obj) -> None:
    if not container.get("imagePullPolicy"):
        latest = _image_tag(container.get("image", "")) == "latest"
        container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    container.setdefault("resources", {})
    _canonicalize_resources(container["resources"])
    for port in container.get("ports") or []:
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for var in container.get("env") or []:
        _default_field_ref((var.get("valueFrom") or {}).get("fieldRef"))
    for kind in PROBES:
        if isinstance(container.get(kind), dict):
            _default_probe(container[kind])
    for hook in (container.get("lifecycle") or {}).values():
        if isinstance(hook, dict):
            _default_http_get(hook.get("httpGet"))


def _image_tag(image: str) -> str:
    """The tag Kubernetes' ``ParseImageName`` finds: ``latest`` when there is none (and no
    digest), ``""`` for a digest-only or unparseable reference."""
    name, at, _ = image.partition("@")
    if not name or name != name.strip() or any(c.isupper() for c in name.split("/")[-1]):
        return ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return "" if at else "latest"


def _default_probe(probe: Obj) -> None:
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))
    if isinstance(probe.get("grpc"), dict):
        probe["grpc"].setdefault("service", "")


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        if not action.get("path"):
            action["path"] = "/"
        if not action.get("scheme"):
            action["scheme"] = "HTTP"


def _default_field_ref(ref: Any) -> None:
    if isinstance(ref, dict) and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def _default_volume(volume: Obj) -> None:
    if not any(key in volume for key, _ in _VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(volume.get(key), dict):
            volume[key].setdefault("defaultMode", DEFAULT_FILE_MODE)
    if isinstance(volume.get("hostPath"), dict):
        volume["hostPath"].setdefault("type", "")
    for item in (volume.get("downwardAPI") or {}).get("items") or []:
        _default_field_ref(item.get("fieldRef"))
    for source in (volume.get("projected") or {}).get("sources") or []:
        for item in (source.get("downwardAPI") or {}).get("items") or []:
            _default_field_ref(item.get("fieldRef"))
        if isinstance(source.get("serviceAccountToken"), dict):
            source["serviceAccountToken"].setdefault("expirationSeconds", 3600)


def _canonicalize_resources(resources: Obj) -> None:
    """Requests and limits as Kubernetes stores them: rounded up to 1m, canonical text."""
    for kind in ("limits", "requests"):
        quantities = resources.get(kind)
        if not isinstance(quantities, dict):
            continue
        for name, text in quantities.items():
            try:
                quantities[name] = canonical(round_to_milli(parse_quantity(str(text))))
            except QuantityError:
                pass  # reported by validation


# ----------------------------------------------------------------------------------- QoS


def qos_class(spec: Obj) -> str:
    """Kubernetes' ``ComputePodQOS`` (pod-level resources, when set, stand for the containers)."""
    sources = (
        [spec["resources"]]
        if spec.get("resources")
        else [
            c.get("resources") or {}
            for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        ]
    )
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for resources in sources:
        _add_positive(requests, resources.get("requests"))
        found = _add_positive(limits, resources.get("limits"))
        if not set(_QOS_RESOURCES) <= found:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    guaranteed = guaranteed and requests.keys() == limits.keys()
    guaranteed = guaranteed and all(limits[name] == value for name, value in requests.items())
    return "Guaranteed" if guaranteed else "Burstable"


def _add_positive(totals: dict[str, Fraction], quantities: Any) -> set[str]:
    found = set()
    for name, text in (quantities or {}).items():
        quantity = _parse_or_none(text)
        if name in _QOS_RESOURCES and quantity is not None and quantity.value > 0:
            totals[name] = totals.get(name, Fraction(0)) + quantity.value
            found.add(name)
    return found


def _parse_or_none(text: Any) -> Quantity | None:
    try:
        return parse_quantity(str(text))
    except QuantityError:
        return None


# ---------------------------------------------------------------------- template checks


def validate_template(template: Obj | None, path: str) -> list[FieldError]:
    """``ValidatePodTemplateSpec``: template labels/annotations, then the pod spec."""
    template = template or {}
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    errors = label_errors(meta.get("labels"), f"{path}.labels")
    errors += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    errors += validate_pod_spec(spec, f"{path}.spec", pod=False)
    if spec.get("ephemeralContainers"):
        errors.append(
            forbidden(
                f"{path}.spec.ephemeralContainers",
                "ephemeral containers not allowed in pod template",
            )
        )
    return errors


def validate_selector_matches_template(
    selector: Obj | None, template: Obj | None, template_path: str
) -> list[FieldError]:
    """The selector must select the pods the template makes (an empty selector matches all)."""
    try:
        parsed = selector_from_label_selector(selector)
    except SelectorParseError:
        return []  # the caller reports the selector itself
    labels = ((template or {}).get("metadata") or {}).get("labels")
    if parsed.is_empty() or parsed.matches(labels or {}):
        return []
    return [
        invalid_rendered(
            f"{template_path}.metadata.labels",
            go_string_map(labels),
            "`selector` does not match template `labels`",
        )
    ]


def selector_is_parseable(selector: Obj | None, path: str, detail: str) -> list[FieldError]:
    """``LabelSelectorAsSelector`` must succeed (Deployment and ReplicaSet say so)."""
    try:
        selector_from_label_selector(selector)
    except SelectorParseError:
        return [invalid_rendered(path, go_label_selector(selector), detail)]
    return []


# --------------------------------------------------------------------------- spec checks


def validate_pod_spec(spec: Obj, path: str, *, pod: bool) -> list[FieldError]:
    """``ValidatePodSpec`` (the parts setpoint enforces), in Kubernetes' order."""
    errors: list[FieldError] = []
    if spec.get("terminationGracePeriodSeconds") is None:
        errors.append(required(f"{path}.terminationGracePeriodSeconds"))
    volumes, volume_errors = _validate_volumes(spec.get("volumes") or [], f"{path}.volumes")
    errors += volume_errors
    errors += _validate_containers(spec, volumes, path)
    errors += _validate_init_containers(spec, volumes, path)
    errors += _validate_host_network_ports(spec, path, pod=pod)
    errors += _one_of(spec.get("restartPolicy", ""), f"{path}.restartPolicy", RESTART_POLICIES)
    errors += _one_of(spec.get("dnsPolicy", ""), f"{path}.dnsPolicy", DNS_POLICIES)
    errors += label_errors(spec.get("nodeSelector"), f"{path}.nodeSelector")
    for key in ("serviceAccountName", "nodeName"):
        errors += _name_errors(spec.get(key), f"{path}.{key}", dns1123_subdomain_errors)
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= _MAX_INT32:
        errors.append(
            invalid_value(
                f"{path}.activeDeadlineSeconds",
                deadline,
                f"must be between 1 and {_MAX_INT32}, inclusive",
            )
        )
    for key in ("hostname", "subdomain"):
        errors += _name_errors(spec.get(key), f"{path}.{key}", dns1123_label_errors)
    errors += validate_tolerations(spec.get("tolerations") or [], f"{path}.tolerations")
    errors += _name_errors(
        spec.get("priorityClassName"), f"{path}.priorityClassName", dns1123_subdomain_errors
    )
    return errors


def _one_of(value: str, path: str, supported: Iterable[str]) -> list[FieldError]:
    if not value:
        return [required(path)]
    if value not in supported:
        return [not_supported(path, value, supported)]
    return []


def _name_errors(value: Any, path: str, check: Any) -> list[FieldError]:
    if not value:
        return []
    return [invalid_value(path, value, message) for message in check(value)]


def _validate_containers(spec: Obj, volumes: set[str], path: str) -> list[FieldError]:
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


def _validate_init_containers(spec: Obj, volumes: set[str], path: str) -> list[FieldError]:
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


def _validate_container(container: Obj, volumes: set[str], path: str) -> list[FieldError]:
    """``validateContainerCommon``."""
    errors: list[FieldError] = []
    name = container.get("name", "")
    if not name:
        errors.append(required(f"{path}.name"))
    errors += _name_errors(name, f"{path}.name", dns1123_label_errors)
    if not container.get("image"):
        errors.append(required(f"{path}.image"))
    errors += _one_of(
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
    errors += _one_of(
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
        errors += _one_of(port.get("protocol", ""), f"{item}.protocol", ("SCTP", "TCP", "UDP"))
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
    if label in _DOWNWARD_LABELS or label == "spec.host":
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
    if any(n.startswith("hugepages-") for n in names) and not names & set(_QOS_RESOURCES):
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


def _validate_host_network_ports(spec: Obj, path: str, *, pod: bool) -> list[FieldError]:
    if not spec.get("hostNetwork"):
        return []
    errors = []
    for i, container in enumerate(spec.get("containers") or []):
        for j, port in enumerate(container.get("ports") or []):
            host, target = port.get("hostPort", 0), port.get("containerPort", 0)
            if (pod or host) and host != target:
                detail = "must match `containerPort` when `hostNetwork` is true"
                item = f"{path}.containers[{i}].ports[{j}].hostPort"
                errors.append(invalid_value(item, host, detail))
    return errors


def _validate_volumes(volumes: list[Obj], path: str) -> tuple[set[str], list[FieldError]]:
    """``ValidateVolumes``: also returns the names of the valid volumes, for mounts."""
    names: set[str] = set()
    errors: list[FieldError] = []
    for i, volume in enumerate(volumes):
        item = f"{path}[{i}]"
        found = _validate_volume_source(volume, item)
        name = volume.get("name", "")
        if not name:
            found.append(required(f"{item}.name"))
        found += _name_errors(name, f"{item}.name", dns1123_label_errors)
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
    for key, forbidden_name in _VOLUME_SOURCES:
        if volume.get(key) is None:
            continue
        if found:
            detail = "may not specify more than 1 volume type"
            errors.append(forbidden(f"{path}.{forbidden_name}", detail))
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
        limit = _parse_or_none(source["sizeLimit"])
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


def validate_tolerations(tolerations: list[Obj], path: str) -> list[FieldError]:
    """``ValidateTolerations``."""
    errors: list[FieldError] = []
    for i, toleration in enumerate(tolerations):
        item = f"{path}[{i}]"
        key, operator = toleration.get("key", ""), toleration.get("operator", "")
        value, effect = toleration.get("value", ""), toleration.get("effect", "")
        errors += [invalid_value(f"{item}.key", key, m) for m in label_key_errors(key) if key]
        if not key and operator != "Exists":
            detail = (
                'operator must be Exists when `key` is empty, which means "match all values '
                'and all keys"'
            )
            errors.append(invalid_value(f"{item}.operator", operator, detail))
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            detail = "effect must be 'NoExecute' when `tolerationSeconds` is set"
            errors.append(invalid_value(f"{item}.effect", effect, detail))
        if operator in ("Equal", ""):
            messages = label_value_errors(value)
            if messages:
                errors.append(invalid_value(f"{item}.operator", value, ";".join(messages)))
        elif operator == "Exists":
            if value:
                detail = "value must be empty when `operator` is 'Exists'"
                errors.append(invalid_value(f"{item}.operator", value, detail))
        else:
            errors.append(not_supported(f"{item}.operator", operator, ("Equal", "Exists")))
        if effect and effect not in TAINT_EFFECTS:
            errors.append(not_supported(f"{item}.effect", effect, TAINT_EFFECTS))
    return errors


# ---------------------------------------------------------------------------- pod update


def validate_pod_update(new: Obj, old: Obj) -> list[FieldError]:
    """``ValidatePodUpdate``: a running pod's spec only changes in a few places.

    ``spec.nodeName`` may also go from empty to set, since setpoint binds pods with an update.
    """
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for kind in ("containers", "initContainers"):
        if len(spec.get(kind) or []) != len(old_spec.get(kind) or []):
            detail = "pod updates may not add or remove containers"
            return [forbidden(f"spec.{kind}", detail)]
    errors = _deadline_update_errors(
        spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    )
    errors += _toleration_update_errors(
        spec.get("tolerations") or [], old_spec.get("tolerations") or []
    )
    if _munged(spec, old_spec) != _munged(old_spec, old_spec):
        detail = f"pod updates may not change fields other than {UPDATABLE_POD_FIELDS}"
        errors.append(forbidden("spec", detail))
    return errors


def _container_image_errors(spec: Obj) -> list[FieldError]:
    errors: list[FieldError] = []
    for kind in ("containers", "initContainers"):
        for i, container in enumerate(spec.get(kind) or []):
            image = container.get("image", "")
            if not image:
                errors.append(required(f"spec.{kind}[{i}].image"))
            elif image != image.strip():
                detail = "must not have leading or trailing whitespace"
                errors.append(invalid_value(f"spec.{kind}[{i}].image", image, detail))
    return errors


def validate_pod_images(spec: Obj) -> list[FieldError]:
    """Pods (not templates) may not have images with surrounding whitespace."""
    return [e for e in _container_image_errors(spec) if e.type != "FieldValueRequired"]


def _deadline_update_errors(new: Any, old: Any) -> list[FieldError]:
    path = "spec.activeDeadlineSeconds"
    if new is None:
        if old is not None:
            return [
                invalid_value(path, None, "must not update from a positive integer to nil value")
            ]
        return []
    if not 0 <= new <= _MAX_INT32:
        return [invalid_value(path, new, f"must be between 0 and {_MAX_INT32}, inclusive")]
    if old is not None and old < new:
        return [invalid_value(path, new, "must be less than or equal to previous value")]
    return []


def _toleration_update_errors(new: list[Obj], old: list[Obj]) -> list[FieldError]:
    def without_seconds(toleration: Obj) -> Obj:
        return {k: v for k, v in toleration.items() if k != "tolerationSeconds"}

    kept = [without_seconds(t) for t in new]
    if any(without_seconds(t) not in kept for t in old):
        detail = "existing toleration can not be modified except its tolerationSeconds"
        return [forbidden("spec.tolerations", detail)]
    return []


def _munged(spec: Obj, old_spec: Obj) -> Obj:
    """The spec with the updatable fields replaced by the old pod's values."""
    munged = {k: v for k, v in spec.items() if v not in (None, [], {})}
    for kind in ("containers", "initContainers"):
        old_containers = old_spec.get(kind) or []
        munged[kind] = [
            {**c, "image": old_containers[i].get("image")}
            for i, c in enumerate(spec.get(kind) or [])
        ]
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged[key] = old_spec.get(key)
    if not old_spec.get("nodeName"):
        munged["nodeName"] = None
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if (
        isinstance(old_grace, int)
        and old_grace < 0
        and spec.get("terminationGracePeriodSeconds") == 1
    ):
        munged["terminationGracePeriodSeconds"] = old_grace
    return {k: v for k, v in munged.items() if v not in (None, [], {})}
