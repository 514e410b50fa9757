"""YAML request bodies read the way the apiserver reads them (sigs.k8s.io/yaml on go-yaml v2)."""

from __future__ import annotations

import pytest

from setpoint.api import negotiation
from setpoint.api.errors import APIError


def test_map_keys_become_strings_and_dates_stay_strings() -> None:
    body = negotiation.decode_yaml(
        b"data: {1: a, true: b, 1.5: d, 2.0: e, 1000000.0: f, 0x1F: g}\n"
        b"metadata: {annotations: {released: 2024-01-01, at: 2024-01-01 10:00:00}}\n"
    )
    assert body["data"] == {"1": "a", "true": "b", "1.5": "d", "2": "e", "1e+06": "f", "31": "g"}
    assert body["metadata"]["annotations"] == {
        "released": "2024-01-01",
        "at": "2024-01-01 10:00:00",
    }


def test_a_null_key_is_refused_as_go_yaml_does() -> None:
    with pytest.raises(APIError, match="unsupported map key") as caught:
        negotiation.decode_yaml(b"data: {null: a}\n")
    assert caught.value.code == 400


def test_aliases_are_expanded_but_not_without_end() -> None:
    shared = negotiation.decode_yaml(b"a: &x {k: v}\nb: *x\n")
    assert shared == {"a": {"k": "v"}, "b": {"k": "v"}}
    with pytest.raises(APIError, match="an alias contains itself") as loop:
        negotiation.decode_yaml(b"a: &x {b: *x}\n")
    assert loop.value.code == 400
    # ten levels of ten aliases each: 10**10 values from a few hundred bytes
    lines = [b"l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 11):
        refs = ", ".join([f"*l{i - 1}"] * 10).encode()
        lines.append(b"l%d: &l%d [%s]" % (i, i, refs))
    with pytest.raises(APIError, match="excessive aliasing"):
        negotiation.decode_yaml(b"\n".join(lines) + b"\n")


def test_deep_nesting_is_a_bad_request() -> None:
    for depth in (1200, 5000):
        with pytest.raises(APIError) as caught:
            negotiation.decode_yaml(b"a: " + b"[" * depth + b"]" * depth + b"\n")
        assert caught.value.code == 400
