"""Strategic merge patch, applied and computed the way Kubernetes does it.

``application/strategic-merge-patch+json`` is JSON merge patch with knowledge of the schema.
Objects still merge key by key and ``null`` still deletes a key, but a list is no longer
always replaced wholesale: where the schema marks a list with the patch strategy ``merge``,
a list of objects is merged item by item, matching items on the list's patch merge key
(containers and volumes by ``name``, ports by ``containerPort``, owner references by
``uid``), and a list of scalars (``finalizers``) becomes a set union. Lists without that
strategy, and every list the schema does not know, are replaced atomically. On top of that
the patch may carry directives:

* ``$patch: replace`` inside an object replaces the object instead of merging into it;
  inside a merge list it makes the list be replaced by the patch's items.
* ``$patch: delete`` inside an object deletes (empties) the object; as an item of a merge
  list it deletes the item with that merge key.
* ``$deleteFromPrimitiveList/<field>: [...]`` removes values from the scalar list ``field``.
* ``$setElementOrder/<field>: [...]`` gives the final order of the merged list ``field``
  (for lists of objects, each entry carries only the merge key).
* ``$retainKeys: [...]`` drops every key of the object that the list does not name; clients
  send it for fields with the ``retainKeys`` strategy (``Deployment.spec.strategy``, each
  volume's source), so that switching ``RollingUpdate`` to ``Recreate`` also removes
  ``rollingUpdate``.

The patch metadata comes from the official JSON Schema (:func:`load_definitions`): list
properties carry ``x-kubernetes-patch-strategy`` and ``x-kubernetes-patch-merge-key``, and
the walk follows ``$ref``/``allOf`` into definitions, ``properties`` into fields,
``additionalProperties`` into map values and ``items`` into list elements. Positions the
schema does not describe have no metadata: their objects merge and their lists are replaced,
as JSON merge patch would.

This module is a port of the behaviour of apimachinery's
``staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/patch.go``, quirks included,
because clients observe them and ``kubectl patch --local`` (the same Go code) is the oracle
the tests compare against:

* A merge list's items are ordered by ``$setElementOrder`` when given; otherwise the
  patch's items keep the patch's relative order and are interleaved with the untouched
  items, so an item that is new to the list lands *before* the existing ones unless the
  patch also names an existing item ahead of it. kubectl always sends ``$setElementOrder``.
* ``$patch: merge`` is not accepted: in an object it is "unknown patch type", in a list
  "merging lists cannot yet be specified in the patch".
* ``$patch: delete`` on an object that exists leaves an empty object behind; on an object
  the original lacks, the key is simply not added.
* A value the original lacks is copied from the patch with its ``null`` members dropped and
  every object carrying a ``$patch`` directive removed; other directives inside it are kept
  as they are (the API server's decoder then reports them as unknown fields). An item
  appended to an existing merge list, and the content of a ``$patch: replace``, are copied
  exactly as they are.
* ``$retainKeys`` works in any object, whatever the schema says, and rejects a patch that
  sets a key the list does not name.
* ``$deleteFromPrimitiveList/<field>: null`` deletes ``field``; a deletion list works on any
  list, merging (!) a list of objects.
* Integers and floats are different types, as in Go's decoder (``80`` is an ``int64``,
  ``80.0`` a ``float64``): ``80.0`` does not match the port ``80``, and a list holding both
  has "list element types [that] are not identical".

Where Go's behaviour is accidental this module picks one deterministic answer. Go visits a
patch's keys in random map order, so a patch that both adds to and deletes from a list (or
deletes from a list it also creates) has more than one outcome there; here deletion lists
always run last. Go panics on some malformed input (a ``null`` first list element, an object
as a merge key value or in ``$retainKeys``), which its API server answers with a 500; here
such values simply compare unequal or raise :class:`StrategicPatchError`. And Go's lookup of
a field its types lack fails ("unable to find api field") when the original has that field
too; here such a field simply has no metadata (its objects merge, its lists are replaced).
Kubernetes' API server never meets that case for built-in kinds, because decoding drops
unknown fields before an object is stored.

Errors are :class:`StrategicPatchError`. Go returns most of these as plain errors, which the
API server answers with 500; here a malformed patch (unknown directive, a directive of the
wrong shape, a merge list item without its merge key, an order list that contradicts the
patch) is a 400, and a patch that does not fit the object (the object's list has items of
another type or without merge keys, lists of lists) is a 422, the code Kubernetes uses for
its own "cannot apply" errors.

Computing patches (Go's ``CreateTwoWayMergePatch`` and ``CreateThreeWayMergePatch``) is
what clients do, not the server; the tests' oracle (``tests/merge_oracle.py``) does it with
the pieces of patch.go this module shares: the directive names, the patch metadata
(:func:`root_patch_meta`, :func:`lookup_field`), :func:`value_token`, the list helpers,
and :func:`combine_patches`, which merges one patch into another; the Go value helpers it
uses (``go_kind``, ``deep_equal``, ``verb_v``) are :mod:`setpoint.meta.jsonvalue`'s and
:mod:`setpoint.meta.gofmt`'s.

No function mutates its arguments; results may share structure with private copies only.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Final

from setpoint.api.merge.jsonpatch import PatchError
from setpoint.meta import gofmt
from setpoint.meta.jsonvalue import LIST, MAP, deep_copy, deep_equal, go_kind
from setpoint.resources.schema import load_definitions

__all__ = [
    "BAD_REQUEST",
    "DELETE",
    "DELETE_FROM_PRIMITIVE_LIST",
    "DIRECTIVE",
    "MERGE",
    "REPLACE",
    "RETAIN_KEYS",
    "SET_ELEMENT_ORDER",
    "UNPROCESSABLE",
    "PatchMeta",
    "StrategicPatchError",
    "apply_strategic_merge_patch",
    "check_merge_keys",
    "combine_patches",
    "dedupe_scalars",
    "element_kind",
    "lookup_field",
    "normalize_slice_order",
    "root_patch_meta",
    "value_token",
]

# patch.go's directives and strategies
DIRECTIVE: Final = "$patch"
DELETE: Final = "delete"
REPLACE: Final = "replace"
MERGE: Final = "merge"
_RETAIN_KEYS_STRATEGY: Final = "retainKeys"
RETAIN_KEYS: Final = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER: Final = "$setElementOrder"

# StrategicPatchError codes: a malformed patch, a patch that does not fit the object
BAD_REQUEST: Final = 400
UNPROCESSABLE: Final = 422

# mergepatch/errors.go
_BAD_FORMAT_PRIMITIVE_LIST: Final = "invalid patch format of primitive list"
_BAD_FORMAT_RETAIN_KEYS: Final = "invalid patch format of retainKeys"
_BAD_FORMAT_SET_ELEMENT_ORDER: Final = "invalid patch format of setElementOrder list"
_NO_LIST_OF_LISTS: Final = "lists of lists are not supported"


class StrategicPatchError(PatchError):
    """A strategic merge patch that is malformed (``code`` 400) or does not fit (422).

    ``message`` is Kubernetes' wording of the problem; ``code``, ``reason`` and
    ``status_message`` are what an API server answers with (see :class:`PatchError`).
    """

    def __init__(self, message: str, code: int = BAD_REQUEST) -> None:
        super().__init__(message, code)

    def __repr__(self) -> str:
        return f"StrategicPatchError({self.message!r}, code={self.code})"


# --------------------------------------------------------------------------- JSON helpers


def value_token(value: Any) -> Any:
    """A hashable stand-in for a JSON value; tokens are equal exactly when values are."""
    if type(value) is str:
        return ("string", value)
    kind = go_kind(value)
    if kind == MAP:
        return (MAP, tuple(sorted((k, value_token(v)) for k, v in value.items())))
    if kind == LIST:
        return (LIST, tuple(value_token(v) for v in value))
    return (kind, value)


def _bad_type(expected: str, actual: Any, code: int) -> StrategicPatchError:
    # mergepatch.ErrBadArgType formats reflect types with %s, so a nil one is "%!s(<nil>)".
    received = "%!s(<nil>)" if actual is None else gofmt.verb_t(actual)
    return StrategicPatchError(f"expected a {expected}, but received a {received}", code)


def _no_merge_key(item: dict[str, Any], merge_key: str, code: int) -> StrategicPatchError:
    return StrategicPatchError(
        f"map: {gofmt.verb_v(item)} does not contain declared merge key: {merge_key}", code
    )


def _bad_patch_type(directive: Any, item: dict[str, Any]) -> StrategicPatchError:
    return StrategicPatchError(
        f"unknown patch type: {gofmt.verb_s(directive)} in map: {gofmt.verb_v(item)}"
    )


# --------------------------------------------------------------------------- schema


class PatchMeta:
    """One position of the schema, with the lookups patch.go asks its ``LookupPatchMeta``.

    Children are computed once and cached; the tree is shared by every patch of a kind.
    """

    __slots__ = ("_fields", "_values", "_values_done", "name", "node")

    def __init__(self, name: str, node: dict[str, Any]) -> None:
        self.name = name or "object"
        self.node = node
        self._fields: dict[
            str, tuple[PatchMeta | None, tuple[str, ...], str, PatchMeta | None]
        ] = {}
        self._values: PatchMeta | None = None
        self._values_done = False

    def lookup(self, key: str) -> tuple[PatchMeta | None, tuple[str, ...], str, PatchMeta | None]:
        """The field's schema, patch strategies, merge key and (for lists) element schema."""
        found = self._fields.get(key)
        if found is not None:
            return found
        props = self.node.get("properties")
        if isinstance(props, dict) and isinstance(props.get(key), dict):
            prop = props[key]
            strategies, merge_key = _patch_metadata(prop)
            sub = _resolve(prop)
            items = sub.node.get("items")
            element = _resolve(items) if isinstance(items, dict) else None
            found = (sub, strategies, merge_key, element)
            self._fields[key] = found
            return found
        values = self._map_values()
        if values is None:
            return None, (), "", None
        items = values.node.get("items")
        return values, (), "", _resolve(items) if isinstance(items, dict) else None

    def _map_values(self) -> PatchMeta | None:
        if not self._values_done:
            extra = self.node.get("additionalProperties")
            self._values = _resolve(extra) if isinstance(extra, dict) else None
            self._values_done = True
        return self._values


_RESOLVED: dict[int, tuple[dict[str, Any], PatchMeta]] = {}


def _resolve(node: dict[str, Any]) -> PatchMeta:
    """Follow ``$ref`` (and an ``allOf`` that only wraps one) to the schema of a value."""
    cached = _RESOLVED.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    defs = load_definitions()
    name = ""
    current = node
    for _ in range(64):
        ref = current.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref[len("#/$defs/") :]
            target = defs.get(name)
            current = target if isinstance(target, dict) else {}
            continue
        all_of = current.get("allOf")
        if (
            isinstance(all_of, list)
            and all_of
            and "properties" not in current
            and "items" not in current
            and "additionalProperties" not in current
        ):
            refs = [part for part in all_of if isinstance(part, dict) and "$ref" in part]
            if refs:
                current = refs[0]
                continue
        break
    schema = PatchMeta(name, current)
    # The cache holds on to ``node``, so its id cannot be reused by another dict.
    _RESOLVED[id(node)] = (node, schema)
    return schema


def _patch_metadata(prop: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """``x-kubernetes-patch-strategy`` (split at commas) and ``-merge-key`` of a property."""
    strategy: Any = prop.get("x-kubernetes-patch-strategy")
    merge_key: Any = prop.get("x-kubernetes-patch-merge-key")
    for part in prop.get("allOf") or ():
        if isinstance(part, dict):
            strategy = part.get("x-kubernetes-patch-strategy", strategy)
            merge_key = part.get("x-kubernetes-patch-merge-key", merge_key)
    strategies = tuple(strategy.split(",")) if isinstance(strategy, str) and strategy else ()
    return strategies, merge_key if isinstance(merge_key, str) else ""


def root_patch_meta(definition: str) -> PatchMeta:
    """The patch metadata of objects of schema ``definition`` (a ``KeyError`` if none)."""
    node = load_definitions().get(definition)
    if not isinstance(node, dict):
        raise KeyError(f"no schema definition named {definition!r}")
    return _resolve(node)


def _split_strategies(strategies: tuple[str, ...]) -> tuple[bool, str]:
    """patch.go ``extractRetainKeysPatchStrategy``: (has retainKeys, the other strategy)."""
    if not strategies:
        return False, ""
    if len(strategies) == 1:
        return (True, "") if strategies[0] == _RETAIN_KEYS_STRATEGY else (False, strategies[0])
    if len(strategies) == 2 and _RETAIN_KEYS_STRATEGY in strategies:
        other = strategies[1] if strategies[0] == _RETAIN_KEYS_STRATEGY else strategies[0]
        return True, other
    raise StrategicPatchError(f"unexpected patch strategy: [{' '.join(strategies)}]", UNPROCESSABLE)


def lookup_field(
    schema: PatchMeta | None, key: str
) -> tuple[PatchMeta | None, bool, str, str, PatchMeta | None]:
    """(field schema, retainKeys?, strategy, merge key, element schema) of ``key``."""
    if schema is None:
        return None, False, "", "", None
    sub, strategies, merge_key, element = schema.lookup(key)
    retain, strategy = _split_strategies(strategies)
    return sub, retain, strategy, merge_key, element


def _schema_name(schema: PatchMeta | None) -> str:
    return schema.name if schema is not None else "object"


# --------------------------------------------------------------------------- list helpers


def element_kind(
    original: list[Any], patch: list[Any], *, patch_code: int = BAD_REQUEST
) -> str | None:
    """patch.go ``sliceElementType``: the one element type of both lists (``None`` if empty).

    Like Go, the first element decides (and may not be a list). A patch list that mixes
    types is malformed (``patch_code``); one that disagrees with the object's list cannot
    be applied (422).
    """
    first: str | None = None
    for value in itertools.chain(original, patch):
        kind = go_kind(value)
        if first is None:
            first = kind
            if kind == LIST:
                raise StrategicPatchError(_NO_LIST_OF_LISTS, UNPROCESSABLE)
        elif kind != first:
            mixed_patch = len({go_kind(item) for item in patch}) > 1
            raise StrategicPatchError(
                "list element types are not identical: "
                f"[{gofmt.verb_v(original)} {gofmt.verb_v(patch)}]",
                patch_code if mixed_patch else UNPROCESSABLE,
            )
    return first


def _order_key(value: Any, merge_key: str, kind: str | None) -> Any:
    """What patch.go's ``index`` compares: the merge key's value of a map, else the value."""
    if kind == MAP:
        return value_token(value.get(merge_key) if isinstance(value, dict) else None)
    return value_token(value)


def _positions(order: list[Any], merge_key: str, kind: str | None) -> dict[Any, int]:
    positions: dict[Any, int] = {}
    for i, value in enumerate(order):
        positions.setdefault(_order_key(value, merge_key, kind), i)
    return positions


def check_merge_keys(merge_key: str, *lists: list[Any], code: int) -> None:
    """Refuse (with ``code``) an item of ``lists`` that is not an object with ``merge_key``."""
    for values in lists:
        for item in values:
            if not isinstance(item, dict):
                raise _bad_type("map[string]interface {}", item, code)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key, code)


def _is_delete_item(item: Any) -> bool:
    return isinstance(item, dict) and item.get(DIRECTIVE) == DELETE


def normalize_slice_order(
    values: list[Any], order: list[Any], merge_key: str, kind: str | None, *, code: int
) -> list[Any]:
    """Sort ``values`` by their position in ``order``; ``$patch: delete`` items go last."""
    deletions: list[Any] = []
    if kind == MAP:
        check_merge_keys(merge_key, values, order, code=code)
        deletions = [item for item in values if _is_delete_item(item)]
        values = [item for item in values if not _is_delete_item(item)]
    positions = _positions(order, merge_key, kind)
    ordered = sorted(values, key=lambda v: positions.get(_order_key(v, merge_key, kind), -1))
    return ordered + deletions


def _merge_sorted(
    left: list[Any], right: list[Any], server_order: list[Any], merge_key: str, kind: str | None
) -> list[Any]:
    """patch.go ``mergeSortedSlice``: interleave server-only items into the patch's items."""
    positions = _positions(server_order, merge_key, kind)
    merged: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            merged.append(right[j])
            j += 1
        elif j >= len(right):
            merged.append(left[i])
            i += 1
        else:
            li = positions.get(_order_key(left[i], merge_key, kind), -1)
            ri = positions.get(_order_key(right[j], merge_key, kind), -1)
            if li >= 0 and ri >= 0 and li < ri:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
    return merged


def _normalize_element_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    kind: str | None,
) -> list[Any]:
    patch_items = normalize_slice_order(patch_items, patch_order, merge_key, kind, code=BAD_REQUEST)
    server_only = normalize_slice_order(
        server_only, server_order, merge_key, kind, code=UNPROCESSABLE
    )
    return _merge_sorted(server_only, patch_items, server_order, merge_key, kind)


def _partition(
    merged: list[Any], present_in: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """Split ``merged`` into items named by ``present_in`` and the others (server-only).

    patch.go ``partitionPrimitivesByPresentInList`` without a merge key, else
    ``partitionMapsByPresentInList``, errors included: every merged item must be a map
    with the merge key, and ``present_in`` is searched like ``findMapInSliceBasedOnKeyValue``
    (which fails on a non-map met before the match).
    """
    if not merge_key:
        wanted = {value_token(v) for v in present_in}
        inside = [v for v in merged if value_token(v) in wanted]
        outside = [v for v in merged if value_token(v) not in wanted]
        return inside, outside
    first_non_map = len(present_in)
    positions: dict[Any, int] = {}
    for i, value in enumerate(present_in):
        if not isinstance(value, dict):
            first_non_map = i
            break
        if merge_key in value:
            positions.setdefault(value_token(value[merge_key]), i)
    from_patch = {id(item) for item in present_in}
    inside, outside = [], []
    for item in merged:
        code = BAD_REQUEST if id(item) in from_patch else UNPROCESSABLE
        if not isinstance(item, dict):
            raise _bad_type("map[string]interface {}", item, code)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key, code)
        if value_token(item[merge_key]) in positions:
            inside.append(item)
        elif first_non_map < len(present_in):
            raise StrategicPatchError(f"value for key {first_non_map} is not a map")
        else:
            outside.append(item)
    return inside, outside


def _find_by_key(values: list[Any], merge_key: str, wanted: Any) -> int:
    """Index of the first map whose merge key equals ``wanted`` (-1 if none)."""
    token = value_token(wanted)
    for i, item in enumerate(values):
        if not isinstance(item, dict):
            raise StrategicPatchError(f"value for key {i} is not a map", UNPROCESSABLE)
        if merge_key in item and value_token(item[merge_key]) == token:
            return i
    return -1


def dedupe_scalars(values: list[Any]) -> list[Any]:
    """``values`` without repeats, first occurrences kept."""
    seen: set[Any] = set()
    unique = []
    for value in values:
        token = value_token(value)
        if token not in seen:
            seen.add(token)
            unique.append(value)
    return unique


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """patch.go ``removeDirectives``: drop objects carrying ``$patch`` (the bool: keep?)."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        cleaned = {}
        for key, item in value.items():
            new, keep = _remove_directives(item)
            if keep:
                cleaned[key] = new
        return cleaned, True
    if isinstance(value, list):
        kept = []
        for item in value:
            new, keep = _remove_directives(item)
            if keep:
                kept.append(new)
        return kept, True
    return value, True


def _discard_nulls(value: Any) -> Any:
    """patch.go ``discardNullValuesFromPatch``: drop ``null`` members at every depth."""
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value


def _directive_key(key: str, prefix: str, message: str) -> str:
    """The field a ``prefix/field`` directive key names."""
    head, sep, field = key.partition("/")
    if not sep or head != prefix:
        raise StrategicPatchError(message)
    return field


# --------------------------------------------------------------------------- apply


@dataclasses.dataclass(frozen=True, slots=True)
class _MergeOptions:
    # Apply the parallel lists ($deleteFromPrimitiveList, $retainKeys, $setElementOrder);
    # False when merging one patch into another (three-way patch computation).
    merge_parallel_list: bool
    # Drop nulls the original has nothing to delete for (applying), or keep them (patches).
    ignore_unmatched_nulls: bool


_APPLY: Final = _MergeOptions(merge_parallel_list=True, ignore_unmatched_nulls=True)
_COMBINE: Final = _MergeOptions(merge_parallel_list=False, ignore_unmatched_nulls=False)


def _merge_map(
    original: dict[str, Any] | None,
    patch: dict[str, Any],
    schema: PatchMeta | None,
    options: _MergeOptions,
) -> dict[str, Any]:
    """Merge ``patch`` into ``original``; both are private copies and may be consumed."""
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if go_kind(directive) == "string" and directive == REPLACE:
            del patch[DIRECTIVE]
            return patch
        if go_kind(directive) == "string" and directive == DELETE:
            return {}
        raise _bad_patch_type(directive, patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch, options)
    _merge_ordered_lists(original, patch, schema, options)

    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            if not options.merge_parallel_list:
                original[key] = value
                continue
            field = _directive_key(key, DELETE_FROM_PRIMITIVE_LIST, _BAD_FORMAT_PRIMITIVE_LIST)
            # Go visits the patch in random order; removing after every merge makes the
            # result deterministic and lets a deletion win over an addition.
            deletions.append((field, value))
            continue
        _merge_value(original, key, value, schema, options, is_delete_list=False)
    for field, value in deletions:
        _merge_value(original, field, value, schema, options, is_delete_list=True)
    return original


def _merge_value(
    original: dict[str, Any],
    key: str,
    value: Any,
    schema: PatchMeta | None,
    options: _MergeOptions,
    *,
    is_delete_list: bool,
) -> None:
    """One key of patch.go's ``mergeMap`` loop."""
    if value is None:
        original.pop(key, None)
        if options.ignore_unmatched_nulls:
            return
    if key not in original or go_kind(original[key]) != go_kind(value):
        if is_delete_list:
            return
        if options.ignore_unmatched_nulls:
            value = _discard_nulls(value)
        cleaned, keep = _remove_directives(value)
        if keep:
            original[key] = cleaned
        else:
            original.pop(key, None)
        return
    current = original[key]
    if isinstance(current, dict):
        sub, _, strategy, _, _ = lookup_field(schema, key)
        if strategy == REPLACE:
            original[key] = value
        else:
            original[key] = _merge_map(current, value, sub, options)
    elif isinstance(current, list):
        _, _, strategy, merge_key, element = lookup_field(schema, key)
        original[key] = _merge_list_field(
            current, value, element, strategy, merge_key, is_delete_list, options
        )
    else:
        cleaned, keep = _remove_directives(value)
        if keep:
            original[key] = cleaned
        else:
            original.pop(key, None)


def _apply_retain_keys(
    original: dict[str, Any], patch: dict[str, Any], options: _MergeOptions
) -> None:
    """patch.go ``applyRetainKeysDirective``."""
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not options.merge_parallel_list:
        if RETAIN_KEYS in original:
            if not deep_equal(original[RETAIN_KEYS], retain):
                raise StrategicPatchError(
                    f"{gofmt.verb_v(original[RETAIN_KEYS])} and {gofmt.verb_v(retain)} are not "
                    "deep equal: this may happen when calculating the 3-way diff patch",
                    UNPROCESSABLE,
                )
        else:
            original[RETAIN_KEYS] = retain
        return
    if not isinstance(retain, list):
        raise StrategicPatchError(_BAD_FORMAT_RETAIN_KEYS)
    kept = {item for item in retain if isinstance(item, str)}
    for key, value in patch.items():
        if (
            value is None
            or key.startswith(DELETE_FROM_PRIMITIVE_LIST)
            or key.startswith(SET_ELEMENT_ORDER)
        ):
            continue
        if key not in kept:
            raise StrategicPatchError(_BAD_FORMAT_RETAIN_KEYS)
    for key in [k for k in original if k not in kept]:
        del original[key]


def _merge_ordered_lists(
    original: dict[str, Any],
    patch: dict[str, Any],
    schema: PatchMeta | None,
    options: _MergeOptions,
) -> None:
    """patch.go ``mergePatchIntoOriginal``: merge and order lists named by ``$setElementOrder``."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not options.merge_parallel_list:
            if key in original:
                if not deep_equal(original[key], order):
                    raise StrategicPatchError(_BAD_FORMAT_SET_ELEMENT_ORDER)
            else:
                original[key] = order
        if not isinstance(order, list):
            raise _bad_type("[]interface {}", order, BAD_REQUEST)
        field = _directive_key(key, SET_ELEMENT_ORDER, _BAD_FORMAT_SET_ELEMENT_ORDER)
        found_original = field in original
        found_patch = field in patch
        original_list: list[Any] = []
        patch_list: list[Any] = []
        if found_original:
            if not isinstance(original[field], list):
                raise _bad_type("[]interface {}", original[field], UNPROCESSABLE)
            original_list = original[field]
        if found_patch:
            if not isinstance(patch[field], list):
                raise _bad_type("[]interface {}", patch[field], BAD_REQUEST)
            patch_list = patch[field]
        _, _, strategy, merge_key, element = lookup_field(schema, field)
        _check_order_list(patch_list, order, merge_key)

        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = _remove_directives(patch_list)[0]
        elif found_original and found_patch:
            merged = _merge_list_field(
                original_list, patch_list, element, strategy, merge_key, False, options
            )
        else:
            continue
        patch_items, server_only = _partition(merged, order, merge_key)
        kind = element_kind(original_list, patch_list)
        if kind is None:
            raise StrategicPatchError("no elements in any of the given slices", UNPROCESSABLE)
        original[field] = _normalize_element_order(
            patch_items, server_only, order, original_list, merge_key, kind
        )
        patch.pop(field, None)


def _check_order_list(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """patch.go ``validatePatchWithSetOrderList``: the patch's items follow the order list."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise _bad_type("map[string]interface {}", item, BAD_REQUEST)
        items = [item for item in patch_list if not _is_delete_item(item)]
    p = o = 0
    while p < len(items) and o < len(order):
        item = items[p]
        if isinstance(item, dict) and DIRECTIVE in item:
            p += 1
            continue
        if merge_key:
            target = order[o]
            if not isinstance(target, dict):
                raise _bad_type("map[string]interface {}", target, BAD_REQUEST)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key, BAD_REQUEST)
            if merge_key not in target:
                raise _no_merge_key(target, merge_key, BAD_REQUEST)
            same = value_token(item[merge_key]) == value_token(target[merge_key])
        else:
            same = value_token(item) == value_token(order[o])
        if same:
            p += 1
        o += 1
    if p < len(items) and o >= len(order):
        raise StrategicPatchError(
            f"The order in patch list:\n{gofmt.verb_v(patch_list)}\n doesn't match "
            f"{SET_ELEMENT_ORDER} list:\n{gofmt.verb_v(order)}"
        )


def _merge_list_field(
    original: list[Any],
    patch: Any,
    element: PatchMeta | None,
    strategy: str,
    merge_key: str,
    is_delete_list: bool,
    options: _MergeOptions,
) -> list[Any]:
    """patch.go ``mergeSliceHandler``: merge lists with the ``merge`` strategy, else replace."""
    if not isinstance(patch, list):
        raise _bad_type("[]interface {}", patch, BAD_REQUEST)
    if strategy == MERGE or is_delete_list:
        return _merge_list(original, patch, element, merge_key, options, is_delete_list)
    return patch


def _merge_list(
    original: list[Any],
    patch: list[Any],
    element: PatchMeta | None,
    merge_key: str,
    options: _MergeOptions,
    is_delete_list: bool,
) -> list[Any]:
    """patch.go ``mergeSlice``."""
    if not original and not patch:
        return original
    kind = element_kind(original, patch)
    if kind != MAP:
        if options.merge_parallel_list and is_delete_list:
            doomed = {value_token(v) for v in patch}
            return [v for v in original if value_token(v) not in doomed]
        merged = dedupe_scalars(original + patch)
        patch_items, server_only = _partition(merged, patch, merge_key)
        return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind)
    if not merge_key:
        raise StrategicPatchError(
            f"cannot merge lists without merge key for {_schema_name(element)}"
        )
    original, patch = _apply_list_directives(original, patch, merge_key)
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key, BAD_REQUEST)
        at = _find_by_key(merged, merge_key, item[merge_key])
        if at >= 0:
            merged[at] = _merge_map(merged[at], item, element, options)
        else:
            merged.append(item)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind)


def _apply_list_directives(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """patch.go ``mergeSliceWithSpecialElements``: ``$patch`` items of a merge list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if go_kind(directive) == "string" and directive == DELETE:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key, BAD_REQUEST)
            token = value_token(item[merge_key])
            for i, existing in enumerate(original):
                if not isinstance(existing, dict):
                    raise StrategicPatchError(f"value for key {i} is not a map", UNPROCESSABLE)
            original = [
                existing
                for existing in original
                if not (merge_key in existing and value_token(existing[merge_key]) == token)
            ]
        elif go_kind(directive) == "string" and directive == REPLACE:
            replace = True
        elif go_kind(directive) == "string" and directive == MERGE:
            raise StrategicPatchError("merging lists cannot yet be specified in the patch")
        else:
            raise _bad_patch_type(directive, item)
    if replace:
        return plain, []
    return original, plain


def apply_strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], definition: str
) -> dict[str, Any]:
    """Apply a strategic merge patch to an object of the schema ``definition``.

    ``definition`` is the root definition's name, e.g. ``io.k8s.api.apps.v1.Deployment``
    (a :class:`KeyError` if the schema has no such definition). Returns a new object; the
    arguments are not modified. Raises :class:`StrategicPatchError` when the patch is
    malformed (400) or cannot be applied to this object (422).
    """
    schema = root_patch_meta(definition)
    if not isinstance(patch, dict):
        raise StrategicPatchError("invalid JSON document")
    if not isinstance(original, dict):
        raise StrategicPatchError("invalid JSON document", UNPROCESSABLE)
    try:
        return _merge_map(deep_copy(original), deep_copy(patch), schema, _APPLY)
    except RecursionError:
        raise StrategicPatchError("the patch is nested too deeply") from None


def combine_patches(
    patch: dict[str, Any], other: dict[str, Any], schema: PatchMeta | None
) -> dict[str, Any]:
    """Merge the patch ``other`` into ``patch``, keeping their directives and ``null``s.

    patch.go's ``mergeMap`` with ``MergeParallelList`` and ``IgnoreUnmatchedNulls`` off, as
    ``CreateThreeWayMergePatch`` combines its deletions with its changes. Both arguments are
    consumed (pass private copies).
    """
    return _merge_map(patch, other, schema, _COMBINE)
