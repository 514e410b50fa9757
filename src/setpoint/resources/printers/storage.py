"""Tables for PersistentVolumes and PersistentVolumeClaims (``printPersistentVolume`` and
``printPersistentVolumeClaim`` of Kubernetes' ``pkg/printers/internalversion/printers.go``).

A volume shows its capacity, access modes as ``RWO,ROX``, reclaim policy, phase
(``Terminating`` once deleted), the claim as ``namespace/name``, its storage class and
``<unset>`` for an unset volume attributes class or (``-o wide``) volume mode. A claim shows
its phase, the volume it is bound to and, only once bound, the capacity and access modes its
status reports. The storage class of either comes from the legacy
``volume.beta.kubernetes.io/storage-class`` annotation first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.meta.quantity import QuantityError, canonical, parse_quantity
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

ACCESS_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def format_access_modes(modes: Any) -> str:
    """``GetAccessModesAsString``: the modes present, abbreviated, in Kubernetes' order."""
    present = set(modes) if isinstance(modes, list) else set()
    return ",".join(short for mode, short in ACCESS_MODE_ABBREVIATIONS if mode in present)


def storage_class_of(obj: Obj) -> str:
    """``GetPersistentVolumeClass`` / ``GetPersistentVolumeClaimClass``."""
    annotations = dig(obj, "metadata", "annotations")
    if isinstance(annotations, Mapping) and STORAGE_CLASS_ANNOTATION in annotations:
        return str(annotations[STORAGE_CLASS_ANNOTATION])
    return text(obj, "spec", "storageClassName")


def format_storage(quantities: Any) -> str:
    """The ``storage`` quantity as Go's ``Quantity.String`` prints it (``0`` when unset)."""
    value = quantities.get("storage") if isinstance(quantities, Mapping) else None
    if value is None:
        return "0"
    try:
        return canonical(parse_quantity(str(value)))
    except QuantityError:
        return str(value)


PERSISTENT_VOLUME_COLUMNS = [
    NAME_COLUMN,
    column(
        "Capacity",
        description="capacity is the description of the persistent volume's "
        "resources and capacity.",
    ),
    column("Access Modes", description="accessModes contains all ways the volume can be mounted."),
    column(
        "Reclaim Policy",
        description="persistentVolumeReclaimPolicy defines what happens "
        "to a persistent volume when released from its claim.",
    ),
    column(
        "Status",
        description="phase indicates if a volume is available, bound to a claim, "
        "or released by a claim.",
    ),
    column(
        "Claim",
        description="claimRef is part of a bi-directional binding between "
        "PersistentVolume and PersistentVolumeClaim.",
    ),
    column(
        "StorageClass",
        description="storageClassName is the name of StorageClass to which "
        "this persistent volume belongs.",
    ),
    column(
        "VolumeAttributesClass",
        description="Name of VolumeAttributesClass to which this persistent volume belongs.",
    ),
    column(
        "Reason",
        description="reason is a brief CamelCase string that describes any "
        "failure and is meant for machine parsing and tidy display in the CLI.",
    ),
    AGE_COLUMN,
    column(
        "VolumeMode",
        priority=1,
        description="volumeMode defines if a volume is intended "
        "to be used with a formatted filesystem or to remain in raw block state.",
    ),
]


def persistent_volume_cells(volume: Obj, now: datetime) -> list[Any]:
    claim = dig(volume, "spec", "claimRef")
    claim_text = ""
    if isinstance(claim, Mapping):
        claim_text = f"{claim.get('namespace', '')}/{claim.get('name', '')}"
    phase = text(volume, "status", "phase")
    if dig(volume, "metadata", "deletionTimestamp"):
        phase = "Terminating"
    return [
        name_of(volume),
        format_storage(dig(volume, "spec", "capacity")),
        format_access_modes(dig(volume, "spec", "accessModes")),
        text(volume, "spec", "persistentVolumeReclaimPolicy"),
        phase,
        claim_text,
        storage_class_of(volume),
        text(volume, "spec", "volumeAttributesClassName") or "<unset>",
        text(volume, "status", "reason"),
        age_of(volume, now),
        text(volume, "spec", "volumeMode") or "<unset>",
    ]


PERSISTENT_VOLUME_PRINTER = Printer(PERSISTENT_VOLUME_COLUMNS, persistent_volume_cells)


PERSISTENTVOLUMECLAIM_COLUMNS = [
    NAME_COLUMN,
    column(
        "Status",
        description="phase represents the current phase of PersistentVolumeClaim.",
    ),
    column(
        "Volume",
        description="volumeName is the binding reference to the PersistentVolume backing "
        "this claim.",
    ),
    column(
        "Capacity",
        description="capacity represents the actual resources of the underlying volume.",
    ),
    column(
        "Access Modes",
        description="accessModes contains the actual access modes the volume backing the PVC "
        "has. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
    ),
    column("StorageClass", description="StorageClass of the pvc"),
    column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
    AGE_COLUMN,
    column(
        "VolumeMode",
        priority=1,
        description="volumeMode defines what type of volume is required by the claim. Value "
        "of Filesystem is implied when not included in claim spec.",
    ),
]


def persistentvolumeclaim_cells(claim: Obj, now: datetime) -> list[Any]:
    """``printPersistentVolumeClaim``."""
    phase = text(claim, "status", "phase")
    if dig(claim, "metadata", "deletionTimestamp"):
        phase = "Terminating"
    volume = text(claim, "spec", "volumeName")
    capacity = modes = ""
    if volume:
        capacity = format_storage(dig(claim, "status", "capacity"))
        modes = format_access_modes(items(claim, "status", "accessModes"))
    return [
        name_of(claim),
        phase,
        volume,
        capacity,
        modes,
        storage_class_of(claim),
        text(claim, "spec", "volumeAttributesClassName") or "<unset>",
        age_of(claim, now),
        text(claim, "spec", "volumeMode") or "<unset>",
    ]


PERSISTENTVOLUMECLAIM_PRINTER = Printer(PERSISTENTVOLUMECLAIM_COLUMNS, persistentvolumeclaim_cells)
