"""Field paths and field sets: the vocabulary server-side apply tracks ownership in.

Kubernetes records who owns which fields of an object in ``metadata.managedFields``, one entry
per manager, each holding a *field set* serialized in the ``FieldsV1`` format. This module is
the field-set half of that machinery, modelled on ``sigs.k8s.io/structured-merge-diff``'s
``fieldpath`` package: the path elements, the set itself with its set algebra, the
``FieldsV1`` encoding of a set (its ``serialize.go``; the keys are Go's JSON text, from
:mod:`setpoint.api.merge.goview`) and the human-readable path strings Kubernetes prints in
apply conflicts. Everything that needs a schema lives elsewhere: which paths an object has
and how objects differ in :mod:`setpoint.api.merge.typed`, merging and pruning in
:mod:`setpoint.api.merge.merge`, the entries themselves in
:mod:`setpoint.api.merge.managedfields`.

Path elements
-------------
A path is a tuple of path elements, each a small tuple whose first item says what it selects:

* ``(FIELD, "name")`` a struct field or map key, serialized ``f:name``;
* ``(KEY, (("name", v), ...))`` the item of a list of type ``map`` whose key fields have those
  values, serialized ``k:{"name":"web"}`` (key fields sorted by name);
* ``(VALUE, v)`` the item of a list of type ``set`` with that value, serialized ``v:"x"``;
* ``(INDEX, 3)`` a list item by position, serialized ``i:3`` (structured-merge-diff can read
  and write these, though Kubernetes' own schemas never produce them).

Values inside keys and set items are *tagged* as ``(rank, value)`` so that tuples compare the
way structured-merge-diff orders values (numbers, then strings, booleans, lists, maps, null)
and so that ``True`` and ``1`` stay distinct; :func:`tag` and :func:`untag` convert. Path
elements therefore sort in the order Kubernetes serializes them: field names before keys
before values before indices, each by its contents.

Sets
----
:class:`FieldSet` is immutable: a tree whose nodes hold the path elements that are *members*
(owned paths ending there) and *children* (path elements under which deeper paths are
owned). A node may be both, which ``FieldsV1`` writes as ``".": {}``. Union, intersection,
difference and recursive difference follow structured-merge-diff exactly (difference is plain
path-set difference; recursive difference also drops everything under a removed member), and
empty child nodes are never kept, so structural equality is set equality.
:class:`FieldSetBuilder` builds one path by path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import orjson

from setpoint.meta import gofmt

__all__ = [
    "EMPTY",
    "FIELD",
    "INDEX",
    "KEY",
    "VALUE",
    "FieldSet",
    "FieldSetBuilder",
    "FieldsV1Error",
    "Path",
    "PathElement",
    "field",
    "index_element",
    "key_element",
    "path_string",
    "serialize_path_element",
    "tag",
    "untag",
    "value_element",
]

FIELD: Final = 0
KEY: Final = 1
VALUE: Final = 2
INDEX: Final = 3

PathElement = tuple[int, Any]
"""``(FIELD|KEY|VALUE|INDEX, payload)``; see the module documentation."""

Path = tuple[PathElement, ...]

# ranks of tagged values, in structured-merge-diff's total order of values
_NUMBER, _STRING, _BOOL, _LIST, _MAP, _NULL = range(6)


class FieldsV1Error(ValueError):
    """A ``FieldsV1`` document (or a path element in it) that cannot be decoded."""


# --------------------------------------------------------------------------- values


def tag(value: Any) -> tuple[int, Any]:
    """``value`` (parsed JSON) as an orderable, hashable ``(rank, payload)`` pair."""
    if value is None:
        return (_NULL, 0)
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, (int, float)):
        return (_NUMBER, value)
    if isinstance(value, str):
        return (_STRING, value)
    if isinstance(value, list):
        return (_LIST, tuple(tag(item) for item in value))
    if isinstance(value, dict):
        return (_MAP, tuple(sorted((str(k), tag(v)) for k, v in value.items())))
    raise TypeError(f"not a JSON value: {value!r}")


def untag(tagged: tuple[int, Any]) -> Any:
    """The JSON value a :func:`tag` pair stands for."""
    rank, payload = tagged
    if rank == _NULL:
        return None
    if rank == _LIST:
        return [untag(item) for item in payload]
    if rank == _MAP:
        return {k: untag(v) for k, v in payload}
    return payload


# --------------------------------------------------------------------------- path elements


def field(name: str) -> PathElement:
    """The path element selecting struct field or map key ``name``."""
    return (FIELD, name)


def key_element(fields: Mapping[str, Any]) -> PathElement:
    """The path element selecting the item of a ``map`` list with these key-field values."""
    return (KEY, tuple(sorted((name, tag(value)) for name, value in fields.items())))


def value_element(value: Any) -> PathElement:
    """The path element selecting the item of a ``set`` list equal to ``value``."""
    return (VALUE, tag(value))


def index_element(index: int) -> PathElement:
    """The path element selecting a list item by position."""
    return (INDEX, index)


@functools.lru_cache(maxsize=16384)
def serialize_path_element(pe: PathElement) -> str:
    """``pe`` as a ``FieldsV1`` key: ``f:name``, ``k:{...}``, ``v:...`` or ``i:N``."""
    kind, payload = pe
    if kind == FIELD:
        return "f:" + payload
    if kind == KEY:
        inner = ",".join(
            gofmt.json_marshal(name) + ":" + gofmt.json_marshal(untag(v)) for name, v in payload
        )
        return "k:{" + inner + "}"
    if kind == VALUE:
        return "v:" + gofmt.json_marshal(untag(payload))
    if kind == INDEX:
        return f"i:{payload}"
    raise ValueError(f"invalid path element {pe!r}")


_UNKNOWN = (-1, None)


def _deserialize_path_element(text: str) -> PathElement:
    if len(text) < 2:
        raise FieldsV1Error(f"key must be 2 characters long: {text!r}")
    if text[1] != ":":
        raise FieldsV1Error(f"missing colon: {text}")
    kind, body = text[0], text[2:]
    try:
        if kind == "f":
            return (FIELD, body)
        if kind == "k":
            parsed = orjson.loads(body)
            if not isinstance(parsed, dict):
                raise FieldsV1Error(f"key path element is not an object: {text}")
            return key_element(parsed)
        if kind == "v":
            return value_element(orjson.loads(body))
        if kind == "i":
            return (INDEX, int(body))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        if isinstance(exc, FieldsV1Error):
            raise
        raise FieldsV1Error(f"parsing key as path element: {text}: {exc}") from exc
    return _UNKNOWN  # structured-merge-diff skips kinds it does not know


def _element_string(pe: PathElement) -> str:
    kind, payload = pe
    if kind == FIELD:
        return "." + payload
    if kind == KEY:
        return (
            "["
            + ",".join(f"{name}={gofmt.smd_value_string(untag(v))}" for name, v in payload)
            + "]"
        )
    if kind == VALUE:
        return f"[={gofmt.smd_value_string(untag(payload))}]"
    if kind == INDEX:
        return f"[{payload}]"
    return "{{invalid path element}}"


def path_string(path: Iterable[PathElement]) -> str:
    """A path the way Kubernetes prints it: ``.spec.containers[name="web"].image``."""
    return "".join(_element_string(pe) for pe in path)


# --------------------------------------------------------------------------- sets


class FieldSet:
    """An immutable set of field paths (see the module documentation)."""

    __slots__ = ("_children", "_hash", "_members")

    _members: frozenset[PathElement]
    _children: dict[PathElement, FieldSet]
    _hash: int | None

    def __init__(self, paths: Iterable[Path] = ()) -> None:
        builder = FieldSetBuilder()
        for path in paths:
            builder.insert(tuple(path))
        built = builder.build()
        self._members = built._members
        self._children = built._children
        self._hash = None

    @classmethod
    def from_node(
        cls, members: frozenset[PathElement], children: dict[PathElement, FieldSet]
    ) -> FieldSet:
        """The set whose top node holds ``members`` and ``children``, taken as they are
        (children must not be empty sets)."""
        obj = cls.__new__(cls)
        obj._members = members
        obj._children = children
        obj._hash = None
        return obj

    # ------------------------------------------------------------------ inspection

    @property
    def members(self) -> frozenset[PathElement]:
        """The path elements owned at this node."""
        return self._members

    @property
    def children(self) -> Mapping[PathElement, FieldSet]:
        """The non-empty subsets below this node, by path element."""
        return self._children

    def empty(self) -> bool:
        """Whether the set has no paths."""
        return not self._members and not self._children

    def __bool__(self) -> bool:
        return not self.empty()

    def __len__(self) -> int:
        return len(self._members) + sum(len(child) for child in self._children.values())

    def has(self, path: Iterable[PathElement]) -> bool:
        """Whether ``path`` is a member (the empty path never is)."""
        node = self
        elements = tuple(path)
        if not elements:
            return False
        for pe in elements[:-1]:
            child = node._children.get(pe)
            if child is None:
                return False
            node = child
        return elements[-1] in node._members

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and self.has(path)

    def with_prefix(self, pe: PathElement) -> FieldSet:
        """The paths below ``pe``, relative to it."""
        return self._children.get(pe, EMPTY)

    def __iter__(self) -> Iterator[Path]:
        """Every path, in structured-merge-diff's order (members first, then children)."""
        yield from self._iterate(())

    def _iterate(self, prefix: Path) -> Iterator[Path]:
        for pe in sorted(self._members):
            yield (*prefix, pe)
        for pe in sorted(self._children):
            yield from self._children[pe]._iterate((*prefix, pe))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSet):
            return NotImplemented
        return self._members == other._members and self._children == other._children

    def __hash__(self) -> int:
        if self._hash is None:  # sets are immutable: hash once
            self._hash = hash((self._members, frozenset(self._children.items())))
        return self._hash

    def __repr__(self) -> str:
        return "FieldSet([" + ", ".join(path_string(p) for p in self) + "])"

    def is_subset(self, other: FieldSet) -> bool:
        """Whether every path of this set is in ``other``."""
        return self.difference(other).empty()

    # ------------------------------------------------------------------ algebra

    def union(self, other: FieldSet) -> FieldSet:
        """Paths in either set."""
        if other.empty():
            return self
        if self.empty():
            return other
        changed = False
        children = dict(self._children)
        for pe, child in other._children.items():
            mine = children.get(pe)
            both = child if mine is None else mine.union(child)
            if both is not mine:
                children[pe] = both
                changed = True
        members = self._members
        if not other._members <= members:
            members = members | other._members
        elif not changed:
            return self  # nothing new: the same set, whose hash and encoding are known
        return FieldSet.from_node(members, children)

    def intersection(self, other: FieldSet) -> FieldSet:
        """Paths in both sets."""
        children: dict[PathElement, FieldSet] = {}
        for pe, child in self._children.items():
            theirs = other._children.get(pe)
            if theirs is not None:
                both = child.intersection(theirs)
                if not both.empty():
                    children[pe] = both
        return FieldSet.from_node(self._members & other._members, children)

    def difference(self, other: FieldSet) -> FieldSet:
        """Paths in this set and not in ``other`` (parents and children are unrelated)."""
        if other.empty() or self.empty():
            return self
        changed = False
        children: dict[PathElement, FieldSet] = {}
        for pe, child in self._children.items():
            theirs = other._children.get(pe)
            if theirs is None:
                children[pe] = child
            else:
                rest = child.difference(theirs)
                changed = changed or rest is not child
                if not rest.empty():
                    children[pe] = rest
        return self._rebuilt(self._members - other._members, children, changed)

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Like :meth:`difference`, but a member of ``other`` also removes all paths below it."""
        if other.empty() or self.empty():
            return self
        changed = False
        children: dict[PathElement, FieldSet] = {}
        for pe, child in self._children.items():
            if pe in other._members:
                changed = True
                continue
            theirs = other._children.get(pe)
            if theirs is None:
                children[pe] = child
            else:
                rest = child.recursive_difference(theirs)
                changed = changed or rest is not child
                if not rest.empty():
                    children[pe] = rest
        return self._rebuilt(self._members - other._members, children, changed)

    def _rebuilt(
        self, members: frozenset[PathElement], children: dict[PathElement, FieldSet], changed: bool
    ) -> FieldSet:
        """``self`` when removing left it as it was (so its hash and encoding are reused)."""
        if not changed and len(members) == len(self._members):
            return self
        return FieldSet.from_node(members, children)

    def leaves(self) -> FieldSet:
        """Only the members that have no children of their own."""
        children = {pe: child.leaves() for pe, child in self._children.items()}
        members = frozenset(pe for pe in self._members if pe not in self._children)
        return FieldSet.from_node(members, {pe: c for pe, c in children.items() if not c.empty()})

    # ------------------------------------------------------------------ FieldsV1

    def to_fieldsv1(self) -> dict[str, Any]:
        """The set as a ``FieldsV1`` JSON object, keys in Kubernetes' order (a new object
        each time: the caller may keep it in an object it changes later)."""
        fields: dict[str, Any] = orjson.loads(_fieldsv1_json(self))
        return fields

    def _emit(self, *, include_self: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if include_self and (self._members or self._children):
            out["."] = {}
        for pe in sorted(self._members | self._children.keys()):
            child = self._children.get(pe)
            if child is None:
                out[serialize_path_element(pe)] = {}
            else:
                out[serialize_path_element(pe)] = child._emit(include_self=pe in self._members)
        return out

    @classmethod
    def from_fieldsv1(cls, document: Any) -> FieldSet:
        """Decode a ``FieldsV1`` JSON object (parsed, or as ``bytes``/``str``)."""
        if isinstance(document, (bytes, bytearray, memoryview, str)):
            try:
                document = orjson.loads(document)
            except orjson.JSONDecodeError as exc:
                raise FieldsV1Error(f"invalid FieldsV1 JSON: {exc}") from exc
        if document is None:
            return EMPTY
        if not isinstance(document, dict):
            raise FieldsV1Error("FieldsV1 must be a JSON object")
        children, _ = cls._read(document)
        return children if children is not None else EMPTY

    @classmethod
    def _read(cls, document: dict[str, Any]) -> tuple[FieldSet | None, bool]:
        members: set[PathElement] = set()
        children: dict[PathElement, FieldSet] = {}
        is_member = False
        for key, value in document.items():
            if key == ".":
                is_member = True
                continue
            pe = _deserialize_path_element(key)
            if pe is _UNKNOWN:
                continue
            if not isinstance(value, dict):
                raise FieldsV1Error(f"value of {key!r} must be a JSON object")
            grandchildren, child_is_member = cls._read(value)
            if child_is_member:
                members.add(pe)
            if grandchildren is not None:
                previous = children.get(pe)
                children[pe] = grandchildren if previous is None else previous.union(grandchildren)
        if not members and not children:
            return None, True
        return FieldSet.from_node(frozenset(members), children), is_member


@functools.lru_cache(maxsize=4096)
def _fieldsv1_json(fields: FieldSet) -> bytes:
    # the same sets recur: every pod of a ReplicaSet, every status write of a kind of pod
    return orjson.dumps(fields._emit(include_self=False))


class FieldSetBuilder:
    """A mutable tree used to build a :class:`FieldSet` by inserting paths."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[PathElement] = set()
        self.children: dict[PathElement, FieldSetBuilder] = {}

    def insert(self, path: Path) -> None:
        if not path:
            return  # nobody owns the whole object
        node = self
        for pe in path[:-1]:
            child = node.children.get(pe)
            if child is None:
                child = node.children[pe] = FieldSetBuilder()
            node = child
        node.members.add(path[-1])

    def build(self) -> FieldSet:
        children = {}
        for pe, child in self.children.items():
            built = child.build()
            if not built.empty():
                children[pe] = built
        return FieldSet.from_node(frozenset(self.members), children)


EMPTY: Final = FieldSet.from_node(frozenset(), {})
