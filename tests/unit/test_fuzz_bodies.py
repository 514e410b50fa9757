"""Hostile request bodies, decoded as the API server decodes them (``decode_body`` by
Content-Type): arbitrary bytes, YAML with anchors and aliases, alias bombs ("billion
laughs"), merge-key bombs and deep nesting. Each body either decodes or is refused with a
4xx :class:`APIError` (a Kubernetes Status), within bounded time and memory."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from setpoint.api import negotiation
from setpoint.api.errors import APIError
from tests.unit.fuzzing import fuzz_settings

CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/yaml", "text/yaml", "", "*/*", "application/x-yaml"]
)
YAML_PIECES = st.sampled_from(
    [
        "a", "b", ": ", "- ", "\n", "  ", "&x ", "*x", "&y ", "*y", "<<: ", "{", "}", "[", "]",
        ",", "!!str ", "!!binary ", "!!python/object ", "? ", "'", '"', "#", "---\n", "...",
        "1", "0x1F", "1e3", ".inf", "null", "~", "yes", "2024-01-01", "|\n", ">\n", "\t", "%",
    ]
)  # fmt: skip
bodies = st.one_of(
    st.binary(max_size=64),
    st.lists(YAML_PIECES, max_size=30).map(lambda parts: "".join(parts).encode()),
)


@fuzz_settings(600)
@given(bodies, CONTENT_TYPES)
def test_any_body_decodes_or_is_a_client_error(raw: bytes, content_type: str) -> None:
    try:
        value = negotiation.decode_body(raw, content_type)
    except APIError as err:
        assert 400 <= err.code < 500, err
        return
    orjson.dumps(value)  # what decodes can be stored and sent back


def _laughs(levels: int, fanout: int, leaf: str) -> bytes:
    lines = [f"l0: &l0 {leaf}"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]")
    return ("\n".join(lines) + "\n").encode()


@fuzz_settings(15)
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from(["x", "x" * 1000]))
def test_alias_bombs_are_refused_or_stay_small(levels: int, fanout: int, leaf: str) -> None:
    raw = _laughs(levels, fanout, leaf)
    try:
        value = negotiation.decode_yaml(raw)
    except APIError as err:
        assert err.code == 400 and "excessive aliasing" in err.message
        return
    assert len(orjson.dumps(value)) <= 2 * negotiation.MAX_YAML_EXPANDED_BYTES


@fuzz_settings(20)
@given(st.integers(1, 6000), st.sampled_from(["[", "{a: ", "- "]), CONTENT_TYPES)
def test_deep_nesting_is_refused_or_decoded(depth: int, opener: str, content_type: str) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    if opener == "- ":
        raw = "".join(" " * i + "- " + "\n" for i in range(0, depth * 2, 2)).encode()
    else:
        raw = (opener * depth + "1" + closer * depth).encode()
    if "json" in content_type or content_type in ("", "*/*"):
        raw = ("[" * depth + "]" * depth).encode()
    try:
        negotiation.decode_body(raw, content_type)
    except APIError as err:
        assert err.code == 400, err


# regressions: what the fuzzing found (docs/security-fuzzing.md)


def test_one_long_string_named_by_many_keys_is_refused() -> None:
    """Few values, but 1000 keys x 100 KB would be 100 MB once stored or sent back."""
    lines = [b"s: &s " + b"x" * 100_000, b"data:"]
    lines += [b"  k%d: *s" % i for i in range(1000)]
    with pytest.raises(APIError, match="bytes of text once aliases are expanded") as caught:
        negotiation.decode_yaml(b"\n".join(lines) + b"\n")
    assert caught.value.code == 400


def test_merge_key_bomb_is_refused_before_it_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """2000 mappings each merging one of 2000 keys would be 4,000,000 pairs (and a
    document of 70 KB); the work done is bounded by the value budget, not that product."""
    monkeypatch.setattr(negotiation, "MAX_YAML_VALUES", 20_000)
    big = b"big: &big {" + b", ".join(b"k%d: 1" % i for i in range(2000)) + b"}"
    doc = b"\n".join([big, b"items:"] + [b"- {<<: *big}"] * 2000) + b"\n"
    tracemalloc.start()
    try:
        with pytest.raises(APIError, match="excessive aliasing") as caught:
            negotiation.decode_yaml(doc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == 400
    assert peak < 50 << 20


def test_merging_one_mapping_many_times_in_one_key_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(negotiation, "MAX_YAML_VALUES", 20_000)
    big = b"big: &big {" + b", ".join(b"k%d: 1" % i for i in range(2000)) + b"}"
    doc = big + b"\nm: {<<: [" + b", ".join([b"*big"] * 5000) + b"]}\n"
    with pytest.raises(APIError, match="excessive aliasing"):
        negotiation.decode_yaml(doc)


def test_merge_keys_still_merge() -> None:
    value = negotiation.decode_yaml(b"base: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\nn: {<<: [*b]}\n")
    assert value["m"] == {"x": 1, "y": 3}
    assert value["n"] == {"x": 1, "y": 2}
