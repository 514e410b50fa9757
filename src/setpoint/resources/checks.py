"""Small field checks shared by the per-group validators, worded as Kubernetes words them.

Kubernetes prints a rejected value the way Go's ``fmt`` does: strings quoted, numbers bare,
and structs and maps as Go literals (``map[string]string{"app":"web"}``,
``v1.LabelSelector{...}``). The ``go_*`` helpers render those literals for the values our
messages show, and :func:`invalid_rendered` builds a cause around an already rendered value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from setpoint.meta.labels import label_selector_field_errors
from setpoint.meta.validation import go_quote, validate_labels
from setpoint.resources.registry import FieldError

IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
NONSTANDARD_FINALIZER = "name is neither a standard finalizer name nor is it fully qualified"


def invalid_rendered(path: str, rendered: str, detail: str) -> FieldError:
    """A FieldValueInvalid cause whose value is already in Go's printed form."""
    return FieldError("FieldValueInvalid", path, f"Invalid value: {rendered}: {detail}")


def invalid_value(path: str, value: Any, detail: str) -> FieldError:
    return invalid_rendered(path, go_value(value), detail)


def not_found(path: str, value: str) -> FieldError:
    return FieldError("FieldValueNotFound", path, f"Not found: {go_quote(value)}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"Too long: may not be more than {limit} bytes")


def nonnegative(value: Any, path: str) -> list[FieldError]:
    """``ValidateNonnegativeField`` for an optional number."""
    if isinstance(value, int | float) and value < 0:
        return [invalid_value(path, value, NEGATIVE)]
    return []


def immutable(new: Any, old: Any, path: str, rendered: str | None = None) -> list[FieldError]:
    """``ValidateImmutableField``: an empty map/list/string equals an absent one.

    ``rendered`` is the new value as Go prints it, for values that are not scalars.
    """
    if _normalized(new) == _normalized(old):
        return []
    return [invalid_rendered(path, go_value(new) if rendered is None else rendered, IMMUTABLE)]


def kube_finalizer_errors(obj: Mapping[str, Any]) -> list[FieldError]:
    """The core API's extra ``metadata.finalizers`` rule (apps, batch and events share it):
    a finalizer without a ``/`` must be one of Kubernetes' own."""
    errors = []
    for i, name in enumerate((obj.get("metadata") or {}).get("finalizers") or []):
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errors.append(invalid_value(f"metadata.finalizers[{i}]", name, NONSTANDARD_FINALIZER))
    return errors


def label_errors(labels: Mapping[str, str] | None, path: str) -> list[FieldError]:
    """``ValidateLabels`` for a label map that is not ``metadata.labels``."""
    return [
        FieldError("FieldValueInvalid", field, message)
        for field, message in validate_labels(labels, path)
    ]


def label_selector_errors(selector: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    """``ValidateLabelSelector``."""
    return [
        FieldError(cause, field, message)
        for cause, field, message in label_selector_field_errors(selector, path)
    ]


def go_value(value: Any) -> str:
    """Go's ``%v``/``%q`` for the scalars validation messages show."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return go_string_map(value)
    return repr(value)


def go_string_map(labels: Mapping[str, str] | None) -> str:
    """``%#v`` of a ``map[string]string`` (keys sorted, as Go prints maps)."""
    if labels is None:
        return "map[string]string(nil)"
    items = ", ".join(f"{go_quote(k)}:{go_quote(labels[k])}" for k in sorted(labels))
    return "map[string]string{" + items + "}"


def go_string_slice(values: list[str] | None) -> str:
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def go_label_selector(selector: Mapping[str, Any] | None) -> str:
    """``%#v`` of a ``metav1.LabelSelector`` (or ``null`` when absent)."""
    if selector is None:
        return "null"
    expressions = selector.get("matchExpressions")
    if expressions is None:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    else:
        rendered = (
            "[]v1.LabelSelectorRequirement{"
            + ", ".join(
                f"v1.LabelSelectorRequirement{{Key:{go_quote(e.get('key', ''))}, "
                f"Operator:{go_quote(e.get('operator', ''))}, "
                f"Values:{go_string_slice(e.get('values'))}}}"
                for e in expressions
            )
            + "}"
        )
    return (
        f"v1.LabelSelector{{MatchLabels:{go_string_map(selector.get('matchLabels'))}, "
        f"MatchExpressions:{rendered}}}"
    )


def go_int_or_string(value: int | str | None) -> str:
    """``%#v`` of an ``intstr.IntOrString``."""
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{value or 0}, StrVal:""}}'


def _normalized(value: Any) -> Any:
    """Absent, null, empty string, empty map and empty list all compare equal (Go's zero
    values under ``apiequality.Semantic``)."""
    if isinstance(value, dict):
        items = ((k, _normalized(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not None} or None
    if isinstance(value, list):
        return [_normalized(v) for v in value] or None
    return None if value == "" else value
