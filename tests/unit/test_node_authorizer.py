"""The Node authorizer over a graph of pods: what ``system:node:<name>`` may do, decided
from request attributes alone (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.api.auth.attributes import request_attributes
from setpoint.api.auth.authorizer import Decision
from setpoint.api.auth.node import NodeAuthorizer, NodeGraph, pod_references
from setpoint.api.auth.user import UserInfo

N1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
PVCS = {("ns", "data"): {"spec": {"volumeName": "pv-1"}}}


def pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"nodeName": node, "containers": [{"name": "app"}], **spec},
    }


def lookup(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    return PVCS.get((namespace, name)) if plural == "persistentvolumeclaims" else None


@pytest.fixture
def graph() -> NodeGraph:
    g = NodeGraph()
    g.pod_changed(
        "/registry/core/pods/ns/a",
        pod(
            "a",
            "n1",
            volumes=[
                {"name": "s", "secret": {"secretName": "vol-secret"}},
                {"name": "c", "configMap": {"name": "cm"}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            serviceAccountName="runner",
        ),
    )
    g.pod_changed(
        "/registry/core/pods/ns/b",
        pod("b", "n2", imagePullSecrets=[{"name": "other-secret"}]),
    )
    return g


def decide(graph: NodeGraph, method: str, path: str, user: UserInfo = N1, **query: str) -> Decision:
    authorizer = NodeAuthorizer(graph, lookup)
    return authorizer.authorize(request_attributes(user, method, path, query))[0]


def test_pod_references_cover_env_envfrom_volumes_and_projections() -> None:
    refs = pod_references(
        pod(
            "p",
            "n1",
            containers=[
                {
                    "name": "app",
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-s"}}}],
                    "envFrom": [{"configMapRef": {"name": "env-cm"}}],
                }
            ],
            volumes=[
                {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-s"}}]}},
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
            ],
        )
    )
    assert ("secrets", "ns", "env-s") in refs
    assert ("configmaps", "ns", "env-cm") in refs
    assert ("secrets", "ns", "proj-s") in refs
    assert ("persistentvolumeclaims", "ns", "p-e") in refs
    assert ("serviceaccounts", "ns", "default") in refs


def test_node_gets_a_secret_its_pod_mounts(graph: NodeGraph) -> None:
    assert decide(graph, "GET", "/api/v1/namespaces/ns/secrets/vol-secret") is Decision.ALLOW
    # a single-object watch, as the agent's informers make them
    assert (
        decide(
            graph,
            "GET",
            "/api/v1/namespaces/ns/secrets",
            watch="true",
            fieldSelector="metadata.name=vol-secret",
        )
        is Decision.ALLOW
    )


def test_node_gets_no_secret_of_another_nodes_pod(graph: NodeGraph) -> None:
    assert decide(graph, "GET", "/api/v1/namespaces/ns/secrets/other-secret") is not Decision.ALLOW


def test_node_lists_no_secrets(graph: NodeGraph) -> None:
    assert decide(graph, "GET", "/api/v1/namespaces/ns/secrets") is not Decision.ALLOW
    assert decide(graph, "GET", "/api/v1/secrets") is not Decision.ALLOW


def test_node_writes_no_secrets_even_referenced_ones(graph: NodeGraph) -> None:
    path = "/api/v1/namespaces/ns/secrets/vol-secret"
    assert decide(graph, "PUT", path) is not Decision.ALLOW
    assert decide(graph, "DELETE", path) is not Decision.ALLOW


def test_secret_access_ends_when_the_pod_goes(graph: NodeGraph) -> None:
    graph.pod_changed("/registry/core/pods/ns/a", None)
    assert decide(graph, "GET", "/api/v1/namespaces/ns/secrets/vol-secret") is not Decision.ALLOW
    assert decide(graph, "GET", "/api/v1/namespaces/ns/configmaps/cm") is not Decision.ALLOW


def test_two_pods_referencing_one_secret_keep_it_until_both_go(graph: NodeGraph) -> None:
    second = pod("c", "n1", volumes=[{"name": "s", "secret": {"secretName": "vol-secret"}}])
    graph.pod_changed("/registry/core/pods/ns/c", second)
    graph.pod_changed("/registry/core/pods/ns/a", None)
    assert decide(graph, "GET", "/api/v1/namespaces/ns/secrets/vol-secret") is Decision.ALLOW


def test_pvc_and_its_pv_through_the_pod(graph: NodeGraph) -> None:
    assert decide(graph, "GET", "/api/v1/namespaces/ns/persistentvolumeclaims/data") is (
        Decision.ALLOW
    )
    assert decide(graph, "GET", "/api/v1/persistentvolumes/pv-1") is Decision.ALLOW
    assert decide(graph, "GET", "/api/v1/persistentvolumes/pv-2") is not Decision.ALLOW


def test_service_account_token_only_for_its_pods_account(graph: NodeGraph) -> None:
    ok = "/api/v1/namespaces/ns/serviceaccounts/runner/token"
    assert decide(graph, "POST", ok) is Decision.ALLOW
    other = "/api/v1/namespaces/ns/serviceaccounts/admin/token"
    assert decide(graph, "POST", other) is not Decision.ALLOW
    assert decide(graph, "GET", "/api/v1/namespaces/ns/serviceaccounts/runner") is not (
        Decision.ALLOW
    )


def test_lease_only_its_own_in_kube_node_lease(graph: NodeGraph) -> None:
    leases = "/apis/coordination.k8s.io/v1/namespaces"
    assert decide(graph, "PUT", f"{leases}/kube-node-lease/leases/n1") is Decision.ALLOW
    assert decide(graph, "PUT", f"{leases}/kube-node-lease/leases/n2") is not Decision.ALLOW
    assert decide(graph, "PUT", f"{leases}/kube-system/leases/n1") is not Decision.ALLOW


def test_static_rules(graph: NodeGraph) -> None:
    assert decide(graph, "GET", "/api/v1/pods", fieldSelector="spec.nodeName=n1") is (
        Decision.ALLOW
    )
    assert decide(graph, "PATCH", "/api/v1/namespaces/ns/pods/a/status") is Decision.ALLOW
    assert decide(graph, "POST", "/api/v1/namespaces/ns/events") is Decision.ALLOW
    assert decide(graph, "GET", "/apis/discovery.k8s.io/v1/endpointslices") is Decision.ALLOW
    assert decide(graph, "DELETE", "/api/v1/nodes/n2") is not Decision.ALLOW
    assert decide(graph, "POST", "/api/v1/namespaces/ns/pods/a/exec") is not Decision.ALLOW
    assert decide(graph, "GET", "/apis/apps/v1/deployments") is not Decision.ALLOW
    assert decide(graph, "POST", "/api/v1/namespaces") is not Decision.ALLOW


def test_no_opinion_for_anyone_but_nodes(graph: NodeGraph) -> None:
    admin = UserInfo("admin", ("system:masters",))
    assert decide(graph, "GET", "/api/v1/pods", user=admin) is Decision.NO_OPINION
    nameless = UserInfo("system:node:", ("system:nodes",))
    assert decide(graph, "GET", "/api/v1/pods", user=nameless) is Decision.NO_OPINION
