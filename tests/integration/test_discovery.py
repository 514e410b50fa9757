"""Discovery documents, legacy and aggregated."""

from __future__ import annotations

from tests.support import Server

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def test_legacy_group_list_names_every_group(server: Server) -> None:
    status, body, _ = server.request("GET", "/apis")
    assert status == 200 and body["kind"] == "APIGroupList"
    names = {g["name"] for g in body["groups"]}
    assert names == {
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "batch",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
    }


def test_resource_list_has_subresources_and_short_names(server: Server) -> None:
    status, body, _ = server.request("GET", "/apis/apps/v1")
    assert status == 200
    by_name = {r["name"]: r for r in body["resources"]}
    assert by_name["deployments"]["shortNames"] == ["deploy"]
    assert by_name["deployments"]["categories"] == ["all"]
    assert by_name["deployments/scale"]["kind"] == "Scale"
    assert by_name["deployments/status"]["verbs"] == ["get", "patch", "update"]


def test_aggregated_discovery_answers_when_asked(server: Server) -> None:
    status, body, headers = server.request(
        "GET", "/apis", headers={"Accept": AGGREGATED + ",application/json"}
    )
    assert status == 200
    assert headers["Content-Type"] == AGGREGATED
    assert body["kind"] == "APIGroupDiscoveryList"
    apps = next(i for i in body["items"] if i["metadata"]["name"] == "apps")
    resources = {r["resource"]: r for r in apps["versions"][0]["resources"]}
    assert resources["replicasets"]["scope"] == "Namespaced"
    assert {s["subresource"] for s in resources["replicasets"]["subresources"]} == {
        "status",
        "scale",
    }


def test_version_reports_kubernetes_1_37(server: Server) -> None:
    status, body, _ = server.request("GET", "/version")
    assert status == 200
    assert (body["major"], body["minor"]) == ("1", "37")
