"""Specification of Kubernetes label selectors: string parsing, object form, matching.

Error messages are Kubernetes' own; the string-form ones were checked against kubectl v1.37.1,
whose ``--selector`` flags run the same ``labels.Parse`` (kubectl adds its own
``couldn't parse the selector string "...":`` prefix, which the server does not).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from setpoint.meta.labels import (
    OPERATORS,
    Requirement,
    Selector,
    SelectorParseError,
    label_selector_field_errors,
    new_requirement,
    parse_selector,
    selector_from_label_selector,
    selector_from_set,
    validate_label_selector,
    validated_selector_from_set,
)

VALUE_REGEX_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
NAME_REGEX_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
TOO_MANY_SLASHES_MSG = (
    "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
    "subdomain prefix and '/' (e.g. 'example.com/MyName')"
)


def reqs(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.key, r.operator, r.values) for r in parse_selector(text).requirements]


# --- parsing ------------------------------------------------------------------------------


def test_empty_string_is_the_empty_selector() -> None:
    selector = parse_selector("")
    assert selector.is_empty()
    assert selector.requirements == ()


def test_whitespace_only_is_the_empty_selector() -> None:
    assert parse_selector(" \t\r\n ").is_empty()


def test_equals_parses_to_a_single_value_requirement() -> None:
    assert reqs("app=web") == [("app", "=", ("web",))]


def test_double_equals_is_kept_as_its_own_operator() -> None:
    assert reqs("app==web") == [("app", "==", ("web",))]


def test_not_equals_parses() -> None:
    assert reqs("app!=web") == [("app", "!=", ("web",))]


def test_in_values_are_deduplicated_and_sorted() -> None:
    assert reqs("tier in (fe, be, fe)") == [("tier", "in", ("be", "fe"))]


def test_notin_parses() -> None:
    assert reqs("tier notin (fe)") == [("tier", "notin", ("fe",))]


def test_bare_key_means_exists() -> None:
    assert reqs("canary") == [("canary", "exists", ())]


def test_bang_key_means_does_not_exist() -> None:
    assert reqs("!canary") == [("canary", "!", ())]


def test_bang_may_be_separated_from_its_key_by_whitespace() -> None:
    assert reqs("! canary") == [("canary", "!", ())]


def test_greater_than_and_less_than_parse_to_gt_and_lt() -> None:
    assert reqs("a>1,b<2") == [("a", "gt", ("1",)), ("b", "lt", ("2",))]


def test_whitespace_between_tokens_is_ignored() -> None:
    assert reqs(" a \t= b ,\n c\tin\t( x , y ) ") == [
        ("a", "=", ("b",)),
        ("c", "in", ("x", "y")),
    ]


def test_requirements_are_sorted_by_key() -> None:
    assert [r.key for r in parse_selector("z,b=1,a").requirements] == ["a", "b", "z"]


def test_requirements_with_the_same_key_keep_their_order() -> None:
    assert reqs("a!=1,a=2") == [("a", "!=", ("1",)), ("a", "=", ("2",))]


def test_in_and_notin_are_identifiers_in_key_and_value_positions() -> None:
    assert reqs("in in (in, notin)") == [("in", "in", ("in", "notin"))]
    assert reqs("notin=in") == [("notin", "=", ("in",))]


def test_missing_value_after_equals_is_the_empty_value() -> None:
    assert reqs("a=,b==") == [("a", "=", ("",)), ("b", "==", ("",))]


def test_empty_parentheses_mean_the_empty_value() -> None:
    assert reqs("a in ()") == [("a", "in", ("",))]


def test_empty_entries_in_a_value_list_are_the_empty_value() -> None:
    assert reqs("x in (foo,,baz)") == [("x", "in", ("", "baz", "foo"))]
    assert reqs("x in (,)") == [("x", "in", ("",))]
    assert reqs("x in (a,)") == [("x", "in", ("", "a"))]


def test_prefixed_keys_parse() -> None:
    assert reqs("app.kubernetes.io/name=web") == [("app.kubernetes.io/name", "=", ("web",))]


def test_operator_symbols_need_no_surrounding_whitespace() -> None:
    assert reqs("a!=b,c==d,e in(f)") == [
        ("a", "!=", ("b",)),
        ("c", "==", ("d",)),
        ("e", "in", ("f",)),
    ]


def test_nul_where_a_token_starts_ends_the_input_like_kubernetes() -> None:
    # Go's lexer uses NUL as its end-of-input sentinel.
    assert reqs("a=b \x00garbage(") == [("a", "=", ("b",))]


def test_nul_inside_an_identifier_splits_it_like_kubernetes() -> None:
    with pytest.raises(SelectorParseError, match="found 'c', expected: ',' or 'end of string'"):
        parse_selector("a=b\x00c")


# --- parse errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            ",a", "found ',', expected: !, identifier, or 'end of string'", id="leading-comma"
        ),
        pytest.param(
            "(", "found '(', expected: !, identifier, or 'end of string'", id="leading-paren"
        ),
        pytest.param("a,", "found '', expected: identifier after ','", id="trailing-comma"),
        pytest.param("a,,b", "found ',', expected: identifier after ','", id="double-comma"),
        pytest.param("a=b=c", "found '=', expected: ',' or 'end of string'", id="two-equals"),
        pytest.param("!a=b", "found '=', expected: ',' or 'end of string'", id="bang-with-value"),
        pytest.param(
            "a (",
            "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            id="paren-as-operator",
        ),
        pytest.param(
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            id="two-identifiers",
        ),
        pytest.param(
            "a!",
            "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
            id="trailing-bang",
        ),
        pytest.param(
            "!", "unable to parse requirement: found '', expected: identifier", id="bare-bang"
        ),
        pytest.param(
            "!!a", "unable to parse requirement: found '!', expected: identifier", id="double-bang"
        ),
        pytest.param(
            "a in", "unable to parse requirement: found '' expected: '('", id="in-without-list"
        ),
        pytest.param(
            "a in x", "unable to parse requirement: found 'x' expected: '('", id="in-without-paren"
        ),
        pytest.param(
            "a in (",
            "unable to parse requirement: found '', expected: ',', ')' or identifier",
            id="unclosed-empty-list",
        ),
        pytest.param(
            "a in ((",
            "unable to parse requirement: found '(', expected: ',', ')' or identifier",
            id="nested-paren",
        ),
        pytest.param(
            "a in (x",
            "unable to parse requirement: found '', expected: ',' or ')'",
            id="unclosed-list",
        ),
        pytest.param(
            "a in (x y)",
            "unable to parse requirement: found 'y', expected: ',' or ')'",
            id="missing-comma",
        ),
        pytest.param(
            "a=(b)",
            "unable to parse requirement: found '(', expected: identifier",
            id="paren-value",
        ),
        pytest.param(
            "a<=1", "unable to parse requirement: found '=', expected: identifier", id="less-equal"
        ),
        pytest.param(
            "a=!b", "unable to parse requirement: found '!', expected: identifier", id="bang-value"
        ),
        pytest.param(
            "a>x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
            id="gt-non-integer",
        ),
        pytest.param(
            "a>99999999999999999999",
            'unable to parse requirement: values[0]: Invalid value: "99999999999999999999": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
            id="gt-overflows-int64",
        ),
        pytest.param(
            "a >",
            'unable to parse requirement: values[0]: Invalid value: "": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
            id="gt-empty",
        ),
        pytest.param(
            "a=-x",
            f'unable to parse requirement: values[0][a]: Invalid value: "-x": {VALUE_REGEX_MSG}',
            id="invalid-value",
        ),
        pytest.param(
            "a/b/c=x",
            f'unable to parse requirement: <nil>: Invalid value: "a/b/c": {TOO_MANY_SLASHES_MSG}',
            id="invalid-key",
        ),
        pytest.param(
            "a/=x",
            'unable to parse requirement: <nil>: Invalid value: "a/": '
            f"name part must be non-empty; {NAME_REGEX_MSG}",
            id="key-errors-joined-by-semicolons",
        ),
        pytest.param(
            "a" * 64 + "=x",
            f'unable to parse requirement: <nil>: Invalid value: "{"a" * 64}": '
            "name part must be no more than 63 bytes",
            id="key-too-long",
        ),
        pytest.param(
            "a=" + "v" * 64,
            f'unable to parse requirement: values[0][a]: Invalid value: "{"v" * 64}": '
            "must be no more than 63 bytes",
            id="value-too-long",
        ),
        pytest.param(
            "a\x01b=x",
            f'unable to parse requirement: <nil>: Invalid value: "a\\x01b": {NAME_REGEX_MSG}',
            id="control-character-quoted-like-go",
        ),
    ],
)
def test_parse_error_message_is_kubernetes(text: str, message: str) -> None:
    with pytest.raises(SelectorParseError) as info:
        parse_selector(text)
    assert str(info.value) == message


def test_several_value_errors_are_bracketed_and_comma_separated() -> None:
    with pytest.raises(SelectorParseError) as info:
        parse_selector("a in (-x,-y)")
    assert str(info.value) == (
        "unable to parse requirement: ["
        f'values[0][a]: Invalid value: "-x": {VALUE_REGEX_MSG}, '
        f'values[1][a]: Invalid value: "-y": {VALUE_REGEX_MSG}]'
    )


def test_selector_parse_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_selector("a in (")


# --- matching -----------------------------------------------------------------------------


def test_empty_selector_matches_everything_including_no_labels() -> None:
    selector = parse_selector("")
    assert selector.matches({"a": "b"})
    assert selector.matches({})
    assert selector.matches(None)


def test_nothing_matches_no_label_set() -> None:
    nothing = Selector.nothing()
    assert not nothing.matches({"a": "b"})
    assert not nothing.matches({})
    assert not nothing.matches(None)


def test_nothing_is_not_empty_and_prints_as_the_empty_string() -> None:
    nothing = Selector.nothing()
    assert not nothing.is_empty()
    assert nothing.matches_nothing()
    assert str(nothing) == ""
    assert nothing.requirements == ()


def test_nothing_is_distinct_from_the_empty_selector() -> None:
    assert Selector.nothing() != Selector()
    assert Selector.everything() == Selector()


def test_equals_requires_the_key_with_that_value() -> None:
    selector = parse_selector("app=web")
    assert selector.matches({"app": "web", "x": "y"})
    assert not selector.matches({"app": "db"})
    assert not selector.matches({})


def test_equals_empty_value_does_not_match_an_absent_key() -> None:
    selector = parse_selector("app=")
    assert selector.matches({"app": ""})
    assert not selector.matches({})


def test_in_matches_any_listed_value() -> None:
    selector = parse_selector("tier in (fe,be)")
    assert selector.matches({"tier": "fe"})
    assert selector.matches({"tier": "be"})
    assert not selector.matches({"tier": "db"})
    assert not selector.matches({})


def test_notin_matches_when_key_absent() -> None:
    assert parse_selector("tier notin (fe,be)").matches({"other": "x"})


def test_notin_rejects_a_listed_value() -> None:
    selector = parse_selector("tier notin (fe,be)")
    assert not selector.matches({"tier": "fe"})
    assert selector.matches({"tier": "db"})


def test_not_equals_matches_when_key_absent() -> None:
    selector = parse_selector("app!=web")
    assert selector.matches({})
    assert selector.matches({"app": "db"})
    assert not selector.matches({"app": "web"})


def test_exists_matches_any_value_including_empty() -> None:
    selector = parse_selector("canary")
    assert selector.matches({"canary": ""})
    assert not selector.matches({"other": ""})


def test_does_not_exist_matches_only_without_the_key() -> None:
    selector = parse_selector("!canary")
    assert selector.matches({"other": "x"})
    assert not selector.matches({"canary": ""})


def test_gt_compares_as_integers_not_strings() -> None:
    selector = parse_selector("replicas>9")
    assert selector.matches({"replicas": "10"})
    assert not selector.matches({"replicas": "9"})


def test_lt_accepts_leading_zeros_in_the_label() -> None:
    assert parse_selector("n<8").matches({"n": "007"})


def test_gt_does_not_match_a_non_integer_or_absent_label() -> None:
    selector = parse_selector("n>1")
    assert not selector.matches({"n": "ten"})
    assert not selector.matches({"n": "1.5"})
    assert not selector.matches({"n": " 5"})
    assert not selector.matches({"n": "99999999999999999999"})
    assert not selector.matches({})


def test_gt_reads_labels_with_go_integer_syntax() -> None:
    selector = parse_selector("n>1")
    assert selector.matches({"n": "+5"})
    assert not selector.matches({"n": "1_0"})
    assert not selector.matches({"n": "\u0663"})  # ARABIC-INDIC DIGIT THREE


def test_gt_bound_may_be_the_largest_int64() -> None:
    assert parse_selector("n<9223372036854775807").matches({"n": "9223372036854775806"})


def test_every_requirement_must_match() -> None:
    selector = parse_selector("app=web,tier in (fe),!canary")
    assert selector.matches({"app": "web", "tier": "fe"})
    assert not selector.matches({"app": "web", "tier": "fe", "canary": "1"})
    assert not selector.matches({"app": "web"})


def test_matches_accepts_any_mapping() -> None:
    assert parse_selector("a=b,c").matches(MappingProxyType({"a": "b", "c": ""}))


def test_conflicting_requirements_match_nothing_but_are_not_nothing() -> None:
    selector = parse_selector("a=x,a=y")
    assert not selector.matches({"a": "x"})
    assert not selector.matches_nothing()


# --- canonical string ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a=b", "a=b"),
        ("a == b", "a==b"),
        ("a != b", "a!=b"),
        (" x in ( b , a, b ) ", "x in (a,b)"),
        ("x notin (b)", "x notin (b)"),
        ("x in ()", "x in ()"),
        ("x in (foo,,baz)", "x in (,baz,foo)"),
        ("a", "a"),
        ("! a", "!a"),
        ("a > 1", "a>1"),
        ("a < 1", "a<1"),
        ("a=", "a="),
        ("z, b=1 ,a", "a,b=1,z"),
    ],
)
def test_str_is_the_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_selector(text)) == canonical


def test_repr_shows_the_canonical_form() -> None:
    assert repr(parse_selector("b, a=1")) == "Selector('a=1,b')"
    assert repr(Selector.nothing()) == "Selector.nothing()"


# --- equality pairs and exact matches -----------------------------------------------------


def test_equality_pairs_include_equals_double_equals_and_single_value_in() -> None:
    selector = parse_selector("a=1,b==2,c in (3)")
    assert selector.equality_pairs() == {"a": "1", "b": "2", "c": "3"}


def test_equality_pairs_exclude_other_operators() -> None:
    selector = parse_selector("a!=1,b in (1,2),c notin (3),d,!e,f>1")
    assert selector.equality_pairs() == {}


def test_equality_pairs_returns_a_copy() -> None:
    selector = parse_selector("a=1")
    selector.equality_pairs()["a"] = "changed"
    assert selector.equality_pairs() == {"a": "1"}


def test_requires_exact_match_is_decided_by_the_first_requirement_on_the_key() -> None:
    assert parse_selector("a=1").requires_exact_match("a") == "1"
    assert parse_selector("a!=0,a=1").requires_exact_match("a") is None
    assert parse_selector("a=1").requires_exact_match("b") is None


# --- Requirement and Selector construction ------------------------------------------------


def test_requirement_rejects_an_unknown_operator() -> None:
    with pytest.raises(SelectorParseError, match='"~=" is not a valid selector operator'):
        Requirement("a", "~=", ("b",))


def test_requirement_turns_a_list_of_values_into_a_tuple() -> None:
    assert Requirement("a", "in", ["x", "y"]).values == ("x", "y")  # type: ignore[arg-type]


def test_requirements_compare_and_hash_by_value() -> None:
    assert Requirement("a", "=", ("b",)) == Requirement("a", "=", ("b",))
    assert len({Requirement("a", "=", ("b",)), Requirement("a", "=", ("b",))}) == 1


def test_requirement_matches_on_its_own() -> None:
    assert Requirement("a", "notin", ("x",)).matches({})
    assert not Requirement("a", "in", ("x",)).matches({})
    assert Requirement("a", "gt", ("1",)).matches({"a": "2"})


def test_requirement_str_prints_values_sorted() -> None:
    assert str(Requirement("a", "in", ("y", "x"))) == "a in (x,y)"


def test_selector_constructor_sorts_requirements_by_key() -> None:
    selector = Selector([Requirement("b", "exists"), Requirement("a", "exists")])
    assert str(selector) == "a,b"


def test_add_returns_a_new_sorted_selector() -> None:
    base = parse_selector("b=1")
    extended = base.add(Requirement("a", "exists"))
    assert str(base) == "b=1"
    assert str(extended) == "a,b=1"


def test_selectors_are_hashable_and_equal_by_requirements() -> None:
    assert parse_selector("a=1, b") == parse_selector("b,a=1")
    assert hash(parse_selector("a=1, b")) == hash(parse_selector("b,a=1"))


def test_new_requirement_accepts_valid_input() -> None:
    assert new_requirement("a", "in", ["x"]) == Requirement("a", "in", ("x",))


def test_new_requirement_needs_values_for_in() -> None:
    with pytest.raises(SelectorParseError) as info:
        new_requirement("a", "in", [])
    assert str(info.value) == (
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    )


def test_new_requirement_needs_exactly_one_value_for_equality() -> None:
    with pytest.raises(SelectorParseError) as info:
        new_requirement("a", "=", ["x", "y"])
    assert str(info.value) == (
        'values: Invalid value: []string{"x", "y"}: '
        "exact-match compatibility requires one single value"
    )


def test_new_requirement_needs_one_integer_for_gt() -> None:
    with pytest.raises(SelectorParseError) as info:
        new_requirement("a", "gt", ["1", "2"])
    assert str(info.value) == (
        'values: Invalid value: []string{"1", "2"}: '
        "for 'Gt', 'Lt' operators, exactly one value is required"
    )


def test_new_requirement_reports_an_unsupported_operator() -> None:
    with pytest.raises(SelectorParseError) as info:
        new_requirement("a", "like", ["x"])
    assert str(info.value) == (
        'operator: Unsupported value: "like": supported values: '
        '"in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!"'
    )


def test_new_requirement_prefixes_errors_with_the_path() -> None:
    with pytest.raises(SelectorParseError) as info:
        new_requirement("a", "exists", ["x"], path="spec.selector")
    assert str(info.value) == (
        'spec.selector.values: Invalid value: []string{"x"}: '
        "values set must be empty for exists and does not exist"
    )


# --- selectors from label sets ------------------------------------------------------------


def test_selector_from_set_requires_every_pair() -> None:
    selector = selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"})
    assert not selector.matches({"a": "1"})


def test_selector_from_an_empty_set_is_the_empty_selector() -> None:
    assert selector_from_set({}).is_empty()
    assert selector_from_set(None).is_empty()


def test_validated_selector_from_set_rejects_an_invalid_value() -> None:
    with pytest.raises(SelectorParseError) as info:
        validated_selector_from_set({"a": "-x"})
    assert str(info.value) == f'values[0][a]: Invalid value: "-x": {VALUE_REGEX_MSG}'


# --- LabelSelector objects ----------------------------------------------------------------


def test_missing_label_selector_matches_nothing() -> None:
    selector = selector_from_label_selector(None)
    assert selector.matches_nothing()
    assert not selector.matches({})


def test_empty_label_selector_matches_everything() -> None:
    assert selector_from_label_selector({}).is_empty()
    assert selector_from_label_selector({"matchLabels": {}, "matchExpressions": []}).is_empty()
    assert selector_from_label_selector({"matchLabels": None}).matches({"a": "b"})


def test_match_labels_become_equality_requirements() -> None:
    selector = selector_from_label_selector({"matchLabels": {"app": "web"}})
    assert selector == parse_selector("app=web")


def test_match_expressions_map_to_set_operators() -> None:
    selector = selector_from_label_selector(
        {
            "matchExpressions": [
                {"key": "a", "operator": "In", "values": ["x"]},
                {"key": "b", "operator": "NotIn", "values": ["y"]},
                {"key": "c", "operator": "Exists"},
                {"key": "d", "operator": "DoesNotExist", "values": []},
            ]
        }
    )
    assert str(selector) == "a in (x),b notin (y),c,!d"


def test_match_labels_and_expressions_are_anded() -> None:
    selector = selector_from_label_selector(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}],
        }
    )
    assert selector.matches({"app": "web", "tier": "fe"})
    assert not selector.matches({"app": "web", "tier": "be"})
    assert not selector.matches({"tier": "fe"})


def test_expression_values_keep_duplicates_but_print_sorted() -> None:
    selector = selector_from_label_selector(
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["y", "x", "y"]}]}
    )
    assert selector.requirements[0].values == ("y", "x", "y")
    assert str(selector) == "a in (x,y,y)"


def test_unknown_expression_operator_is_rejected() -> None:
    with pytest.raises(SelectorParseError) as info:
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
    assert str(info.value) == '"Foo" is not a valid pod selector operator'


def test_in_expression_without_values_is_rejected() -> None:
    with pytest.raises(SelectorParseError) as info:
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "In"}]})
    assert str(info.value) == (
        "values: Invalid value: []string(nil): "
        "for 'in', 'notin' operators, values set can't be empty"
    )


def test_exists_expression_with_values_is_rejected() -> None:
    with pytest.raises(SelectorParseError) as info:
        selector_from_label_selector(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}
        )
    assert str(info.value) == (
        'values: Invalid value: []string{"x"}: '
        "values set must be empty for exists and does not exist"
    )


def test_invalid_expression_key_is_rejected() -> None:
    with pytest.raises(SelectorParseError) as info:
        selector_from_label_selector({"matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]})
    assert str(info.value) == f'key: Invalid value: "a/b/c": {TOO_MANY_SLASHES_MSG}'


def test_invalid_match_label_value_is_rejected() -> None:
    with pytest.raises(SelectorParseError) as info:
        selector_from_label_selector({"matchLabels": {"app": "-web"}})
    assert str(info.value) == f'values[0][app]: Invalid value: "-web": {VALUE_REGEX_MSG}'


def test_non_string_expression_values_are_rejected() -> None:
    with pytest.raises(SelectorParseError):
        selector_from_label_selector(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}
        )


# --- LabelSelector validation -------------------------------------------------------------


def test_validating_a_missing_selector_finds_nothing() -> None:
    assert validate_label_selector(None, "spec.selector") == []


def test_validating_a_good_selector_finds_nothing() -> None:
    ls = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}],
    }
    assert validate_label_selector(ls, "spec.selector") == []


def test_in_expression_requires_values() -> None:
    ls = {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}
    assert validate_label_selector(ls, "spec.selector") == [
        (
            "spec.selector.matchExpressions[0].values",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        )
    ]


def test_exists_expression_forbids_values() -> None:
    ls = {"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}]}
    assert validate_label_selector(ls, "spec.selector") == [
        (
            "spec.selector.matchExpressions[0].values",
            "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )
    ]


def test_unknown_operator_is_invalid() -> None:
    ls = {"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}
    assert validate_label_selector(ls, "spec.selector") == [
        (
            "spec.selector.matchExpressions[0].operator",
            'Invalid value: "in": not a valid selector operator',
        )
    ]


def test_invalid_expression_key_is_reported_at_key() -> None:
    ls = {
        "matchExpressions": [
            {"key": "ok", "operator": "Exists"},
            {"key": "-bad", "operator": "Exists"},
        ]
    }
    assert validate_label_selector(ls, "spec.selector") == [
        ("spec.selector.matchExpressions[1].key", f'Invalid value: "-bad": {NAME_REGEX_MSG}')
    ]


def test_invalid_expression_value_is_reported_at_its_index() -> None:
    ls = {"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "-bad"]}]}
    assert validate_label_selector(ls, "spec.selector") == [
        ("spec.selector.matchExpressions[0].values[1]", f'Invalid value: "-bad": {VALUE_REGEX_MSG}')
    ]


def test_invalid_match_labels_are_reported_at_match_labels() -> None:
    ls = {"matchLabels": {"-k": "-v"}}
    assert validate_label_selector(ls, "spec.selector") == [
        ("spec.selector.matchLabels", f'Invalid value: "-k": {NAME_REGEX_MSG}'),
        ("spec.selector.matchLabels", f'Invalid value: "-v": {VALUE_REGEX_MSG}'),
    ]


def test_validation_with_an_empty_path_starts_at_the_selector_fields() -> None:
    problems = validate_label_selector({"matchLabels": {"-k": "v"}}, "")
    assert [p for p, _ in problems] == ["matchLabels"]


def test_field_errors_carry_kubernetes_cause_types() -> None:
    ls = {
        "matchExpressions": [
            {"key": "a", "operator": "In"},
            {"key": "b", "operator": "Exists", "values": ["x"]},
            {"key": "c", "operator": "Bogus"},
        ]
    }
    assert [t for t, _, _ in label_selector_field_errors(ls, "s")] == [
        "FieldValueRequired",
        "FieldValueForbidden",
        "FieldValueInvalid",
    ]


# --- properties ---------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?", fullmatch=True)
dns_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?", fullmatch=True)
keys = st.one_of(
    names,
    st.sampled_from(["in", "notin"]),
    st.builds(
        lambda parts, name: ".".join(parts) + "/" + name,
        st.lists(dns_labels, min_size=1, max_size=3),
        names,
    ),
)
values = st.one_of(st.just(""), names, st.sampled_from(["in", "notin"]))
spaces = st.sampled_from(["", " ", "\t", "  ", "\n"])


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(keys)
    op = draw(st.sampled_from(OPERATORS))
    vals: tuple[str, ...]
    if op in ("exists", "!"):
        vals = ()
    elif op in ("in", "notin"):
        vals = tuple(sorted(set(draw(st.lists(values, min_size=1, max_size=4)))))
    elif op in ("gt", "lt"):
        vals = (str(draw(st.integers(min_value=0, max_value=10**12))),)
    else:
        vals = (draw(values),)
    return Requirement(key, op, vals)


def render(req: Requirement, draw: st.DrawFn) -> str:
    """A valid but non-canonical spelling of ``req`` (random whitespace)."""

    def w() -> str:
        return draw(spaces)

    op, key, vals = req.operator, req.key, req.values
    if op == "exists":
        return w() + key + w()
    if op == "!":
        return w() + "!" + w() + key + w()
    if op in ("in", "notin"):
        inner = ("," + w()).join(w() + v + w() for v in vals)
        return w() + key + " " + w() + op + w() + "(" + inner + ")" + w()
    symbol = {"gt": ">", "lt": "<"}.get(op, op)
    return w() + key + w() + symbol + w() + vals[0] + w()


@st.composite
def selector_texts(draw: st.DrawFn) -> tuple[list[Requirement], str]:
    rs = draw(st.lists(requirements(), max_size=5))
    return rs, ",".join(render(r, draw) for r in rs)


@given(selector_texts())
def test_any_spelling_parses_to_the_requirements_it_spells(
    case: tuple[list[Requirement], str],
) -> None:
    rs, text = case
    assume(rs)  # the empty list spells "", covered separately
    assert parse_selector(text) == Selector(rs)


@given(selector_texts())
def test_str_round_trips_through_parse(case: tuple[list[Requirement], str]) -> None:
    _, text = case
    selector = parse_selector(text)
    again = parse_selector(str(selector))
    assert again == selector
    assert str(again) == str(selector)


label_pool_keys = st.sampled_from(["a", "b", "c", "in", "x.io/k"])
label_pool_values = st.sampled_from(["", "1", "2", "10", "v", "in", "-3"])
label_sets = st.dictionaries(label_pool_keys, label_pool_values, max_size=5)


@given(st.dictionaries(keys, values, max_size=6))
def test_a_selector_built_from_a_label_set_matches_that_set(labels: dict[str, str]) -> None:
    assert selector_from_set(labels).matches(labels)


@given(st.dictionaries(keys, values, max_size=4), st.dictionaries(keys, values, max_size=4))
def test_a_selector_built_from_a_label_set_matches_supersets(
    labels: dict[str, str], extra: dict[str, str]
) -> None:
    assert selector_from_set(labels).matches({**extra, **labels})


@given(st.dictionaries(keys, values, max_size=6))
def test_a_set_selector_string_parses_back(labels: dict[str, str]) -> None:
    selector = selector_from_set(labels)
    assert parse_selector(str(selector)) == selector


@given(label_pool_keys, st.lists(label_pool_values, min_size=1, max_size=3), label_sets)
def test_notin_is_the_negation_of_in_when_the_key_exists(
    key: str, vals: list[str], labels: dict[str, str]
) -> None:
    assume(key in labels)
    in_req = Requirement(key, "in", tuple(vals))
    notin_req = Requirement(key, "notin", tuple(vals))
    assert notin_req.matches(labels) is not in_req.matches(labels)
    assert Selector([notin_req]).matches(labels) is not Selector([in_req]).matches(labels)


@given(label_pool_keys, st.lists(label_pool_values, min_size=1, max_size=3), label_sets)
def test_without_the_key_in_fails_and_notin_holds(
    key: str, vals: list[str], labels: dict[str, str]
) -> None:
    labels.pop(key, None)
    assert not Selector([Requirement(key, "in", tuple(vals))]).matches(labels)
    assert Selector([Requirement(key, "notin", tuple(vals))]).matches(labels)


@given(label_pool_keys, label_pool_values, label_sets)
def test_not_equals_is_always_the_negation_of_equals(
    key: str, value: str, labels: dict[str, str]
) -> None:
    eq = Selector([Requirement(key, "=", (value,))])
    ne = Selector([Requirement(key, "!=", (value,))])
    assert ne.matches(labels) is not eq.matches(labels)


@given(label_pool_keys, label_sets)
def test_exists_and_does_not_exist_are_complementary(key: str, labels: dict[str, str]) -> None:
    exists = Selector([Requirement(key, "exists")])
    absent = Selector([Requirement(key, "!")])
    assert exists.matches(labels) is not absent.matches(labels)


@given(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**63 - 1))
def test_gt_and_lt_agree_with_integer_comparison(label: int, bound: int) -> None:
    labels = {"n": str(label)}
    assert Selector([Requirement("n", "gt", (str(bound),))]).matches(labels) is (label > bound)
    assert Selector([Requirement("n", "lt", (str(bound),))]).matches(labels) is (label < bound)


@given(st.lists(requirements(), max_size=5), label_sets)
def test_compiled_selector_agrees_with_its_requirements(
    rs: list[Requirement], labels: dict[str, str]
) -> None:
    assert Selector(rs).matches(labels) is all(r.matches(labels) for r in rs)


@given(st.text(alphabet=" \t=!(),<>aibnotx-/.01\x00é_", max_size=30))
def test_parsing_arbitrary_text_only_ever_raises_selector_parse_error(text: str) -> None:
    try:
        selector = parse_selector(text)
    except SelectorParseError:
        return
    assert parse_selector(str(selector)) == selector


_OBJECT_OPERATORS = {"in": "In", "notin": "NotIn", "exists": "Exists", "!": "DoesNotExist"}


@given(st.lists(requirements(), max_size=5), label_sets)
def test_object_form_and_string_form_select_the_same_labels(
    rs: list[Requirement], labels: dict[str, str]
) -> None:
    set_based = [r for r in rs if r.operator in _OBJECT_OPERATORS]
    assume(set_based)
    expressions: list[dict[str, Any]] = [
        {"key": r.key, "operator": _OBJECT_OPERATORS[r.operator], "values": list(r.values)}
        for r in set_based
    ]
    from_object = selector_from_label_selector({"matchExpressions": expressions})
    from_string = parse_selector(str(Selector(set_based)))
    assert from_object.matches(labels) is from_string.matches(labels)
