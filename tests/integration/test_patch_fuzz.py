"""Fuzz the live PATCH endpoints: whatever a client sends, the answer is a Status with a
4xx code or a success — never a 500 — and a rejected patch leaves the object unchanged."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import objects
from tests.support import Server

PATCH_TYPES = [
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "spec",
                    "metadata",
                    "template",
                    "containers",
                    "name",
                    "image",
                    "replicas",
                    "$patch",
                    "$retainKeys",
                    "op",
                    "path",
                    "value",
                    "labels",
                    "data",
                    "a",
                    "$setElementOrder/containers",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
json_patch_ops = st.lists(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
            "path": st.sampled_from(
                [
                    "/spec/replicas",
                    "/spec/template/spec/containers/0",
                    "/metadata/labels/x",
                    "/nope/deeper",
                    "",
                    "/spec/selector",
                ]
            ),
        },
        optional={"value": json_values, "from": st.sampled_from(["/spec", "/metadata/name"])},
    ),
    max_size=4,
)

DEPLOYMENT = objects.deployment(
    "fuzzed",
    labels={"app": "f"},
    pod_labels={"app": "f"},
    containers=[objects.container("c", command=["sleep", "1"])],
    replicas=1,
)


@pytest.fixture(scope="module")
def target(server: Server) -> str:
    status, _, _ = server.request("POST", "/api/v1/namespaces", objects.namespace("fuzz-patches"))
    assert status in (201, 409)
    path = "/apis/apps/v1/namespaces/fuzz-patches/deployments"
    status, _, _ = server.request("POST", path, DEPLOYMENT)
    assert status in (201, 409)
    return path + "/fuzzed"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content_type=st.sampled_from(PATCH_TYPES),
    document=st.one_of(json_values, json_patch_ops, st.binary(max_size=40)),
)
def test_patches_never_cause_a_server_error(
    server: Server, target: str, content_type: str, document: object
) -> None:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    query = "?fieldManager=fuzzer&force=true" if content_type.endswith("yaml") else ""
    status, before, _ = server.request("GET", target)
    assert status == 200
    status, body, _ = server.request(
        "PATCH", target + query, raw=raw, headers={"Content-Type": content_type}
    )
    assert status < 500, (status, body)
    if status >= 400:
        assert isinstance(body, dict) and body.get("kind") == "Status", body
        assert body["code"] == status
        _, after, _ = server.request("GET", target)
        assert after == before
    else:
        # put it back so the next example starts from a valid, known object
        server.request("DELETE", target + "?gracePeriodSeconds=0")
        server.request("POST", target.rsplit("/", 1)[0], DEPLOYMENT)
