"""Values as Go prints them (setpoint.meta.gofmt): each function against the Go rendering it
names. Expected texts are what Go 1.25 prints for the same values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from setpoint.api.merge.conflicts import Conflict
from setpoint.meta import gofmt

# --- strconv.Quote ---------------------------------------------------------------------------


def test_quote_plain_ascii() -> None:
    assert gofmt.quote("abc") == '"abc"'


def test_quote_escapes_quotes_backslashes_and_controls() -> None:
    assert gofmt.quote('a"b\\c\n\x01\x7f') == '"a\\"b\\\\c\\n\\x01\\x7f"'
    assert gofmt.quote("a\tb\x01é\\") == '"a\\tb\\x01é\\\\"'


def test_quote_keeps_printable_unicode_and_escapes_the_rest() -> None:
    assert gofmt.quote("é\u200b") == '"é\\u200b"'


@given(st.text(max_size=20))
def test_quote_is_always_a_double_quoted_single_line(value: str) -> None:
    quoted = gofmt.quote(value)
    assert quoted.startswith('"') and quoted.endswith('"')
    assert "\n" not in quoted


def test_apply_conflict_quotes_a_manager_with_control_characters_as_percent_q() -> None:
    # printManager formats the manager with %q: \x01, not encoding/json's \u0001
    conflict = Conflict("ed\x01it<&>", "Update", "apps/v1", "st\x7fatus", ".spec.replicas")
    assert conflict.described_manager == (
        '"ed\\x01it<&>" with subresource "st\\x7fatus" using apps/v1'
    )


# --- strconv.FormatFloat 'g' and fmt's %v ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.5, "1.5"),
        (100.0, "100"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e-4, "0.0001"),
        (1.5e-5, "1.5e-05"),
        (1e21, "1e+21"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_format_float_64(value: float, text: str) -> None:
    assert gofmt.format_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (1 / 3, "0.33333334"), (16777217.0, "1.6777216e+07"), (3e-5, "3e-05")],
)
def test_format_float_32_uses_the_fewest_digits_of_the_float32(value: float, text: str) -> None:
    assert gofmt.format_float(value, 32) == text


def test_verb_v_of_decoded_json() -> None:
    assert gofmt.verb_v({"b": [1, 2.5e-7, None], "a": True}) == "map[a:true b:[1 2.5e-07 <nil>]]"


def test_verb_s_flags_what_is_not_a_string() -> None:
    assert gofmt.verb_s("x") == "x"
    assert gofmt.verb_s(None) == "%!s(<nil>)"
    assert gofmt.verb_s(3) == "%!s(int64=3)"
    assert gofmt.verb_s({"a": [None, 1.5]}) == "map[a:[<nil> %!s(float64=1.5)]]"


def test_verb_t_of_decoded_json() -> None:
    assert [gofmt.verb_t(v) for v in (None, {}, [], 1, 1.0, "", True)] == [
        "<nil>",
        "map[string]interface {}",
        "[]interface {}",
        "int64",
        "float64",
        "string",
        "bool",
    ]


# --- encoding/json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.5e-7, "1.5e-7"), (1e21, "1e+21"), (1e20, "100000000000000000000"), (0.5, "0.5")],
)
def test_json_float_differs_from_percent_v(value: float, text: str) -> None:
    assert gofmt.json_float(value) == text


def test_json_marshal_is_compact_sorted_and_html_safe() -> None:
    assert gofmt.json_marshal({"b": "<&>", "a": [1, 1.5e-7, None]}) == (
        '{"a":[1,1.5e-7,null],"b":"\\u003c\\u0026\\u003e"}'
    )


# --- time ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (2_000_000, "2ms"),
        (1_500_000_000, "1.5s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (-(3723 * 10**9 + 5), "-1h2m3.000000005s"),
    ],
)
def test_duration_string(nanos: int, text: str) -> None:
    assert gofmt.duration_string(nanos) == text


def test_time_string() -> None:
    assert gofmt.time_string(None) == "0001-01-01 00:00:00 +0000 UTC"
    assert gofmt.time_string("2026-01-02T03:04:05.120Z") == "2026-01-02 03:04:05.12 +0000 UTC"


# --- %#v of Kubernetes types -----------------------------------------------------------------


def test_sharp_v_renderings() -> None:
    assert gofmt.sharp_v_string_slice(None) == "[]string(nil)"
    assert gofmt.sharp_v_string_map({"b": "2", "a": "1"}) == 'map[string]string{"a":"1", "b":"2"}'
    assert gofmt.sharp_v_int_or_string("25%") == (
        'intstr.IntOrString{Type:1, IntVal:0, StrVal:"25%"}'
    )
    assert gofmt.sharp_v_label_selector({"matchLabels": {"app": "web"}}) == (
        'v1.LabelSelector{MatchLabels:map[string]string{"app":"web"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
    )
