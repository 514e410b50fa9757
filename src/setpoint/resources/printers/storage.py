"""Tables for PersistentVolumes (``printPersistentVolume`` of Kubernetes'
``pkg/printers/internalversion/printers.go``): capacity, access modes as ``RWO,ROX``,
reclaim policy, phase (``Terminating`` once deleted), the claim as ``namespace/name``, the
storage class (its beta annotation first), and ``<unset>`` for an unset volume attributes
class or (``-o wide``) volume mode."""

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
