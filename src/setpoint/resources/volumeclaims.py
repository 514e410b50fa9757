"""The PersistentVolumeClaim kind (core/v1): a request for storage, and the checks its spec
gets wherever it appears (a claim, a StatefulSet's ``volumeClaimTemplates``).

A claim asks for ``resources.requests.storage`` with one or more ``accessModes``; a binder
would match it to a PersistentVolume (or a provisioner make one) and set ``spec.volumeName``
and ``status.phase: Bound``. setpoint has neither a PersistentVolume binder nor a volume
provisioner, so a claim stays ``Pending``; the node agent gives a pod that mounts one a
node-local directory instead (:mod:`setpoint.agent.volumes`, like the local-path
provisioner). See docs/statefulsets.md.

Follows ``pkg/apis/core/validation``'s ``ValidatePersistentVolumeClaim`` (the common
fields: access modes, the storage request, volume mode, the storage class name, the
selector) and ``ValidatePersistentVolumeClaimUpdate``: after creation the spec is immutable
but for a larger ``resources.requests`` (Kubernetes allows that only once the claim is Bound,
to expand its volume; with no binder here a claim never is, and growing the request of a
Pending claim is what an expansion would ask for anyway). Defaults as
``SetDefaults_PersistentVolumeClaim(Spec)``: ``volumeMode: Filesystem``, phase ``Pending``.
"""

from __future__ import annotations

from typing import Any

from setpoint.meta.quantity import QuantityError, parse_quantity
from setpoint.meta.validation import dns1123_subdomain_errors
from setpoint.resources.checks import kube_finalizer_errors, label_selector_errors
from setpoint.resources.fielderrors import (
    FieldError,
    forbidden,
    invalid_value,
    not_supported,
    required,
)
from setpoint.resources.printers.storage import PERSISTENTVOLUMECLAIM_PRINTER
from setpoint.resources.registry import SPEC_AND_STATUS, Obj, ResourceType

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
PENDING = "Pending"
SPEC_IMMUTABLE = (
    "spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


def default_claim(claim: Obj) -> None:
    """``SetDefaults_PersistentVolumeClaim`` and ``..._PersistentVolumeClaimSpec`` (also run
    on a StatefulSet's claim templates, as Kubernetes' generated defaulters do)."""
    spec = claim.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    status = claim.setdefault("status", {})
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = PENDING


def _prepare_claim(claim: Obj) -> None:
    """``PrepareForCreate``: a new claim has no status but its phase."""
    claim["status"] = {"phase": PENDING}


def _storage_request(spec: Obj) -> Any:
    return ((spec.get("resources") or {}).get("requests") or {}).get("storage")


def access_mode_errors(modes: Any, path: str, *, missing: str = "") -> list[FieldError]:
    """The access modes a claim or a volume names: at least one (``missing`` says so as its
    kind does), each known, and ``ReadWriteOncePod`` only alone."""
    listed = modes if isinstance(modes, list) else []
    if not listed:
        return [required(path, missing)]
    errors = [
        not_supported(path, mode, ACCESS_MODES) for mode in listed if mode not in ACCESS_MODES
    ]
    if "ReadWriteOncePod" in listed and len(listed) > 1:
        errors.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errors


def storage_class_errors(spec: Obj, path: str) -> list[FieldError]:
    """``storageClassName``, when set, is a DNS subdomain."""
    name = spec.get("storageClassName")
    if not name:
        return []
    return [invalid_value(path, name, m) for m in dns1123_subdomain_errors(name)]


def volume_mode_errors(spec: Obj, path: str) -> list[FieldError]:
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        return [not_supported(path, mode, VOLUME_MODES)]
    return []


def claim_spec_errors(spec: Obj, path: str) -> list[FieldError]:
    """``ValidatePersistentVolumeClaimSpec``'s common fields."""
    errors = access_mode_errors(
        spec.get("accessModes"), f"{path}.accessModes", missing="at least 1 access mode is required"
    )
    if spec.get("selector") is not None:
        errors += label_selector_errors(spec["selector"], f"{path}.selector")
    storage = _storage_request(spec)
    item = f"{path}.resources[storage]"
    if storage is None:
        errors.append(required(item))
    else:
        try:
            quantity = parse_quantity(str(storage))
        except QuantityError as exc:
            errors.append(invalid_value(item, str(storage), str(exc)))
        else:
            if quantity.value <= 0:
                errors.append(invalid_value(item, str(storage), "must be greater than zero"))
    errors += storage_class_errors(spec, f"{path}.storageClassName")
    return errors + volume_mode_errors(spec, f"{path}.volumeMode")


def _validate_claim(claim: Obj, old: Obj | None) -> list[FieldError]:
    spec = claim.get("spec") or {}
    errors = kube_finalizer_errors(claim) + claim_spec_errors(spec, "spec")
    if old is None:
        return errors
    return errors + claim_update_errors(spec, old.get("spec") or {})


def claim_update_errors(spec: Obj, old_spec: Obj) -> list[FieldError]:
    """``ValidatePersistentVolumeClaimUpdate``: nothing but a larger storage request."""
    new_storage, old_storage = _storage_request(spec), _storage_request(old_spec)
    try:
        shrinks = parse_quantity(str(new_storage)).value < parse_quantity(str(old_storage)).value
    except QuantityError:
        shrinks = False  # reported by the spec checks
    if shrinks:
        path = "spec.resources.requests.storage"
        return [forbidden(path, "field can not be less than previous value")]

    def without_requests(value: Obj) -> Obj:
        resources = {k: v for k, v in (value.get("resources") or {}).items() if k != "requests"}
        rest = {k: v for k, v in value.items() if k != "resources"}
        return {**rest, "resources": resources} if resources else rest

    if without_requests(spec) != without_requests(old_spec):
        return [forbidden("spec", SPEC_IMMUTABLE)]
    return []


PERSISTENT_VOLUME_CLAIM = ResourceType(
    group="",
    version="v1",
    kind="PersistentVolumeClaim",
    plural="persistentvolumeclaims",
    singular="persistentvolumeclaim",
    namespaced=True,
    short_names=("pvc",),
    subresources=("status",),
    definition="io.k8s.api.core.v1.PersistentVolumeClaim",
    printer=PERSISTENTVOLUMECLAIM_PRINTER,
    protobuf="k8s.io.api.core.v1.PersistentVolumeClaim",
    has_status=True,
    always_encoded=SPEC_AND_STATUS,
    prepare_for_create=_prepare_claim,
    defaulter=default_claim,
    validator=_validate_claim,
)
