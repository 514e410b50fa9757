"""Server-side apply and ``metadata.managedFields`` tracking, as Kubernetes does them.

Kubernetes tracks, for every object, which *manager* (a client-chosen name such as ``kubectl``
or ``kube-controller-manager``) set which fields, and lets a manager *apply* a partial object
(``PATCH`` with ``application/apply-patch+yaml``): the applied configuration is merged into
the live object field by field, the applier becomes the owner of exactly the fields it
applied, fields it applied before and no longer does are removed unless someone else owns
them, and changing a field another manager owns is a conflict unless the request forces it.
Plain writes (create, update, the other patch types) are tracked too: the writer takes over
the fields it changed. This module reproduces that behaviour on plain JSON dicts. It follows
``sigs.k8s.io/structured-merge-diff`` (``typed``: ToFieldSet, Merge, Compare, RemoveItems;
``merge/update.go``: Apply, Update, prune) and the apiserver's field manager chain
(``k8s.io/apimachinery/pkg/util/managedfields/internal``): stripping server-owned metadata,
the "before-first-apply" and "ancient-changes" managers, manager identities, entry order,
conflict messages and the client-side-apply upgrade path for ``kubectl``.

Entry points
------------
* :func:`apply` merges an applied configuration into the live object (``None`` when the apply
  creates it) and returns the new object with ``managedFields`` updated, raising
  :class:`ApplyConflict` (a 409 for the handler; :func:`conflict_status_message` and
  :attr:`ApplyConflict.causes` give Kubernetes' texts) or :class:`ApplyInvalid`.
* :func:`track_update` updates ``managedFields`` for any other write.
* :func:`fieldset_of` is structured-merge-diff's ToFieldSet: the fields an object sets.

Neither function defaults, validates or resets fields; the storage layer does that afterwards,
as the apiserver does after its field manager ran.

Schema
------
Field semantics come from Kubernetes' JSON schema (``setpoint.resources.schema``): objects with
``properties`` are structs, ``additionalProperties`` maps are granular maps, and
``x-kubernetes-map-type: atomic`` makes either a single leaf; arrays follow
``x-kubernetes-list-type`` (``map`` merges items by ``x-kubernetes-list-map-keys``, ``set``
merges scalar items by value, anything else is atomic and replaced whole). The v1.37
definitions carry explicit list types wherever the apiserver's own OpenAPI does; for a list
that only has ``x-kubernetes-patch-strategy: merge`` a merge key makes it a ``map`` list and a
scalar item type a ``set``. Fields the schema does not declare are treated like
structured-merge-diff's deduced type (maps granular, lists atomic). Key fields the schema gives
no value for use the apiserver's OpenAPI defaults (``protocol: TCP`` for ports, an empty
``name`` for ``LocalObjectReference``).

The Go view of objects
----------------------
The apiserver compares Go structs, in which non-pointer struct fields always exist (a
Deployment's ``spec.strategy``, a container's ``resources``) and fields without ``omitempty``
exist as ``null``. That is what decides whether a manager owns a struct or map *itself*
(``".": {}`` in FieldsV1) or only what is inside it. Comparisons here therefore fill such
fields in first, using the Go type information of ``protobuf_schema.json``; objects of types
it does not describe are compared as they are.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, NamedTuple

import orjson

from setpoint.api.merge.fieldpath import (
    EMPTY,
    FIELD,
    KEY,
    VALUE,
    FieldSet,
    FieldsV1Error,
    Path,
    PathElement,
    _Builder,
    _go_json,
    path_string,
    tag,
)
from setpoint.meta.jsoncopy import json_copy
from setpoint.resources.schema import load_definitions

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "MAX_UPDATE_MANAGERS",
    "ApplyConflict",
    "ApplyInvalid",
    "Conflict",
    "apply",
    "conflict_status_message",
    "decode_managed_fields",
    "fieldset_of",
    "track_update",
]

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS: Final = 10
"""Update entries kept before the oldest are merged into ``ancient-changes`` (Kubernetes' cap)."""

_APPLY: Final = "Apply"
_UPDATE: Final = "Update"


class _Missing:
    """The absence of a value (as opposed to an explicit ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _Emptied:
    """A container that removal emptied: Go's ``null``, dropped before objects leave."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "EMPTIED"


EMPTIED: Final = _Emptied()


# =========================================================================== errors


class Conflict(NamedTuple):
    """One field another manager owns and an apply wanted to change."""

    manager: str
    """The owner's name, e.g. ``kubectl-client-side-apply``."""
    operation: str
    """``Apply`` or ``Update``."""
    api_version: str
    """The version the owner wrote with (printed for ``Update`` owners only)."""
    subresource: str
    """The subresource the owner wrote through, ``""`` for the main resource."""
    field: str
    """The field path as Kubernetes prints it, e.g. ``.spec.replicas``."""

    @property
    def described_manager(self) -> str:
        """The owner as Kubernetes names it in conflicts: ``"name" using apps/v1``."""
        text = _go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {_go_quote(self.subresource)}"
        if self.operation == _UPDATE:
            text += f" using {self.api_version}"
        return text


class ApplyConflict(Exception):
    """An apply would change fields other managers own (HTTP 409 Conflict).

    ``conflicts`` holds ``(manager, field)`` pairs where *manager* is already in the form
    Kubernetes prints after ``conflict with`` (``"kubectl-client-side-apply" using apps/v1``,
    or just ``"other"`` for an applier), ordered as Kubernetes orders them; ``details`` has the
    same conflicts with the owner's parts separated. ``str(error)`` is the Status message.
    """

    def __init__(self, details: Sequence[Conflict]) -> None:
        self.details: list[Conflict] = list(details)
        self.conflicts: list[tuple[str, str]] = [
            (c.described_manager, c.field) for c in self.details
        ]
        super().__init__(conflict_status_message(self.conflicts))

    @property
    def message(self) -> str:
        """The Status ``message``: ``Apply failed with 1 conflict: conflict with ...``."""
        return str(self)

    @property
    def causes(self) -> list[dict[str, str]]:
        """The Status ``details.causes`` entries Kubernetes sends, in order."""
        return [
            {"reason": "FieldManagerConflict", "message": f"conflict with {m}", "field": f}
            for m, f in self.conflicts
        ]


class ApplyInvalid(ValueError):
    """An apply request Kubernetes refuses before merging anything.

    ``code`` is the HTTP status the apiserver answers with: 400 for requests it rejects as bad
    (a wrong apiVersion/kind, ``metadata.managedFields`` set in the configuration), 500 for
    configurations its typed conversion fails on (duplicate keys in a ``map`` list).
    """

    def __init__(self, message: str, *, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


def conflict_status_message(conflicts: Sequence[tuple[str, str]]) -> str:
    """Kubernetes' Status message for apply conflicts given as ``(manager, field)`` pairs.

    *manager* is in printed form (see :class:`ApplyConflict`). With several conflicts they are
    grouped by manager, in the order the managers first appear.
    """
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {manager}: {path}"
    grouped: dict[str, list[str]] = {}
    for manager, path in conflicts:
        grouped.setdefault(manager, []).append(path)
    lines: list[str] = []
    for manager, paths in grouped.items():
        lines.append(f"conflicts with {manager}:")
        lines.extend(f"- {path}" for path in paths)
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def _go_quote(text: str) -> str:
    return _go_json(text).replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")


# =========================================================================== schema

_SCALAR, _MAP, _LIST, _DEDUCED, _NONE = range(5)


class _Type:
    """One schema position, in structured-merge-diff's terms."""

    __slots__ = ("atomic", "element", "fields", "key_defaults", "keys", "kind")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.fields: dict[str, _Type] = {}
        self.element: _Type | None = None  # map values / list items
        self.atomic = False
        self.keys: tuple[str, ...] = ()  # non-empty: a ``map`` list; empty non-atomic: a set
        self.key_defaults: dict[str, Any] = {}

    def field_type(self, name: str) -> _Type:
        found = self.fields.get(name)
        if found is not None:
            return found
        return self.element if self.element is not None else _DEDUCED_TYPE


def _leaf_type(kind: int, *, atomic: bool = False) -> _Type:
    t = _Type(kind)
    t.atomic = atomic
    return t


_SCALAR_TYPE: Final = _leaf_type(_SCALAR)
_DEDUCED_TYPE: Final = _leaf_type(_DEDUCED)
_NONE_TYPE: Final = _leaf_type(_NONE)
_ATOMIC_LIST: Final = _leaf_type(_LIST, atomic=True)
_DEDUCED_MAP: Final = _leaf_type(_MAP)
_DEDUCED_MAP.element = _DEDUCED_TYPE

_SCALAR_DEFINITIONS: Final = frozenset(
    {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
    }
)

# Defaults the apiserver's OpenAPI gives list-map key fields and kubernetes-validate omits.
_KEY_DEFAULTS: Final[dict[tuple[str, str], Any]] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.EndpointPort", "protocol"): "TCP",
    ("io.k8s.api.discovery.v1.EndpointPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.LocalObjectReference", "name"): "",
}

_REF_PREFIX: Final = "#/$defs/"


def _schema_types(schema: Mapping[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return [x for x in ([t] if isinstance(t, str) else t) if x != "null"]


class _Compiler:
    """Compiles definitions into :class:`_Type` trees on first use, sharing named types."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        self._defs = definitions
        self._named: dict[str, _Type] = {}

    def named(self, name: str) -> _Type:
        found = self._named.get(name)
        if found is not None:
            return found
        schema = self._defs.get(name)
        if schema is None:
            return _DEDUCED_TYPE
        if name in _SCALAR_DEFINITIONS:
            self._named[name] = _SCALAR_TYPE
            return _SCALAR_TYPE
        node = _Type(_DEDUCED)
        self._named[name] = node  # before recursing: definitions may be recursive
        compiled = self.compile(schema)
        node.kind = compiled.kind
        node.fields = compiled.fields
        node.element = compiled.element
        node.atomic = compiled.atomic
        node.keys = compiled.keys
        node.key_defaults = compiled.key_defaults
        return node

    @staticmethod
    def _ref(schema: Mapping[str, Any]) -> str | None:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            return ref[len(_REF_PREFIX) :]
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of and isinstance(all_of[0], Mapping):
            return _Compiler._ref(all_of[0])
        return None

    def compile(self, schema: Mapping[str, Any]) -> _Type:
        ref = self._ref(schema)
        if ref is not None:
            return self.named(ref)
        if "oneOf" in schema or "anyOf" in schema or schema.get("x-kubernetes-int-or-string"):
            return _SCALAR_TYPE
        types = _schema_types(schema)
        if "array" in types:
            return self._list(schema)
        if "object" in types or "properties" in schema or "additionalProperties" in schema:
            return self._map(schema)
        if types:
            return _SCALAR_TYPE
        return _DEDUCED_TYPE

    def _list(self, schema: Mapping[str, Any]) -> _Type:
        t = _Type(_LIST)
        items = schema.get("items")
        t.element = self.compile(items) if isinstance(items, Mapping) else _DEDUCED_TYPE
        list_type = schema.get("x-kubernetes-list-type")
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        if list_type is None:
            strategy = str(schema.get("x-kubernetes-patch-strategy") or "").split(",")
            merge_key = schema.get("x-kubernetes-patch-merge-key")
            if "merge" in strategy:
                if merge_key:
                    list_type, keys = "map", (str(merge_key),)
                elif isinstance(items, Mapping) and t.element.kind == _SCALAR:
                    list_type = "set"
        if list_type == "map" and keys:
            t.keys = keys
            item_ref = self._ref(items) if isinstance(items, Mapping) else None
            item_props: Mapping[str, Any] = {}
            if item_ref is not None:
                item_props = self._defs.get(item_ref, {}).get("properties") or {}
            for key in keys:
                prop = item_props.get(key)
                if isinstance(prop, Mapping) and "default" in prop:
                    t.key_defaults[key] = prop["default"]
                elif item_ref is not None and (item_ref, key) in _KEY_DEFAULTS:
                    t.key_defaults[key] = _KEY_DEFAULTS[(item_ref, key)]
        elif list_type != "set":
            t.atomic = True
        return t

    def _map(self, schema: Mapping[str, Any]) -> _Type:
        t = _Type(_MAP)
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            t.fields = {
                str(name): self.compile(prop)
                for name, prop in properties.items()
                if isinstance(prop, Mapping)
            }
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            t.element = self.compile(additional)
        elif additional is True or not t.fields:
            t.element = _DEDUCED_TYPE
        t.atomic = schema.get("x-kubernetes-map-type") == "atomic"
        return t


@functools.cache
def _compiler() -> _Compiler:
    return _Compiler(load_definitions())


@functools.cache
def _root_type(definition: str) -> _Type:
    if not definition:
        return _DEDUCED_TYPE
    return _compiler().named(definition)


@functools.cache
def _group_version_kinds(definition: str) -> tuple[tuple[str, str], ...]:
    schema = load_definitions().get(definition) or {}
    out = []
    for gvk in schema.get("x-kubernetes-group-version-kind") or ():
        group, version = gvk.get("group", ""), gvk.get("version", "")
        out.append((f"{group}/{version}" if group else version, gvk.get("kind", "")))
    return tuple(out)


def _resolve(t: _Type, *values: Any) -> _Type:
    """The type to walk ``values`` with: deduced types follow the value, mismatches are leaves."""
    kind = t.kind
    if kind == _SCALAR:
        return t
    if kind in (_DEDUCED, _NONE):
        for v in values:
            if v is MISSING or v is None or v is EMPTIED:
                continue
            if isinstance(v, dict):
                return _DEDUCED_MAP
            if isinstance(v, list):
                return _ATOMIC_LIST
            return _SCALAR_TYPE
        return _SCALAR_TYPE
    container = dict if kind == _MAP else list
    for v in values:
        if v is not MISSING and v is not None and v is not EMPTIED and not isinstance(v, container):
            return _SCALAR_TYPE
    return t


# =========================================================================== values


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _equals(a: Any, b: Any) -> bool:
    """structured-merge-diff's value equality (numbers compare numerically, bools apart)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for k, v in a.items():
            other = b.get(k, MISSING)
            if other is MISSING or not _equals(v, other):
                return False
        return True
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(_equals(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def _item_element(t: _Type, item: Any) -> PathElement | None:
    """The path element of a list item, or ``None`` when it cannot have one."""
    if t.keys:
        if not isinstance(item, dict):
            return None
        fields = []
        for key in t.keys:
            if key in item:
                fields.append((key, tag(item[key])))
            elif key in t.key_defaults:
                fields.append((key, tag(t.key_defaults[key])))
            # a missing key without a default is an error to structured-merge-diff; it is left
            # out of the key here so that tracking never fails (validation rejects the object)
        fields.sort()
        return (KEY, tuple(fields))
    if item is None or isinstance(item, (dict, list)):
        return None
    return (VALUE, tag(item))


def _item_elements(t: _Type, items: list[Any]) -> list[PathElement] | None:
    out = []
    for item in items:
        pe = _item_element(t, item)
        if pe is None:
            return None
        out.append(pe)
    return out


# =========================================================================== ToFieldSet


def fieldset_of(obj: Any, definition: str) -> FieldSet:
    """Every leaf field, map key and list item ``obj`` sets (structured-merge-diff ToFieldSet).

    Struct fields are not members themselves unless empty or ``null``; atomic lists and maps are
    single leaves; items of ``map`` and ``set`` lists are members and, for ``map`` lists, also
    parents of their fields.
    """
    builder = _Builder()
    _to_set(_root_type(definition), obj, (), builder)
    return builder.build()


def _to_set(t: _Type, value: Any, path: Path, out: _Builder) -> None:
    t = _resolve(t, value)
    kind = t.kind
    if kind == _SCALAR or t.atomic:
        out.insert(path)
        return
    if kind == _LIST:
        if not value:
            return
        pes = _item_elements(t, value)
        if pes is None:
            out.insert(path)
            return
        seen: set[PathElement] = set()
        duplicates: set[PathElement] = set()
        for pe in pes:
            if pe in seen:
                if pe not in duplicates:
                    out.insert((*path, pe))
                    duplicates.add(pe)
            else:
                seen.add(pe)
        element = t.element or _DEDUCED_TYPE
        for pe, item in zip(pes, value, strict=True):
            if pe in duplicates:
                continue
            child = (*path, pe)
            _to_set(element, item, child, out)
            out.insert(child)
        return
    if not isinstance(value, dict):
        return
    for key, val in value.items():
        child = (*path, (FIELD, key))
        _to_set(t.field_type(key), val, child, out)
        emptied = val is None or val is EMPTIED or (isinstance(val, dict) and not val)
        if emptied or key not in t.fields:
            out.insert(child)


def _ensure_named(fields: FieldSet, t: _Type) -> FieldSet:
    """structured-merge-diff EnsureNamedFieldsAreMembers: struct fields above owned paths."""
    if not fields.children:
        return fields
    members = set(fields.members)
    children: dict[PathElement, FieldSet] = {}
    for pe, child in fields.children.items():
        child_type = _NONE_TYPE
        if pe[0] == FIELD and t.kind in (_MAP, _DEDUCED):
            if pe[1] in t.fields:
                members.add(pe)
            child_type = t.field_type(pe[1]) if t.kind == _MAP else _DEDUCED_TYPE
        elif pe[0] == KEY and t.kind == _LIST and t.element is not None:
            child_type = t.element
        children[pe] = _ensure_named(child, child_type)
    return FieldSet._make(frozenset(members), children)


# =========================================================================== Compare


class _Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added = _Builder()
        self.modified = _Builder()
        self.removed = _Builder()


@dataclass(frozen=True, slots=True)
class _Diff:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet


def _diff(t: _Type, lhs: Any, rhs: Any, ignored: FieldSet = EMPTY, *, message: str = "") -> _Diff:
    """structured-merge-diff Compare, with ``ignored`` subtrees excluded from all three sets.

    With ``message`` (see :func:`_go_message_for`), ``lhs`` and ``rhs`` are raw objects and
    are compared as their Go views (:func:`_go_view`), but only the subtrees that differ are
    converted: equal raw subtrees have equal views, and most writes change a small part of
    a large object.
    """
    cmp = _Comparison()
    _compare(t, lhs, rhs, (), cmp, message)
    added, modified, removed = cmp.added.build(), cmp.modified.build(), cmp.removed.build()
    if not ignored.empty():
        added = added.recursive_difference(ignored)
        modified = modified.recursive_difference(ignored)
        removed = removed.recursive_difference(ignored)
    return _Diff(added, modified, removed)


def _compare_leaf(lhs: Any, rhs: Any, path: Path, cmp: _Comparison) -> None:
    if lhs is MISSING:
        cmp.added.insert(path)
    elif rhs is MISSING:
        cmp.removed.insert(path)
    elif not _equals(lhs, rhs):
        cmp.modified.insert(path)


def _compare(
    t: _Type,
    lhs: Any,
    rhs: Any,
    path: Path,
    cmp: _Comparison,
    message: str = "",
    items: bool = False,
) -> None:
    """Compare ``lhs`` with ``rhs``. ``message``: the Go message their dict values are
    viewed as (``items``: the message of their list values' dict items), or "" when the
    values are views already."""
    if lhs is rhs or (
        lhs is not MISSING and rhs is not MISSING and type(lhs) is type(rhs) and lhs == rhs
    ):
        return  # equal subtrees differ nowhere (a fast path; schemas keep bools and ints apart)
    if lhs is MISSING:
        _added(t, rhs, path, cmp.added, message, items)
        return
    t = _resolve(t, lhs, rhs)
    kind = t.kind
    if kind == _SCALAR or t.atomic:
        _compare_go_leaf(lhs, rhs, path, cmp, message, items)
        return
    if kind == _MAP:
        lmap = lhs if isinstance(lhs, dict) else None
        rmap = rhs if isinstance(rhs, dict) else None
        if message and not items:
            lmap = _go_shallow(message, lmap) if lmap is not None else None
            rmap = _go_shallow(message, rmap) if rmap is not None else None
        if not lmap and not rmap:
            _compare_leaf(lhs, rhs, path, cmp)
            return
        keys = dict.fromkeys(lmap or ())
        keys.update(dict.fromkeys(rmap or ()))
        children = _go_children(message) if message and not items else _NO_CHILDREN
        for key in keys:
            child_message, child_items = children.get(key, _NO_CHILD)
            _compare(
                t.field_type(key),
                lmap.get(key, MISSING) if lmap else MISSING,
                rmap.get(key, MISSING) if rmap else MISSING,
                (*path, (FIELD, key)),
                cmp,
                child_message,
                child_items,
            )
    else:
        llist = lhs if isinstance(lhs, list) else None
        rlist = rhs if isinstance(rhs, list) else None
        if not llist and not rlist:
            _compare_go_leaf(lhs, rhs, path, cmp, message, items)
            return
        lpes = _item_elements(t, llist or [])
        rpes = _item_elements(t, rlist or [])
        if lpes is None or rpes is None:
            _compare_go_leaf(lhs, rhs, path, cmp, message, items)
            return
        # list-map keys are scalars, which Go views never change: keys of raw items are
        # the keys of their views
        item_message = message if items else ""
        _compare_items(t, llist or [], lpes, rlist or [], rpes, path, cmp, item_message)
    if lhs is MISSING:
        cmp.added.insert(path)
    elif rhs is MISSING:
        cmp.removed.insert(path)


def _compare_go_leaf(
    lhs: Any, rhs: Any, path: Path, cmp: _Comparison, message: str, items: bool
) -> None:
    """:func:`_compare_leaf` of the Go views of two raw values (a leaf compares whole)."""
    if message:
        lhs, rhs = _go_full(message, items, lhs), _go_full(message, items, rhs)
    _compare_leaf(lhs, rhs, path, cmp)


def _added(
    t: _Type, value: Any, path: Path, out: _Builder, message: str = "", items: bool = False
) -> None:
    """:func:`_compare` of nothing with ``value``: ``value`` and everything in it is added
    (the same walk without a left side, which is most of a first status write)."""
    t = _resolve(t, value)
    kind = t.kind
    if kind == _SCALAR or t.atomic:
        out.insert(path)
        return
    if kind == _MAP:
        if not isinstance(value, dict):
            out.insert(path)
            return
        children = _NO_CHILDREN
        if message and not items:
            value = _go_shallow(message, value)
            children = _go_children(message)
        if not value:
            out.insert(path)
            return
        for key, child in value.items():
            child_message, child_items = children.get(key, _NO_CHILD)
            _added(t.field_type(key), child, (*path, (FIELD, key)), out, child_message, child_items)
    else:
        if not isinstance(value, list) or not value:
            out.insert(path)
            return
        pes = _item_elements(t, value)
        if pes is None:
            out.insert(path)
            return
        element = t.element or _DEDUCED_TYPE
        item_message = message if items else ""
        groups: dict[PathElement, list[Any]] = {}
        for pe, item in zip(pes, value, strict=True):
            groups.setdefault(pe, []).append(item)
        for pe, group in groups.items():
            child_path = (*path, pe)
            if len(group) == 1:
                _added(element, group[0], child_path, out, item_message)
            else:  # duplicate keys: the item as a whole, as _compare_items does
                out.insert(child_path)
    out.insert(path)


def _compare_items(
    t: _Type,
    litems: list[Any],
    lpes: list[PathElement],
    ritems: list[Any],
    rpes: list[PathElement],
    path: Path,
    cmp: _Comparison,
    message: str = "",
) -> None:
    lgroups: dict[PathElement, list[Any]] = {}
    rgroups: dict[PathElement, list[Any]] = {}
    for pe, item in zip(lpes, litems, strict=True):
        lgroups.setdefault(pe, []).append(item)
    for pe, item in zip(rpes, ritems, strict=True):
        rgroups.setdefault(pe, []).append(item)
    element = t.element or _DEDUCED_TYPE
    for pe in {**lgroups, **rgroups}:
        left = lgroups.get(pe, [])
        right = rgroups.get(pe, [])
        child = (*path, pe)
        if len(left) <= 1 and len(right) <= 1:
            _compare(
                element,
                left[0] if left else MISSING,
                right[0] if right else MISSING,
                child,
                cmp,
                message,
            )
        elif len(left) >= 2 and len(right) >= 2:
            if message:
                left = [_go_full(message, False, v) for v in left]
                right = [_go_full(message, False, v) for v in right]
            if len(left) != len(right) or not all(
                _equals(a, b) for a, b in zip(left, right, strict=True)
            ):
                cmp.modified.insert(child)
        elif len(left) >= 2:
            if right:
                _compare(element, MISSING, right[0], child, cmp, message)
            cmp.removed.insert(child)
        else:
            if left:
                _compare(element, left[0], MISSING, child, cmp, message)
            cmp.added.insert(child)


# =========================================================================== Merge


class _DuplicateKey(Exception):
    def __init__(self, path: Path, pe: PathElement) -> None:
        super().__init__(f"{path_string(path)}: duplicate entries for key {path_string((pe,))}")


def _merge(t: _Type, lhs: Any, rhs: Any, path: Path) -> Any:
    """structured-merge-diff Merge (``rhs`` wins on leaves); MISSING when nothing results."""
    t = _resolve(t, lhs, rhs)
    kind = t.kind
    if kind == _SCALAR or t.atomic:
        return _copy(rhs if rhs is not MISSING else lhs)
    if kind == _MAP:
        lmap = lhs if isinstance(lhs, dict) else None
        rmap = rhs if isinstance(rhs, dict) else None
        if not lmap and not rmap:
            return _copy(rhs if rhs is not MISSING else lhs)
        out: dict[str, Any] = {}
        for key, lval in (lmap or {}).items():
            merged = _merge(
                t.field_type(key),
                lval,
                rmap.get(key, MISSING) if rmap else MISSING,
                (*path, (FIELD, key)),
            )
            if merged is not MISSING:
                out[key] = merged
        for key, rval in (rmap or {}).items():
            if lmap is None or key not in lmap:
                merged = _merge(t.field_type(key), MISSING, rval, (*path, (FIELD, key)))
                if merged is not MISSING:
                    out[key] = merged
        return out if out else MISSING
    llist = lhs if isinstance(lhs, list) else None
    rlist = rhs if isinstance(rhs, list) else None
    if not llist and not rlist:
        return _copy(rhs if rhs is not MISSING else lhs)
    lpes = _item_elements(t, llist or [])
    rpes = _item_elements(t, rlist or [])
    if lpes is None or rpes is None:
        return _copy(rhs if rhs is not MISSING else lhs)
    merged_list = _merge_items(t, llist or [], lpes, rlist or [], rpes, path)
    return merged_list if merged_list else MISSING


def _merge_items(
    t: _Type,
    litems: list[Any],
    lpes: list[PathElement],
    ritems: list[Any],
    rpes: list[PathElement],
    path: Path,
) -> list[Any]:
    """The associative list merge of structured-merge-diff, including its item order."""
    element = t.element or _DEDUCED_TYPE
    observed_r: dict[PathElement, Any] = {}
    for pe, item in zip(rpes, ritems, strict=True):
        if pe in observed_r:
            raise _DuplicateKey(path, pe)
        observed_r[pe] = item
    observed_l: dict[PathElement, Any] = {}
    for pe, item in zip(lpes, litems, strict=True):
        # duplicated live items are not merged with the applied one
        observed_l[pe] = None if pe in observed_l else item

    shared = [pe for pe in rpes if pe in observed_l]
    shared.reverse()
    next_shared = shared.pop() if shared else None
    merged_r: set[PathElement] = set()
    out: list[Any] = []

    def emit(pe: PathElement, lchild: Any, rchild: Any) -> None:
        merged = _merge(element, lchild, rchild, (*path, pe))
        if merged is not MISSING:
            out.append(merged)

    li, ri = 0, 0
    llen, rlen = len(lpes), len(rpes)
    while li < llen or ri < rlen:
        if li < llen and ri < rlen:
            pe = lpes[li]
            if pe == rpes[ri]:
                merged_r.add(pe)
                emit(pe, observed_l.get(pe, MISSING), observed_r[pe])
                li += 1
                ri += 1
                next_shared = shared.pop() if shared else None
                continue
            if pe in observed_r and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < llen:
            pe = lpes[li]
            if pe not in observed_r:
                emit(pe, litems[li], MISSING)
                li += 1
                continue
            if pe in merged_r:
                li += 1
        if ri < rlen:
            pe = rpes[ri]
            merged_r.add(pe)
            emit(pe, observed_l.get(pe, MISSING), observed_r[pe])
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop() if shared else None
    return out


# =========================================================================== RemoveItems


def _remove(t: _Type, value: Any, to_remove: FieldSet) -> Any:
    """structured-merge-diff RemoveItems; MISSING where a container ends up empty.

    A map value whose container ends up empty becomes :data:`EMPTIED` (Go's ``null``, which
    later steps of the prune still see as a present, ``null`` field).
    """
    t = _resolve(t, value)
    kind = t.kind
    if kind == _SCALAR:
        return value
    if kind == _LIST:
        if not isinstance(value, list) or not value or t.atomic:
            return MISSING
        pes = _item_elements(t, value)
        if pes is None:
            return value
        element = t.element or _DEDUCED_TYPE
        items = []
        for pe, item in zip(pes, value, strict=True):
            if pe in to_remove.members:
                continue
            subset = to_remove.with_prefix(pe)
            if not subset.empty():
                item = _remove(element, item, subset)
                if item is MISSING:
                    continue
            items.append(item)
        return items if items else MISSING
    if not isinstance(value, dict) or not value or t.atomic:
        return MISSING
    out = {}
    for key, val in value.items():
        pe = (FIELD, key)
        if pe in to_remove.members:
            continue
        subset = to_remove.with_prefix(pe)
        if not subset.empty():
            val = _remove(t.field_type(key), val, subset)
            if val is MISSING:
                val = EMPTIED
        out[key] = val
    return out if out else MISSING


def _remove_items(t: _Type, obj: dict[str, Any], to_remove: FieldSet) -> dict[str, Any]:
    if to_remove.empty():
        return obj
    result = _remove(t, obj, to_remove)
    return result if isinstance(result, dict) else {}


def _drop_emptied(value: Any) -> Any:
    """``value`` without :data:`EMPTIED` members (sharing whatever has none)."""
    if isinstance(value, dict):
        out = {}
        changed = False
        for key, val in value.items():
            if val is EMPTIED:
                changed = True
                continue
            new = _drop_emptied(val)
            changed = changed or new is not val
            out[key] = new
        return out if changed else value
    if isinstance(value, list):
        items = [_drop_emptied(item) for item in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
    return value


# =========================================================================== Go zero values


@functools.cache
def _go_messages() -> dict[str, dict[str, list[Any]]]:
    raw = resources.files("setpoint.api").joinpath("protobuf_schema.json").read_bytes()
    messages: dict[str, dict[str, list[Any]]] = orjson.loads(raw)["messages"]
    return messages


_GO_SCALAR_MESSAGES: Final = frozenset(
    "k8s.io.apimachinery.pkg." + name
    for name in (
        "apis.meta.v1.Time",
        "apis.meta.v1.MicroTime",
        "apis.meta.v1.Duration",
        "apis.meta.v1.FieldsV1",
        "util.intstr.IntOrString",
        "api.resource.Quantity",
        "runtime.RawExtension",
    )
)

_STRUCT, _INLINE, _ITEMS, _NULL_ITEMS, _POINTER, _NULL = range(6)


@functools.cache
def _go_plan(message: str) -> tuple[tuple[str, int, str], ...]:
    """What a Go zero value of ``message`` has: ``(json name, action, submessage)`` triples.

    ``_STRUCT``: a non-pointer struct, always present; ``_INLINE``: an embedded struct whose
    fields are the parent's; ``_ITEMS``: a list of structs (``null`` when absent and not
    ``omitempty``); ``_POINTER``: a pointer to a struct, absent when nil; ``_NULL``: a nil-able
    field without ``omitempty``, ``null`` when absent.
    """
    messages = _go_messages()
    plan: list[tuple[str, int, str]] = []
    for json_name, typ, repeated, flags in messages.get(message, {}).values():
        if "?" in flags:
            continue
        is_message = typ in messages and typ not in _GO_SCALAR_MESSAGES
        omitempty = "e" in flags
        if "i" in flags and is_message:
            plan.append((json_name, _INLINE, typ))
        elif is_message and repeated:
            plan.append((json_name, _ITEMS if omitempty else _NULL_ITEMS, typ))
        elif is_message and "p" not in flags:
            plan.append((json_name, _STRUCT, typ))
        elif is_message:
            plan.append((json_name, _POINTER if omitempty else _NULL, typ))
        elif not omitempty and (repeated or typ.startswith("map:") or "p" in flags):
            plan.append((json_name, _NULL, ""))
    return tuple(plan)


def _go_message_for(definition: str) -> str | None:
    if not definition.startswith("io.k8s."):
        return None
    message = "k8s.io." + definition[len("io.k8s.") :]
    return message if message in _go_messages() else None


def _go_view(definition: str, obj: Any) -> Any:
    """``obj`` as Kubernetes' Go types see it: non-pointer structs present, nil fields null.

    Only containers on the way are copied; the result is for comparing, never for storing.
    """
    message = _go_message_for(definition)
    if message is None or not isinstance(obj, dict):
        return obj
    return _go_fill(message, obj)


def _go_fill(message: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    _go_fill_into(message, out)
    return out


def _go_fill_into(message: str, out: dict[str, Any]) -> None:
    for json_name, action, sub in _go_flat_plan(message):
        present = out.get(json_name, MISSING)
        if action == _STRUCT:
            out[json_name] = _go_fill(sub, present if isinstance(present, dict) else {})
        elif isinstance(present, list) and action in (_ITEMS, _NULL_ITEMS):
            out[json_name] = _go_full(sub, True, present)
        elif isinstance(present, dict) and sub:
            out[json_name] = _go_fill(sub, present)
        elif present is MISSING and action in (_NULL, _NULL_ITEMS):
            out[json_name] = None


_NO_CHILD: Final = ("", False)
_NO_CHILDREN: Final[dict[str, tuple[str, bool]]] = {}


@functools.cache
def _go_flat_plan(message: str) -> tuple[tuple[str, int, str], ...]:
    """:func:`_go_plan` with embedded (inline) structs' fields listed in their place."""
    out: list[tuple[str, int, str]] = []
    for json_name, action, sub in _go_plan(message):
        if action == _INLINE:
            out.extend(_go_flat_plan(sub))
        else:
            out.append((json_name, action, sub))
    return tuple(out)


@functools.cache
def _go_children(message: str) -> dict[str, tuple[str, bool]]:
    """For each field of ``message`` that holds messages: ``(message, as list items)``."""
    children: dict[str, tuple[str, bool]] = {}
    for json_name, action, sub in _go_flat_plan(message):
        if sub:
            children.setdefault(json_name, (sub, action in (_ITEMS, _NULL_ITEMS)))
    return children


def _go_shallow(message: str, obj: dict[str, Any]) -> dict[str, Any]:
    """One level of :func:`_go_fill`: ``obj``'s own missing structs and nulls, children raw."""
    out = obj
    for json_name, action, _ in _go_flat_plan(message):
        present = out.get(json_name, MISSING)
        if action == _STRUCT:
            if isinstance(present, dict):
                continue
            value: Any = {}
        elif present is MISSING and action in (_NULL, _NULL_ITEMS):
            value = None
        else:
            continue
        if out is obj:
            out = dict(obj)
        out[json_name] = value
    return out


def _go_full(message: str, items: bool, value: Any) -> Any:
    """The whole Go view of a raw ``value`` (see :func:`_compare` for the arguments)."""
    if items:
        if isinstance(value, list):
            return [_go_fill(message, i) if isinstance(i, dict) else i for i in value]
        return value
    return _go_fill(message, value) if isinstance(value, dict) else value


# =========================================================================== managed fields


@dataclass(frozen=True, slots=True)
class _Manager:
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
            parts.append('"manager":' + _go_json(self.name))
        if self.operation:
            parts.append('"operation":' + _go_json(self.operation))
        if self.api_version:
            parts.append('"apiVersion":' + _go_json(self.api_version))
        if self.subresource:
            parts.append('"subresource":' + _go_json(self.subresource))
        return "{" + ",".join(parts) + "}"


@dataclass(frozen=True, slots=True)
class _Owned:
    fields: FieldSet
    api_version: str
    applied: bool
    raw: Any = None
    """The ``fieldsV1`` this set was decoded from, re-emitted while the set is unchanged."""


_Managers = dict[_Manager, _Owned]
_Times = dict[_Manager, "str | None"]

_CURRENT: Final = _Manager("current-operation", _UPDATE, "", "")


class _DecodeError(ValueError):
    pass


def decode_managed_fields(entries: Any) -> dict[tuple[str, str, str, str], FieldSet]:
    """``metadata.managedFields`` as ``{(manager, operation, apiVersion, subresource): set}``.

    Raises ``ValueError`` with Kubernetes' wording for entries it would refuse to decode
    (operation not ``Apply``/``Update``, missing apiVersion, fieldsType not ``FieldsV1``).
    """
    managers, _ = _decode(entries)
    return {
        (m.name, _APPLY if o.applied else m.operation, o.api_version, m.subresource): o.fields
        for m, o in managers.items()
    }


def _decode(entries: Any) -> tuple[_Managers, _Times]:
    managers: _Managers = {}
    times: _Times = {}
    if entries is None:
        return managers, times
    if not isinstance(entries, list):
        raise _DecodeError("managedFields must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _DecodeError(f"managed fields entry {i} must be an object")
        operation = entry.get("operation")
        if operation not in (_APPLY, _UPDATE):
            raise _DecodeError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion") or ""
        if not isinstance(api_version, str) or not api_version:
            raise _DecodeError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType") or ""
        if fields_type == "":
            raise _DecodeError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise _DecodeError(f"invalid fieldsType {fields_type!r} in managed fields entry {i}")
        ident = _Manager(
            str(entry.get("manager") or ""),
            operation,
            "" if operation == _APPLY else api_version,
            str(entry.get("subresource") or ""),
        )
        raw = entry.get("fieldsV1")
        try:
            fields = _decode_fields(orjson.dumps(raw)) if raw is not None else EMPTY
        except (FieldsV1Error, TypeError) as exc:
            raise _DecodeError(f"error decoding set: {exc}") from exc
        managers[ident] = _Owned(fields, api_version, operation == _APPLY, raw)
        when = entry.get("time")
        times[ident] = when if isinstance(when, str) else None
    return managers, times


@functools.lru_cache(maxsize=4096)
def _decode_fields(raw: bytes) -> FieldSet:
    """Decoded ``fieldsV1`` (sets are immutable, so equal documents share one)."""
    return FieldSet.from_fieldsv1(raw)


def _decode_or_empty(entries: Any) -> tuple[_Managers, _Times]:
    try:
        return _decode(entries)
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


def _encode(managers: _Managers, times: _Times) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for ident, owned in managers.items():
        entry: dict[str, Any] = {}
        if ident.name:
            entry["manager"] = ident.name
        entry["operation"] = _APPLY if owned.applied else ident.operation
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


def _is_reset(entries: Any) -> bool:
    """Whether a request's managedFields ask for them to be cleared (``[]`` or ``[{}]``)."""
    if not isinstance(entries, list):
        return False
    if not entries:
        return True
    return len(entries) == 1 and isinstance(entries[0], dict) and not any(entries[0].values())


def _cap(managers: _Managers, times: _Times, limit: int = MAX_UPDATE_MANAGERS) -> _Managers:
    """Merge the oldest Update entries into ``ancient-changes`` buckets past ``limit``."""
    updaters = [m for m, owned in managers.items() if not owned.applied]
    if len(updaters) <= limit:
        return managers
    managers = dict(managers)
    updaters.sort(key=lambda m: (_unix(times.get(m)), m.identifier))
    first_of_version: dict[str, _Manager] = {}
    length = len(updaters)
    for ident in updaters:
        if length <= limit:
            break
        owned = managers[ident]
        version = owned.api_version
        bucket = _Manager("ancient-changes", _UPDATE, version, "")
        if version not in first_of_version:
            first_of_version[version] = ident
            continue
        if bucket == ident:
            continue
        if bucket not in managers:
            managers[bucket] = managers.pop(first_of_version[version])
        managers[bucket] = _Owned(
            owned.fields.union(managers[bucket].fields), version, owned.applied
        )
        del managers[ident]
        length -= 1
        times[bucket] = times.get(ident)
    return managers


# server-owned metadata never recorded as owned (the apiserver's stripMetaManager, plus the
# deletion fields, which only the server sets)
_STRIPPED: Final = FieldSet(
    [((FIELD, "apiVersion"),), ((FIELD, "kind"),), ((FIELD, "metadata"),)]
    + [
        ((FIELD, "metadata"), (FIELD, name))
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        )
    ]
)


def _reset_paths(
    subresource: str, reset_fields: Iterable[Sequence[str]] | None
) -> list[Sequence[str]]:
    if reset_fields is None:
        return [("spec",)] if subresource == "status" else [("status",)]
    return list(reset_fields)


def _reset_fields(paths: Iterable[Sequence[str]]) -> FieldSet:
    return FieldSet([tuple((FIELD, name) for name in path) for path in paths])


def _without_top_level(obj: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in names} if names & obj.keys() else obj


# =========================================================================== Update


class _Conflicts(Exception):
    def __init__(self, conflicts: dict[_Manager, FieldSet], managers: _Managers) -> None:
        super().__init__("apply conflicts")
        self.conflicts = conflicts
        self.managers = managers

    def error(self, keep: FieldSet | None = None) -> ApplyConflict:
        details: list[Conflict] = []
        for ident in sorted(self.conflicts, key=lambda m: m.identifier):
            owned = self.managers[ident]
            for path in self.conflicts[ident]:
                if keep is not None and keep.has(path):
                    continue
                details.append(
                    Conflict(
                        ident.name,
                        _APPLY if owned.applied else ident.operation,
                        owned.api_version,
                        ident.subresource,
                        path_string(path),
                    )
                )
        return ApplyConflict(details)

    def paths(self) -> FieldSet:
        out = EMPTY
        for fields in self.conflicts.values():
            out = out.union(fields)
        return out


def _update(
    t: _Type,
    old: Any,
    new: Any,
    managers: _Managers,
    workflow: _Manager,
    *,
    force: bool,
    ignored: FieldSet,
    message: str = "",
) -> tuple[_Managers, _Diff]:
    """Take changed fields from other managers (or refuse), drop removed fields, drop empties."""
    diff = _diff(t, old, new, ignored, message=message)
    changed = diff.modified.union(diff.added)
    conflicts: dict[_Manager, FieldSet] = {}
    if not changed.empty():
        for ident, owned in managers.items():
            if ident != workflow:
                clash = owned.fields.intersection(changed)
                if not clash.empty():
                    conflicts[ident] = clash
    if conflicts and not force:
        raise _Conflicts(conflicts, managers)
    out: _Managers = {}
    for ident, owned in managers.items():
        fields = owned.fields
        if ident != workflow:
            if ident in conflicts:
                fields = fields.difference(conflicts[ident])
            fields = fields.difference(diff.removed)
        if fields.empty():
            continue
        out[ident] = (
            owned if fields is owned.fields else _Owned(fields, owned.api_version, owned.applied)
        )
    return out, diff


def _record_update(
    t: _Type,
    old: Any,
    new: Any,
    managers: _Managers,
    times: _Times,
    *,
    ident: _Manager,
    api_version: str,
    now: str,
    ignored: FieldSet,
    message: str = "",
) -> _Managers:
    """One Update operation (the apiserver's managedFieldsUpdater around Updater.Update).
    ``message``: see :func:`_diff`."""
    managers, diff = _update(
        t, old, new, managers, _CURRENT, force=True, ignored=ignored, message=message
    )
    current = managers.pop(_CURRENT, None)
    fields = EMPTY if current is None else current.fields
    fields = fields.difference(diff.removed).union(diff.modified).union(diff.added)
    fields = fields.recursive_difference(ignored).difference(_STRIPPED)
    if not fields.empty():
        previous = managers.get(ident)
        if previous is not None:
            fields = fields.union(previous.fields)
        managers[ident] = _Owned(fields, api_version, False)
        times[ident] = now
    return managers


def _object_meta(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            return meta
    return {}


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _with_managed_fields(obj: dict[str, Any], managers: _Managers, times: _Times) -> dict[str, Any]:
    meta = {k: v for k, v in _object_meta(obj).items() if k != "managedFields"}
    if managers:
        meta["managedFields"] = _encode(managers, times)
    return {**obj, "metadata": meta}


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    definition: str,
    api_version: str,
    now: str,
    subresource: str = "",
    reset_fields: Iterable[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """``new`` with ``metadata.managedFields`` updated for a non-apply write by ``manager``.

    ``old`` is the stored object (``None`` on create), ``new`` the object about to be stored;
    ``api_version`` the version the request used, ``now`` an RFC 3339 time. As in Kubernetes:

    * the starting point is the managedFields ``new`` carries (a client may edit them), or the
      stored ones when ``new`` has none or garbage; ``[]`` or ``[{}]`` clears them; writes to
      a subresource always start from the stored ones;
    * an update of an object that has no managedFields keeps it that way (tracking starts
      with its first apply); a create always tracks;
    * every field the write added or changed is taken from whoever owned it and given to the
      ``(manager, Update, api_version, subresource)`` entry, whose time is set to ``now``;
      removed fields are dropped from every entry; empty entries disappear; a write that
      changes nothing leaves the entries (and their times) alone;
    * ``reset_fields`` (paths, default ``status`` for the main resource and ``spec`` for the
      ``status`` subresource) and server-owned metadata are never recorded;
    * past ten Update entries the oldest are merged into ``ancient-changes``.
    """
    if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
        return new
    t = _root_type(definition)
    reset_paths = _reset_paths(subresource, reset_fields)
    ignored = _reset_fields(reset_paths)
    stored = _object_meta(old).get("managedFields") if old is not None else None
    if subresource:
        managers, times = _decode_or_empty(stored)
    else:
        requested = new["metadata"].get("managedFields")
        if _is_reset(requested):
            managers, times = {}, {}
        else:
            managers, times = _decode_or_empty(requested)
            if not managers:
                managers, times = _decode_or_empty(stored)
    new_obj = _without_managed_fields(new)
    creating = old is None or not _object_meta(old).get("uid")
    if not managers and not creating:
        return _with_managed_fields(new_obj, {}, {})
    old_obj = _without_managed_fields(old) if old is not None else {}
    # A reset top-level field (the spec, for a status write) is never part of the diff:
    # leaving it out of both sides up front spares converting and comparing it.
    skipped = {path[0] for path in reset_paths if len(path) == 1}
    ident = _Manager(manager or "unknown", _UPDATE, api_version, subresource)
    old_raw = _without_top_level(old_obj, skipped)
    new_raw = _without_top_level(new_obj, skipped)
    message = _go_message_for(definition) or ""
    managers = _record_update(
        t,
        old_raw,  # compared as Go views, converted where they differ (see _diff)
        new_raw,
        managers,
        times,
        ident=ident,
        api_version=api_version,
        now=now,
        ignored=ignored,
        message=message,
    )
    managers = _cap(managers, times)
    return _with_managed_fields(new_obj, managers, times)


# =========================================================================== Apply


def _check_applied(applied: Any, definition: str, api_version: str) -> None:
    if not isinstance(applied, dict):
        raise ApplyInvalid("the applied configuration must be an object")
    gvks = _group_version_kinds(definition)
    applied_version = applied.get("apiVersion")
    applied_kind = applied.get("kind")
    if applied_version != api_version or (gvks and (api_version, applied_kind) not in gvks):
        version = applied_version if isinstance(applied_version, str) else ""
        group, _, ver = version.rpartition("/")
        raise ApplyInvalid(f"invalid object type: {group}/{ver}, Kind={applied_kind or ''}")
    meta = applied.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("managedFields"), list):
        raise ApplyInvalid("metadata.managedFields must be nil")


def _prune(
    t: _Type,
    merged: dict[str, Any],
    managers: _Managers,
    last: _Owned | None,
) -> dict[str, Any]:
    """Remove what the applier applied last time and nobody (itself included) owns now."""
    if last is None or last.fields.empty():
        return merged
    last_fields = _ensure_named(last.fields, t)
    pruned = _remove_items(t, merged, last_fields)
    # add back what any manager (or the new configuration) owns
    managed = EMPTY
    for owned in managers.values():
        managed = managed.union(owned.fields)
    merged_set = _ensure_named(_fieldset_typed(t, merged), t)
    pruned_set = _ensure_named(_fieldset_typed(t, pruned), t)
    pruned = _remove_items(
        t, merged, merged_set.difference(pruned_set.union(_ensure_named(managed, t)))
    )
    # and remove only what the applier owned last time
    pruned_set = _ensure_named(_fieldset_typed(t, pruned), t)
    pruned = _remove_items(t, merged, merged_set.difference(pruned_set).intersection(last_fields))
    return dict(_drop_emptied(pruned))


def _fieldset_typed(t: _Type, obj: Any) -> FieldSet:
    builder = _Builder()
    _to_set(t, obj, (), builder)
    return builder.build()


@dataclass(slots=True)
class _Applied:
    obj: dict[str, Any]
    managers: _Managers
    times: _Times


def _apply_once(
    t: _Type,
    definition: str,
    live_obj: dict[str, Any] | None,
    applied: dict[str, Any],
    managers: _Managers,
    times: _Times,
    *,
    ident: _Manager,
    api_version: str,
    now: str,
    force: bool,
    ignored: FieldSet,
) -> _Applied:
    """One attempt at Updater.Apply plus the field manager layers around it."""
    times = dict(times)
    base = live_obj if live_obj is not None else {}
    try:
        merged = _merge(t, base, applied, ())
    except _DuplicateKey as exc:
        raise ApplyInvalid(f"failed to create typed patch object: {exc}", code=500) from exc
    if not isinstance(merged, dict):
        merged = {}
    last = managers.get(ident)
    managers = dict(managers)
    managers[ident] = _Owned(
        _fieldset_typed(t, applied).recursive_difference(ignored), api_version, True
    )
    merged = _prune(t, merged, managers, last)
    live_view = _go_view(definition, base)
    merged_view = _go_view(definition, merged)
    managers, _ = _update(t, live_view, merged_view, managers, ident, force=force, ignored=ignored)
    if live_obj is not None and _equals(live_view, merged_view):
        merged = _copy(live_obj)  # a no-op apply: the object (and the applier's time) stay
    else:
        times[ident] = now
    mine = managers.get(ident)
    if mine is not None:
        stripped = mine.fields.difference(_STRIPPED)
        if stripped.empty():
            del managers[ident]
        elif stripped is not mine.fields:
            managers[ident] = _Owned(stripped, mine.api_version, mine.applied)
    return _Applied(merged, managers, times)


def _allowed_by_last_applied(
    t: _Type, definition: str, live_obj: dict[str, Any], api_version: str
) -> FieldSet | None:
    """Fields the client-side-apply annotation shows ``kubectl`` set to their live values."""
    annotations = _object_meta(live_obj).get("annotations")
    text = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(text, str) or not text:
        return None
    try:
        last_applied = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last_applied, dict) or last_applied.get("apiVersion") != api_version:
        return None
    fields = _fieldset_typed(t, last_applied)
    diff = _diff(t, last_applied, _go_view(definition, live_obj))
    return fields.difference(diff.modified).difference(diff.added).difference(diff.removed)


def _last_applied_value(applied: dict[str, Any]) -> str:
    """The annotation ``kubectl`` keeps in sync: the configuration as Go encodes it."""
    obj = _copy(applied)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LAST_APPLIED_ANNOTATION, None)
    return _go_json(obj) + "\n"


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    definition: str,
    api_version: str,
    now: str,
    subresource: str = "",
    reset_fields: Iterable[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Server-side apply of ``applied`` by ``manager`` onto ``live`` (``None``: create).

    Returns the merged object with ``metadata.managedFields`` updated: the applier's ``Apply``
    entry owns exactly the fields of ``applied``; fields it applied before and no longer does
    are removed unless another manager owns them; changing a field another manager owns
    raises :class:`ApplyConflict` unless ``force``, which moves the field to the applier;
    setting it to the value it has shares it. For the ``kubectl`` manager, conflicts with
    fields whose live value the ``last-applied-configuration`` annotation accounts for are
    forced (the client-side to server-side apply upgrade), and that annotation, when present,
    is rewritten to the new configuration. An apply that changes nothing returns the live
    object unchanged, entries (and times) included, except that a new applier still gets its
    entry (without a time, as in Kubernetes).

    ``reset_fields`` are paths whose changes are ignored and never owned (default: ``status``,
    or ``spec`` for ``subresource="status"``); their values still come out of the merge, for
    the storage strategy to reset. Explicit nulls in the configuration are owned and come out
    as ``None`` (the decoder drops them, as Go's does). Raises :class:`ApplyInvalid` for
    configurations of another type or carrying managedFields.
    """
    _check_applied(applied, definition, api_version)
    t = _root_type(definition)
    ignored = _reset_fields(_reset_paths(subresource, reset_fields))
    name = manager or "unknown"
    ident = _Manager(name, _APPLY, "", subresource)

    live_obj = _without_managed_fields(live) if live is not None else None
    managers, times = (
        _decode_or_empty(_object_meta(live).get("managedFields")) if live is not None else ({}, {})
    )
    if not managers and live_obj is not None:
        # tracking starts with the first apply: what exists so far belongs to a placeholder
        managers = _record_update(
            t,
            _go_view(definition, {}),
            _go_view(definition, live_obj),
            managers,
            times,
            ident=_Manager("before-first-apply", _UPDATE, api_version, subresource),
            api_version=api_version,
            now=now,
            ignored=ignored,
        )
        managers = _cap(managers, times)

    def attempt(forced: bool) -> _Applied:
        return _apply_once(
            t,
            definition,
            live_obj,
            applied,
            managers,
            times,
            ident=ident,
            api_version=api_version,
            now=now,
            force=forced,
            ignored=ignored,
        )

    try:
        result = attempt(force)
    except _Conflicts as conflicts:
        allowed = None
        if name == "kubectl" and live_obj is not None:
            allowed = _allowed_by_last_applied(t, definition, live_obj, api_version)
        if allowed is None or not conflicts.paths().difference(allowed).empty():
            raise conflicts.error(allowed) from None
        result = attempt(True)

    obj = result.obj
    if name == "kubectl":
        annotations = _object_meta(obj).get("annotations")
        if isinstance(annotations, dict) and annotations.get(LAST_APPLIED_ANNOTATION):
            annotations[LAST_APPLIED_ANNOTATION] = _last_applied_value(applied)
    return _with_managed_fields(obj, result.managers, result.times)
