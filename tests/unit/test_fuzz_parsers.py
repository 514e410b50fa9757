"""Hostile text for the parsers of user input: label and field selectors, quantities and
cron schedules. Whatever the text, each parser either returns a value or raises its own
declared error (never anything else, never a hang), and what it prints it reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from setpoint.meta import cron
from setpoint.meta.fields import FieldSelectorParseError, parse_field_selector
from setpoint.meta.labels import SelectorParseError, parse_selector
from setpoint.meta.quantity import QuantityError, parse_quantity
from tests.unit.fuzzing import fuzz_settings

# the characters selectors are made of, plus a few that are not
SELECTOR_PIECES = st.sampled_from(
    [
        "a", "b", "x1", "app", "tier", "example.com/", "k8s.io/a", "-", "_", ".", "/", "=",
        "==", "!=", "!", "in", "notin", "(", ")", ",", " ", "<", ">", "0", "10",
        "9223372036854775808", "\\", "\\,", "\\=", "\x00", "é", "%", "a" * 64, "b" * 254,
    ]
)  # fmt: skip
selector_texts = st.one_of(
    st.lists(SELECTOR_PIECES, max_size=14).map("".join),
    st.text(max_size=40),
)


@fuzz_settings(400)
@given(selector_texts)
def test_label_selector_parses_or_raises_its_error_and_round_trips(text: str) -> None:
    try:
        selector = parse_selector(text)
    except SelectorParseError:
        return
    assert parse_selector(str(selector)) == selector


@fuzz_settings(400)
@given(selector_texts)
def test_field_selector_parses_or_raises_its_error_and_round_trips(text: str) -> None:
    try:
        selector = parse_field_selector(text)
    except FieldSelectorParseError:
        return
    assert parse_field_selector(str(selector)) == selector


QUANTITY_SUFFIXES = st.one_of(
    st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ei"]),
    st.integers(-3000, 3000).map(lambda e: f"e{e}"),
    st.sampled_from(["e", "E+", "i", "KI", "e99999999999", "e-99999999", "e" + "9" * 30]),
)
quantity_texts = st.one_of(
    st.tuples(
        st.sampled_from(["", "+", "-"]),
        st.from_regex(r"[0-9]{0,30}\.?[0-9]{0,30}", fullmatch=True),
        QUANTITY_SUFFIXES,
    ).map("".join),
    st.text(alphabet="0123456789.+-eEinumkKMGTP ", max_size=30),
    st.integers(1000, 6000).map(lambda n: "1" * n),
)


@fuzz_settings(400)
@given(quantity_texts)
def test_quantity_parses_or_raises_its_error_and_its_text_reads_back(text: str) -> None:
    try:
        quantity = parse_quantity(text)
    except QuantityError:
        return
    assert parse_quantity(str(quantity)).value == quantity.value


CRON_FIELDS = st.one_of(
    st.sampled_from(["*", "?", "*/5", "1-5", "1,2,3", "0", "59", "60", "mon-fri", "jan", "L"]),
    st.integers(-2, 100).map(str),
    st.tuples(st.integers(0, 70), st.integers(0, 70), st.integers(0, 30)).map(
        lambda t: f"{t[0]}-{t[1]}/{t[2]}"
    ),
    st.sampled_from(["1" * 25, "1" * 5000, "*/" + "9" * 30, "1-2-3", "1/2/3", ""]),
)
cron_texts = st.one_of(
    st.lists(CRON_FIELDS, min_size=1, max_size=7).map(" ".join),
    st.tuples(
        st.sampled_from(["TZ=", "CRON_TZ="]),
        st.sampled_from(["UTC", "Europe/Paris", "Nope/Zone", "../etc", "A" * 300, "\x00", ""]),
        st.just(" "),
        st.lists(CRON_FIELDS, min_size=5, max_size=5).map(" ".join),
    ).map("".join),
    st.sampled_from(["@hourly", "@daily", "@yearly", "@reboot", "@every", "@every "]).flatmap(
        lambda d: st.just(d)
    ),
    st.tuples(
        st.just("@every "),
        st.from_regex(r"[0-9]{1,30}(\.[0-9]{0,5})?(ns|us|ms|s|m|h|d|)", fullmatch=True),
    ).map("".join),
    st.text(max_size=30),
)


@fuzz_settings(400)
@given(cron_texts)
def test_cron_schedule_parses_or_raises_its_error_and_finds_a_later_time(text: str) -> None:
    try:
        schedule = cron.parse(text)
    except cron.CronError:
        return
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    later = schedule.next_after(moment)
    assert later is None or later > moment


# regressions: what the fuzzing found (docs/security-fuzzing.md)


@pytest.mark.parametrize(
    "text",
    ["1e99999999", "1E+99999999", "1e1001", "1" * 5000, "0." + "0" * 5000 + "1"],
)
def test_a_quantity_too_large_to_compute_exactly_is_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize(("text", "value"), [("1e-99999999", "1e-9"), ("-1E-5000", "-1e-9")])
def test_a_quantity_far_below_a_nano_rounds_up_to_one_nano(text: str, value: str) -> None:
    assert str(parse_quantity(text)) == value


def test_an_exponent_past_int64_is_an_unparsable_suffix() -> None:
    with pytest.raises(QuantityError, match="suffix"):
        parse_quantity("1e9223372036854775808")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@every 9999999999999h", "invalid duration"),
        ("@every 1" + "0" * 400 + "s", "invalid duration"),
        ("0 0 * * " + "1" * 5000, "value out of range"),
        ("TZ=" + "A" * 300 + " * * * * *", "unknown time zone"),
    ],
)
def test_cron_schedules_that_crashed_the_parser_are_cron_errors(text: str, message: str) -> None:
    with pytest.raises(cron.CronError, match=message):
        cron.parse(text)
