"""ObjectMeta rules shared by every kind: names, labels, annotations, owners, finalizers.

These are the checks Kubernetes' ``ValidateObjectMeta`` / ``ValidateObjectMetaUpdate`` make,
returning every problem as a :class:`FieldError` so a 422 names each field the way kubectl
users are used to.
"""

from __future__ import annotations

from typing import Any

from setpoint.meta.validation import (
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
    path_segment_name_errors,
)
from setpoint.resources.fielderrors import FieldError, forbidden, invalid, required
from setpoint.resources.registry import Obj, ResourceType

_TOTAL_ANNOTATION_SIZE = 256 * 1024

# Kinds whose names must be DNS-1123 labels rather than subdomains, and those whose names
# must be DNS-1035 labels (a Service's name is a DNS label that starts with a letter).
_LABEL_NAMED = {("", "Namespace")}
_DNS1035_NAMED = {("", "Service")}
# RBAC objects are named by path segments (``system:node``), as ``ValidateRBACName`` asks
_PATH_SEGMENT_NAMED = {
    ("rbac.authorization.k8s.io", kind)
    for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
}


def validate_name(rtype: ResourceType, name: str, path: str = "metadata.name") -> list[FieldError]:
    if (rtype.group, rtype.kind) in _PATH_SEGMENT_NAMED:
        messages = path_segment_name_errors(name)
    elif (rtype.group, rtype.kind) in _DNS1035_NAMED:
        messages = dns1035_label_errors(name)
    elif (rtype.group, rtype.kind) in _LABEL_NAMED:
        messages = dns1123_label_errors(name)
    else:
        messages = dns1123_subdomain_errors(name)
    return [invalid(path, name, m) for m in messages]


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(labels, dict):
        return errors
    for key, value in labels.items():
        errors += [invalid(path, key, m) for m in label_key_errors(key)]
        errors += [invalid(f"{path}[{key}]", value, m) for m in label_value_errors(value)]
    return errors


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(annotations, dict):
        return errors
    total = 0
    for key, value in annotations.items():
        errors += [invalid(path, key, m) for m in label_key_errors(key.lower())]
        total += len(key) + len(value)
    if total > _TOTAL_ANNOTATION_SIZE:
        errors.append(
            FieldError(
                "FieldValueTooLong",
                path,
                f"Too long: may not be more than {_TOTAL_ANNOTATION_SIZE} bytes",
            )
        )
    return errors


def validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(refs, list):
        return errors
    controllers = []
    for i, ref in enumerate(refs):
        item = f"{path}[{i}]"
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errors.append(required(f"{item}.{key}", f"{key} must not be empty"))
        if ref.get("controller"):
            controllers.append(ref.get("name", ""))
    if len(controllers) > 1:
        errors.append(
            invalid(
                path,
                refs,
                'Only one reference can have Controller set to true. Found "true" in '
                f"references for {' and '.join(controllers)}",
            )
        )
    return errors


def validate_finalizers(finalizers: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if not isinstance(finalizers, list):
        return errors
    for i, finalizer in enumerate(finalizers):
        for message in label_key_errors(finalizer):
            errors.append(invalid(f"{path}[{i}]", finalizer, message))
    return errors


def validate_object_meta(rtype: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    meta = obj.get("metadata") or {}
    errors: list[FieldError] = []
    name = meta.get("name", "")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors += validate_name(rtype, name)
    if rtype.namespaced and not meta.get("namespace"):
        errors.append(required("metadata.namespace"))
    if not rtype.namespaced and meta.get("namespace"):
        errors.append(forbidden("metadata.namespace", "not allowed on this type"))
    errors += validate_labels(meta.get("labels"), "metadata.labels")
    errors += validate_annotations(meta.get("annotations"), "metadata.annotations")
    errors += validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences")
    errors += validate_finalizers(meta.get("finalizers"), "metadata.finalizers")
    if old is not None:
        old_meta = old["metadata"]
        for key in ("name", "namespace", "uid"):
            if meta.get(key, "") != old_meta.get(key, ""):
                errors.append(invalid(f"metadata.{key}", meta.get(key, ""), "field is immutable"))
    return errors
