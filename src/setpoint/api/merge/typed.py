"""Kubernetes' schema as structured-merge-diff types, and the walks that need only a type.

Server-side apply works field by field, so it must know what kind of thing each position of
an object is. This module compiles Kubernetes' JSON schema into structured-merge-diff's types
on first use (``sigs.k8s.io/structured-merge-diff``'s ``schema`` package) and walks values by
them, as its ``typed`` package does: :func:`to_field_set` is ToFieldSet (the fields an object
sets), :func:`ensure_named` EnsureNamedFieldsAreMembers, and :func:`compare` is Compare (the
fields added, modified and removed between two objects). Merging and removing, which are
about ownership, are :mod:`setpoint.api.merge.merge`'s.

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

Values
------
Values are parsed JSON. :data:`MISSING` stands for an absent value (as opposed to an explicit
``null``), :data:`EMPTIED` for a container that removal emptied; values compare with
structured-merge-diff's value equality (:func:`setpoint.meta.jsonvalue.smd_equal`: numbers
numerically, booleans apart, and a sentinel equal to nothing).
Compare can look at objects through their Go view (:mod:`setpoint.api.merge.goview`),
converting only the subtrees that differ.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from setpoint.api.merge.fieldpath import (
    EMPTY,
    FIELD,
    KEY,
    VALUE,
    FieldSet,
    FieldSetBuilder,
    Path,
    PathElement,
    tag,
)
from setpoint.api.merge.goview import NO_CHILD, NO_CHILDREN, go_children, go_full, go_shallow
from setpoint.meta.jsonvalue import smd_equal
from setpoint.resources.schema import load_definitions

__all__ = [
    "DEDUCED_TYPE",
    "EMPTIED",
    "MISSING",
    "Diff",
    "Type",
    "compare",
    "ensure_named",
    "group_version_kinds",
    "item_elements",
    "resolve",
    "root_type",
    "to_field_set",
]


# =========================================================================== schema


# Type.kind: a leaf, a struct or map, a list, "whatever the value is" (fields the schema does
# not declare), and no type at all (below a leaf)
SCALAR, MAP, LIST, DEDUCED, NONE = range(5)


class Type:
    """One schema position, in structured-merge-diff's terms."""

    __slots__ = ("atomic", "element", "fields", "key_defaults", "keys", "kind")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.fields: dict[str, Type] = {}
        self.element: Type | None = None  # map values / list items
        self.atomic = False
        self.keys: tuple[str, ...] = ()  # non-empty: a ``map`` list; empty non-atomic: a set
        self.key_defaults: dict[str, Any] = {}

    def field_type(self, name: str) -> Type:
        found = self.fields.get(name)
        if found is not None:
            return found
        return self.element if self.element is not None else DEDUCED_TYPE


def _leaf_type(kind: int, *, atomic: bool = False) -> Type:
    t = Type(kind)
    t.atomic = atomic
    return t


_SCALAR_TYPE: Final = _leaf_type(SCALAR)
DEDUCED_TYPE: Final = _leaf_type(DEDUCED)
_NONE_TYPE: Final = _leaf_type(NONE)
_ATOMIC_LIST: Final = _leaf_type(LIST, atomic=True)
_DEDUCED_MAP: Final = _leaf_type(MAP)
_DEDUCED_MAP.element = DEDUCED_TYPE


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
    """Compiles definitions into :class:`Type` trees on first use, sharing named types."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        self._defs = definitions
        self._named: dict[str, Type] = {}

    def named(self, name: str) -> Type:
        found = self._named.get(name)
        if found is not None:
            return found
        schema = self._defs.get(name)
        if schema is None:
            return DEDUCED_TYPE
        if name in _SCALAR_DEFINITIONS:
            self._named[name] = _SCALAR_TYPE
            return _SCALAR_TYPE
        node = Type(DEDUCED)
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

    def compile(self, schema: Mapping[str, Any]) -> Type:
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
        return DEDUCED_TYPE

    def _list(self, schema: Mapping[str, Any]) -> Type:
        t = Type(LIST)
        items = schema.get("items")
        t.element = self.compile(items) if isinstance(items, Mapping) else DEDUCED_TYPE
        list_type = schema.get("x-kubernetes-list-type")
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        if list_type is None:
            strategy = str(schema.get("x-kubernetes-patch-strategy") or "").split(",")
            merge_key = schema.get("x-kubernetes-patch-merge-key")
            if "merge" in strategy:
                if merge_key:
                    list_type, keys = "map", (str(merge_key),)
                elif isinstance(items, Mapping) and t.element.kind == SCALAR:
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

    def _map(self, schema: Mapping[str, Any]) -> Type:
        t = Type(MAP)
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
            t.element = DEDUCED_TYPE
        t.atomic = schema.get("x-kubernetes-map-type") == "atomic"
        return t


@functools.cache
def _compiler() -> _Compiler:
    return _Compiler(load_definitions())


@functools.cache
def root_type(definition: str) -> Type:
    """The type of objects of schema ``definition`` (deduced for ``""`` or an unknown one)."""
    if not definition:
        return DEDUCED_TYPE
    return _compiler().named(definition)


@functools.cache
def group_version_kinds(definition: str) -> tuple[tuple[str, str], ...]:
    """The ``(apiVersion, kind)`` pairs schema ``definition`` is served as."""
    schema = load_definitions().get(definition) or {}
    out = []
    for gvk in schema.get("x-kubernetes-group-version-kind") or ():
        group, version = gvk.get("group", ""), gvk.get("version", "")
        out.append((f"{group}/{version}" if group else version, gvk.get("kind", "")))
    return tuple(out)


def resolve(t: Type, *values: Any) -> Type:
    """The type to walk ``values`` with: deduced types follow the value, mismatches are leaves."""
    kind = t.kind
    if kind == SCALAR:
        return t
    if kind in (DEDUCED, NONE):
        for v in values:
            if v is MISSING or v is None or v is EMPTIED:
                continue
            if isinstance(v, dict):
                return _DEDUCED_MAP
            if isinstance(v, list):
                return _ATOMIC_LIST
            return _SCALAR_TYPE
        return _SCALAR_TYPE
    container = dict if kind == MAP else list
    for v in values:
        if v is not MISSING and v is not None and v is not EMPTIED and not isinstance(v, container):
            return _SCALAR_TYPE
    return t


# =========================================================================== values


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


def _item_element(t: Type, item: Any) -> PathElement | None:
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


def item_elements(t: Type, items: list[Any]) -> list[PathElement] | None:
    """The path elements of a list's items, or ``None`` when one of them cannot have one."""
    out = []
    for item in items:
        pe = _item_element(t, item)
        if pe is None:
            return None
        out.append(pe)
    return out


# =========================================================================== ToFieldSet


def to_field_set(t: Type, obj: Any) -> FieldSet:
    """Every leaf field, map key and list item ``obj`` sets (structured-merge-diff ToFieldSet).

    Struct fields are not members themselves unless empty or ``null``; atomic lists and maps are
    single leaves; items of ``map`` and ``set`` lists are members and, for ``map`` lists, also
    parents of their fields.
    """
    builder = FieldSetBuilder()
    _to_set(t, obj, (), builder)
    return builder.build()


def _to_set(t: Type, value: Any, path: Path, out: FieldSetBuilder) -> None:
    t = resolve(t, value)
    kind = t.kind
    if kind == SCALAR or t.atomic:
        out.insert(path)
        return
    if kind == LIST:
        if not value:
            return
        pes = item_elements(t, value)
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
        element = t.element or DEDUCED_TYPE
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


def ensure_named(fields: FieldSet, t: Type) -> FieldSet:
    """structured-merge-diff EnsureNamedFieldsAreMembers: struct fields above owned paths."""
    if not fields.children:
        return fields
    members = set(fields.members)
    children: dict[PathElement, FieldSet] = {}
    for pe, child in fields.children.items():
        child_type = _NONE_TYPE
        if pe[0] == FIELD and t.kind in (MAP, DEDUCED):
            if pe[1] in t.fields:
                members.add(pe)
            child_type = t.field_type(pe[1]) if t.kind == MAP else DEDUCED_TYPE
        elif pe[0] == KEY and t.kind == LIST and t.element is not None:
            child_type = t.element
        children[pe] = ensure_named(child, child_type)
    return FieldSet.from_node(frozenset(members), children)


# =========================================================================== Compare


class _Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added = FieldSetBuilder()
        self.modified = FieldSetBuilder()
        self.removed = FieldSetBuilder()


@dataclass(frozen=True, slots=True)
class Diff:
    """What :func:`compare` found: the paths added, modified and removed."""

    added: FieldSet
    modified: FieldSet
    removed: FieldSet


def compare(t: Type, lhs: Any, rhs: Any, ignored: FieldSet = EMPTY, *, message: str = "") -> Diff:
    """structured-merge-diff Compare, with ``ignored`` subtrees excluded from all three sets.

    With ``message`` (see :func:`~setpoint.api.merge.goview.go_message_for`), ``lhs`` and
    ``rhs`` are raw objects and are compared as their Go views
    (:func:`~setpoint.api.merge.goview.go_view`), but only the subtrees that differ are
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
    return Diff(added, modified, removed)


def _compare_leaf(lhs: Any, rhs: Any, path: Path, cmp: _Comparison) -> None:
    if lhs is MISSING:
        cmp.added.insert(path)
    elif rhs is MISSING:
        cmp.removed.insert(path)
    elif not smd_equal(lhs, rhs):
        cmp.modified.insert(path)


def _compare(
    t: Type,
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
    t = resolve(t, lhs, rhs)
    kind = t.kind
    if kind == SCALAR or t.atomic:
        _compare_go_leaf(lhs, rhs, path, cmp, message, items)
        return
    if kind == MAP:
        lmap = lhs if isinstance(lhs, dict) else None
        rmap = rhs if isinstance(rhs, dict) else None
        if message and not items:
            lmap = go_shallow(message, lmap) if lmap is not None else None
            rmap = go_shallow(message, rmap) if rmap is not None else None
        if not lmap and not rmap:
            _compare_leaf(lhs, rhs, path, cmp)
            return
        keys = dict.fromkeys(lmap or ())
        keys.update(dict.fromkeys(rmap or ()))
        children = go_children(message) if message and not items else NO_CHILDREN
        for key in keys:
            child_message, child_items = children.get(key, NO_CHILD)
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
        lpes = item_elements(t, llist or [])
        rpes = item_elements(t, rlist or [])
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
        lhs, rhs = go_full(message, items, lhs), go_full(message, items, rhs)
    _compare_leaf(lhs, rhs, path, cmp)


def _added(
    t: Type, value: Any, path: Path, out: FieldSetBuilder, message: str = "", items: bool = False
) -> None:
    """:func:`_compare` of nothing with ``value``: ``value`` and everything in it is added
    (the same walk without a left side, which is most of a first status write)."""
    t = resolve(t, value)
    kind = t.kind
    if kind == SCALAR or t.atomic:
        out.insert(path)
        return
    if kind == MAP:
        if not isinstance(value, dict):
            out.insert(path)
            return
        children = NO_CHILDREN
        if message and not items:
            value = go_shallow(message, value)
            children = go_children(message)
        if not value:
            out.insert(path)
            return
        for key, child in value.items():
            child_message, child_items = children.get(key, NO_CHILD)
            _added(t.field_type(key), child, (*path, (FIELD, key)), out, child_message, child_items)
    else:
        if not isinstance(value, list) or not value:
            out.insert(path)
            return
        pes = item_elements(t, value)
        if pes is None:
            out.insert(path)
            return
        element = t.element or DEDUCED_TYPE
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
    t: Type,
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
    element = t.element or DEDUCED_TYPE
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
                left = [go_full(message, False, v) for v in left]
                right = [go_full(message, False, v) for v in right]
            if len(left) != len(right) or not all(
                smd_equal(a, b) for a, b in zip(left, right, strict=True)
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
