"""The Go view of values: what Kubernetes' Go code makes of a JSON value.

The apiserver's field manager decodes objects into Go structs and writes its records with
Go's ``encoding/json``, so two things about Go decide what setpoint must record in
``managedFields``. The JSON text is :func:`setpoint.meta.gofmt.json_marshal`'s (it spells the
keys of FieldsV1, ``k:{"name":"web"}`` and ``v:1.5e-7``, manager identifiers and the
``last-applied-configuration`` annotation ``kubectl`` keeps); this module owns the other.

The Go view of objects
----------------------
The apiserver compares Go structs, in which non-pointer struct fields always exist (a
Deployment's ``spec.strategy``, a container's ``resources``) and fields without ``omitempty``
exist as ``null``. That is what decides whether a manager owns a struct or map *itself*
(``".": {}`` in FieldsV1) or only what is inside it. Comparisons therefore fill such fields
in first (:func:`go_view`), using the Go type information of ``protobuf_schema.json`` (the
table ``scripts/gen_protobuf_schema.py`` generates for the protobuf decoder); objects of types
it does not describe are compared as they are. :func:`go_shallow`, :func:`go_children` and
:func:`go_full` give the same view a level at a time, so that a comparison
(:func:`setpoint.api.merge.typed.compare`) converts only the subtrees that differ. It is the
view the field manager gets by converting the decoded Go object
(``k8s.io/apimachinery/pkg/util/managedfields/internal/typeconverter.go``).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Final

import orjson

__all__ = [
    "NO_CHILD",
    "NO_CHILDREN",
    "go_children",
    "go_full",
    "go_message_for",
    "go_shallow",
    "go_view",
]

# the absence of a field (as opposed to an explicit null)
_ABSENT: Final = object()


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


def go_message_for(definition: str) -> str | None:
    """The Go type (protobuf message) of schema ``definition``, if the table describes it."""
    if not definition.startswith("io.k8s."):
        return None
    message = "k8s.io." + definition[len("io.k8s.") :]
    return message if message in _go_messages() else None


def go_view(definition: str, obj: Any) -> Any:
    """``obj`` as Kubernetes' Go types see it: non-pointer structs present, nil fields null.

    Only containers on the way are copied; the result is for comparing, never for storing.
    """
    message = go_message_for(definition)
    if message is None or not isinstance(obj, dict):
        return obj
    return _go_fill(message, obj)


def _go_fill(message: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    _go_fill_into(message, out)
    return out


def _go_fill_into(message: str, out: dict[str, Any]) -> None:
    for json_name, action, sub in _go_flat_plan(message):
        present = out.get(json_name, _ABSENT)
        if action == _STRUCT:
            out[json_name] = _go_fill(sub, present if isinstance(present, dict) else {})
        elif isinstance(present, list) and action in (_ITEMS, _NULL_ITEMS):
            out[json_name] = go_full(sub, True, present)
        elif isinstance(present, dict) and sub:
            out[json_name] = _go_fill(sub, present)
        elif present is _ABSENT and action in (_NULL, _NULL_ITEMS):
            out[json_name] = None


NO_CHILD: Final = ("", False)
"""What :func:`go_children` has for a field that holds no messages."""
NO_CHILDREN: Final[dict[str, tuple[str, bool]]] = {}
"""The :func:`go_children` of a value without a Go type."""


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
def go_children(message: str) -> dict[str, tuple[str, bool]]:
    """For each field of ``message`` that holds messages: ``(message, as list items)``."""
    children: dict[str, tuple[str, bool]] = {}
    for json_name, action, sub in _go_flat_plan(message):
        if sub:
            children.setdefault(json_name, (sub, action in (_ITEMS, _NULL_ITEMS)))
    return children


def go_shallow(message: str, obj: dict[str, Any]) -> dict[str, Any]:
    """One level of :func:`_go_fill`: ``obj``'s own missing structs and nulls, children raw."""
    out = obj
    for json_name, action, _ in _go_flat_plan(message):
        present = out.get(json_name, _ABSENT)
        if action == _STRUCT:
            if isinstance(present, dict):
                continue
            value: Any = {}
        elif present is _ABSENT and action in (_NULL, _NULL_ITEMS):
            value = None
        else:
            continue
        if out is obj:
            out = dict(obj)
        out[json_name] = value
    return out


def go_full(message: str, items: bool, value: Any) -> Any:
    """The whole Go view of a raw ``value`` of Go type ``message`` (with ``items``: a list
    whose items are of that type, as :func:`go_children` says)."""
    if items:
        if isinstance(value, list):
            return [_go_fill(message, i) if isinstance(i, dict) else i for i in value]
        return value
    return _go_fill(message, value) if isinstance(value, dict) else value
