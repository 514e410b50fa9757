"""Small field checks shared by the per-group validators, worded as Kubernetes words them.

Kubernetes prints a rejected value the way Go's ``fmt`` does: strings quoted, numbers bare,
and structs and maps as Go literals (``map[string]string{"app":"web"}``,
``v1.LabelSelector{...}``). :mod:`setpoint.meta.gofmt` renders those literals for the values
our messages show; the causes themselves are built by :mod:`setpoint.resources.fielderrors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from setpoint.meta import gofmt
from setpoint.meta.labels import label_selector_field_errors
from setpoint.meta.validation import regex_error, validate_labels
from setpoint.resources.fielderrors import FieldError, invalid_rendered, invalid_value

IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
NONSTANDARD_FINALIZER = "name is neither a standard finalizer name nor is it fully qualified"
PERCENT = re.compile(r"[0-9]+%")
_PERCENT_ERROR = regex_error(
    "a valid percent string must be a numeric string followed by an ending '%'",
    "[0-9]+%",
    "1%",
    "93%",
)


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
    return [
        invalid_rendered(
            path, gofmt.field_error_value(new) if rendered is None else rendered, IMMUTABLE
        )
    ]


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


def positive_int_or_percent_errors(value: int | str | None, path: str) -> list[FieldError]:
    """``ValidatePositiveIntOrPercent``: a non-negative number or ``"N%"``."""
    if isinstance(value, str):
        if PERCENT.fullmatch(value):
            return []
        return [invalid_rendered(path, gofmt.sharp_v_int_or_string(value), _PERCENT_ERROR)]
    return nonnegative(value or 0, path)


def not_more_than_100_percent(value: int | str | None, path: str) -> list[FieldError]:
    """``IsNotMoreThan100Percent``: a percentage up to 100 (numbers are not checked)."""
    if isinstance(value, str) and PERCENT.fullmatch(value) and int(value[:-1]) > 100:
        rendered = gofmt.sharp_v_int_or_string(value)
        return [invalid_rendered(path, rendered, "must not be greater than 100%")]
    return []


def _normalized(value: Any) -> Any:
    """Absent, null, empty string, empty map and empty list all compare equal (Go's zero
    values under ``apiequality.Semantic``)."""
    if isinstance(value, dict):
        items = ((k, _normalized(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not None} or None
    if isinstance(value, list):
        return [_normalized(v) for v in value] or None
    return None if value == "" else value
