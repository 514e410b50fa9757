"""The JSON value helpers of setpoint.meta.jsonvalue: copies, the three equalities, type names."""

from __future__ import annotations

import pytest

from setpoint.meta.jsonvalue import (
    deep_copy,
    deep_equal,
    go_kind,
    json_copy,
    json_equal,
    json_type_name,
    smd_equal,
)


class _Sentinel:
    pass


SENTINEL = _Sentinel()


def test_deep_copy_copies_containers_and_shares_leaves() -> None:
    big = 2**70
    value = {"a": [{"b": big}], "c": SENTINEL}
    copied = deep_copy(value)
    assert copied == value
    assert copied is not value and copied["a"] is not value["a"]
    assert copied["a"][0] is not value["a"][0]
    assert copied["a"][0]["b"] is big and copied["c"] is SENTINEL


def test_json_copy_is_a_deep_copy_of_json() -> None:
    value = {"a": [1, 2.5, "x", None, True, {"b": []}]}
    copied = json_copy(value)
    assert copied == value and copied["a"] is not value["a"]


@pytest.mark.parametrize("equal", [json_equal, smd_equal, deep_equal])
def test_every_equality_keeps_booleans_apart_from_numbers(equal: object) -> None:
    assert callable(equal)
    assert not equal(True, 1) and not equal(1, True) and not equal([0], [False])
    assert equal({"a": [1, "x", None]}, {"a": [1, "x", None]})
    assert not equal({"a": 1}, {"b": 1}) and not equal([1], [1, 1])


def test_json_and_smd_equality_compare_numbers_numerically() -> None:
    assert json_equal(1, 1.0) and smd_equal({"n": [1]}, {"n": [1.0]})


def test_deep_equal_keeps_integers_apart_from_floats() -> None:
    assert not deep_equal(1, 1.0) and not deep_equal({"n": [1]}, {"n": [1.0]})


def test_a_value_that_is_not_json_equals_nothing_under_smd_equality() -> None:
    assert json_equal(SENTINEL, SENTINEL) and deep_equal(SENTINEL, SENTINEL)
    assert not smd_equal(SENTINEL, SENTINEL) and not smd_equal([SENTINEL], [SENTINEL])


@pytest.mark.parametrize(
    ("value", "name", "kind"),
    [
        (None, "null", "null"),
        (True, "bool", "bool"),
        (3, "number", "int64"),
        (3.0, "number", "float64"),
        ("s", "string", "string"),
        ([], "array", "list"),
        ({}, "object", "map"),
        (b"x", "null", "bytes"),
    ],
)
def test_type_names(value: object, name: str, kind: str) -> None:
    assert json_type_name(value) == name
    assert go_kind(value) == kind
