"""Every error a client can cause is a Kubernetes Status with the right code; the server
keeps serving and no stored object changes."""

from __future__ import annotations

import http.client

import pytest

from tests import objects
from tests.support import Server

CM_PATH = "/api/v1/namespaces/{ns}/configmaps"


def cm(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}


def assert_status(body: object, code: int, reason: str) -> None:
    assert isinstance(body, dict), body
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert body["message"]


@pytest.fixture
def existing(server: Server, namespace: str) -> dict[str, object]:
    status, body, _ = server.request("POST", CM_PATH.format(ns=namespace), cm("keep"))
    assert status == 201
    assert isinstance(body, dict)
    return body


def unchanged(server: Server, namespace: str, before: dict[str, object]) -> None:
    status, body, _ = server.request("GET", CM_PATH.format(ns=namespace) + "/keep")
    assert status == 200
    assert body == before


def test_missing_token_is_401(server: Server) -> None:
    status, body, _ = server.request("GET", "/api/v1/namespaces", token=None)
    assert status == 401
    assert_status(body, 401, "Unauthorized")


def test_wrong_token_is_401(server: Server) -> None:
    status, body, _ = server.request("GET", "/api/v1/namespaces", token="not-the-token")
    assert status == 401
    assert_status(body, 401, "Unauthorized")


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health_endpoints_answer_without_token(server: Server, path: str) -> None:
    status, body, _ = server.request("GET", path, token=None)
    assert status == 200
    assert body == "ok"


def test_malformed_json_is_400(server: Server, namespace: str, existing: dict) -> None:
    status, body, _ = server.request(
        "POST",
        CM_PATH.format(ns=namespace),
        raw=b'{"metadata": {"name": ',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert_status(body, 400, "BadRequest")
    unchanged(server, namespace, existing)


def test_malformed_yaml_is_400(server: Server, namespace: str) -> None:
    status, body, _ = server.request(
        "POST",
        CM_PATH.format(ns=namespace),
        raw=b"metadata: [unclosed",
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 400
    assert_status(body, 400, "BadRequest")


def test_yaml_body_is_accepted(server: Server, namespace: str) -> None:
    status, body, _ = server.request(
        "POST",
        CM_PATH.format(ns=namespace),
        raw=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fromyaml}\ndata: {a: b}\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 201, body


def test_wrong_type_in_field_is_400(server: Server, namespace: str) -> None:
    body = cm("typed")
    body["data"] = {"a": 5}
    status, answer, _ = server.request("POST", CM_PATH.format(ns=namespace), body)
    assert status == 400
    assert_status(answer, 400, "BadRequest")
    assert "cannot unmarshal number" in answer["message"]


def test_unknown_resource_is_404(server: Server) -> None:
    status, body, _ = server.request("GET", "/api/v1/namespaces/default/widgets")
    assert status == 404
    assert_status(body, 404, "NotFound")
    status, body, _ = server.request("GET", "/apis/nosuch.example.com/v1/things")
    assert status == 404
    assert_status(body, 404, "NotFound")


def test_missing_object_is_404_naming_it(server: Server, namespace: str) -> None:
    status, body, _ = server.request("GET", CM_PATH.format(ns=namespace) + "/nope")
    assert status == 404
    assert_status(body, 404, "NotFound")
    assert body["message"] == 'configmaps "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "configmaps"}


def test_error_bodies_are_encoded_byte_for_byte_as_kube_apiserver_does(
    server: Server, namespace: str
) -> None:
    """Field order of metav1.Status, empty fields left out, and Go's trailing newline."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context())
    conn.request(
        "GET",
        CM_PATH.format(ns=namespace) + "/nope",
        headers={"Authorization": f"Bearer {server.token}"},
    )
    raw = conn.getresponse().read()
    conn.close()
    assert raw == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"nope\\" not found","reason":"NotFound",'
        b'"details":{"name":"nope","kind":"configmaps"},"code":404}\n'
    )


def test_wrong_media_type_is_415(server: Server, namespace: str, existing: dict) -> None:
    status, body, _ = server.request(
        "POST",
        CM_PATH.format(ns=namespace),
        raw=b"<configmap/>",
        headers={"Content-Type": "application/xml"},
    )
    assert status == 415
    assert_status(body, 415, "UnsupportedMediaType")
    unchanged(server, namespace, existing)


def test_patch_of_unknown_type_is_415(server: Server, namespace: str, existing: dict) -> None:
    status, body, _ = server.request(
        "PATCH",
        CM_PATH.format(ns=namespace) + "/keep",
        raw=b'{"data":{"a":"2"}}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415
    assert_status(body, 415, "UnsupportedMediaType")
    unchanged(server, namespace, existing)


def test_body_over_3_mib_is_413(server: Server, namespace: str) -> None:
    big = cm("huge")
    big["data"] = {"a": "x" * (3 * 1024 * 1024 + 10)}
    status, body, _ = server.request("POST", CM_PATH.format(ns=namespace), big)
    assert status == 413
    assert_status(body, 413, "RequestEntityTooLarge")
    status, _, _ = server.request("GET", CM_PATH.format(ns=namespace) + "/huge")
    assert status == 404


def test_invalid_object_is_422_with_field_causes(server: Server, namespace: str) -> None:
    body = cm("Not_A_Valid_Name")
    body["metadata"]["labels"] = {"bad key!": "v"}  # type: ignore[index]
    status, answer, _ = server.request("POST", CM_PATH.format(ns=namespace), body)
    assert status == 422
    assert_status(answer, 422, "Invalid")
    fields = {c["field"] for c in answer["details"]["causes"]}
    assert {"metadata.name", "metadata.labels"} <= fields
    assert answer["message"].startswith('ConfigMap "Not_A_Valid_Name" is invalid:')


def test_wrong_method_is_405(server: Server, namespace: str) -> None:
    status, body, _ = server.request("PUT", CM_PATH.format(ns=namespace), cm("x"))
    assert status == 405
    assert_status(body, 405, "MethodNotAllowed")
    status, body, _ = server.request("POST", "/api/v1", cm("x"))
    assert status == 405


def test_create_of_existing_name_is_409_already_exists(
    server: Server, namespace: str, existing: dict
) -> None:
    status, body, _ = server.request("POST", CM_PATH.format(ns=namespace), cm("keep"))
    assert status == 409
    assert_status(body, 409, "AlreadyExists")
    unchanged(server, namespace, existing)


def test_stale_resource_version_is_409_conflict(
    server: Server, namespace: str, existing: dict
) -> None:
    stale = dict(existing)
    stale["metadata"] = {**existing["metadata"], "resourceVersion": "1"}  # type: ignore[dict-item]
    stale["data"] = {"a": "changed"}
    status, body, _ = server.request("PUT", CM_PATH.format(ns=namespace) + "/keep", stale)
    assert status == 409
    assert_status(body, 409, "Conflict")
    unchanged(server, namespace, existing)


def test_create_in_missing_namespace_is_404(server: Server) -> None:
    status, body, _ = server.request("POST", CM_PATH.format(ns="no-such-ns"), cm("x"))
    assert status == 404
    assert body["message"] == 'namespaces "no-such-ns" not found'


def test_namespace_mismatch_is_400(server: Server, namespace: str) -> None:
    body = cm("x")
    body["metadata"]["namespace"] = "other"  # type: ignore[index]
    status, answer, _ = server.request("POST", CM_PATH.format(ns=namespace), body)
    assert status == 400
    assert_status(answer, 400, "BadRequest")


def test_bad_label_selector_is_400(server: Server, namespace: str) -> None:
    status, body, _ = server.request(
        "GET", CM_PATH.format(ns=namespace) + "?labelSelector=a%20in%20(b"
    )
    assert status == 400
    assert_status(body, 400, "BadRequest")


def test_unsupported_field_selector_is_400(server: Server, namespace: str) -> None:
    status, body, _ = server.request(
        "GET", CM_PATH.format(ns=namespace) + "?fieldSelector=spec.nodeName%3Dx"
    )
    assert status == 400
    assert "is not a known field selector" in body["message"]


def test_malformed_json_patch_is_rejected(server: Server, namespace: str, existing: dict) -> None:
    for raw in (b"{not json", b'{"op":"add"}', b'[{"op":"frobnicate","path":"/data"}]'):
        status, body, _ = server.request(
            "PATCH",
            CM_PATH.format(ns=namespace) + "/keep",
            raw=raw,
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert status in (400, 422), (raw, status, body)
        assert_status(body, status, body["reason"])
    unchanged(server, namespace, existing)


def test_server_keeps_serving_after_bad_input(server: Server) -> None:
    status, _, _ = server.request("GET", "/api/v1/namespaces")
    assert status == 200


def test_numbers_beyond_go_integers_are_400(server: Server, namespace: str) -> None:
    template = (
        '{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "big"}}, '
        '"spec": {{"replicas": {replicas}, "selector": {{"matchLabels": {{"a": "b"}}}}, '
        '"template": {{"metadata": {{"labels": {{"a": "b"}}}}, '
        '"spec": {{"containers": [{{"name": "c", "image": "i"}}]}}}}}}}}'
    )
    # replicas is an int32; YAML (unlike JSON) also hands over integers beyond 64 bits
    for replicas, content_type in (
        (3_000_000_000, "application/json"),
        (2**64, "application/yaml"),
    ):
        status, answer, _ = server.request(
            "POST",
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            raw=template.format(replicas=replicas).encode(),
            headers={"Content-Type": content_type},
        )
        assert status == 400, answer
        assert f"cannot unmarshal number {replicas} into Go struct field" in answer["message"]
    status, _, _ = server.request("GET", "/readyz", token=None)
    assert status == 200


def test_yaml_bodies_read_as_kubernetes_reads_them(server: Server, namespace: str) -> None:
    yaml_body = (
        b"apiVersion: v1\nkind: ConfigMap\n"
        b"metadata: {name: keys, annotations: {released: 2024-01-01}}\n"
        b'data: {1: one, true: "yes"}\n'
    )
    status, created, _ = server.request(
        "POST",
        CM_PATH.format(ns=namespace),
        raw=yaml_body,
        headers={"Content-Type": "application/yaml"},
    )
    assert status == 201, created
    assert created["data"] == {"1": "one", "true": "yes"}
    assert created["metadata"]["annotations"] == {"released": "2024-01-01"}
    status, answer, _ = server.request(
        "POST",
        CM_PATH.format(ns=namespace),
        raw=b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loop}\ndata: &a {b: *a}\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert (status, answer["reason"]) == (400, "BadRequest")


def test_bad_scales_are_refused_as_kubernetes_refuses_them(server: Server, namespace: str) -> None:
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    template = objects.pod_template(
        {"a": "b"}, containers=[objects.container("c", "i")], schedulerName="nobody"
    )
    deployment = objects.deployment("s", pod_labels={"a": "b"}, template=template, replicas=1)
    server.request("POST", deployments, deployment)
    scale = f"{deployments}/s/scale"

    def put(replicas: object) -> tuple[int, dict]:
        body = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "s"}}
        status, answer, _ = server.request("PUT", scale, {**body, "spec": {"replicas": replicas}})
        return status, answer

    status, answer = put("x")
    assert status == 400
    assert (
        "cannot unmarshal string into Go struct field ScaleSpec.spec.replicas" in answer["message"]
    )
    status, answer = put(2**40)
    assert (status, answer["reason"]) == (400, "BadRequest")
    status, answer = put(-3)
    assert (status, answer["reason"]) == (422, "Invalid")
    assert answer["message"] == (
        'Scale.autoscaling "s" is invalid: spec.replicas: Invalid value: -3: '
        "must be greater than or equal to 0"
    )
    merge = {"Content-Type": "application/merge-patch+json"}
    status, answer, _ = server.request("PATCH", scale, {"spec": "x"}, headers=merge)
    assert (status, answer["reason"]) == (400, "BadRequest")
    _, current, _ = server.request("GET", f"{deployments}/s")
    assert current["spec"]["replicas"] == 1  # nothing was written
    status, answer = put(2)
    assert status == 200 and answer["spec"]["replicas"] == 2
