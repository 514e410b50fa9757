"""What the merge tests compute to check the server against: patches and field sets.

The API server applies patches; it never computes them. Clients do (``kubectl apply``
computes a three-way strategic merge patch, ``kubectl edit`` a two-way one), and so do the
tests, which check that applying the computed patch gives the modified object and that the
patch equals the one ``kubectl patch --local`` / Go's ``strategicpatch`` would produce. These
computations therefore live with the tests, next to the code they check:

* :func:`create_merge_patch` is evanphx/json-patch's ``CreateMergePatch`` (RFC 7386);
* :func:`create_two_way_merge_patch` and :func:`create_three_way_merge_patch` are
  ``k8s.io/apimachinery/pkg/util/strategicpatch``'s ``CreateTwoWayMergePatch`` and
  ``CreateThreeWayMergePatch`` (with ``overwrite`` set, kubectl's default, so no conflict
  detection), built from the patch metadata of :mod:`setpoint.api.merge.strategic` and
  the Go value helpers of :mod:`setpoint.meta.jsonvalue` and :mod:`setpoint.meta.gofmt`;
* :func:`fieldset_of` (the fields an object of a schema definition sets) and
  :func:`decode_managed_fields` (``metadata.managedFields`` as one set per manager) are what
  the apply tests state ownership with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from setpoint.api.merge.fieldpath import FieldSet
from setpoint.api.merge.jsonpatch import PatchError
from setpoint.api.merge.managedfields import APPLY, decode
from setpoint.api.merge.strategic import (
    DELETE,
    DELETE_FROM_PRIMITIVE_LIST,
    DIRECTIVE,
    MERGE,
    REPLACE,
    RETAIN_KEYS,
    SET_ELEMENT_ORDER,
    UNPROCESSABLE,
    PatchMeta,
    StrategicPatchError,
    check_merge_keys,
    combine_patches,
    dedupe_scalars,
    element_kind,
    lookup_field,
    normalize_slice_order,
    root_patch_meta,
    value_token,
)
from setpoint.api.merge.typed import root_type, to_field_set
from setpoint.meta import gofmt
from setpoint.meta.jsonvalue import MAP, deep_copy, deep_equal, go_kind, json_equal

# --------------------------------------------------------------------------- JSON merge patch


def _merge_diff(original: dict[str, Any], modified: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key, new in modified.items():
        if key not in original:
            patch[key] = deep_copy(new)
            continue
        old = original[key]
        if isinstance(old, dict) and isinstance(new, dict):
            nested = _merge_diff(old, new)
            if nested:
                patch[key] = nested
        elif not json_equal(old, new):
            patch[key] = deep_copy(new)
    for key in original:
        if key not in modified:
            patch[key] = None
    return patch


def create_merge_patch(original: Any, modified: Any) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns the object ``original`` into ``modified``.

    Members only in ``original`` become ``null``; objects are diffed recursively; any other
    changed value (arrays included) is carried whole. Both arguments must be JSON objects
    (``PatchError`` 400 ``Invalid JSON Document`` otherwise, as evanphx's
    ``CreateMergePatch``). A merge patch cannot set a member *to* ``null``, so a
    ``modified`` containing ``null`` members does not round-trip.
    """
    if not isinstance(original, dict) or not isinstance(modified, dict):
        raise PatchError("Invalid JSON Document", 400)
    try:
        return _merge_diff(original, modified)
    except RecursionError:
        raise PatchError("the document is nested too deeply", 422) from None


# --------------------------------------------------------------------------- strategic merge patch


@dataclasses.dataclass(frozen=True, slots=True)
class _DiffOptions:
    set_element_order: bool = True
    ignore_changes_and_additions: bool = False
    ignore_deletions: bool = False
    build_retain_keys: bool = False


def _diff_maps(
    original: dict[str, Any],
    modified: dict[str, Any],
    schema: PatchMeta | None,
    options: _DiffOptions,
) -> dict[str, Any]:
    """patch.go ``diffMaps``: the patch turning ``original`` into ``modified``."""
    patch: dict[str, Any] = {}
    retain: list[str] = []
    for key, new in modified.items():
        if options.build_retain_keys and new is not None:
            retain.append(key)
        if key not in original:
            if not options.ignore_changes_and_additions:
                patch[key] = new
            continue
        old = original[key]
        if key == DIRECTIVE:
            if not isinstance(old, str) or not isinstance(new, str):
                raise StrategicPatchError(f"invalid value for special key: {DIRECTIVE}")
            if old != new:
                patch[DIRECTIVE] = new
            continue
        if go_kind(old) != go_kind(new):
            if not options.ignore_changes_and_additions:
                patch[key] = new
            continue
        if isinstance(old, dict):
            _diff_map_field(key, old, new, patch, schema, options)
        elif isinstance(old, list):
            _diff_list_field(key, old, new, patch, schema, options)
        elif not options.ignore_changes_and_additions and not deep_equal(old, new):
            patch[key] = new
    if not options.ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    if retain and (patch or any(v is not None and k not in modified for k, v in original.items())):
        patch[RETAIN_KEYS] = sorted(retain)
    return patch


def _diff_map_field(
    key: str,
    old: dict[str, Any],
    new: dict[str, Any],
    patch: dict[str, Any],
    schema: PatchMeta | None,
    options: _DiffOptions,
) -> None:
    sub, retain, strategy, _, _ = lookup_field(schema, key)
    if strategy == REPLACE:
        if not options.ignore_changes_and_additions:
            patch[key] = new
        return
    value = _diff_maps(old, new, sub, dataclasses.replace(options, build_retain_keys=retain))
    if value:
        patch[key] = value


def _diff_list_field(
    key: str,
    old: list[Any],
    new: list[Any],
    patch: dict[str, Any],
    schema: PatchMeta | None,
    options: _DiffOptions,
) -> None:
    _, retain, strategy, merge_key, element = lookup_field(schema, key)
    if strategy != MERGE:
        if not options.ignore_changes_and_additions and not deep_equal(old, new):
            patch[key] = new
        return
    options = dataclasses.replace(options, build_retain_keys=retain)
    additions, deletions, order = _diff_lists(old, new, element, merge_key, options)
    if additions:
        patch[key] = additions
    if deletions:
        patch[f"{DELETE_FROM_PRIMITIVE_LIST}/{key}"] = deletions
    if order:
        patch[f"{SET_ELEMENT_ORDER}/{key}"] = order


def _diff_lists(
    original: list[Any],
    modified: list[Any],
    element: PatchMeta | None,
    merge_key: str,
    options: _DiffOptions,
) -> tuple[list[Any], list[Any], list[Any]]:
    """patch.go ``diffLists``: (patch list, primitive deletions, ``$setElementOrder``)."""
    if not original:
        if not modified or options.ignore_changes_and_additions:
            return [], [], []
        return modified, [], []
    kind = element_kind(original, modified, patch_code=UNPROCESSABLE)
    if kind == MAP:
        changes, deletions = _diff_lists_of_maps(original, modified, element, merge_key, options)
        changes = normalize_slice_order(changes, modified, merge_key, kind, code=UNPROCESSABLE)
        same_order = len(original) == len(modified) and all(
            value_token(a[merge_key]) == value_token(b[merge_key])
            for a, b in zip(original, modified, strict=True)
        )
        changes += deletions
        order: list[Any] = []
        if options.set_element_order and (
            (not options.ignore_changes_and_additions and (changes or not same_order))
            or (not options.ignore_deletions and changes)
        ):
            order = [{merge_key: item[merge_key]} for item in modified]
        return changes, [], order
    additions, removals = _diff_lists_of_scalars(original, modified, options)
    additions = normalize_slice_order(additions, modified, merge_key, kind, code=UNPROCESSABLE)
    order = []
    if options.set_element_order and (
        (not options.ignore_deletions and removals)
        or (not options.ignore_changes_and_additions and not deep_equal(original, modified))
    ):
        order = modified
    return additions, removals, order


def _diff_lists_of_scalars(
    original: list[Any], modified: list[Any], options: _DiffOptions
) -> tuple[list[Any], list[Any]]:
    """patch.go ``diffListsOfScalars``: walk both lists sorted by their text."""
    old = sorted(original, key=gofmt.verb_v)
    new = sorted(modified, key=gofmt.verb_v)
    additions: list[Any] = []
    removals: list[Any] = []
    i = j = 0
    while i < len(old) or j < len(new):
        old_text = gofmt.verb_v(old[i]) if i < len(old) else None
        new_text = gofmt.verb_v(new[j]) if j < len(new) else None
        if old_text is not None and new_text is not None and old_text == new_text:
            i += 1
            j += 1
        elif old_text is None or (new_text is not None and old_text > new_text):
            if not options.ignore_changes_and_additions:
                additions.append(new[j])
            j += 1
        else:
            if not options.ignore_deletions:
                removals.append(old[i])
            i += 1
    return additions, dedupe_scalars(removals)


def _diff_lists_of_maps(
    original: list[Any],
    modified: list[Any],
    element: PatchMeta | None,
    merge_key: str,
    options: _DiffOptions,
) -> tuple[list[Any], list[Any]]:
    """patch.go ``diffListsOfMaps``: changed/added items, and ``$patch: delete`` items."""
    check_merge_keys(merge_key, original, modified, code=UNPROCESSABLE)
    old = sorted(original, key=lambda item: gofmt.verb_v(item[merge_key]))
    new = sorted(modified, key=lambda item: gofmt.verb_v(item[merge_key]))
    changes: list[Any] = []
    deletions: list[Any] = []
    i = j = 0
    while i < len(old) or j < len(new):
        old_text = gofmt.verb_v(old[i][merge_key]) if i < len(old) else None
        new_text = gofmt.verb_v(new[j][merge_key]) if j < len(new) else None
        if old_text is not None and new_text is not None and old_text == new_text:
            value = _diff_maps(old[i], new[j], element, options)
            if value:
                value[merge_key] = new[j][merge_key]
                changes.append(value)
            i += 1
            j += 1
        elif old_text is None or (new_text is not None and old_text > new_text):
            if not options.ignore_changes_and_additions:
                changes.append(new[j])
            j += 1
        else:
            if not options.ignore_deletions:
                deletions.append({merge_key: old[i][merge_key], DIRECTIVE: DELETE})
            i += 1
    return changes, deletions


def create_two_way_merge_patch(
    original: dict[str, Any], modified: dict[str, Any], definition: str
) -> dict[str, Any]:
    """The strategic merge patch that turns ``original`` into ``modified``.

    Go's ``CreateTwoWayMergePatch``: added and changed keys, ``null`` for removed keys,
    ``$patch: delete`` items and ``$deleteFromPrimitiveList`` for removed list items,
    ``$setElementOrder`` for every merge list whose items or order changed, and
    ``$retainKeys`` for ``retainKeys`` fields. Raises :class:`StrategicPatchError` (422)
    for objects whose merge lists cannot be diffed (items without the merge key, lists of
    mixed types).
    """
    schema = root_patch_meta(definition)
    for doc in (original, modified):
        if not isinstance(doc, dict):
            raise StrategicPatchError("invalid JSON document", UNPROCESSABLE)
    try:
        return _diff_maps(deep_copy(original), deep_copy(modified), schema, _DiffOptions())
    except RecursionError:
        raise StrategicPatchError("the object is nested too deeply", UNPROCESSABLE) from None


def create_three_way_merge_patch(
    original: dict[str, Any] | None,
    modified: dict[str, Any],
    current: dict[str, Any],
    definition: str,
) -> dict[str, Any]:
    """The patch client-side ``kubectl apply`` sends (``CreateThreeWayMergePatch``).

    ``original`` is the last applied configuration (``None`` when there is none),
    ``modified`` the new configuration and ``current`` the live object. The patch makes the
    live object agree with ``modified`` in everything ``modified`` sets, and deletes what
    ``original`` set but ``modified`` no longer does; fields only the live object has (set
    by controllers or other clients) are left alone. Computed with ``overwrite`` on, as
    kubectl does by default, so no conflict check is made.
    """
    schema = root_patch_meta(definition)
    original = original or {}
    for doc in (original, modified, current):
        if not isinstance(doc, dict):
            raise StrategicPatchError("invalid JSON document", UNPROCESSABLE)
    try:
        delta = _diff_maps(
            deep_copy(current), deep_copy(modified), schema, _DiffOptions(ignore_deletions=True)
        )
        deletions = _diff_maps(
            deep_copy(original),
            deep_copy(modified),
            schema,
            _DiffOptions(ignore_changes_and_additions=True),
        )
        return combine_patches(deletions, delta, schema)
    except RecursionError:
        raise StrategicPatchError("the object is nested too deeply", UNPROCESSABLE) from None


# --------------------------------------------------------------------------- server-side apply


def fieldset_of(obj: Any, definition: str) -> FieldSet:
    """Every leaf field, map key and list item ``obj`` sets (structured-merge-diff ToFieldSet)
    for an object of the schema ``definition``."""
    return to_field_set(root_type(definition), obj)


def decode_managed_fields(entries: Any) -> dict[tuple[str, str, str, str], FieldSet]:
    """``metadata.managedFields`` as ``{(manager, operation, apiVersion, subresource): set}``.

    Raises ``ValueError`` with Kubernetes' wording for entries it would refuse to decode
    (operation not ``Apply``/``Update``, missing apiVersion, fieldsType not ``FieldsV1``).
    """
    managers, _ = decode(entries)
    return {
        (m.name, APPLY if o.applied else m.operation, o.api_version, m.subresource): o.fields
        for m, o in managers.items()
    }
