"""The structural decoder: a write's body checked and pruned against the OpenAPI schema, and
the parts it repeats from the stored object (``known``) taken as they are."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from setpoint.resources.schema import DecodeError, SchemaSet

_DECODER = SchemaSet().decoder("io.k8s.api.core.v1.Pod", "Pod", "v1")

STORED: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "d", "resourceVersion": "7"},
    "spec": {
        "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}],
        "terminationGracePeriodSeconds": 30,
        "enableServiceLinks": True,
    },
    "status": {"phase": "Pending"},
}


def _body(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(STORED)
    body.update(changes)
    return body


def test_repeated_parts_are_kept_and_changed_parts_decoded() -> None:
    body = _body(status={"phase": "Running", "bogus": 1, "hostIP": None})
    result = _DECODER.decode(body, known=STORED)
    assert result.obj["spec"] == STORED["spec"]
    assert result.obj["status"] == {"phase": "Running"}  # nulls pruned
    assert result.unknown_fields == ["status.bogus"]
    assert _DECODER.decode(body).obj == result.obj  # the same as without ``known``


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        # equal in Python to what is stored, but not the same JSON: decoded, and refused
        (("terminationGracePeriodSeconds",), True, "cannot unmarshal bool"),
        (("enableServiceLinks",), 1, "cannot unmarshal number"),
    ],
)
def test_equal_in_python_is_not_identical(path: tuple[str, ...], value: Any, error: str) -> None:
    body = _body()
    body["spec"][path[0]] = value
    with pytest.raises(DecodeError, match=error):
        _DECODER.decode(body, known=STORED)


def test_a_float_for_an_integer_is_still_normalised() -> None:
    body = _body()
    body["spec"]["terminationGracePeriodSeconds"] = 30.0
    result = _DECODER.decode(body, known=STORED)
    value = result.obj["spec"]["terminationGracePeriodSeconds"]
    assert value == 30 and type(value) is int


def test_unknown_fields_in_a_changed_part_are_reported() -> None:
    body = _body()
    body["spec"]["containers"][0]["imagee"] = "typo"
    result = _DECODER.decode(body, known=STORED)
    assert result.unknown_fields == ["spec.containers[0].imagee"]
    assert "imagee" not in result.obj["spec"]["containers"][0]


def test_integers_must_fit_their_go_type() -> None:
    deployments = SchemaSet().decoder("io.k8s.api.apps.v1.Deployment", "Deployment", "apps/v1")
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"replicas": 2**31 - 1, "revisionHistoryLimit": 3.0},
    }
    decoded = deployments.decode(deployment).obj["spec"]
    assert decoded == {"replicas": 2**31 - 1, "revisionHistoryLimit": 3}
    for path, value, go_type in (
        ("replicas", 2**31, "int32"),
        ("replicas", -(2**31) - 1, "int32"),
        ("progressDeadlineSeconds", 1.5, "int32"),
    ):
        body = copy.deepcopy(deployment)
        body["spec"][path] = value
        with pytest.raises(
            DecodeError, match=rf"cannot unmarshal number {value!r} into .* {go_type}"
        ):
            deployments.decode(body)
    body = copy.deepcopy(deployment)
    body["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": 2**40}}  # an IntOrString: int32
    with pytest.raises(DecodeError, match="cannot unmarshal number 1099511627776"):
        deployments.decode(body)
    body["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = "25%"
    assert deployments.decode(body).obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%"


def test_an_integer_beyond_64_bits_is_decoded_not_compared() -> None:
    body = _body()
    body["spec"]["activeDeadlineSeconds"] = 2**64  # YAML can say this; orjson cannot write it
    with pytest.raises(DecodeError, match="cannot unmarshal number 18446744073709551616"):
        _DECODER.decode(body, known=STORED)


def test_quantities_are_parsed_when_decoded() -> None:
    nodes = SchemaSet().decoder("io.k8s.api.core.v1.Node", "Node", "v1")
    node: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}
    decoded = nodes.decode({**node, "status": {"capacity": {"cpu": 4, "memory": "1Gi"}}})
    assert decoded.obj["status"]["capacity"] == {"cpu": "4", "memory": "1Gi"}
    for bad in ("x", "1..5", float("inf")):
        with pytest.raises(DecodeError, match="quantities must match the regular expression"):
            nodes.decode({**node, "status": {"capacity": {"cpu": bad}}})
