"""Specification of Kubernetes field selectors (``?fieldSelector=``): parsing, escaping and
matching."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from setpoint.meta.fields import (
    FieldRequirement,
    FieldSelector,
    FieldSelectorParseError,
    escape_value,
    field_selector_from_set,
    parse_field_selector,
    unescape_value,
)


def terms(text: str) -> list[tuple[str, str, str]]:
    return [(r.field, r.operator, r.value) for r in parse_field_selector(text).requirements]


def getter(obj: dict[str, str]) -> Callable[[str], str | None]:
    return obj.get


# --- parsing ------------------------------------------------------------------------------


def test_empty_string_is_the_empty_selector() -> None:
    selector = parse_field_selector("")
    assert selector.is_empty()
    assert selector.matches(getter({}))


def test_equals_parses() -> None:
    assert terms("metadata.name=web") == [("metadata.name", "=", "web")]


def test_double_equals_is_normalised_to_equals() -> None:
    assert terms("metadata.name==web") == [("metadata.name", "=", "web")]


def test_not_equals_parses() -> None:
    assert terms("status.phase!=Running") == [("status.phase", "!=", "Running")]


def test_terms_are_comma_separated_and_sorted_by_text() -> None:
    assert terms("spec.nodeName=n1,metadata.name=a") == [
        ("metadata.name", "=", "a"),
        ("spec.nodeName", "=", "n1"),
    ]


def test_empty_terms_are_skipped() -> None:
    assert terms(",a=b,,") == [("a", "=", "b")]


def test_whitespace_is_not_trimmed() -> None:
    assert terms(" a = b ") == [(" a ", "=", " b ")]


def test_the_first_operator_splits_the_term() -> None:
    assert terms("a!b=c") == [("a!b", "=", "c")]


def test_a_bang_in_the_value_needs_no_escape() -> None:
    assert terms("a=!b") == [("a", "=", "!b")]


def test_the_empty_value_is_allowed() -> None:
    assert terms("spec.nodeName=") == [("spec.nodeName", "=", "")]


def test_the_empty_field_is_kept_when_the_value_is_not_empty() -> None:
    assert terms("=x") == [("", "=", "x")]


def test_a_term_empty_on_both_sides_is_dropped() -> None:
    assert terms("=") == []
    assert terms("!=,a=b") == [("a", "=", "b")]


def test_a_term_without_operator_is_an_error() -> None:
    with pytest.raises(FieldSelectorParseError) as info:
        parse_field_selector("a=b,nonsense")
    assert str(info.value) == "invalid selector: 'a=b,nonsense'; can't understand 'nonsense'"


def test_field_selector_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_field_selector("x")


# --- escaping -----------------------------------------------------------------------------


def test_escaped_comma_is_part_of_the_value() -> None:
    assert terms("a=x\\,y,b=z") == [("a", "=", "x,y"), ("b", "=", "z")]


def test_escaped_equals_is_part_of_the_value() -> None:
    assert terms("a=x\\=y") == [("a", "=", "x=y")]


def test_escaped_backslash_is_part_of_the_value() -> None:
    assert terms("a=x\\\\") == [("a", "=", "x\\")]


def test_unescaped_equals_in_a_value_is_an_error_naming_the_rune_code() -> None:
    with pytest.raises(FieldSelectorParseError) as info:
        parse_field_selector("a=b=c")
    assert str(info.value) == "invalid field selector: unescaped character in value: 61"


def test_unknown_escape_sequence_is_an_error() -> None:
    with pytest.raises(FieldSelectorParseError) as info:
        parse_field_selector("a=\\n")
    assert str(info.value) == "invalid field selector: invalid escape sequence: \\n"


def test_escaped_bang_is_rejected_like_kubernetes() -> None:
    with pytest.raises(FieldSelectorParseError) as info:
        parse_field_selector("a=\\!b")
    assert str(info.value) == "invalid field selector: invalid escape sequence: \\!"


def test_trailing_backslash_is_an_error() -> None:
    with pytest.raises(FieldSelectorParseError) as info:
        parse_field_selector("a=b\\")
    assert str(info.value) == "invalid field selector: invalid escape sequence: \\"


def test_escape_value_escapes_backslash_comma_and_equals() -> None:
    assert escape_value("a\\b,c=d!") == "a\\\\b\\,c\\=d!"


def test_unescape_value_undoes_escape_value() -> None:
    assert unescape_value("a\\\\b\\,c\\=d") == "a\\b,c=d"


def test_unescape_value_rejects_an_unescaped_comma() -> None:
    with pytest.raises(FieldSelectorParseError, match="unescaped character in value: 44"):
        unescape_value("a,b")


# --- matching -----------------------------------------------------------------------------


def test_equals_matches_the_field_value() -> None:
    selector = parse_field_selector("metadata.name=web")
    assert selector.matches(getter({"metadata.name": "web"}))
    assert not selector.matches(getter({"metadata.name": "db"}))


def test_not_equals_matches_other_values() -> None:
    selector = parse_field_selector("status.phase!=Running")
    assert selector.matches(getter({"status.phase": "Pending"}))
    assert not selector.matches(getter({"status.phase": "Running"}))


def test_an_unknown_field_reads_as_the_empty_string() -> None:
    assert parse_field_selector("spec.nodeName=").matches(getter({}))
    assert not parse_field_selector("spec.nodeName!=").matches(getter({}))
    assert parse_field_selector("spec.nodeName!=n1").matches(getter({}))


def test_every_term_must_match() -> None:
    selector = parse_field_selector("metadata.name=web,metadata.namespace=prod")
    assert selector.matches(getter({"metadata.name": "web", "metadata.namespace": "prod"}))
    assert not selector.matches(getter({"metadata.name": "web", "metadata.namespace": "dev"}))


def test_requirement_matches_on_its_own() -> None:
    assert FieldRequirement("a", "!=", "x").matches(getter({"a": "y"}))


# --- introspection ------------------------------------------------------------------------


def test_fields_lists_the_referenced_field_names() -> None:
    selector = parse_field_selector("a=1,b!=2,a!=3")
    assert selector.fields() == {"a", "b"}


def test_equality_value_is_the_first_equals_on_the_field() -> None:
    selector = parse_field_selector("spec.nodeName!=x,spec.nodeName=n1")
    assert selector.equality_value("spec.nodeName") == "n1"


def test_equality_value_ignores_not_equals_and_other_fields() -> None:
    selector = parse_field_selector("a!=1,b=2")
    assert selector.equality_value("a") is None
    assert selector.equality_value("c") is None


def test_str_is_the_canonical_escaped_form() -> None:
    assert str(parse_field_selector("b==x\\,y,a!=1")) == "a!=1,b=x\\,y"


def test_repr_shows_the_canonical_form() -> None:
    assert repr(parse_field_selector("a==1")) == "FieldSelector('a=1')"


def test_selectors_compare_and_hash_by_requirements() -> None:
    assert parse_field_selector("a=1,b=2") == parse_field_selector("b==2,a=1")
    assert hash(parse_field_selector("a=1")) == hash(parse_field_selector("a==1"))


def test_transform_maps_fields_and_drops_emptied_terms() -> None:
    selector = parse_field_selector("name=web,drop=me")

    def rename(fld: str, value: str) -> tuple[str, str]:
        if fld == "drop":
            return "", ""
        return "metadata." + fld, value

    assert str(selector.transform(rename)) == "metadata.name=web"


def test_transform_propagates_the_functions_error() -> None:
    def reject(fld: str, value: str) -> tuple[str, str]:
        raise ValueError(f"field label not supported: {fld}")

    with pytest.raises(ValueError, match="field label not supported: bogus"):
        parse_field_selector("bogus=1").transform(reject)


def test_selector_from_set_requires_every_pair_sorted_by_field() -> None:
    selector = field_selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert field_selector_from_set(None).is_empty()


def test_requirement_normalises_double_equals() -> None:
    assert FieldRequirement("a", "==", "b").operator == "="


def test_requirement_rejects_other_operators() -> None:
    with pytest.raises(FieldSelectorParseError):
        FieldRequirement("a", "in", "b")


# --- properties ---------------------------------------------------------------------------

field_names = st.from_regex(r"[a-z][a-zA-Z]{0,6}(\.[a-z][a-zA-Z]{0,6}){0,2}", fullmatch=True)
any_values = st.text(max_size=12)


@given(any_values)
def test_escape_then_unescape_is_the_identity(value: str) -> None:
    assert unescape_value(escape_value(value)) == value


@given(st.lists(st.tuples(field_names, st.sampled_from(["=", "!="]), any_values), max_size=5))
def test_str_parses_back_to_an_equal_selector(raw: list[tuple[str, str, str]]) -> None:
    selector = FieldSelector(FieldRequirement(f, op, v) for f, op, v in raw if f or v)
    reparsed = parse_field_selector(str(selector))
    assert sorted(map(str, reparsed.requirements)) == sorted(map(str, selector.requirements))
    assert str(parse_field_selector(str(reparsed))) == str(reparsed)


@given(field_names, any_values)
def test_any_value_survives_escaping_in_a_selector(fld: str, value: str) -> None:
    selector = parse_field_selector(f"{fld}={escape_value(value)}")
    assert selector.equality_value(fld) == value
    assert selector.matches(getter({fld: value}))


@given(field_names, any_values, st.dictionaries(field_names, any_values, max_size=3))
def test_not_equals_is_the_negation_of_equals(fld: str, value: str, obj: dict[str, str]) -> None:
    eq = FieldSelector([FieldRequirement(fld, "=", value)])
    ne = FieldSelector([FieldRequirement(fld, "!=", value)])
    assert ne.matches(getter(obj)) is not eq.matches(getter(obj))


@given(st.text(alphabet="a=!,\\.b ", max_size=20))
def test_parsing_arbitrary_text_only_ever_raises_field_selector_parse_error(text: str) -> None:
    try:
        selector = parse_field_selector(text)
    except FieldSelectorParseError:
        return
    reparsed = parse_field_selector(str(selector))
    assert sorted(map(str, reparsed.requirements)) == sorted(map(str, selector.requirements))
