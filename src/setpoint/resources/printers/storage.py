"""The table of PersistentVolumeClaims (``printPersistentVolumeClaim`` in Kubernetes'
``pkg/printers/internalversion/printers.go``).

A claim shows its phase (``Terminating`` while it is being deleted), the volume it is bound
to, and, only once bound, the capacity and access modes its status reports; the storage
class comes from the legacy ``volume.beta.kubernetes.io/storage-class`` annotation first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
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

STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)

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


def access_modes_text(modes: list[Any]) -> str:
    """``GetAccessModesAsString``: the abbreviations, in Kubernetes' fixed order."""
    return ",".join(short for mode, short in _MODE_ABBREVIATIONS if mode in modes)


def claim_class(claim: Obj) -> str:
    """``GetPersistentVolumeClaimClass``: the legacy annotation, else ``storageClassName``."""
    annotations = dig(claim, "metadata", "annotations") or {}
    if STORAGE_CLASS_ANNOTATION in annotations:
        return str(annotations[STORAGE_CLASS_ANNOTATION])
    return text(claim, "spec", "storageClassName")


def persistentvolumeclaim_cells(claim: Obj, now: datetime) -> list[Any]:
    """``printPersistentVolumeClaim``."""
    phase = text(claim, "status", "phase")
    if dig(claim, "metadata", "deletionTimestamp"):
        phase = "Terminating"
    volume = text(claim, "spec", "volumeName")
    capacity = modes = ""
    if volume:
        capacity = text(claim, "status", "capacity", "storage")
        modes = access_modes_text(items(claim, "status", "accessModes"))
    return [
        name_of(claim),
        phase,
        volume,
        capacity,
        modes,
        claim_class(claim),
        text(claim, "spec", "volumeAttributesClassName") or "<unset>",
        age_of(claim, now),
        text(claim, "spec", "volumeMode") or "<unset>",
    ]


PERSISTENTVOLUMECLAIM_PRINTER = Printer(PERSISTENTVOLUMECLAIM_COLUMNS, persistentvolumeclaim_cells)
