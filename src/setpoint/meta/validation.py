"""Syntax checks for the names Kubernetes puts in labels and object metadata.

This module owns the string-level validators that Kubernetes applies to label keys, label
values and DNS (RFC 1123) names, with Kubernetes' exact wording, so that the API server can
return the same 422 messages a real cluster does. It mirrors two Go packages:

* ``k8s.io/apimachinery/pkg/api/validate/content`` (``IsLabelKey``, ``IsLabelValue`` and the
  DNS-1123 subdomain check used for a label key's prefix). Its length errors are worded
  ``must be no more than N bytes``.
* ``k8s.io/apimachinery/pkg/util/validation`` (``IsDNS1123Subdomain``, ``IsDNS1123Label``), which
  ``metadata.name`` / namespace-name validation still calls. Its length errors are worded
  ``must be no more than N characters``.

Lengths are counted in UTF-8 bytes, as Go's ``len`` does. Each validator returns the list of
problems (an empty list means valid), never raises. :func:`validate_labels` is Kubernetes'
``ValidateLabels`` for a ``metadata.labels`` map; it shows a rejected value as ``field.Invalid``
does, quoted by :func:`setpoint.meta.gofmt.quote`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from setpoint.meta import gofmt

LABEL_KEY_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253

EMPTY_ERROR = "must be non-empty"

_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = "(" + _LABEL_KEY_FMT + ")?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)

# fullmatch, never ``$``: Python's ``$`` also matches before a trailing newline, Go's does not.
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Kubernetes' ``RegexError``: the message, examples and the regex that was used."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            out += " or "
        out += "'" + example + "', "
    return out + "regex used for validation is '" + fmt + "')"


def max_len_error(length: int) -> str:
    """``content.MaxLenError``: the length message of label keys, values and key prefixes."""
    return f"must be no more than {length} bytes"


def legacy_max_len_error(length: int) -> str:
    """``util/validation.MaxLenError``: the length message of object-name validation."""
    return f"must be no more than {length} characters"


def byte_len(value: str) -> int:
    """Length in UTF-8 bytes (Go's ``len``) without encoding ASCII strings."""
    if value.isascii():
        return len(value)
    return len(value.encode("utf-8", "surrogatepass"))


_LABEL_KEY_NAME_REGEX_ERROR = regex_error(
    _LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc"
)
_LABEL_KEY_TOO_MANY_SLASHES = (
    "a valid label key "
    + _LABEL_KEY_NAME_REGEX_ERROR
    + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
)
_LABEL_VALUE_REGEX_ERROR = regex_error(
    _LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"
)
_DNS1123_SUBDOMAIN_REGEX_ERROR = regex_error(
    _DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"
)
_DNS1123_LABEL_REGEX_ERROR = regex_error(
    _DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"
)


def _subdomain_errors(value: str, too_long: str) -> list[str]:
    errs: list[str] = []
    if byte_len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(too_long)
    if _DNS1123_SUBDOMAIN_RE.fullmatch(value) is None:
        errs.append(_DNS1123_SUBDOMAIN_REGEX_ERROR)
    return errs


def dns1123_subdomain_errors(name: str) -> list[str]:
    """Kubernetes' ``IsDNS1123Subdomain`` (the check behind most ``metadata.name`` fields)."""
    return _subdomain_errors(name, legacy_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))


def path_segment_name_errors(name: str) -> list[str]:
    """``path.IsValidPathSegmentName``: a name that is one URL path segment (RBAC objects
    and the roles they refer to: ``system:node`` is fine)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def dns1123_label_errors(name: str) -> list[str]:
    """Kubernetes' ``IsDNS1123Label`` (namespace names, service names, ...)."""
    errs: list[str] = []
    if byte_len(name) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(legacy_max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if _DNS1123_LABEL_RE.fullmatch(name) is None:
        if _DNS1123_SUBDOMAIN_RE.fullmatch(name) is not None:
            # A valid subdomain but not a valid label: the only difference is dots.
            errs.append("must not contain dots")
        else:
            errs.append(_DNS1123_LABEL_REGEX_ERROR)
    return errs


_WILDCARD_DNS1123_SUBDOMAIN_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD_DNS1123_SUBDOMAIN_RE = re.compile(_WILDCARD_DNS1123_SUBDOMAIN_FMT)
_WILDCARD_DNS1123_SUBDOMAIN_REGEX_ERROR = regex_error(
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
    "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
    "alphanumeric character",
    _WILDCARD_DNS1123_SUBDOMAIN_FMT,
    "*.example.com",
)


def wildcard_dns1123_subdomain_errors(name: str) -> list[str]:
    """Kubernetes' ``IsWildcardDNS1123Subdomain`` (Ingress hosts such as ``*.example.com``)."""
    errs: list[str] = []
    if byte_len(name) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(legacy_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if _WILDCARD_DNS1123_SUBDOMAIN_RE.fullmatch(name) is None:
        errs.append(_WILDCARD_DNS1123_SUBDOMAIN_REGEX_ERROR)
    return errs


_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_DNS1035_LABEL_REGEX_ERROR = regex_error(
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character",
    _DNS1035_LABEL_FMT,
    "my-name",
    "abc-123",
)


def dns1035_label_errors(name: str) -> list[str]:
    """Kubernetes' ``IsDNS1035Label`` (service names): a DNS label that starts with a letter."""
    errs: list[str] = []
    if byte_len(name) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(legacy_max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if _DNS1035_LABEL_RE.fullmatch(name) is None:
        errs.append(_DNS1035_LABEL_REGEX_ERROR)
    return errs


def label_key_errors(key: str) -> list[str]:
    """Kubernetes' ``IsLabelKey`` (a.k.a. ``IsQualifiedName``): ``[prefix/]name``.

    The prefix, if present, must be a DNS-1123 subdomain of at most 253 bytes; the name must
    be 1-63 bytes of ``[-A-Za-z0-9_.]`` starting and ending with an alphanumeric character.
    """
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = []
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend(
                "prefix part " + msg
                for msg in _subdomain_errors(prefix, max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
            )
    else:
        return [_LABEL_KEY_TOO_MANY_SLASHES]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif byte_len(name) > LABEL_KEY_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(LABEL_KEY_NAME_MAX_LENGTH))
    if _LABEL_KEY_RE.fullmatch(name) is None:
        errs.append("name part " + _LABEL_KEY_NAME_REGEX_ERROR)
    return errs


def label_value_errors(value: str) -> list[str]:
    """Kubernetes' ``IsLabelValue``: empty, or at most 63 bytes of ``[-A-Za-z0-9_.]``
    starting and ending with an alphanumeric character."""
    errs: list[str] = []
    if byte_len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if _LABEL_VALUE_RE.fullmatch(value) is None:
        errs.append(_LABEL_VALUE_REGEX_ERROR)
    return errs


def is_label_key(key: str) -> bool:
    """True if ``key`` is a valid label key (cheaper than building the messages)."""
    return not label_key_errors(key)


def is_label_value(value: str) -> bool:
    """True if ``value`` is a valid label value."""
    return (
        byte_len(value) <= LABEL_VALUE_MAX_LENGTH and _LABEL_VALUE_RE.fullmatch(value) is not None
    )


def validate_labels(labels: Mapping[str, str] | None, path: str) -> list[tuple[str, str]]:
    """Kubernetes' ``ValidateLabels`` for a label map at ``path`` (e.g. ``metadata.labels``).

    Returns ``(fieldPath, message)`` pairs; the message is the body of a ``FieldValueInvalid``
    cause (``Invalid value: "<bad>": <why>``). Every problem is reported at ``path`` itself,
    not at a per-key path, exactly as Kubernetes does.
    """
    problems: list[tuple[str, str]] = []
    if not labels:
        return problems
    for key, value in labels.items():
        for msg in label_key_errors(key):
            problems.append((path, f"Invalid value: {gofmt.quote(key)}: {msg}"))
        for msg in label_value_errors(value):
            problems.append((path, f"Invalid value: {gofmt.quote(value)}: {msg}"))
    return problems
