"""Hostile patches: JSON patch, JSON merge patch and strategic merge patch, applied to
generated documents. Each either returns a new document or raises its declared error
(:class:`PatchError`, of which :class:`StrategicPatchError` is one); none ever changes the
document or the patch it was given."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from setpoint.api.merge.jsonpatch import PatchError, apply_json_patch, apply_merge_patch
from setpoint.api.merge.strategic import apply_strategic_merge_patch
from tests.unit.fuzzing import fuzz_settings

KEYS = st.sampled_from(
    [
        "spec", "metadata", "template", "containers", "name", "image", "ports", "env",
        "containerPort", "labels", "a", "b", "$patch", "$retainKeys",
        "$deleteFromPrimitiveList/args", "$setElementOrder/containers", "args", "0", "~1", "",
    ]
)  # fmt: skip
scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(KEYS, json_values, max_size=5)
POINTERS = st.one_of(
    st.lists(st.sampled_from(["spec", "a", "0", "1", "-", "~0", "~1", "containers", ""])).map(
        lambda parts: "/" + "/".join(parts) if parts else ""
    ),
    st.text(max_size=8),
)
json_patches = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"])},
            optional={"path": POINTERS, "from": POINTERS, "value": json_values},
        ),
        max_size=5,
    ),
    json_values,
)


def _unchanged_after(apply: Any, doc: Any, patch: Any) -> Any:
    doc_before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    try:
        result = apply(doc, patch)
    finally:
        assert doc == doc_before, "the patch changed the document it was given"
        assert patch == patch_before, "applying the patch changed the patch"
    return result


@fuzz_settings(200)
@given(documents, json_patches)
def test_json_patch_applies_or_raises_a_patch_error_and_mutates_nothing(
    doc: dict[str, Any], patch: Any
) -> None:
    try:
        result = _unchanged_after(apply_json_patch, doc, patch)
    except PatchError as err:
        assert err.code in (400, 413, 422)
        return
    assert result is not doc


@fuzz_settings(200)
@given(documents, json_values)
def test_merge_patch_mutates_nothing_and_applying_it_twice_changes_nothing_more(
    doc: dict[str, Any], patch: Any
) -> None:
    try:
        once = _unchanged_after(apply_merge_patch, doc, patch)
    except PatchError as err:
        assert err.code in (400, 413, 422)
        return
    assert _unchanged_after(apply_merge_patch, copy.deepcopy(once), patch) == once


@fuzz_settings(150)
@given(
    st.sampled_from(
        ["io.k8s.api.apps.v1.Deployment", "io.k8s.api.core.v1.Pod", "io.k8s.api.core.v1.Service"]
    ),
    documents,
    documents,
)
def test_strategic_merge_patch_applies_or_raises_a_patch_error_and_mutates_nothing(
    definition: str, doc: dict[str, Any], patch: dict[str, Any]
) -> None:
    def apply(original: Any, smp: Any) -> Any:
        return apply_strategic_merge_patch(original, smp, definition)

    try:
        _unchanged_after(apply, doc, patch)
    except PatchError as err:
        assert err.code in (400, 413, 422)


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


@fuzz_settings(10)
@given(st.integers(100, 3000))
def test_deeply_nested_patches_are_refused_or_applied_never_crash(depth: int) -> None:
    doc = {"spec": {"a": 1}}
    deep = _deep(depth)
    for apply in (
        lambda: apply_merge_patch(doc, {"spec": deep}),
        lambda: apply_json_patch(doc, [{"op": "add", "path": "/spec/b", "value": deep}]),
        lambda: apply_strategic_merge_patch(doc, {"spec": deep}, "io.k8s.api.apps.v1.Deployment"),
    ):
        try:
            apply()
        except PatchError as err:
            assert err.code in (400, 422)
