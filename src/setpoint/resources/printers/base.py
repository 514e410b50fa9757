"""The building blocks of server-side printing: column definitions, rows, time and selectors.

A :class:`Printer` is what Kubernetes registers with ``TableHandler`` for one kind: its column
definitions and the function that turns one object into one row's cells (plus, for pods, the
row conditions). As in Kubernetes' API server, the cells always include the ``-o wide``
columns (priority 1); kubectl drops the ones it does not show.

The helpers here are the ones ``pkg/printers/internalversion/printers.go`` leans on:
``duration.HumanDuration`` and ``translateTimestampSince`` for ages, ``layoutContainerCells``
for the CONTAINERS and IMAGES columns, and the two ways Kubernetes renders a label selector
(``metav1.FormatLabelSelector`` and the deployment printer's own).

Column descriptions are Kubernetes' own: mostly the API field documentation (``SwaggerDoc``)
of the field a column shows, copied from the v1.37 schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.meta.labels import selector_from_label_selector
from setpoint.meta.timestamps import parse_time

Cells = Callable[[Obj, datetime], list[Any]]
"""Computes one row's cells, wide columns included, at the moment ``now``."""

RowConditions = Callable[[Obj], list[dict[str, Any]]]
"""Computes one row's ``conditions`` (``Completed`` for finished pods)."""


def column(
    name: str, kind: str = "string", description: str = "", *, priority: int = 0, fmt: str = ""
) -> dict[str, Any]:
    """One ``TableColumnDefinition``: priority 0 is always shown, 1 only with ``-o wide``."""
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATION_TIMESTAMP_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
CONTAINERS_DOC = "Names of each container in the template."
IMAGES_DOC = "Images referenced by each container in the template."

NAME_COLUMN = column("Name", fmt="name", description=NAME_DOC)
AGE_COLUMN = column("Age", description=CREATION_TIMESTAMP_DOC)


def wide_containers_columns(selector_doc: str) -> list[dict[str, Any]]:
    """The CONTAINERS, IMAGES and SELECTOR columns workload printers add for ``-o wide``."""
    return [
        column("Containers", description=CONTAINERS_DOC, priority=1),
        column("Images", description=IMAGES_DOC, priority=1),
        column("Selector", description=selector_doc, priority=1),
    ]


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: 5s, 10m, 3h4m, 2d3h, 400d, 3y20d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rem = minutes % 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d{rem}h" if rem else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime) -> str:
    """``translateTimestampSince``: how long ago, or ``<unknown>`` for an unset time."""
    moment = parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def dig(obj: Mapping[str, Any] | None, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or None as soon as a step is missing or not an object."""
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def text(obj: Mapping[str, Any] | None, *path: str) -> str:
    """A string field, ``""`` when unset (Go's zero value)."""
    value = dig(obj, *path)
    return value if isinstance(value, str) else ""


def number(obj: Mapping[str, Any] | None, *path: str, default: int = 0) -> int:
    """An integer field, ``default`` when unset (Go's zero value unless defaulted)."""
    value = dig(obj, *path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def items(obj: Mapping[str, Any] | None, *path: str) -> list[Any]:
    """A list field, ``[]`` when unset."""
    value = dig(obj, *path)
    return value if isinstance(value, list) else []


def size(obj: Mapping[str, Any] | None, *path: str) -> int:
    """``len()`` of a list or map field, 0 when unset."""
    value = dig(obj, *path)
    return len(value) if isinstance(value, list | dict) else 0


def name_of(obj: Obj) -> str:
    return text(obj, "metadata", "name")


def age_of(obj: Obj, now: datetime) -> str:
    return age(text(obj, "metadata", "creationTimestamp"), now)


def containers_cells(pod_spec: Mapping[str, Any] | None) -> list[str]:
    """``layoutContainerCells``: container names and images, each comma-separated."""
    containers = [c for c in items(pod_spec, "containers") if isinstance(c, Mapping)]
    names = ",".join(text(c, "name") for c in containers)
    images = ",".join(text(c, "image") for c in containers)
    return [names, images]


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """``metav1.FormatLabelSelector``: canonical form, ``<none>`` if empty, ``<error>``."""
    try:
        rendered = str(selector_from_label_selector(selector))
    except ValueError:
        return "<error>"
    return rendered or "<none>"


def deployment_selector(selector: Mapping[str, Any] | None) -> str:
    """The deployment printer's rendering: canonical form, ``""`` if empty, ``<invalid>``."""
    try:
        return str(selector_from_label_selector(selector))
    except ValueError:
        return "<invalid>"


def _name_age(obj: Obj, now: datetime) -> list[Any]:
    return [name_of(obj), age_of(obj, now)]


def _no_conditions(obj: Obj) -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class Printer:
    """One kind's table: column definitions, and how to compute a row from an object."""

    columns: list[dict[str, Any]] = field(default_factory=lambda: [NAME_COLUMN, AGE_COLUMN])
    cells: Cells = _name_age
    row_conditions: RowConditions = _no_conditions

    def conditions(self, obj: Obj) -> list[dict[str, Any]]:
        """Row conditions: kubectl hides ``Completed`` rows only when asked to."""
        return self.row_conditions(obj)


DEFAULT_PRINTER = Printer()
"""``NAME`` and ``AGE``: what Kubernetes' default table convertor shows of a kind without a
printer of its own."""
