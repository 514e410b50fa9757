"""``metadata.managedFields``: the entries that record which manager owns which fields.

An object carries one entry per manager identity: the manager's name, the operation
(``Apply`` or ``Update``), the apiVersion it wrote with and the subresource it wrote through
(an applier keeps one entry whatever version it applies); each holds its field set in the
``FieldsV1`` format (:meth:`setpoint.api.merge.fieldpath.FieldSet.to_fieldsv1`) and the time
of its last change. This module is the codec of those entries and the rules about the list
as a whole, following ``k8s.io/apimachinery/pkg/util/managedfields/internal``
(``managedfields.go``, ``capmanagers.go``) as the apiserver's field manager
(``k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager``) uses it:

* :func:`decode` reads entries, refusing with Kubernetes' wording what it would refuse
  (operation not ``Apply``/``Update``, missing apiVersion, fieldsType not ``FieldsV1``);
  :func:`decode_or_empty` treats such entries as none, as a write does;
* :func:`with_managed_fields` writes entries back in Kubernetes' order (operation, time,
  manager, apiVersion, subresource), re-emitting a ``fieldsV1`` document as it came while its
  set is unchanged;
* :func:`is_reset` tells a request that clears the entries (``[]`` or ``[{}]``), and
  :func:`cap` keeps at most :data:`MAX_UPDATE_MANAGERS` Update entries by merging the oldest
  into ``ancient-changes``.
"""

from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass
from typing import Any, Final

import orjson

from setpoint.api.merge.fieldpath import EMPTY, FieldSet, FieldsV1Error
from setpoint.meta import gofmt
from setpoint.meta.jsonvalue import json_copy

__all__ = [
    "APPLY",
    "MAX_UPDATE_MANAGERS",
    "UPDATE",
    "Manager",
    "Managers",
    "Owned",
    "Times",
    "cap",
    "decode",
    "decode_or_empty",
    "is_reset",
    "object_meta",
    "with_managed_fields",
    "without_managed_fields",
]

MAX_UPDATE_MANAGERS: Final = 10
"""Update entries kept before the oldest are merged into ``ancient-changes`` (Kubernetes' cap)."""

APPLY: Final = "Apply"
UPDATE: Final = "Update"


# =========================================================================== entries


@dataclass(frozen=True, slots=True)
class Manager:
    """A manager identity: what makes two managedFields entries the same entry."""

    name: str
    operation: str
    api_version: str  # "" for appliers: they keep one entry whatever version they apply
    subresource: str

    @property
    def identifier(self) -> str:
        """Kubernetes' manager identifier (JSON of the identity), used to order managers."""
        parts = []
        if self.name:
            parts.append('"manager":' + gofmt.json_marshal(self.name))
        if self.operation:
            parts.append('"operation":' + gofmt.json_marshal(self.operation))
        if self.api_version:
            parts.append('"apiVersion":' + gofmt.json_marshal(self.api_version))
        if self.subresource:
            parts.append('"subresource":' + gofmt.json_marshal(self.subresource))
        return "{" + ",".join(parts) + "}"


@dataclass(frozen=True, slots=True)
class Owned:
    """What an entry holds besides its identity: the fields, the entry's apiVersion, and
    whether they were applied."""

    fields: FieldSet
    api_version: str
    applied: bool
    raw: Any = None
    """The ``fieldsV1`` this set was decoded from, re-emitted while the set is unchanged."""


Managers = dict[Manager, Owned]
"""Decoded entries, in the order they came."""
Times = dict[Manager, "str | None"]
"""Each entry's ``time`` (RFC 3339), ``None`` when it has none."""


class _DecodeError(ValueError):
    pass


def decode(entries: Any) -> tuple[Managers, Times]:
    """Decode ``metadata.managedFields``; a ``ValueError`` with Kubernetes' wording for entries
    it would refuse (operation not ``Apply``/``Update``, missing apiVersion, fieldsType not
    ``FieldsV1``)."""
    managers: Managers = {}
    times: Times = {}
    if entries is None:
        return managers, times
    if not isinstance(entries, list):
        raise _DecodeError("managedFields must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _DecodeError(f"managed fields entry {i} must be an object")
        operation = entry.get("operation")
        if operation not in (APPLY, UPDATE):
            raise _DecodeError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion") or ""
        if not isinstance(api_version, str) or not api_version:
            raise _DecodeError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType") or ""
        if fields_type == "":
            raise _DecodeError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise _DecodeError(f"invalid fieldsType {fields_type!r} in managed fields entry {i}")
        ident = Manager(
            str(entry.get("manager") or ""),
            operation,
            "" if operation == APPLY else api_version,
            str(entry.get("subresource") or ""),
        )
        raw = entry.get("fieldsV1")
        try:
            fields = _decode_fields(orjson.dumps(raw)) if raw is not None else EMPTY
        except (FieldsV1Error, TypeError) as exc:
            raise _DecodeError(f"error decoding set: {exc}") from exc
        managers[ident] = Owned(fields, api_version, operation == APPLY, raw)
        when = entry.get("time")
        times[ident] = when if isinstance(when, str) else None
    return managers, times


@functools.lru_cache(maxsize=4096)
def _decode_fields(raw: bytes) -> FieldSet:
    """Decoded ``fieldsV1`` (sets are immutable, so equal documents share one)."""
    return FieldSet.from_fieldsv1(raw)


def decode_or_empty(entries: Any) -> tuple[Managers, Times]:
    """:func:`decode`, with entries it refuses read as none (as a write reads them)."""
    try:
        return decode(entries)
    except _DecodeError:
        return {}, {}


@functools.lru_cache(maxsize=4096)
def _unix(when: str | None) -> int:
    if not when:
        return 0
    try:
        return int(_dt.datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode(managers: Managers, times: Times) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for ident, owned in managers.items():
        entry: dict[str, Any] = {}
        if ident.name:
            entry["manager"] = ident.name
        entry["operation"] = APPLY if owned.applied else ident.operation
        entry["apiVersion"] = owned.api_version
        when = times.get(ident)
        if when:
            entry["time"] = when
        entry["fieldsType"] = "FieldsV1"
        if owned.raw is not None:
            entry["fieldsV1"] = json_copy(owned.raw)
        else:
            entry["fieldsV1"] = owned.fields.to_fieldsv1()
        if ident.subresource:
            entry["subresource"] = ident.subresource
        entries.append(entry)
    entries.sort(
        key=lambda e: (
            e["operation"],
            _unix(e.get("time")),
            e.get("manager", ""),
            e["apiVersion"],
            e.get("subresource", ""),
        )
    )
    return entries


def object_meta(obj: Any) -> dict[str, Any]:
    """``obj``'s ``metadata``, or an empty dict when it has none."""
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            return meta
    return {}


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without ``metadata.managedFields`` (``obj`` itself when it has none)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def with_managed_fields(obj: dict[str, Any], managers: Managers, times: Times) -> dict[str, Any]:
    """``obj`` with ``metadata.managedFields`` encoded from ``managers`` (none when empty)."""
    meta = {k: v for k, v in object_meta(obj).items() if k != "managedFields"}
    if managers:
        meta["managedFields"] = _encode(managers, times)
    return {**obj, "metadata": meta}


# =========================================================================== the list as a whole


def is_reset(entries: Any) -> bool:
    """Whether a request's managedFields ask for them to be cleared (``[]`` or ``[{}]``)."""
    if not isinstance(entries, list):
        return False
    if not entries:
        return True
    return len(entries) == 1 and isinstance(entries[0], dict) and not any(entries[0].values())


def cap(managers: Managers, times: Times, limit: int = MAX_UPDATE_MANAGERS) -> Managers:
    """Merge the oldest Update entries into ``ancient-changes`` buckets past ``limit``."""
    updaters = [m for m, owned in managers.items() if not owned.applied]
    if len(updaters) <= limit:
        return managers
    managers = dict(managers)
    updaters.sort(key=lambda m: (_unix(times.get(m)), m.identifier))
    first_of_version: dict[str, Manager] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= limit:
            break
        owned = managers[ident]
        version = owned.api_version
        bucket = Manager("ancient-changes", UPDATE, version, "")
        if version not in first_of_version:
            first_of_version[version] = ident
            continue
        if bucket == ident:
            continue
        if bucket not in managers:
            managers[bucket] = managers.pop(first_of_version[version])
        managers[bucket] = Owned(
            owned.fields.union(managers[bucket].fields), version, owned.applied
        )
        del managers[ident]
        length -= 1
        times[bucket] = times.get(ident)
    return managers
