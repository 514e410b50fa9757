"""Field errors: the causes of a 422 Invalid, built as Kubernetes' ``field.ErrorList`` is.

Validation reports every problem it finds as a :class:`FieldError`: a cause type
(``FieldValueRequired``, ``FieldValueInvalid``, ...), the field path and the message, worded as
``k8s.io/apimachinery/pkg/util/validation/field``'s constructors word them (``Required value``,
``Invalid value: "x": <why>``, ``Unsupported value: ...``). The API server turns a list of them
into the ``Status`` causes ``kubectl`` prints (:mod:`setpoint.api.errors`).

Two of the builders show the rejected value, and they show it differently: :func:`invalid_value`
(and :func:`invalid_rendered`, for a value already rendered) as ``field.Error`` does
(:func:`setpoint.meta.gofmt.field_error_value`: strings by ``strconv.Quote``, a label map as
Go's ``%#v``); :func:`invalid`, :func:`not_supported` and :func:`duplicate` with the older,
looser rendering of :func:`_render` (a string in plain double quotes, without escapes; ``{...}``
and ``[...]`` for an object and a list), which the messages that use them have always had.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from setpoint.meta import gofmt


@dataclass(frozen=True)
class FieldError:
    """One cause of a 422 Invalid: Kubernetes' ``field.Error`` (``CauseType`` + field path)."""

    type: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    field: str
    message: str


def required(path: str, detail: str = "") -> FieldError:
    """``field.Required``."""
    return FieldError(
        "FieldValueRequired", path, f"Required value{': ' + detail if detail else ''}"
    )


def invalid(path: str, value: Any, detail: str) -> FieldError:
    """``field.Invalid``, the value shown by :func:`_render`."""
    return FieldError("FieldValueInvalid", path, f"Invalid value: {_render(value)}: {detail}")


def invalid_rendered(path: str, rendered: str, detail: str) -> FieldError:
    """``field.Invalid`` of a value already in Go's printed form."""
    return FieldError("FieldValueInvalid", path, f"Invalid value: {rendered}: {detail}")


def invalid_value(path: str, value: Any, detail: str) -> FieldError:
    """``field.Invalid``, the value shown as ``field.Error`` shows it."""
    return invalid_rendered(path, gofmt.field_error_value(value), detail)


def forbidden(path: str, detail: str) -> FieldError:
    """``field.Forbidden``."""
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    """``field.NotSupported``."""
    options = ", ".join(f'"{s}"' for s in supported)
    return FieldError(
        "FieldValueNotSupported",
        path,
        f"Unsupported value: {_render(value)}: supported values: {options}",
    )


def duplicate(path: str, value: Any) -> FieldError:
    """``field.Duplicate``."""
    return FieldError("FieldValueDuplicate", path, f"Duplicate value: {_render(value)}")


def not_found(path: str, value: str) -> FieldError:
    """``field.NotFound``."""
    return FieldError("FieldValueNotFound", path, f"Not found: {gofmt.quote(value)}")


def too_long(path: str, limit: int) -> FieldError:
    """``field.TooLong`` (in bytes)."""
    return FieldError("FieldValueTooLong", path, f"Too long: may not be more than {limit} bytes")


def too_many(path: str, actual: int, limit: int) -> FieldError:
    """``field.TooMany``."""
    return FieldError(
        "FieldValueTooMany", path, f"Too many: {actual}: must have at most {limit} items"
    )


def _render(value: Any) -> str:
    """The value in :func:`invalid`, :func:`not_supported` and :func:`duplicate` messages:
    looser than :func:`setpoint.meta.gofmt.field_error_value` (see the module's docs)."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return (
        "{...}" if isinstance(value, dict) else "[...]" if isinstance(value, list) else str(value)
    )
