"""Specification of label-key, label-value and DNS-1123 name validation.

The expected messages are Kubernetes' own, as printed by kubectl v1.37.1 (which links the same
apimachinery code) for the same inputs.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from setpoint.meta.validation import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    is_label_key,
    is_label_value,
    label_key_errors,
    label_value_errors,
    regex_error,
    validate_labels,
)

NAME_REGEX_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_REGEX_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
SUBDOMAIN_REGEX_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS_LABEL_REGEX_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

# --- label keys ---------------------------------------------------------------------------


def test_simple_label_key_is_valid() -> None:
    assert label_key_errors("app") == []


def test_prefixed_label_key_is_valid() -> None:
    assert label_key_errors("app.kubernetes.io/name") == []


def test_label_key_name_may_contain_dots_dashes_underscores_and_capitals() -> None:
    assert label_key_errors("My_Name.v-2") == []


def test_label_key_name_of_63_bytes_is_valid() -> None:
    assert label_key_errors("a" * 63) == []


def test_label_key_name_over_63_bytes_is_too_long() -> None:
    assert label_key_errors("a" * 64) == ["name part must be no more than 63 bytes"]


def test_label_key_name_must_start_and_end_alphanumeric() -> None:
    assert label_key_errors("-app") == [NAME_REGEX_MSG]
    assert label_key_errors("app_") == [NAME_REGEX_MSG]


def test_empty_label_key_reports_empty_and_regex() -> None:
    assert label_key_errors("") == ["name part must be non-empty", NAME_REGEX_MSG]


def test_label_key_with_empty_name_after_prefix() -> None:
    assert label_key_errors("a/") == ["name part must be non-empty", NAME_REGEX_MSG]


def test_label_key_with_empty_prefix() -> None:
    assert label_key_errors("/c") == ["prefix part must be non-empty"]


def test_label_key_prefix_must_be_lowercase_subdomain() -> None:
    assert label_key_errors("A.B/c") == ["prefix part " + SUBDOMAIN_REGEX_MSG]


def test_label_key_prefix_over_253_bytes_is_too_long() -> None:
    assert label_key_errors("a" * 254 + "/c") == ["prefix part must be no more than 253 bytes"]


def test_label_key_with_two_slashes_has_a_single_message() -> None:
    assert label_key_errors("a/b/c") == [
        "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    ]


def test_label_key_length_is_counted_in_bytes() -> None:
    assert label_key_errors("é" * 32) == [
        "name part must be no more than 63 bytes",
        NAME_REGEX_MSG,
    ]


def test_label_key_with_trailing_newline_is_invalid() -> None:
    assert label_key_errors("app\n") == [NAME_REGEX_MSG]


def test_is_label_key_agrees_with_errors() -> None:
    assert is_label_key("a.io/b")
    assert not is_label_key("a/b/c")


# --- label values -------------------------------------------------------------------------


def test_empty_label_value_is_valid() -> None:
    assert label_value_errors("") == []


def test_label_value_of_63_bytes_is_valid() -> None:
    assert label_value_errors("v" * 63) == []


def test_label_value_over_63_bytes_is_too_long() -> None:
    assert label_value_errors("v" * 64) == ["must be no more than 63 bytes"]


def test_label_value_must_start_and_end_alphanumeric() -> None:
    assert label_value_errors("-x") == [VALUE_REGEX_MSG]


def test_label_value_may_not_contain_a_slash() -> None:
    assert label_value_errors("a/b") == [VALUE_REGEX_MSG]


def test_is_label_value_agrees_with_errors() -> None:
    assert is_label_value("")
    assert not is_label_value("x" * 64)
    assert not is_label_value("a b")


# --- DNS names ----------------------------------------------------------------------------


def test_dns1123_subdomain_accepts_dotted_lowercase_names() -> None:
    assert dns1123_subdomain_errors("my-app.example.com") == []


def test_dns1123_subdomain_rejects_uppercase() -> None:
    assert dns1123_subdomain_errors("My-App") == [SUBDOMAIN_REGEX_MSG]


def test_dns1123_subdomain_over_253_is_too_long() -> None:
    assert dns1123_subdomain_errors("a" * 254) == ["must be no more than 253 characters"]


def test_dns1123_label_accepts_lowercase_names() -> None:
    assert dns1123_label_errors("kube-system") == []


def test_dns1123_label_rejects_dots_with_a_specific_message() -> None:
    assert dns1123_label_errors("a.b") == ["must not contain dots"]


def test_dns1123_label_rejects_underscores() -> None:
    assert dns1123_label_errors("a_b") == [DNS_LABEL_REGEX_MSG]


def test_dns1123_label_over_63_is_too_long() -> None:
    assert dns1123_label_errors("a" * 64) == ["must be no more than 63 characters"]


def test_empty_dns1123_name_is_invalid() -> None:
    assert dns1123_label_errors("") == [DNS_LABEL_REGEX_MSG]
    assert dns1123_subdomain_errors("") == [SUBDOMAIN_REGEX_MSG]


# --- helpers ------------------------------------------------------------------------------


def test_regex_error_without_examples() -> None:
    assert regex_error("bad", "x+") == "bad (regex used for validation is 'x+')"


def test_validate_labels_reports_key_and_value_problems_at_the_map_path() -> None:
    problems = validate_labels({"a/b/c": "ok", "good": "-bad"}, "metadata.labels")
    assert [p for p, _ in problems] == ["metadata.labels", "metadata.labels"]
    assert problems[0][1].startswith('Invalid value: "a/b/c": a valid label key must')
    assert problems[1][1] == f'Invalid value: "-bad": {VALUE_REGEX_MSG}'


def test_validate_labels_of_none_is_fine() -> None:
    assert validate_labels(None, "metadata.labels") == []


# --- properties ---------------------------------------------------------------------------

_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ALPHABET = "aZ09-_./é \n"


@given(st.text(alphabet=_ALPHABET, max_size=70))
def test_label_value_validity_is_the_regex_and_length_rule(value: str) -> None:
    expected = value == "" or (_NAME_RE.fullmatch(value) is not None and len(value.encode()) <= 63)
    assert (label_value_errors(value) == []) is expected


@given(st.text(alphabet=_ALPHABET, max_size=70))
def test_label_key_validity_is_the_prefix_and_name_rule(key: str) -> None:
    parts = key.split("/")
    if len(parts) == 1:
        prefix_ok, name = True, parts[0]
    elif len(parts) == 2:
        prefix_ok = _SUBDOMAIN_RE.fullmatch(parts[0]) is not None and len(parts[0].encode()) <= 253
        name = parts[1]
    else:
        prefix_ok, name = False, ""
    name_ok = _NAME_RE.fullmatch(name) is not None and len(name.encode()) <= 63
    assert (label_key_errors(key) == []) is (prefix_ok and name_ok)
