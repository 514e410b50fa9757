"""Tests for setpoint.api.merge.jsonpatch: JSON patch (RFC 6902) and merge patch (RFC 7386)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.api.merge.jsonpatch import (
    MAX_COPY_BYTES,
    MAX_JSON_PATCH_OPERATIONS,
    MERGE_PATCH,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    require_object,
)
from tests.merge_oracle import create_merge_patch

REJECTED = "the server rejected our request due to an error in our request"


def _rejected(doc: Any, patch: Any) -> PatchError:
    with pytest.raises(PatchError) as info:
        apply_json_patch(doc, patch)
    return info.value


# --------------------------------------------------------------------------- add


def test_add_sets_new_object_member() -> None:
    result = apply_json_patch({"a": 1}, [{"op": "add", "path": "/b", "value": 2}])
    assert result == {"a": 1, "b": 2}


def test_add_overwrites_existing_member() -> None:
    result = apply_json_patch({"a": 1}, [{"op": "add", "path": "/a", "value": [1]}])
    assert result == {"a": [1]}


def test_add_inserts_into_array_at_index() -> None:
    result = apply_json_patch({"a": [1, 3]}, [{"op": "add", "path": "/a/1", "value": 2}])
    assert result == {"a": [1, 2, 3]}


def test_add_with_dash_appends_to_array() -> None:
    result = apply_json_patch({"a": [1]}, [{"op": "add", "path": "/a/-", "value": 2}])
    assert result == {"a": [1, 2]}


def test_add_at_array_length_appends() -> None:
    result = apply_json_patch({"a": [1]}, [{"op": "add", "path": "/a/1", "value": 2}])
    assert result == {"a": [1, 2]}


def test_add_with_negative_index_counts_from_end() -> None:
    result = apply_json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-2", "value": 0}])
    assert result == {"a": [1, 0, 2]}


def test_add_past_array_end_is_rejected() -> None:
    err = _rejected({"a": [1]}, [{"op": "add", "path": "/a/2", "value": 2}])
    assert err.code == 422
    assert err.message == (
        "error in add for path: '/a/2': Unable to access invalid index: 2: invalid index referenced"
    )


def test_add_to_missing_parent_is_rejected() -> None:
    err = _rejected({"a": {}}, [{"op": "add", "path": "/a/b/c", "value": 1}])
    assert err.code == 422
    assert err.message == (
        'add operation does not apply: doc is missing path: "/a/b/c": missing value'
    )


def test_add_below_null_member_is_rejected() -> None:
    err = _rejected({"a": None}, [{"op": "add", "path": "/a/b", "value": 1}])
    assert err.message == 'add operation does not apply: doc is missing path: "/a/b": missing value'


def test_add_below_scalar_is_rejected() -> None:
    err = _rejected({"a": "text"}, [{"op": "add", "path": "/a/b", "value": 1}])
    assert err.code == 422


def test_add_without_value_stores_null() -> None:
    assert apply_json_patch({}, [{"op": "add", "path": "/a"}]) == {"a": None}


def test_add_to_root_is_rejected() -> None:
    err = _rejected({"a": 1}, [{"op": "add", "path": "", "value": {}}])
    assert err.message == 'add operation does not apply: doc is missing path: "": missing value'


def test_add_with_non_numeric_array_index_is_rejected() -> None:
    err = _rejected({"a": []}, [{"op": "add", "path": "/a/x", "value": 1}])
    assert err.message == (
        "error in add for path: '/a/x': value was not a proper array index: 'x': "
        'strconv.Atoi: parsing "x": invalid syntax'
    )


def test_add_into_nested_array_element() -> None:
    doc = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    patch = [{"op": "add", "path": "/spec/containers/1/image", "value": "nginx"}]
    result = apply_json_patch(doc, patch)
    assert result["spec"]["containers"][1] == {"name": "b", "image": "nginx"}


def test_add_to_array_root_document() -> None:
    assert apply_json_patch([1], [{"op": "add", "path": "/0", "value": 0}]) == [0, 1]


# --------------------------------------------------------------------------- remove


def test_remove_deletes_object_member() -> None:
    assert apply_json_patch({"a": 1, "b": 2}, [{"op": "remove", "path": "/a"}]) == {"b": 2}


def test_remove_deletes_array_element() -> None:
    assert apply_json_patch({"a": [1, 2, 3]}, [{"op": "remove", "path": "/a/1"}]) == {"a": [1, 3]}


def test_remove_with_negative_index_deletes_from_end() -> None:
    assert apply_json_patch({"a": [1, 2, 3]}, [{"op": "remove", "path": "/a/-1"}]) == {"a": [1, 2]}


def test_remove_of_missing_path_is_rejected() -> None:
    err = _rejected({"a": 1}, [{"op": "remove", "path": "/x"}])
    assert err.code == 422
    assert err.message == (
        "error in remove for path: '/x': Unable to remove nonexistent key: x: missing value"
    )


def test_remove_below_missing_parent_is_rejected() -> None:
    err = _rejected({}, [{"op": "remove", "path": "/a/b"}])
    assert err.message == (
        'remove operation does not apply: doc is missing path: "/a/b": missing value'
    )


def test_remove_of_out_of_range_index_is_rejected() -> None:
    err = _rejected({"a": [1]}, [{"op": "remove", "path": "/a/1"}])
    assert err.message == (
        "error in remove for path: '/a/1': Unable to access invalid index: 1: "
        "invalid index referenced"
    )


def test_remove_with_dash_is_rejected() -> None:
    err = _rejected({"a": [1]}, [{"op": "remove", "path": "/a/-"}])
    assert err.code == 422


def test_remove_of_root_is_rejected() -> None:
    err = _rejected({"a": 1}, [{"op": "remove", "path": ""}])
    assert err.code == 422


# --------------------------------------------------------------------------- replace


def test_replace_changes_existing_member() -> None:
    result = apply_json_patch({"a": 1}, [{"op": "replace", "path": "/a", "value": 2}])
    assert result == {"a": 2}


def test_replace_changes_array_element() -> None:
    result = apply_json_patch({"a": [1, 2]}, [{"op": "replace", "path": "/a/0", "value": 9}])
    assert result == {"a": [9, 2]}


def test_replace_of_missing_array_index_is_rejected() -> None:
    err = _rejected({"a": [1]}, [{"op": "replace", "path": "/a/5", "value": 2}])
    assert err.code == 422
    assert (
        err.message == "replace operation does not apply: doc is missing key: /a/5: missing value"
    )


def test_replace_of_missing_object_member_adds_it() -> None:
    # evanphx/json-patch v4 (and so Kubernetes) lets replace create a missing map key.
    result = apply_json_patch({"a": {}}, [{"op": "replace", "path": "/a/b", "value": 1}])
    assert result == {"a": {"b": 1}}


def test_replace_below_missing_parent_is_rejected() -> None:
    err = _rejected({}, [{"op": "replace", "path": "/a/b", "value": 1}])
    assert (
        err.message == "replace operation does not apply: doc is missing path: /a/b: missing value"
    )


def test_replace_of_root_swaps_whole_document() -> None:
    result = apply_json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}])
    assert result == {"b": 2}


def test_replace_of_root_with_scalar_is_rejected() -> None:
    err = _rejected({"a": 1}, [{"op": "replace", "path": "", "value": 3}])
    assert err.code == 422
    assert err.message == "replace operation value must be object or array"


# --------------------------------------------------------------------------- move


def test_move_relocates_member() -> None:
    result = apply_json_patch(
        {"a": {"x": 1}, "b": {}}, [{"op": "move", "from": "/a/x", "path": "/b/y"}]
    )
    assert result == {"a": {}, "b": {"y": 1}}


def test_move_between_array_positions() -> None:
    result = apply_json_patch({"a": [1, 2, 3]}, [{"op": "move", "from": "/a/0", "path": "/a/2"}])
    assert result == {"a": [2, 3, 1]}


def test_move_from_missing_member_is_rejected() -> None:
    err = _rejected({"a": 1}, [{"op": "move", "from": "/x", "path": "/y"}])
    assert err.code == 422
    assert err.message == (
        "error in move for path: 'x': Unable to remove nonexistent key: x: missing value"
    )


def test_move_into_own_child_is_rejected() -> None:
    err = _rejected({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b"}])
    assert err.message == (
        "move operation does not apply: doc is missing destination path: /a/b: missing value"
    )


def test_move_without_from_is_rejected() -> None:
    err = _rejected({"a": 1}, [{"op": "move", "path": "/b"}])
    assert err.code == 422
    assert err.message == (
        "move operation failed to decode from: operation, missing from field: missing value"
    )


# --------------------------------------------------------------------------- copy


def test_copy_duplicates_value() -> None:
    result = apply_json_patch({"a": {"x": 1}}, [{"op": "copy", "from": "/a", "path": "/b"}])
    assert result == {"a": {"x": 1}, "b": {"x": 1}}


def test_copy_is_independent_of_its_source() -> None:
    patch = [
        {"op": "copy", "from": "/a", "path": "/b"},
        {"op": "add", "path": "/b/y", "value": 2},
    ]
    assert apply_json_patch({"a": {"x": 1}}, patch) == {"a": {"x": 1}, "b": {"x": 1, "y": 2}}


def test_copy_of_value_changed_earlier_in_the_patch_is_independent() -> None:
    patch = [
        {"op": "add", "path": "/a/x", "value": 1},
        {"op": "copy", "from": "/a", "path": "/b"},
        {"op": "add", "path": "/b/y", "value": 2},
    ]
    assert apply_json_patch({"a": {}}, patch) == {"a": {"x": 1}, "b": {"x": 1, "y": 2}}


def test_copy_into_array_inserts() -> None:
    result = apply_json_patch({"a": [1, 2]}, [{"op": "copy", "from": "/a/1", "path": "/a/0"}])
    assert result == {"a": [2, 1, 2]}


def test_copy_from_missing_member_adds_null() -> None:
    # evanphx reads a missing map key as nil and copies it.
    result = apply_json_patch({}, [{"op": "copy", "from": "/x", "path": "/y"}])
    assert result == {"y": None}


def test_copy_from_missing_parent_is_rejected() -> None:
    err = _rejected({}, [{"op": "copy", "from": "/x/y", "path": "/z"}])
    assert err.message == (
        "copy operation does not apply: doc is missing from path: /x/y: missing value"
    )


def test_copies_beyond_size_limit_are_rejected() -> None:
    doc = {"a": "x" * (MAX_COPY_BYTES // 4)}
    patch = [{"op": "copy", "from": "/a", "path": f"/b{i}"} for i in range(5)]
    err = _rejected(doc, patch)
    assert err.code == 422
    assert err.message.startswith(
        "Unable to complete the copy, the accumulated size increase of copy is"
    )


# --------------------------------------------------------------------------- test


def test_test_of_equal_value_succeeds() -> None:
    doc = {"a": {"b": [1, "x", None]}}
    assert (
        apply_json_patch(doc, [{"op": "test", "path": "/a", "value": {"b": [1, "x", None]}}]) == doc
    )


def test_test_of_different_value_is_rejected() -> None:
    err = _rejected({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert err.code == 422
    assert err.message == "testing value /a failed: test failed"


def test_test_distinguishes_booleans_from_numbers() -> None:
    err = _rejected({"a": True}, [{"op": "test", "path": "/a", "value": 1}])
    assert err.code == 422


def test_test_treats_integer_and_float_as_equal() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}


def test_test_compares_objects_regardless_of_member_order() -> None:
    doc = {"a": {"x": 1, "y": 2}}
    assert apply_json_patch(doc, [{"op": "test", "path": "/a", "value": {"y": 2, "x": 1}}]) == doc


def test_test_of_object_with_extra_member_is_rejected() -> None:
    err = _rejected({"a": {"x": 1}}, [{"op": "test", "path": "/a", "value": {"x": 1, "y": 2}}])
    assert err.code == 422


def test_test_of_missing_member_against_null_succeeds() -> None:
    assert apply_json_patch({}, [{"op": "test", "path": "/a", "value": None}]) == {}


def test_test_of_out_of_range_index_is_rejected() -> None:
    err = _rejected({"a": []}, [{"op": "test", "path": "/a/0", "value": 1}])
    assert err.message == (
        "error in test for path: '/a/0': Unable to access invalid index: 0: "
        "invalid index referenced"
    )


def test_test_of_root_compares_whole_document() -> None:
    assert apply_json_patch({"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}]) == {"a": 1}


def test_failed_test_aborts_the_whole_patch() -> None:
    doc = {"a": 1}
    patch = [
        {"op": "add", "path": "/b", "value": 2},
        {"op": "test", "path": "/a", "value": 5},
    ]
    _rejected(doc, patch)
    assert doc == {"a": 1}


# --------------------------------------------------------------------------- pointers


def test_tilde_one_escapes_slash() -> None:
    doc = {"metadata": {"labels": {"app.kubernetes.io/name": "web"}}}
    patch = [{"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"}]
    assert apply_json_patch(doc, patch) == {"metadata": {"labels": {}}}


def test_tilde_zero_escapes_tilde() -> None:
    assert apply_json_patch({}, [{"op": "add", "path": "/a~0b", "value": 1}]) == {"a~b": 1}


def test_tilde_zero_one_decodes_to_literal_tilde_one() -> None:
    assert apply_json_patch({}, [{"op": "add", "path": "/~01", "value": 1}]) == {"~1": 1}


def test_empty_token_addresses_empty_member_name() -> None:
    assert apply_json_patch({}, [{"op": "add", "path": "/", "value": 1}]) == {"": 1}


def test_pointer_without_leading_slash_is_rejected() -> None:
    err = _rejected({"a": {"b": 1}}, [{"op": "remove", "path": "a/b"}])
    assert err.code == 422


def test_array_index_with_leading_zero_is_rejected() -> None:
    err = _rejected({"a": [1, 2]}, [{"op": "replace", "path": "/a/01", "value": 0}])
    assert err.code == 422


def test_array_index_with_plus_sign_is_rejected() -> None:
    err = _rejected({"a": [1, 2]}, [{"op": "remove", "path": "/a/+1"}])
    assert err.code == 422


def test_negative_index_before_array_start_is_rejected() -> None:
    err = _rejected({"a": [1]}, [{"op": "remove", "path": "/a/-2"}])
    assert err.message == (
        "error in remove for path: '/a/-2': Unable to access invalid index: -2: "
        "invalid index referenced"
    )


def test_huge_array_index_is_rejected() -> None:
    err = _rejected({"a": [1]}, [{"op": "remove", "path": "/a/" + "9" * 5000}])
    assert err.code == 422


def test_intermediate_array_index_must_exist() -> None:
    err = _rejected({"a": [{}]}, [{"op": "add", "path": "/a/1/b", "value": 1}])
    assert (
        err.message == 'add operation does not apply: doc is missing path: "/a/1/b": missing value'
    )


# --------------------------------------------------------------------------- decoding and errors


def test_non_array_json_patch_is_bad_request() -> None:
    err = _rejected({}, {"op": "add", "path": "/a", "value": 1})
    assert err.code == 400
    assert err.reason == "BadRequest"
    assert err.message == (
        "error decoding patch: json: cannot unmarshal object into Go value of type "
        "[]handlers.jsonPatchOp"
    )


def test_non_object_operation_is_bad_request() -> None:
    err = _rejected({}, [1])
    assert err.code == 400
    assert err.message == (
        "error decoding patch: json: cannot unmarshal number into Go value of type "
        "handlers.jsonPatchOp"
    )


def test_non_string_path_is_bad_request() -> None:
    err = _rejected({}, [{"op": "add", "path": ["a"], "value": 1}])
    assert err.code == 400
    assert err.message == (
        "error decoding patch: json: cannot unmarshal array into Go struct field "
        "jsonPatchOp.path of type string"
    )


def test_malformed_operation_is_reported_before_any_is_applied() -> None:
    err = _rejected({}, [{"op": "test", "path": "/a", "value": 1}, {"op": 7}])
    assert err.code == 400


def test_unknown_op_is_unprocessable() -> None:
    err = _rejected({}, [{"op": "bogus", "path": "/a"}])
    assert err.code == 422
    assert err.message == "Unexpected kind: bogus"


def test_missing_op_is_unprocessable() -> None:
    err = _rejected({}, [{"path": "/a"}])
    assert err.code == 422
    assert err.message == "Unexpected kind: unknown"


def test_null_operation_is_unprocessable() -> None:
    assert _rejected({}, [None]).message == "Unexpected kind: unknown"


def test_missing_path_is_unprocessable() -> None:
    err = _rejected({}, [{"op": "add", "value": 1}])
    assert err.code == 422
    assert err.message == "add operation failed to decode path: missing value"


def test_null_json_patch_leaves_document_unchanged() -> None:
    assert apply_json_patch({"a": 1}, None) == {"a": 1}


def test_empty_json_patch_returns_equal_new_document() -> None:
    doc = {"a": 1}
    result = apply_json_patch(doc, [])
    assert result == doc
    assert result is not doc


def test_too_many_operations_is_request_entity_too_large() -> None:
    patch = [{"op": "test", "path": "", "value": {}}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    err = _rejected({}, patch)
    assert err.code == 413
    assert err.reason == "RequestEntityTooLarge"
    assert err.status_message == (
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, "
        "got 10001"
    )


def test_maximum_number_of_operations_is_accepted() -> None:
    patch = [{"op": "test", "path": "", "value": {}}] * MAX_JSON_PATCH_OPERATIONS
    assert apply_json_patch({}, patch) == {}


def test_scalar_document_is_unprocessable() -> None:
    err = _rejected(5, [])
    assert err.code == 422


def test_unprocessable_error_carries_kubernetes_status_message() -> None:
    err = _rejected({}, [{"op": "remove", "path": "/a"}])
    assert (err.code, err.reason, err.status_message) == (422, "Invalid", REJECTED)


def test_patch_error_is_a_value_error_with_the_message() -> None:
    err = _rejected({}, [{"op": "remove", "path": "/a"}])
    assert isinstance(err, ValueError)
    assert str(err) == err.message


def test_unknown_operation_members_are_ignored() -> None:
    patch = [{"op": "add", "path": "/a", "value": 1, "comment": "hi"}]
    assert apply_json_patch({}, patch) == {"a": 1}


def test_deeply_nested_document_is_rejected_not_crashed() -> None:
    doc: Any = 0
    for _ in range(5000):
        doc = [doc]
    err = _rejected({"a": doc}, [{"op": "copy", "from": "/a", "path": "/b"}])
    assert err.code == 422


# --------------------------------------------------------------------------- non-mutation


def test_json_patch_does_not_mutate_document() -> None:
    doc = {"a": {"b": [1, 2]}, "c": {"d": 1}}
    before = copy.deepcopy(doc)
    patch = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "remove", "path": "/c/d"},
        {"op": "move", "from": "/a/b/0", "path": "/c/e"},
        {"op": "copy", "from": "/a", "path": "/f"},
        {"op": "replace", "path": "/a/b/0", "value": 9},
    ]
    apply_json_patch(doc, patch)
    assert doc == before


def test_json_patch_does_not_mutate_patch() -> None:
    patch = [
        {"op": "add", "path": "/a", "value": {"x": [1]}},
        {"op": "add", "path": "/a/y", "value": 2},
        {"op": "add", "path": "/a/x/-", "value": 2},
    ]
    before = copy.deepcopy(patch)
    result = apply_json_patch({}, patch)
    assert result == {"a": {"x": [1, 2], "y": 2}}
    assert patch == before


def test_json_patch_shares_untouched_subtrees_with_document() -> None:
    doc = {"a": {"x": 1}, "b": {"y": 2}}
    result = apply_json_patch(doc, [{"op": "add", "path": "/a/z", "value": 3}])
    assert result["b"] is doc["b"]
    assert result["a"] is not doc["a"]


def test_merge_patch_does_not_mutate_inputs() -> None:
    doc = {"a": {"b": 1, "c": 2}, "d": [1]}
    patch = {"a": {"b": None, "e": {"f": None, "g": 1}}, "d": [2]}
    doc_before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    apply_merge_patch(doc, patch)
    assert (doc, patch) == (doc_before, patch_before)


# --------------------------------------------------------------------------- merge patch


def test_merge_patch_replaces_scalar_member() -> None:
    assert apply_merge_patch({"a": 1, "b": 2}, {"a": 3}) == {"a": 3, "b": 2}


def test_merge_patch_null_deletes_member() -> None:
    assert apply_merge_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_merge_patch_null_for_missing_member_is_ignored() -> None:
    assert apply_merge_patch({"a": 1}, {"b": None}) == {"a": 1}


def test_merge_patch_merges_nested_objects() -> None:
    doc = {"metadata": {"labels": {"a": "1", "b": "2"}, "name": "x"}}
    patch = {"metadata": {"labels": {"b": None, "c": "3"}}}
    assert apply_merge_patch(doc, patch) == {
        "metadata": {"labels": {"a": "1", "c": "3"}, "name": "x"}
    }


def test_merge_patch_replaces_arrays_whole() -> None:
    assert apply_merge_patch({"a": [1, 2, 3]}, {"a": [4]}) == {"a": [4]}


def test_merge_patch_object_replaces_scalar_and_drops_its_nulls() -> None:
    assert apply_merge_patch({"a": 1}, {"a": {"b": None, "c": 2}}) == {"a": {"c": 2}}


def test_merge_patch_keeps_nulls_inside_arrays() -> None:
    assert apply_merge_patch({}, {"a": [None, 1]}) == {"a": [None, 1]}


def test_non_object_merge_patch_replaces_document() -> None:
    assert apply_merge_patch({"a": 1}, ["x"]) == ["x"]


def test_empty_merge_patch_leaves_document_unchanged() -> None:
    assert apply_merge_patch({"a": {"b": 1}}, {}) == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_matches_rfc7386_appendix_a(target: Any, patch: Any, expected: Any) -> None:
    assert apply_merge_patch(target, patch) == expected


def test_require_object_returns_the_object() -> None:
    body = {"a": 1}
    assert require_object(body, MERGE_PATCH) is body


def test_require_object_rejects_array_merge_patch() -> None:
    with pytest.raises(PatchError) as info:
        require_object([1], MERGE_PATCH)
    assert info.value.code == 400
    assert info.value.message == (
        "error decoding patch: json: cannot unmarshal array into Go value of type "
        "map[string]interface {}"
    )


def test_require_object_rejects_null_patch() -> None:
    with pytest.raises(PatchError) as info:
        require_object(None, MERGE_PATCH)
    assert (info.value.code, info.value.message) == (400, "Invalid JSON Patch")


def test_require_object_uses_strategic_merge_patch_decoder_message() -> None:
    with pytest.raises(PatchError) as info:
        require_object("x", "application/strategic-merge-patch+json")
    assert info.value.message == (
        "json: cannot unmarshal string into Go value of type map[string]interface {}"
    )


def test_require_object_ignores_content_type_parameters() -> None:
    with pytest.raises(PatchError) as info:
        require_object(True, "application/merge-patch+json; charset=utf-8")
    assert info.value.message == (
        "error decoding patch: json: cannot unmarshal bool into Go value of type "
        "map[string]interface {}"
    )


# --------------------------------------------------------------------------- create merge patch


def test_create_merge_patch_of_equal_objects_is_empty() -> None:
    assert create_merge_patch({"a": {"b": [1]}}, {"a": {"b": [1]}}) == {}


def test_create_merge_patch_nulls_removed_members() -> None:
    assert create_merge_patch({"a": 1, "b": 2}, {"b": 2}) == {"a": None}


def test_create_merge_patch_diffs_nested_objects() -> None:
    original = {"metadata": {"labels": {"a": "1", "b": "2"}, "name": "x"}}
    modified = {"metadata": {"labels": {"a": "1", "c": "3"}, "name": "x"}}
    assert create_merge_patch(original, modified) == {"metadata": {"labels": {"b": None, "c": "3"}}}


def test_create_merge_patch_carries_changed_arrays_whole() -> None:
    assert create_merge_patch({"a": [1, 2]}, {"a": [1, 3]}) == {"a": [1, 3]}


def test_create_merge_patch_replaces_value_whose_type_changed() -> None:
    assert create_merge_patch({"a": {"b": 1}}, {"a": [1]}) == {"a": [1]}


def test_create_merge_patch_treats_boolean_and_number_as_different() -> None:
    assert create_merge_patch({"a": 1}, {"a": True}) == {"a": True}


def test_create_merge_patch_rejects_non_objects() -> None:
    with pytest.raises(PatchError) as info:
        create_merge_patch([1], {"a": 1})
    assert (info.value.code, info.value.message) == (400, "Invalid JSON Document")


# --------------------------------------------------------------------------- properties

# Generation of nested JSON can be slow on a busy machine; only a wrong answer should fail.
_PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
_FUZZ = settings(_PROPERTY, max_examples=400)
_THOROUGH = settings(_PROPERTY, max_examples=200)

_KEYS = st.sampled_from(["a", "b", "c", "", "~", "/", "0", "a/b", "m~n"])
_SCALARS_NO_NULL = (
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
_SCALARS = st.none() | _SCALARS_NO_NULL


def _json(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4)
        ),
        max_leaves=20,
    )


_JSON = _json(_SCALARS)
_JSON_NO_NULL = _json(_SCALARS_NO_NULL)
_OBJECTS_NO_NULL = st.dictionaries(_KEYS, _JSON_NO_NULL, max_size=5)
_OBJECTS = st.dictionaries(_KEYS, _JSON, max_size=5)

_TOKENS = st.sampled_from(
    ["a", "b", "c", "", "0", "1", "2", "-", "-1", "-5", "01", "+1", "~0", "~1", "~", "a~1b", "99"]
)
_POINTERS = st.one_of(
    st.lists(_TOKENS, max_size=4).map(lambda tokens: "".join("/" + t for t in tokens)),
    st.text(max_size=8),
)
_OPERATIONS = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus", ""])
        | _JSON,
        "path": _POINTERS | _JSON,
        "from": _POINTERS | _JSON,
        "value": _JSON,
        "extra": _JSON,
    },
)
_WELL_TYPED_OPERATIONS = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
        "path": _POINTERS,
    },
    optional={"from": _POINTERS, "value": _JSON},
)
# Operations likely to apply to an _OBJECTS document ("~0" is "~", "~1" is "/").
_PLAUSIBLE_POINTERS = st.lists(
    st.sampled_from(["a", "b", "0", "1", "-", "~0", "~1"]), min_size=1, max_size=2
).map(lambda tokens: "".join("/" + t for t in tokens))
_PLAUSIBLE_OPERATIONS = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
        "path": _PLAUSIBLE_POINTERS,
        "from": _PLAUSIBLE_POINTERS,
        "value": _JSON,
    }
)
_PATCHES = st.one_of(
    st.lists(_OPERATIONS | _JSON, max_size=6),
    st.lists(_WELL_TYPED_OPERATIONS, max_size=6),
    st.lists(_PLAUSIBLE_OPERATIONS, max_size=6),
    _JSON,
)


@_PROPERTY
@given(original=_OBJECTS_NO_NULL, modified=_OBJECTS_NO_NULL)
def test_created_merge_patch_turns_original_into_modified(
    original: dict[str, Any], modified: dict[str, Any]
) -> None:
    assert apply_merge_patch(original, create_merge_patch(original, modified)) == modified


@_PROPERTY
@given(doc=_OBJECTS, key=_KEYS, value=_JSON)
def test_test_of_a_value_just_added_succeeds(doc: dict[str, Any], key: str, value: Any) -> None:
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    patch = [
        {"op": "add", "path": pointer, "value": value},
        {"op": "test", "path": pointer, "value": copy.deepcopy(value)},
    ]
    assert apply_json_patch(doc, patch)[key] == value


@_FUZZ
@given(doc=_JSON, patch=_PATCHES)
def test_arbitrary_json_patch_succeeds_or_raises_patch_error(doc: Any, patch: Any) -> None:
    try:
        apply_json_patch(doc, patch)
    except PatchError as err:
        assert err.code in (400, 413, 422)


@_THOROUGH
@given(doc=_OBJECTS, patch=st.lists(_PLAUSIBLE_OPERATIONS | _WELL_TYPED_OPERATIONS, max_size=6))
def test_json_patch_never_mutates_its_inputs(doc: dict[str, Any], patch: list[Any]) -> None:
    doc_before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    try:
        apply_json_patch(doc, patch)
    except PatchError:
        pass
    assert doc == doc_before
    assert patch == patch_before


@_THOROUGH
@given(doc=_OBJECTS, patch=st.lists(_PLAUSIBLE_OPERATIONS, min_size=2, max_size=5))
def test_operations_applied_one_at_a_time_match_the_whole_patch(
    doc: dict[str, Any], patch: list[Any]
) -> None:
    try:
        together = apply_json_patch(doc, patch)
    except PatchError:
        return
    stepwise: Any = doc
    for op in patch:
        stepwise = apply_json_patch(stepwise, [op])
    assert stepwise == together


@_PROPERTY
@given(doc=_JSON, patch=_JSON)
def test_arbitrary_merge_patch_succeeds_or_raises_patch_error(doc: Any, patch: Any) -> None:
    try:
        apply_merge_patch(doc, require_object(patch, MERGE_PATCH))
    except PatchError as err:
        assert err.code == 400
