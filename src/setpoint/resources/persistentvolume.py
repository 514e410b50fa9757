"""The PersistentVolume (core/v1): a piece of storage an administrator declares, for claims
to bind.

setpoint stores, validates and lists PersistentVolumes so that manifests holding them apply
and ``kubectl apply --prune``'s default allow-list (which names them) works; there is no
PersistentVolume controller binding claims to them, so a volume stays in the phase it was
created in (``Pending``, as Kubernetes shows a volume before its controller has seen it).

* **Defaults** (``SetDefaults_PersistentVolume``): ``status.phase: Pending``,
  ``persistentVolumeReclaimPolicy: Retain``, ``volumeMode: Filesystem``.
* **Validation** (the core of ``ValidatePersistentVolumeSpec``): access modes required and
  known (``ReadWriteOncePod`` alone), a capacity of exactly ``storage``, greater than zero, a
  known reclaim policy and volume mode, exactly one volume source (``hostPath`` and ``local``
  with a path, ``local`` with node affinity, ``nfs`` with server and path), a storage class
  name that is a DNS subdomain; on update the volume mode and the volume source never change.
"""

from __future__ import annotations

from setpoint.meta.quantity import QuantityError, parse_quantity
from setpoint.resources.checks import immutable
from setpoint.resources.fielderrors import (
    FieldError,
    forbidden,
    invalid_value,
    not_supported,
    required,
)
from setpoint.resources.registry import Obj
from setpoint.resources.volumeclaims import (
    access_mode_errors,
    storage_class_errors,
    volume_mode_errors,
)

RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
VOLUME_SOURCES = (
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)


def default_persistent_volume(volume: Obj) -> None:
    spec = volume.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    status = volume.setdefault("status", {})
    if not status.get("phase"):
        status["phase"] = "Pending"


def validate_persistent_volume(volume: Obj, old: Obj | None) -> list[FieldError]:
    spec = volume.get("spec") or {}
    errors = access_mode_errors(spec.get("accessModes"), "spec.accessModes")
    errors += _capacity_errors(spec.get("capacity"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy is not None and policy not in RECLAIM_POLICIES:
        errors.append(not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES))
    errors += volume_mode_errors(spec, "spec.volumeMode")
    errors += storage_class_errors(spec, "spec.storageClassName")
    errors += _source_errors(spec)
    if old is not None:
        old_spec = old.get("spec") or {}
        errors += immutable(spec.get("volumeMode"), old_spec.get("volumeMode"), "spec.volumeMode")
        for source in VOLUME_SOURCES:
            if source in old_spec and spec.get(source) != old_spec.get(source):
                detail = "spec.persistentvolumesource is immutable after creation"
                errors.append(forbidden("spec.persistentvolumesource", detail))
                break
    return errors


def _capacity_errors(capacity: object) -> list[FieldError]:
    if not isinstance(capacity, dict) or not capacity:
        return [required("spec.capacity")]
    if set(capacity) != {"storage"}:
        return [not_supported("spec.capacity", sorted(capacity)[0], ["storage"])]
    try:
        amount = parse_quantity(str(capacity["storage"]))
    except QuantityError:
        return []  # the body's decoding already answered 400
    if amount.value <= 0:
        return [
            invalid_value(
                "spec.capacity[storage]", str(capacity["storage"]), "must be greater than zero"
            )
        ]
    return []


def _source_errors(spec: Obj) -> list[FieldError]:
    sources = [name for name in VOLUME_SOURCES if spec.get(name) is not None]
    if not sources:
        return [required("spec", "must specify a volume type")]
    if len(sources) > 1:
        return [forbidden(f"spec.{sources[1]}", "may not specify more than 1 volume type")]
    (source,) = sources
    body = spec[source] if isinstance(spec[source], dict) else {}
    errors: list[FieldError] = []
    if source in ("hostPath", "local") and not body.get("path"):
        errors.append(required(f"spec.{source}.path"))
    if source == "local" and not spec.get("nodeAffinity"):
        errors.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    if source == "nfs":
        errors += [required(f"spec.nfs.{key}") for key in ("server", "path") if not body.get(key)]
    return errors
