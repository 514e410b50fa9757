"""Server-side apply and update tracking: merging, removing and moving ownership of fields.

Kubernetes tracks, for every object, which *manager* (a client-chosen name such as ``kubectl``
or ``kube-controller-manager``) set which fields, and lets a manager *apply* a partial object
(``PATCH`` with ``application/apply-patch+yaml``): the applied configuration is merged into
the live object field by field, the applier becomes the owner of exactly the fields it
applied, fields it applied before and no longer does are removed unless someone else owns
them, and changing a field another manager owns is a conflict unless the request forces it.
Plain writes (create, update, the other patch types) are tracked too: the writer takes over
the fields it changed. This module reproduces that behaviour on plain JSON dicts. It follows
``sigs.k8s.io/structured-merge-diff`` (``typed``: Merge, RemoveItems; ``merge/update.go``:
Apply, Update, prune) and the apiserver's field manager chain
(``k8s.io/apimachinery/pkg/util/managedfields/internal``, wired up by
``k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager``): stripping server-owned metadata,
the "before-first-apply" manager, reset fields and the client-side-apply upgrade path for
``kubectl``.

Entry points
------------
* :func:`apply` merges an applied configuration into the live object (``None`` when the apply
  creates it) and returns the new object with ``managedFields`` updated, raising
  :class:`~setpoint.api.merge.conflicts.ApplyConflict` (a 409 for the handler) or
  :class:`ApplyInvalid`.
* :func:`track_update` updates ``managedFields`` for any other write.

Neither function defaults, validates or resets fields; the storage layer does that afterwards,
as the apiserver does after its field manager ran.

Its neighbours: :mod:`~setpoint.api.merge.typed` says what fields an object has and how two
objects differ, :mod:`~setpoint.api.merge.goview` how Go sees them,
:mod:`~setpoint.api.merge.managedfields` reads and writes the entries, and
:mod:`~setpoint.api.merge.conflicts` words the conflicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from setpoint.api.merge.conflicts import ManagerConflicts
from setpoint.api.merge.fieldpath import EMPTY, FIELD, FieldSet, Path, PathElement, path_string
from setpoint.api.merge.goview import go_message_for, go_view
from setpoint.api.merge.managedfields import (
    APPLY,
    UPDATE,
    Manager,
    Managers,
    Owned,
    Times,
    cap,
    decode_or_empty,
    is_reset,
    object_meta,
    with_managed_fields,
    without_managed_fields,
)
from setpoint.api.merge.typed import (
    DEDUCED_TYPE,
    EMPTIED,
    LIST,
    MAP,
    MISSING,
    SCALAR,
    Diff,
    Type,
    compare,
    ensure_named,
    group_version_kinds,
    item_elements,
    resolve,
    root_type,
    to_field_set,
)
from setpoint.meta import gofmt
from setpoint.meta.jsonvalue import deep_copy, smd_equal

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "ApplyInvalid",
    "apply",
    "track_update",
]

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"


# =========================================================================== errors


class ApplyInvalid(ValueError):
    """An apply request Kubernetes refuses before merging anything.

    ``code`` is the HTTP status the apiserver answers with: 400 for requests it rejects as bad
    (a wrong apiVersion/kind, ``metadata.managedFields`` set in the configuration), 500 for
    configurations its typed conversion fails on (duplicate keys in a ``map`` list).
    """

    def __init__(self, message: str, *, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


# =========================================================================== Merge


class _DuplicateKey(Exception):
    def __init__(self, path: Path, pe: PathElement) -> None:
        super().__init__(f"{path_string(path)}: duplicate entries for key {path_string((pe,))}")


def _merge(t: Type, lhs: Any, rhs: Any, path: Path) -> Any:
    """structured-merge-diff Merge (``rhs`` wins on leaves); MISSING when nothing results."""
    t = resolve(t, lhs, rhs)
    kind = t.kind
    if kind == SCALAR or t.atomic:
        return deep_copy(rhs if rhs is not MISSING else lhs)
    if kind == MAP:
        lmap = lhs if isinstance(lhs, dict) else None
        rmap = rhs if isinstance(rhs, dict) else None
        if not lmap and not rmap:
            return deep_copy(rhs if rhs is not MISSING else lhs)
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
        return deep_copy(rhs if rhs is not MISSING else lhs)
    lpes = item_elements(t, llist or [])
    rpes = item_elements(t, rlist or [])
    if lpes is None or rpes is None:
        return deep_copy(rhs if rhs is not MISSING else lhs)
    merged_list = _merge_items(t, llist or [], lpes, rlist or [], rpes, path)
    return merged_list if merged_list else MISSING


def _merge_items(
    t: Type,
    litems: list[Any],
    lpes: list[PathElement],
    ritems: list[Any],
    rpes: list[PathElement],
    path: Path,
) -> list[Any]:
    """The associative list merge of structured-merge-diff, including its item order."""
    element = t.element or DEDUCED_TYPE
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


def _remove(t: Type, value: Any, to_remove: FieldSet) -> Any:
    """structured-merge-diff RemoveItems; MISSING where a container ends up empty.

    A map value whose container ends up empty becomes :data:`EMPTIED` (Go's ``null``, which
    later steps of the prune still see as a present, ``null`` field).
    """
    t = resolve(t, value)
    kind = t.kind
    if kind == SCALAR:
        return value
    if kind == LIST:
        if not isinstance(value, list) or not value or t.atomic:
            return MISSING
        pes = item_elements(t, value)
        if pes is None:
            return value
        element = t.element or DEDUCED_TYPE
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


def _remove_items(t: Type, obj: dict[str, Any], to_remove: FieldSet) -> dict[str, Any]:
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


# =========================================================================== Update


_CURRENT: Final = Manager("current-operation", UPDATE, "", "")


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


def _update(
    t: Type,
    old: Any,
    new: Any,
    managers: Managers,
    workflow: Manager,
    *,
    force: bool,
    ignored: FieldSet,
    message: str = "",
) -> tuple[Managers, Diff]:
    """Take changed fields from other managers (or refuse), drop removed fields, drop empties."""
    diff = compare(t, old, new, ignored, message=message)
    changed = diff.modified.union(diff.added)
    conflicts: dict[Manager, FieldSet] = {}
    if not changed.empty():
        for ident, owned in managers.items():
            if ident != workflow:
                clash = owned.fields.intersection(changed)
                if not clash.empty():
                    conflicts[ident] = clash
    if conflicts and not force:
        raise ManagerConflicts(conflicts, managers)
    out: Managers = {}
    for ident, owned in managers.items():
        fields = owned.fields
        if ident != workflow:
            if ident in conflicts:
                fields = fields.difference(conflicts[ident])
            fields = fields.difference(diff.removed)
        if fields.empty():
            continue
        out[ident] = (
            owned if fields is owned.fields else Owned(fields, owned.api_version, owned.applied)
        )
    return out, diff


def _record_update(
    t: Type,
    old: Any,
    new: Any,
    managers: Managers,
    times: Times,
    *,
    ident: Manager,
    api_version: str,
    now: str,
    ignored: FieldSet,
    message: str = "",
) -> Managers:
    """One Update operation (the apiserver's managedFieldsUpdater around Updater.Update).
    ``message``: see :func:`~setpoint.api.merge.typed.compare`."""
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
        managers[ident] = Owned(fields, api_version, False)
        times[ident] = now
    return managers


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
    t = root_type(definition)
    reset_paths = _reset_paths(subresource, reset_fields)
    ignored = _reset_fields(reset_paths)
    stored = object_meta(old).get("managedFields") if old is not None else None
    if subresource:
        managers, times = decode_or_empty(stored)
    else:
        requested = new["metadata"].get("managedFields")
        if is_reset(requested):
            managers, times = {}, {}
        else:
            managers, times = decode_or_empty(requested)
            if not managers:
                managers, times = decode_or_empty(stored)
    new_obj = without_managed_fields(new)
    creating = old is None or not object_meta(old).get("uid")
    if not managers and not creating:
        return with_managed_fields(new_obj, {}, {})
    old_obj = without_managed_fields(old) if old is not None else {}
    # A reset top-level field (the spec, for a status write) is never part of the diff:
    # leaving it out of both sides up front spares converting and comparing it.
    skipped = {path[0] for path in reset_paths if len(path) == 1}
    ident = Manager(manager or "unknown", UPDATE, api_version, subresource)
    old_raw = _without_top_level(old_obj, skipped)
    new_raw = _without_top_level(new_obj, skipped)
    message = go_message_for(definition) or ""
    managers = _record_update(
        t,
        old_raw,  # compared as Go views, converted where they differ (see compare)
        new_raw,
        managers,
        times,
        ident=ident,
        api_version=api_version,
        now=now,
        ignored=ignored,
        message=message,
    )
    managers = cap(managers, times)
    return with_managed_fields(new_obj, managers, times)


# =========================================================================== Apply


def _check_applied(applied: Any, definition: str, api_version: str) -> None:
    if not isinstance(applied, dict):
        raise ApplyInvalid("the applied configuration must be an object")
    gvks = group_version_kinds(definition)
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
    t: Type,
    merged: dict[str, Any],
    managers: Managers,
    last: Owned | None,
) -> dict[str, Any]:
    """Remove what the applier applied last time and nobody (itself included) owns now."""
    if last is None or last.fields.empty():
        return merged
    last_fields = ensure_named(last.fields, t)
    pruned = _remove_items(t, merged, last_fields)
    # add back what any manager (or the new configuration) owns
    managed = EMPTY
    for owned in managers.values():
        managed = managed.union(owned.fields)
    merged_set = ensure_named(to_field_set(t, merged), t)
    pruned_set = ensure_named(to_field_set(t, pruned), t)
    pruned = _remove_items(
        t, merged, merged_set.difference(pruned_set.union(ensure_named(managed, t)))
    )
    # and remove only what the applier owned last time
    pruned_set = ensure_named(to_field_set(t, pruned), t)
    pruned = _remove_items(t, merged, merged_set.difference(pruned_set).intersection(last_fields))
    return dict(_drop_emptied(pruned))


@dataclass(slots=True)
class _Applied:
    obj: dict[str, Any]
    managers: Managers
    times: Times


def _apply_once(
    t: Type,
    definition: str,
    live_obj: dict[str, Any] | None,
    applied: dict[str, Any],
    managers: Managers,
    times: Times,
    *,
    ident: Manager,
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
    managers[ident] = Owned(
        to_field_set(t, applied).recursive_difference(ignored), api_version, True
    )
    merged = _prune(t, merged, managers, last)
    live_view = go_view(definition, base)
    merged_view = go_view(definition, merged)
    managers, _ = _update(t, live_view, merged_view, managers, ident, force=force, ignored=ignored)
    if live_obj is not None and smd_equal(live_view, merged_view):
        merged = deep_copy(live_obj)  # a no-op apply: the object (and the applier's time) stay
    else:
        times[ident] = now
    mine = managers.get(ident)
    if mine is not None:
        stripped = mine.fields.difference(_STRIPPED)
        if stripped.empty():
            del managers[ident]
        elif stripped is not mine.fields:
            managers[ident] = Owned(stripped, mine.api_version, mine.applied)
    return _Applied(merged, managers, times)


def _allowed_by_last_applied(
    t: Type, definition: str, live_obj: dict[str, Any], api_version: str
) -> FieldSet | None:
    """Fields the client-side-apply annotation shows ``kubectl`` set to their live values."""
    annotations = object_meta(live_obj).get("annotations")
    text = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(text, str) or not text:
        return None
    try:
        last_applied = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last_applied, dict) or last_applied.get("apiVersion") != api_version:
        return None
    fields = to_field_set(t, last_applied)
    diff = compare(t, last_applied, go_view(definition, live_obj))
    return fields.difference(diff.modified).difference(diff.added).difference(diff.removed)


def _last_applied_value(applied: dict[str, Any]) -> str:
    """The annotation ``kubectl`` keeps in sync: the configuration as Go encodes it."""
    obj = deep_copy(applied)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LAST_APPLIED_ANNOTATION, None)
    return gofmt.json_marshal(obj) + "\n"


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
    raises :class:`~setpoint.api.merge.conflicts.ApplyConflict` unless ``force``, which moves
    the field to the applier; setting it to the value it has shares it. For the ``kubectl``
    manager, conflicts with fields whose live value the ``last-applied-configuration``
    annotation accounts for are forced (the client-side to server-side apply upgrade), and
    that annotation, when present, is rewritten to the new configuration. An apply that
    changes nothing returns the live object unchanged, entries (and times) included, except
    that a new applier still gets its entry (without a time, as in Kubernetes).

    ``reset_fields`` are paths whose changes are ignored and never owned (default: ``status``,
    or ``spec`` for ``subresource="status"``); their values still come out of the merge, for
    the storage strategy to reset. Explicit nulls in the configuration are owned and come out
    as ``None`` (the decoder drops them, as Go's does). Raises :class:`ApplyInvalid` for
    configurations of another type or carrying managedFields.
    """
    _check_applied(applied, definition, api_version)
    t = root_type(definition)
    ignored = _reset_fields(_reset_paths(subresource, reset_fields))
    name = manager or "unknown"
    ident = Manager(name, APPLY, "", subresource)

    live_obj = without_managed_fields(live) if live is not None else None
    managers, times = (
        decode_or_empty(object_meta(live).get("managedFields")) if live is not None else ({}, {})
    )
    if not managers and live_obj is not None:
        # tracking starts with the first apply: what exists so far belongs to a placeholder
        managers = _record_update(
            t,
            go_view(definition, {}),
            go_view(definition, live_obj),
            managers,
            times,
            ident=Manager("before-first-apply", UPDATE, api_version, subresource),
            api_version=api_version,
            now=now,
            ignored=ignored,
        )
        managers = cap(managers, times)

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
    except ManagerConflicts as conflicts:
        allowed = None
        if name == "kubectl" and live_obj is not None:
            allowed = _allowed_by_last_applied(t, definition, live_obj, api_version)
        if allowed is None or not conflicts.paths().difference(allowed).empty():
            raise conflicts.error(allowed) from None
        result = attempt(True)

    obj = result.obj
    if name == "kubectl":
        annotations = object_meta(obj).get("annotations")
        if isinstance(annotations, dict) and annotations.get(LAST_APPLIED_ANNOTATION):
            annotations[LAST_APPLIED_ANNOTATION] = _last_applied_value(applied)
    return with_managed_fields(obj, result.managers, result.times)
