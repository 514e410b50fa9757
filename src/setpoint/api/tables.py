"""Server-side printing: ``meta.k8s.io/v1 Table`` responses for ``kubectl get``.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints whatever columns
the server sends, so the familiar ``NAME READY STATUS RESTARTS AGE`` come from here. Each
kind's declaration names its printer (columns and cell values, :mod:`setpoint.resources.printers`,
Kubernetes' ``pkg/printers/internalversion``); this module wraps them into Table objects, for lists,
single objects and watch events, honouring ``includeObject`` (None, Metadata, Object).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.resources.printers.base import DEFAULT_PRINTER, Printer
from setpoint.resources.registry import Obj, ResourceType

TABLE_API_VERSION = "meta.k8s.io/v1"


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def _row(rtype: ResourceType, obj: Obj, include_object: str, now: datetime) -> dict[str, Any]:
    printer = _printer(rtype)
    row: dict[str, Any] = {"cells": printer.cells(obj, now)}
    conditions = printer.conditions(obj)
    if conditions:
        row["conditions"] = conditions
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = partial_metadata(obj)
    return row


def to_table(
    rtype: ResourceType,
    objects: Iterable[Obj],
    *,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    remaining: int | None = None,
    with_columns: bool = True,
    clock: Clock = REAL_CLOCK,
) -> dict[str, Any]:
    now = clock.now()
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": metadata,
        "columnDefinitions": _printer(rtype).columns if with_columns else [],
        "rows": [_row(rtype, obj, include_object, now) for obj in objects],
    }


def _printer(rtype: ResourceType) -> Printer:
    return rtype.printer or DEFAULT_PRINTER
