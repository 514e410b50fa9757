"""Tests for setpoint.api.discovery.openapi: the /openapi/v2 and /openapi/v3 documents.

Several tests replay, in Python, the checks kubectl itself runs against these documents
(field-validation detection, client-side apply's strategic-merge lookup, ``kubectl explain``),
so a regression shows up here rather than as kubectl silently falling back.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import orjson
import pytest

from setpoint.api.discovery.openapi import (
    INT_OR_STRING,
    QUANTITY,
    OpenAPIDocuments,
    build_openapi,
    group_version_path,
)
from setpoint.resources.catalog import default_registry
from setpoint.resources.registry import Registry, ResourceType
from setpoint.resources.schema import load_definitions

SERVER_VERSION = "v1.37.1"
V2_PREFIX = "#/definitions/"
V3_PREFIX = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "patch")

REGISTRY = default_registry()
TYPES = REGISTRY.types
# a review (TokenReview) is only ever created: no list kind, no patch
LISTED_TYPES = tuple(t for t in TYPES if "list" in t.verbs)
PATCHED_TYPES = tuple(t for t in TYPES if "patch" in t.verbs)


def _type_id(t: ResourceType) -> str:
    return f"{t.group or 'core'}/{t.version}/{t.kind}"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return REGISTRY


@pytest.fixture(scope="module")
def docs(registry: Registry) -> OpenAPIDocuments:
    return build_openapi(registry, server_version=SERVER_VERSION)


@pytest.fixture(scope="module")
def v2(docs: OpenAPIDocuments) -> dict[str, Any]:
    return orjson.loads(docs.v2_json)


@pytest.fixture(scope="module")
def v3(docs: OpenAPIDocuments) -> dict[str, dict[str, Any]]:
    return {gv: orjson.loads(data) for gv, data in docs.v3_group_versions.items()}


def _gvk(t: ResourceType, kind: str | None = None) -> dict[str, str]:
    return {"group": t.group, "kind": kind or t.kind, "version": t.version}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object below ``node`` (property maps themselves excluded)."""
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    yield from _schemas(sub)
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                yield from _schemas(value)
            elif key in ("allOf", "oneOf", "anyOf"):
                for sub in value:
                    yield from _schemas(sub)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Follow a v3 ``$ref`` or one-element ``allOf`` the way kubectl explain does."""
    while True:
        if "$ref" in schema:
            schema = components[schema["$ref"].removeprefix(V3_PREFIX)]
        elif len(schema.get("allOf", ())) == 1 and "properties" not in schema:
            schema = schema["allOf"][0]
        else:
            return schema


# -- served kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", TYPES, ids=_type_id)
def test_every_served_kind_appears_with_its_gvk_in_v2_definitions(
    v2: dict[str, Any], t: ResourceType
) -> None:
    definition = v2["definitions"][t.definition]
    assert _gvk(t) in definition["x-kubernetes-group-version-kind"]


@pytest.mark.parametrize("t", LISTED_TYPES, ids=_type_id)
def test_every_served_list_kind_appears_with_its_gvk_in_v2_definitions(
    v2: dict[str, Any], t: ResourceType
) -> None:
    definition = v2["definitions"][t.definition + "List"]
    assert _gvk(t, t.list_kind) in definition["x-kubernetes-group-version-kind"]


@pytest.mark.parametrize("t", LISTED_TYPES, ids=_type_id)
def test_every_served_kind_appears_with_its_gvk_in_its_v3_group_version_document(
    v3: dict[str, dict[str, Any]], t: ResourceType
) -> None:
    schemas = v3[group_version_path(t.group, t.version)]["components"]["schemas"]
    assert _gvk(t) in schemas[t.definition]["x-kubernetes-group-version-kind"]
    if "list" in t.verbs:
        list_schema = schemas[t.definition + "List"]
        assert _gvk(t, t.list_kind) in list_schema["x-kubernetes-group-version-kind"]


def test_v3_has_one_document_per_served_group_version(
    docs: OpenAPIDocuments, registry: Registry
) -> None:
    expected = {
        group_version_path(group, version)
        for group, versions in registry.group_versions().items()
        for version in versions
    }
    assert set(docs.v3_group_versions) == expected


def test_v3_documents_only_describe_their_own_group_version(
    v3: dict[str, dict[str, Any]],
) -> None:
    for gv, doc in v3.items():
        assert all(path.startswith(f"/{gv}/") for path in doc["paths"]), gv


def test_v2_definitions_include_the_meta_types_operations_use(v2: dict[str, Any]) -> None:
    for name in (
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.api.core.v1.Binding",
    ):
        assert name in v2["definitions"], name


# -- references -----------------------------------------------------------------------------


def test_v2_has_no_dangling_refs(v2: dict[str, Any]) -> None:
    refs = {node["$ref"] for node in _walk(v2) if isinstance(node.get("$ref"), str)}
    assert refs, "expected references"
    assert all(ref.startswith(V2_PREFIX) for ref in refs)
    assert {ref.removeprefix(V2_PREFIX) for ref in refs} <= set(v2["definitions"])


@pytest.mark.parametrize("gv", sorted({group_version_path(t.group, t.version) for t in TYPES}))
def test_v3_document_has_no_dangling_refs(v3: dict[str, dict[str, Any]], gv: str) -> None:
    doc = v3[gv]
    refs = {node["$ref"] for node in _walk(doc) if isinstance(node.get("$ref"), str)}
    assert refs, "expected references"
    assert all(ref.startswith(V3_PREFIX) for ref in refs)
    assert {ref.removeprefix(V3_PREFIX) for ref in refs} <= set(doc["components"]["schemas"])


def test_v3_refs_with_siblings_are_wrapped_in_all_of(v3: dict[str, dict[str, Any]]) -> None:
    for doc in v3.values():
        for schema in _schemas(doc["components"]["schemas"]):
            if "$ref" in schema:
                assert set(schema) == {"$ref"}, schema


def test_v3_wraps_deployment_strategy_with_its_description_and_patch_strategy(
    v3: dict[str, dict[str, Any]],
) -> None:
    spec = v3["apis/apps/v1"]["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["properties"]["strategy"] == {
        "allOf": [{"$ref": V3_PREFIX + "io.k8s.api.apps.v1.DeploymentStrategy"}],
        "description": "The deployment strategy to use to replace existing pods with new ones.",
        "x-kubernetes-patch-strategy": "retainKeys",
    }


# -- schema conversion ----------------------------------------------------------------------


def test_v2_definitions_have_only_scalar_types(v2: dict[str, Any]) -> None:
    for schema in _schemas(v2["definitions"]):
        if "type" in schema:
            assert isinstance(schema["type"], str) and schema["type"] != "null", schema


def test_v3_schemas_have_only_scalar_types(v3: dict[str, dict[str, Any]]) -> None:
    for doc in v3.values():
        for schema in _schemas(doc["components"]["schemas"]):
            if "type" in schema:
                assert isinstance(schema["type"], str) and schema["type"] != "null", schema


def test_no_enum_contains_null(v2: dict[str, Any], v3: dict[str, dict[str, Any]]) -> None:
    for doc in (v2, *v3.values()):
        for node in _walk(doc):
            if isinstance(node.get("enum"), list):
                assert None not in node["enum"]


def test_api_version_and_kind_carry_no_enum(v2: dict[str, Any]) -> None:
    properties = v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]
    assert properties["apiVersion"] == {
        "description": properties["apiVersion"]["description"],
        "type": "string",
    }
    assert "enum" not in properties["kind"]


def test_int_or_string_takes_the_apiserver_shapes(
    v2: dict[str, Any], v3: dict[str, dict[str, Any]]
) -> None:
    v2_schema = v2["definitions"][INT_OR_STRING]
    assert (v2_schema["type"], v2_schema["format"]) == ("string", "int-or-string")
    v3_schema = v3["apis/apps/v1"]["components"]["schemas"][INT_OR_STRING]
    assert v3_schema["format"] == "int-or-string"
    assert v3_schema["oneOf"] == [{"type": "integer"}, {"type": "string"}]


def test_quantity_takes_the_apiserver_shapes(
    v2: dict[str, Any], v3: dict[str, dict[str, Any]]
) -> None:
    assert v2["definitions"][QUANTITY]["type"] == "string"
    v3_schema = v3["api/v1"]["components"]["schemas"][QUANTITY]
    assert v3_schema["oneOf"] == [{"type": "string"}, {"type": "number"}]


def test_v2_keeps_patch_extensions_and_required(v2: dict[str, Any]) -> None:
    pod_spec = v2["definitions"]["io.k8s.api.core.v1.PodSpec"]
    containers = pod_spec["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert "containers" in pod_spec["required"]


def _client_model(t: ResourceType) -> Any:
    """The official Python client's model of ``t``: ``V1Deployment``, or ``CoreV1Event`` /
    ``EventsV1Event`` where a bare name would be ambiguous."""
    version = t.version.capitalize()
    group = (t.group or "core").removesuffix(".k8s.io").split(".")[0].capitalize()
    for name in (f"{version}{t.kind}", f"{group}{version}{t.kind}"):
        if hasattr(kubernetes.client, name):
            return getattr(kubernetes.client, name)
    raise AssertionError(f"no client model for {t.kind}")


@pytest.mark.parametrize("t", TYPES, ids=_type_id)
def test_python_client_model_fields_are_definition_properties(
    v2: dict[str, Any], t: ResourceType
) -> None:
    model = _client_model(t)
    properties = v2["definitions"][t.definition]["properties"]
    assert set(model.attribute_map.values()) <= set(properties)


@pytest.mark.parametrize("t", LISTED_TYPES, ids=_type_id)
def test_python_client_list_model_fields_are_list_definition_properties(
    v2: dict[str, Any], t: ResourceType
) -> None:
    model = getattr(kubernetes.client, _client_model(t).__name__ + "List")
    properties = v2["definitions"][t.definition + "List"]["properties"]
    assert set(model.attribute_map.values()) <= set(properties)


# -- operations kubectl relies on -------------------------------------------------------------


def test_deployment_patch_operation_in_v3_carries_field_validation(
    v3: dict[str, dict[str, Any]],
) -> None:
    # kubectl's queryParamVerifierV3 takes the first PATCH (map order) tagged with the GVK.
    gvk = {"group": "apps", "kind": "Deployment", "version": "v1"}
    patches = [
        op
        for _, method, op in _operations(v3["apis/apps/v1"])
        if method == "patch" and op["x-kubernetes-group-version-kind"] == gvk
    ]
    assert patches
    for op in patches:
        assert "fieldValidation" in {p["name"] for p in op["parameters"]}


@pytest.mark.parametrize("t", PATCHED_TYPES, ids=_type_id)
def test_every_patch_operation_of_a_served_kind_supports_field_validation(
    v3: dict[str, dict[str, Any]], t: ResourceType
) -> None:
    doc = v3[group_version_path(t.group, t.version)]
    patches = [
        op
        for _, method, op in _operations(doc)
        if method == "patch" and op["x-kubernetes-group-version-kind"] == _gvk(t)
    ]
    assert patches
    for op in patches:
        assert "fieldValidation" in {p["name"] for p in op["parameters"]}


@pytest.mark.parametrize("t", TYPES, ids=_type_id)
def test_every_patch_operation_accepts_strategic_merge_patch(
    v3: dict[str, dict[str, Any]], t: ResourceType
) -> None:
    # kubectl apply (client-side) computes its patch from v3 only when this holds.
    doc = v3[group_version_path(t.group, t.version)]
    for _, method, op in _operations(doc):
        if method == "patch":
            content = op["requestBody"]["content"]
            assert "application/strategic-merge-patch+json" in content
            assert "application/apply-patch+yaml" in content


def test_v2_patch_operations_consume_strategic_merge_patch(v2: dict[str, Any]) -> None:
    for _, method, op in _operations(v2):
        if method == "patch":
            assert "application/strategic-merge-patch+json" in op["consumes"]
            assert "fieldValidation" in {p["name"] for p in op["parameters"]}


def test_explain_finds_deployment_spec_strategy(v3: dict[str, dict[str, Any]]) -> None:
    # Replays kubectl explain's template: the GVK comes from an operation on the
    # resource's path, the schema from components whose GVK list contains it.
    doc = v3["apis/apps/v1"]
    components = doc["components"]["schemas"]
    path = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    gvk = path["get"]["x-kubernetes-group-version-kind"]
    (root,) = [
        s for s in components.values() if gvk in s.get("x-kubernetes-group-version-kind", [])
    ]
    spec = _resolve(root["properties"]["spec"], components)
    strategy = _resolve(spec["properties"]["strategy"], components)
    assert set(strategy["properties"]) == {"rollingUpdate", "type"}
    rolling = _resolve(strategy["properties"]["rollingUpdate"], components)
    assert set(rolling["properties"]) == {"maxSurge", "maxUnavailable"}


@pytest.mark.parametrize(
    ("gv", "path", "method", "operation_id", "action"),
    [
        ("api/v1", "/api/v1/namespaces/{namespace}/pods", "get", "listCoreV1NamespacedPod", "list"),
        ("api/v1", "/api/v1/pods", "get", "listCoreV1PodForAllNamespaces", "list"),
        ("api/v1", "/api/v1/nodes/{name}", "patch", "patchCoreV1Node", "patch"),
        ("api/v1", "/api/v1/namespaces", "post", "createCoreV1Namespace", "post"),
        (
            "api/v1",
            "/api/v1/namespaces/{name}/finalize",
            "put",
            "replaceCoreV1NamespaceFinalize",
            "put",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/binding",
            "post",
            "createCoreV1NamespacedPodBinding",
            "post",
        ),
        (
            "apis/apps/v1",
            "/apis/apps/v1/namespaces/{namespace}/deployments",
            "delete",
            "deleteAppsV1CollectionNamespacedDeployment",
            "deletecollection",
        ),
        (
            "apis/apps/v1",
            "/apis/apps/v1/namespaces/{namespace}/replicasets/{name}/scale",
            "get",
            "readAppsV1NamespacedReplicaSetScale",
            "get",
        ),
        (
            "apis/batch/v1",
            "/apis/batch/v1/watch/namespaces/{namespace}/jobs",
            "get",
            "watchBatchV1NamespacedJobList",
            "watchlist",
        ),
        (
            "apis/coordination.k8s.io/v1",
            "/apis/coordination.k8s.io/v1/watch/leases",
            "get",
            "watchCoordinationV1LeaseListForAllNamespaces",
            "watchlist",
        ),
        (
            "apis/events.k8s.io/v1",
            "/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}",
            "put",
            "replaceEventsV1NamespacedEvent",
            "put",
        ),
        ("apis/apps/v1", "/apis/apps/v1/", "get", "getAppsV1APIResources", None),
    ],
)
def test_operations_are_named_like_kubernetes(
    v3: dict[str, dict[str, Any]],
    gv: str,
    path: str,
    method: str,
    operation_id: str,
    action: str | None,
) -> None:
    op = v3[gv]["paths"][path][method]
    assert op["operationId"] == operation_id
    assert op.get("x-kubernetes-action") == action


def test_operation_ids_are_unique(v2: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(v2)]
    assert len(ids) == len(set(ids))


def test_every_resource_operation_carries_action_and_gvk(v2: dict[str, Any]) -> None:
    for path, _, op in _operations(v2):
        if path.endswith("/"):
            continue  # the group-version discovery document
        assert op["x-kubernetes-action"]
        assert set(op["x-kubernetes-group-version-kind"]) == {"group", "kind", "version"}


def test_scale_operations_carry_the_autoscaling_scale_gvk(
    v3: dict[str, dict[str, Any]],
) -> None:
    item = v3["apis/apps/v1"]["paths"][
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"
    ]
    for method in ("get", "put", "patch"):
        assert item[method]["x-kubernetes-group-version-kind"] == {
            "group": "autoscaling",
            "kind": "Scale",
            "version": "v1",
        }


@pytest.mark.parametrize("t", TYPES, ids=_type_id)
def test_every_served_verb_has_its_path(v2: dict[str, Any], t: ResourceType) -> None:
    base = "/" + group_version_path(t.group, t.version)
    scope = "/namespaces/{namespace}" if t.namespaced else ""
    collection = f"{base}{scope}/{t.plural}"
    expected = {
        "list": (collection, "get"),
        "create": (collection, "post"),
        "deletecollection": (collection, "delete"),
        "get": (collection + "/{name}", "get"),
        "update": (collection + "/{name}", "put"),
        "patch": (collection + "/{name}", "patch"),
        "delete": (collection + "/{name}", "delete"),
        "watch": (f"{base}/watch{scope}/{t.plural}", "get"),
    }
    for verb in t.verbs:
        path, method = expected[verb]
        assert method in v2["paths"][path], (verb, path)


def test_cluster_scoped_paths_take_no_namespace(v2: dict[str, Any]) -> None:
    item = v2["paths"]["/api/v1/nodes/{name}"]
    assert "namespace" not in {p["name"] for p in item["parameters"]}


def test_patch_parameters_include_dry_run_field_manager_and_force(v2: dict[str, Any]) -> None:
    op = v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    names = {p["name"] for p in op["parameters"]}
    assert {"body", "dryRun", "fieldManager", "fieldValidation", "force"} <= names


# -- hashes, headers, document shape -----------------------------------------------------------


def test_v3_root_hashes_match_the_documents(docs: OpenAPIDocuments) -> None:
    root = orjson.loads(docs.v3_root_json)
    assert set(root["paths"]) == set(docs.v3_group_versions)
    for gv, entry in root["paths"].items():
        digest = hashlib.sha512(docs.v3_group_versions[gv]).hexdigest().upper()
        assert entry["serverRelativeURL"] == f"/openapi/v3/{gv}?hash={digest}"
        assert docs.v3_hashes[gv] == digest
        assert docs.server_relative_url(gv) == entry["serverRelativeURL"]


def test_etags_are_quoted_document_hashes(docs: OpenAPIDocuments) -> None:
    def etag(data: bytes) -> str:
        return '"' + hashlib.sha512(data).hexdigest().upper() + '"'

    assert docs.v2_etag == etag(docs.v2_json)
    assert docs.v3_root_etag == etag(docs.v3_root_json)
    for gv, data in docs.v3_group_versions.items():
        assert docs.v3_etags[gv] == etag(data)


def test_v2_is_a_swagger_2_document(v2: dict[str, Any]) -> None:
    assert v2["swagger"] == "2.0"
    assert v2["info"] == {"title": "Kubernetes", "version": SERVER_VERSION}


def test_v3_documents_are_openapi_3_documents(v3: dict[str, dict[str, Any]]) -> None:
    for doc in v3.values():
        assert doc["openapi"] == "3.0.0"
        assert doc["info"] == {"title": "Kubernetes", "version": SERVER_VERSION}


def test_documents_are_deterministic(docs: OpenAPIDocuments, registry: Registry) -> None:
    again = build_openapi(registry, server_version=SERVER_VERSION)
    assert again.v2_json == docs.v2_json
    assert again.v3_root_json == docs.v3_root_json


def test_build_takes_well_under_a_second(registry: Registry) -> None:
    start = time.perf_counter()
    build_openapi(registry, server_version="v0.0.0-timing")
    assert time.perf_counter() - start < 1.0


# -- the official definitions -----------------------------------------------------------------


def test_definitions_are_loaded_once() -> None:
    assert load_definitions() is load_definitions()


def test_definitions_are_the_json_schema_defs() -> None:
    deployment = load_definitions()["io.k8s.api.apps.v1.Deployment"]
    assert deployment["properties"]["spec"]["$ref"] == "#/$defs/io.k8s.api.apps.v1.DeploymentSpec"
    assert "additionalProperties" not in deployment
