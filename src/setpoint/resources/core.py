"""The core API group's kinds, declared whole (``KINDS``): Namespace, Pod, Node, Event,
ConfigMap, Secret, ServiceAccount, Service, Endpoints, ReplicationController,
PersistentVolume and PersistentVolumeClaim, with their defaults, validation and field
selectors (the rules of the last five live in :mod:`setpoint.resources.service`,
:mod:`~setpoint.resources.replication`, :mod:`~setpoint.resources.persistentvolume` and
:mod:`~setpoint.resources.volumeclaims`).

* Namespaces start ``Active`` with the ``kubernetes`` finalizer and carry the
  ``kubernetes.io/metadata.name`` label.
* Pods get their spec defaults (see :mod:`setpoint.resources.podspec`), start ``Pending`` with
  their QoS class computed, and after creation only change images, deadlines, tolerations and
  scheduling gates; ephemeral containers are only ever added, through
  ``pods/ephemeralcontainers`` (:data:`EPHEMERAL_CONTAINERS`), never on create or by an
  update of the pod. On create they pass the DefaultTolerationSeconds admission
  (:class:`DefaultTolerationSeconds`): a pod that tolerates neither
  ``node.kubernetes.io/not-ready`` nor ``.../unreachable`` for ``NoExecute`` gets a toleration
  of each for a bounded time, so that it leaves a lost node that long after the taint appears.
* Secrets default to ``Opaque``; ``stringData`` is folded into ``data`` (base64) and never
  stored. Secret and ConfigMap keys must be config keys, at most 1 MiB in all, and frozen when
  ``immutable`` is set.
* Events get the legacy (``v1``) event checks; Nodes get their taints checked.

Field selectors are the ones Kubernetes' ``ToSelectableFields`` offers for each kind, read as
the strings Kubernetes compares (booleans as ``"true"``/``"false"``, absent as ``""``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

from setpoint.meta.taints import NO_EXECUTE, TAINT_NOT_READY, TAINT_UNREACHABLE
from setpoint.meta.validation import label_key_errors, label_value_errors
from setpoint.resources import persistentvolume, podspec, replication, service
from setpoint.resources.checks import (
    IMMUTABLE,
    NONSTANDARD_FINALIZER,
    STANDARD_FINALIZERS,
    immutable,
    kube_finalizer_errors,
)
from setpoint.resources.containers import config_key_errors
from setpoint.resources.events import legacy_event_errors
from setpoint.resources.fielderrors import (
    FieldError,
    forbidden,
    invalid_value,
    not_supported,
    required,
    too_long,
)
from setpoint.resources.printers.core import (
    CONFIGMAP_PRINTER,
    NAMESPACE_PRINTER,
    NODE_PRINTER,
    POD_PRINTER,
    SECRET_PRINTER,
    SERVICE_ACCOUNT_PRINTER,
)
from setpoint.resources.printers.events import EVENT_PRINTER
from setpoint.resources.printers.network import ENDPOINTS_PRINTER, SERVICE_PRINTER
from setpoint.resources.printers.storage import PERSISTENT_VOLUME_PRINTER
from setpoint.resources.printers.workloads import REPLICATION_CONTROLLER_PRINTER
from setpoint.resources.registry import (
    CATEGORY_ALL,
    POD_TEMPLATE,
    SPEC_AND_STATUS,
    Obj,
    ResourceType,
    SpecSubresource,
    field_getter,
    reference_field_selectors,
)
from setpoint.resources.volumeclaims import PERSISTENT_VOLUME_CLAIM

MAX_DATA_SIZE = 1024 * 1024
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_SCHEDULING_GATED = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "SchedulingGated",
    "message": "Scheduling is blocked due to non-empty scheduling gates",
}
_REDACTED = "<secret contents redacted>"
# Secret type -> data keys it requires ("any" of a group is enough for basic-auth)
_SECRET_REQUIRED_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "kubernetes.io/dockercfg": ((".dockercfg",),),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",),),
    "kubernetes.io/basic-auth": (("username", "password"),),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",),),
    "kubernetes.io/tls": (("tls.crt",), ("tls.key",)),
}
_SECRET_JSON_KEYS = {
    "kubernetes.io/dockercfg": ".dockercfg",
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
}


# ----------------------------------------------------------------------------- Namespace


def _prepare_namespace(ns: Obj) -> None:
    ns["status"] = {"phase": "Active"}
    spec = ns.setdefault("spec", {})
    finalizers = spec.setdefault("finalizers", [])
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")


def _default_namespace(ns: Obj) -> None:
    name = ns["metadata"].get("name")
    if name:
        ns["metadata"].setdefault("labels", {})[NAMESPACE_NAME_LABEL] = name
    status = ns.get("status")
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = "Active"


def _validate_namespace(ns: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateNamespace``: finalizer names are reported at ``spec.finalizers`` itself."""
    errors = kube_finalizer_errors(ns)
    for name in (ns.get("spec") or {}).get("finalizers") or []:
        errors += [invalid_value("spec.finalizers", name, m) for m in label_key_errors(name)]
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errors.append(invalid_value("spec.finalizers", name, NONSTANDARD_FINALIZER))
    return errors


# ----------------------------------------------------------------------------------- Pod


@dataclass(frozen=True)
class DefaultTolerationSeconds:
    """The DefaultTolerationSeconds admission plugin
    (``plugin/pkg/admission/defaulttolerationseconds``) and its two settings, the API server's
    ``--default-not-ready-toleration-seconds`` and ``--default-unreachable-toleration-seconds``.

    Kubernetes grants 300 s each; setpoint 10 s: together with the node lifecycle controller's
    15 s grace period a lost node's pods are replaced within about half a minute, not six."""

    not_ready: int = 10
    unreachable: int = 10

    def admit(self, pod: Obj) -> None:
        """Add a ``NoExecute`` toleration with ``tolerationSeconds`` for each of the two keys
        no toleration of the pod already covers (one with an empty key or effect covers it)."""
        tolerations = pod.setdefault("spec", {}).get("tolerations") or []
        added = []
        for key, seconds in (
            (TAINT_NOT_READY, self.not_ready),
            (TAINT_UNREACHABLE, self.unreachable),
        ):
            if not any(
                (t.get("key") or "") in ("", key) and (t.get("effect") or "") in ("", NO_EXECUTE)
                for t in tolerations
            ):
                added.append(
                    {
                        "key": key,
                        "operator": "Exists",
                        "effect": NO_EXECUTE,
                        "tolerationSeconds": seconds,
                    }
                )
        if added:
            pod["spec"]["tolerations"] = [*tolerations, *added]


DEFAULT_TOLERATION_SECONDS = DefaultTolerationSeconds()


def _prepare_pod(
    pod: Obj, *, tolerations: DefaultTolerationSeconds = DEFAULT_TOLERATION_SECONDS
) -> None:
    podspec.default_pod(pod)
    tolerations.admit(pod)
    spec = pod["spec"]
    status: Obj = {"phase": "Pending", "qosClass": podspec.qos_class(spec)}
    if spec.get("schedulingGates"):
        status["conditions"] = [dict(_SCHEDULING_GATED)]
    pod["status"] = status


def _validate_pod(pod: Obj, old: Obj | None) -> list[FieldError]:
    spec = pod.get("spec") or {}
    errors = kube_finalizer_errors(pod)
    if old is not None and (pod.get("spec") is old.get("spec") or spec == old.get("spec")):
        # an unchanged spec (every status update: ValidatePodStatusUpdate does not look at
        # it either) was valid when it was stored and has nothing immutable to compare
        return errors
    errors += podspec.validate_pod_spec(spec, "spec", pod=True)
    errors += podspec.validate_pod_images(spec)
    if old is not None:
        return errors + podspec.validate_pod_update(pod, old)
    if spec.get("ephemeralContainers"):
        errors.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if spec.get("nodeName") and spec.get("schedulingGates"):
        detail = "cannot be set until all schedulingGates have been cleared"
        errors.append(forbidden("spec.nodeName", detail))
    return errors


def _validate_ephemeral_containers_update(pod: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidatePodEphemeralContainersUpdate``: the pod with its new ephemeral containers
    is a valid pod, and those it had are all still there, unchanged."""
    spec = pod.get("spec") or {}
    errors = podspec.validate_pod_spec(spec, "spec", pod=True) + podspec.validate_pod_images(spec)
    return errors + podspec.ephemeral_containers_update_errors(pod, old or {})


EPHEMERAL_CONTAINERS = SpecSubresource("ephemeralContainers", _validate_ephemeral_containers_update)


def _pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    return str(ips[0].get("ip", "")) if ips else str(status.get("podIP", ""))


_POD_FIELDS: dict[str, Callable[[Obj], str]] = {
    "spec.nodeName": field_getter("spec", "nodeName"),
    "spec.restartPolicy": field_getter("spec", "restartPolicy"),
    "spec.schedulerName": field_getter("spec", "schedulerName"),
    "spec.serviceAccountName": field_getter("spec", "serviceAccountName"),
    "spec.hostNetwork": field_getter("spec", "hostNetwork", default="false"),
    "status.phase": field_getter("status", "phase"),
    "status.podIP": _pod_ip,
    "status.nominatedNodeName": field_getter("status", "nominatedNodeName"),
}


# ---------------------------------------------------------------------------------- Node


def _default_node(node: Obj) -> None:
    status = node.get("status")
    if isinstance(status, dict) and status.get("capacity") and "allocatable" not in status:
        status["allocatable"] = dict(status["capacity"])


def _validate_node(node: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateNode``'s taint checks (reported under ``metadata.taints``, as Kubernetes does)."""
    errors = kube_finalizer_errors(node)
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate((node.get("spec") or {}).get("taints") or []):
        item = f"metadata.taints[{i}]"
        key, value, effect = taint.get("key", ""), taint.get("value", ""), taint.get("effect", "")
        errors += [invalid_value(f"{item}.key", key, m) for m in label_key_errors(key)]
        messages = label_value_errors(value)
        if messages:
            errors.append(invalid_value(f"{item}.value", value, ";".join(messages)))
        if not effect:
            errors.append(required(f"{item}.effect"))
        elif effect not in podspec.TAINT_EFFECTS:
            errors.append(not_supported(f"{item}.effect", effect, podspec.TAINT_EFFECTS))
        if (key, effect) in seen:
            errors.append(
                FieldError(
                    "FieldValueDuplicate",
                    item,
                    "Duplicate value: taints must be unique by key and effect pair",
                )
            )
        seen.add((key, effect))
    return errors


# ----------------------------------------------------------------------------------- Event


def _validate_event(event: Obj, old: Obj | None) -> list[FieldError]:
    return legacy_event_errors(event)


def _event_source(event: Obj) -> str:
    component = (event.get("source") or {}).get("component", "")
    return str(component or event.get("reportingComponent", ""))


_EVENT_FIELDS: dict[str, Callable[[Obj], str]] = {
    **reference_field_selectors("involvedObject"),
    "reason": field_getter("reason"),
    "reportingComponent": field_getter("reportingComponent"),
    "source": _event_source,
    "type": field_getter("type"),
}


# ------------------------------------------------------------------- ConfigMap and Secret


def base64_error_offset(text: str) -> int | None:
    """Where Go's ``base64.StdEncoding`` stops decoding ``text`` (None if it decodes)."""
    data, pos, end = text.encode(), 0, len(text.encode())
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    while True:
        read = 0
        while read < 4:
            if pos == end:
                return None if read == 0 else pos - read
            char, pos = data[pos], pos + 1
            if char in alphabet:
                read += 1
            elif char in b"\r\n":
                continue
            elif char != ord("=") or read < 2:
                return pos - 1
            else:
                return _padding_error(data, pos, read)


def _padding_error(data: bytes, pos: int, read: int) -> int | None:
    end = len(data)
    if read == 2:
        while pos < end and data[pos] in b"\r\n":
            pos += 1
        if pos == end:
            return end
        if data[pos] != ord("="):
            return pos - 1
        pos += 1
    while pos < end and data[pos] in b"\r\n":
        pos += 1
    return pos if pos < end else None


def _decoded(text: str) -> bytes:
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""))
    except (binascii.Error, ValueError):
        return b""


def _validate_binary_map(values: Obj | None, path: str) -> tuple[int, list[FieldError]]:
    """Keys must be config keys and values base64; returns the decoded size too."""
    size, errors = 0, []
    for key, value in (values or {}).items():
        errors += [invalid_value(f"{path}[{key}]", key, m) for m in config_key_errors(key)]
        offset = base64_error_offset(value)
        if offset is not None:
            detail = f"illegal base64 data at input byte {offset}"
            errors.append(invalid_value(f"{path}[{key}]", _REDACTED, detail))
        size += len(_decoded(value))
    return size, errors


def _immutable_data_errors(obj: Obj, old: Obj | None, keys: tuple[str, ...]) -> list[FieldError]:
    if old is None or not old.get("immutable"):
        return []
    detail = f"{IMMUTABLE} when `immutable` is set"
    errors = [] if obj.get("immutable") else [forbidden("immutable", detail)]
    for key in keys:
        if (obj.get(key) or {}) != (old.get(key) or {}):
            errors.append(forbidden(key, detail))
    return errors


def _validate_configmap(cm: Obj, old: Obj | None) -> list[FieldError]:
    errors = kube_finalizer_errors(cm) + _immutable_data_errors(cm, old, ("data", "binaryData"))
    binary = cm.get("binaryData") or {}
    size = 0
    for key, value in (cm.get("data") or {}).items():
        errors += [invalid_value(f"data[{key}]", key, m) for m in config_key_errors(key)]
        if key in binary:
            errors.append(
                invalid_value(f"data[{key}]", key, "duplicate of key present in binaryData")
            )
        size += len(value.encode())
    binary_size, binary_errors = _validate_binary_map(binary, "binaryData")
    errors += binary_errors
    if size + binary_size > MAX_DATA_SIZE:
        errors.append(too_long("", MAX_DATA_SIZE))
    return errors


def _default_secret(secret: Obj) -> None:
    if not secret.get("type"):
        secret["type"] = "Opaque"
    string_data = secret.pop("stringData", None)
    if string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()


def _validate_secret(secret: Obj, old: Obj | None) -> list[FieldError]:
    errors = kube_finalizer_errors(secret)
    if old is not None:
        errors += immutable(secret.get("type"), old.get("type"), "type")
        errors += _immutable_data_errors(secret, old, ("data",))
    size, data_errors = _validate_binary_map(secret.get("data"), "data")
    errors += data_errors
    if size > MAX_DATA_SIZE:
        errors.append(too_long("data", MAX_DATA_SIZE))
    return errors + _secret_type_errors(secret)


def _secret_type_errors(secret: Obj) -> list[FieldError]:
    kind, data = secret.get("type", ""), secret.get("data") or {}
    if kind == "kubernetes.io/service-account-token":
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            return [required("metadata.annotations[kubernetes.io/service-account.name]")]
        return []
    errors = []
    for group in _SECRET_REQUIRED_KEYS.get(kind, ()):
        present = [key for key in group if key in data]
        if kind == "kubernetes.io/ssh-auth":
            present = [key for key in group if _decoded(data.get(key, ""))]
        if not present:
            errors += [required(f"data[{key}]") for key in group]
    json_key = _SECRET_JSON_KEYS.get(kind)
    if json_key and json_key in data and not errors:
        try:
            json.loads(_decoded(data[json_key]))
        except ValueError as exc:
            errors.append(invalid_value(f"data[{json_key}]", _REDACTED, str(exc)))
    return errors


# --------------------------------------------------------------------------------- others


def _validate_core_meta(obj: Obj, old: Obj | None) -> list[FieldError]:
    return kube_finalizer_errors(obj)


def kinds(tolerations: DefaultTolerationSeconds) -> tuple[ResourceType, ...]:
    """:data:`KINDS` with the pod admission configured by the server's flags."""
    prepare = functools.partial(_prepare_pod, tolerations=tolerations)
    return tuple(
        dataclasses.replace(k, prepare_for_create=prepare) if k.kind == "Pod" else k for k in KINDS
    )


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="",
        version="v1",
        kind="Namespace",
        plural="namespaces",
        singular="namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        definition="io.k8s.api.core.v1.Namespace",
        printer=NAMESPACE_PRINTER,
        protobuf="k8s.io.api.core.v1.Namespace",
        has_status=True,
        return_deleted_object=True,
        always_encoded=SPEC_AND_STATUS,
        prepare_for_create=_prepare_namespace,
        defaulter=_default_namespace,
        validator=_validate_namespace,
        field_selectors={
            "status.phase": field_getter("status", "phase"),
            "name": field_getter("metadata", "name"),
        },
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Pod",
        plural="pods",
        singular="pod",
        namespaced=True,
        short_names=("po",),
        categories=CATEGORY_ALL,
        subresources=(
            "status",
            "binding",
            "eviction",
            "log",
            "ephemeralcontainers",
            "exec",
            "attach",
            "portforward",
        ),
        spec_subresources={"ephemeralcontainers": EPHEMERAL_CONTAINERS},
        definition="io.k8s.api.core.v1.Pod",
        printer=POD_PRINTER,
        protobuf="k8s.io.api.core.v1.Pod",
        has_status=True,
        tracks_generation=True,
        return_deleted_object=True,
        always_encoded=SPEC_AND_STATUS,
        prepare_for_create=_prepare_pod,
        defaulter=podspec.default_pod,
        validator=_validate_pod,
        field_selectors=_POD_FIELDS,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Node",
        plural="nodes",
        singular="node",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        definition="io.k8s.api.core.v1.Node",
        printer=NODE_PRINTER,
        protobuf="k8s.io.api.core.v1.Node",
        has_status=True,
        keeps_status_on_create=True,
        always_encoded=SPEC_AND_STATUS,
        defaulter=_default_node,
        validator=_validate_node,
        field_selectors={
            "spec.unschedulable": field_getter("spec", "unschedulable", default="false")
        },
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        short_names=("ev",),
        definition="io.k8s.api.core.v1.Event",
        printer=EVENT_PRINTER,
        protobuf="k8s.io.api.core.v1.Event",
        allow_create_on_update=True,
        always_encoded={
            "involvedObject": {},
            "source": {},
            "reportingComponent": "",
            "reportingInstance": "",
        },
        validator=_validate_event,
        field_selectors=_EVENT_FIELDS,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="ConfigMap",
        plural="configmaps",
        singular="configmap",
        namespaced=True,
        short_names=("cm",),
        definition="io.k8s.api.core.v1.ConfigMap",
        printer=CONFIGMAP_PRINTER,
        protobuf="k8s.io.api.core.v1.ConfigMap",
        validator=_validate_configmap,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Secret",
        plural="secrets",
        singular="secret",
        namespaced=True,
        definition="io.k8s.api.core.v1.Secret",
        printer=SECRET_PRINTER,
        protobuf="k8s.io.api.core.v1.Secret",
        defaulter=_default_secret,
        validator=_validate_secret,
        field_selectors={"type": field_getter("type")},
    ),
    ResourceType(
        group="",
        version="v1",
        kind="ServiceAccount",
        plural="serviceaccounts",
        singular="serviceaccount",
        namespaced=True,
        short_names=("sa",),
        subresources=("token",),  # TokenRequest, answered by api.authentication
        definition="io.k8s.api.core.v1.ServiceAccount",
        printer=SERVICE_ACCOUNT_PRINTER,
        protobuf="k8s.io.api.core.v1.ServiceAccount",
        return_deleted_object=True,
        validator=_validate_core_meta,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Service",
        plural="services",
        singular="service",
        namespaced=True,
        short_names=("svc",),
        categories=CATEGORY_ALL,
        subresources=("status",),
        definition="io.k8s.api.core.v1.Service",
        printer=SERVICE_PRINTER,
        protobuf="k8s.io.api.core.v1.Service",
        has_status=True,
        always_encoded={**SPEC_AND_STATUS, "status.loadBalancer": {}},
        defaulter=service.default_service,
        prepare_for_update=service.prepare_service_update,
        validator=service.validate_service,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Endpoints",
        plural="endpoints",
        singular="endpoints",
        namespaced=True,
        short_names=("ep",),
        definition="io.k8s.api.core.v1.Endpoints",
        printer=ENDPOINTS_PRINTER,
        protobuf="k8s.io.api.core.v1.Endpoints",
        defaulter=service.default_endpoints,
        validator=service.validate_endpoints,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="ReplicationController",
        plural="replicationcontrollers",
        singular="replicationcontroller",
        namespaced=True,
        short_names=("rc",),
        categories=CATEGORY_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.core.v1.ReplicationController",
        printer=REPLICATION_CONTROLLER_PRINTER,
        protobuf="k8s.io.api.core.v1.ReplicationController",
        has_status=True,
        tracks_generation=True,
        always_encoded={**SPEC_AND_STATUS, **POD_TEMPLATE, "status.replicas": 0},
        defaulter=replication.default_replication_controller,
        validator=replication.validate_replication_controller,
        scale_selector=replication.selector_text,
        field_selectors={"status.replicas": field_getter("status", "replicas", default="0")},
    ),
    ResourceType(
        group="",
        version="v1",
        kind="PersistentVolume",
        plural="persistentvolumes",
        singular="persistentvolume",
        namespaced=False,
        short_names=("pv",),
        subresources=("status",),
        definition="io.k8s.api.core.v1.PersistentVolume",
        printer=PERSISTENT_VOLUME_PRINTER,
        protobuf="k8s.io.api.core.v1.PersistentVolume",
        has_status=True,
        always_encoded=SPEC_AND_STATUS,
        defaulter=persistentvolume.default_persistent_volume,
        validator=persistentvolume.validate_persistent_volume,
    ),
    PERSISTENT_VOLUME_CLAIM,
)
