"""Per-kind table columns, as Kubernetes' ``pkg/printers/internalversion`` defines them.

A :class:`Printer` names its columns (name, type, format, priority: 0 for ``kubectl get``,
1 for ``-o wide`` only) and computes one row's cells from an object. Kinds without a
printer of their own get ``NAME`` and ``AGE``, as Kubernetes' default table convertor does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from setpoint.resources.registry import Obj, ResourceType

Cells = Callable[[Obj, datetime], list[Any]]


def column(
    name: str, kind: str = "string", description: str = "", *, priority: int = 0, fmt: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


NAME_COLUMN = column("Name", fmt="name", description="Name must be unique within a namespace.")
AGE_COLUMN = column(
    "Age",
    description="CreationTimestamp is a timestamp representing the "
    "server time when this object was created.",
)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


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
    moment = parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration((now - moment).total_seconds())


def _name_age(obj: Obj, now: datetime) -> list[Any]:
    meta = obj.get("metadata", {})
    return [meta.get("name", ""), age(meta.get("creationTimestamp"), now)]


@dataclass(frozen=True)
class Printer:
    columns: list[dict[str, Any]] = field(default_factory=lambda: [NAME_COLUMN, AGE_COLUMN])
    cells: Cells = _name_age

    def conditions(self, obj: Obj) -> list[dict[str, Any]]:
        """Row conditions: ``Completed`` rows are hidden by ``kubectl get`` (pods)."""
        return []


DEFAULT_PRINTER = Printer()

PRINTERS: dict[tuple[str, str], Printer] = {}


def printer_for(rtype: ResourceType) -> Printer:
    return PRINTERS.get((rtype.group, rtype.kind), DEFAULT_PRINTER)
