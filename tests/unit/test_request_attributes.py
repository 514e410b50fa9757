"""What a request does, as kube-apiserver's RequestInfoFactory derives it, and the 403 a
denied request gets."""

from __future__ import annotations

import pytest

from setpoint.api.auth.attributes import RequestAttributes, request_attributes
from setpoint.api.auth.authorizer import (
    Decision,
    PrivilegedGroups,
    UnionAuthorizer,
    forbidden,
)
from setpoint.api.auth.user import UserInfo, node_name_of, service_account_of

ALICE = UserInfo("alice", ("devs",))


def attrs(method: str, path: str, **query: str) -> RequestAttributes:
    return request_attributes(ALICE, method, path, query)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/pods", {}, ("list", "", "pods", "", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods", {}, ("list", "", "pods", "", "ns", "")),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            {"watch": "true"},
            ("watch", "", "pods", "", "ns", ""),
        ),
        ("GET", "/api/v1/watch/namespaces/ns/pods", {}, ("watch", "", "pods", "", "ns", "")),
        ("GET", "/api/v1/namespaces/ns/pods/web", {}, ("get", "", "pods", "", "ns", "web")),
        ("POST", "/api/v1/namespaces/ns/pods", {}, ("create", "", "pods", "", "ns", "")),
        (
            "PUT",
            "/api/v1/namespaces/ns/pods/web/status",
            {},
            ("update", "", "pods", "status", "ns", "web"),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            {},
            ("patch", "apps", "deployments", "scale", "ns", "d"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/ns/pods",
            {},
            ("deletecollection", "", "pods", "", "ns", ""),
        ),
        ("DELETE", "/api/v1/namespaces/ns/pods/web", {}, ("delete", "", "pods", "", "ns", "web")),
        ("GET", "/api/v1/namespaces/ns", {}, ("get", "", "namespaces", "", "ns", "ns")),
        (
            "PUT",
            "/api/v1/namespaces/ns/finalize",
            {},
            ("update", "", "namespaces", "finalize", "ns", "ns"),
        ),
        (
            "GET",
            "/api/v1/nodes",
            {"fieldSelector": "metadata.name=n1", "watch": "1"},
            ("watch", "", "nodes", "", "", "n1"),
        ),
        (
            "GET",
            "/api/v1/nodes",
            {"fieldSelector": "metadata.name!=n1"},
            ("list", "", "nodes", "", "", ""),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/pods/web/exec",
            {},
            ("create", "", "pods", "exec", "ns", "web"),
        ),
        ("GET", "/api/v1/namespaces/ns/pods/web/log", {}, ("get", "", "pods", "log", "ns", "web")),
    ],
)
def test_resource_requests(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    got = attrs(method, path, **query)
    assert got.resource_request
    assert (
        got.verb,
        got.api_group,
        got.resource,
        got.subresource,
        got.namespace,
        got.name,
    ) == expected


@pytest.mark.parametrize(
    "path", ["/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/version", "/healthz"]
)
def test_discovery_and_other_paths_are_non_resource(path: str) -> None:
    got = attrs("GET", path)
    assert not got.resource_request
    assert (got.verb, got.path) == ("get", path)


class ReadsOnly:
    """Allows reads; no opinion on anything else."""

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb in ("get", "list", "watch"):
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, "not a read"


def test_union_first_opinion_decides_and_nobody_means_deny() -> None:
    streams = attrs("POST", "/api/v1/namespaces/ns/pods/web/exec")
    chain = UnionAuthorizer([PrivilegedGroups(), ReadsOnly()])
    assert chain.authorize(streams) == (Decision.DENY, "not a read")
    assert chain.authorize(attrs("GET", "/api/v1/pods"))[0] is Decision.ALLOW
    admin = request_attributes(UserInfo("admin", ("system:masters",)), "POST", streams.path, {})
    assert chain.authorize(admin)[0] is Decision.ALLOW


def test_forbidden_messages_are_kubernetes_own() -> None:
    err = forbidden(attrs("POST", "/api/v1/namespaces/ns/pods/web/exec"))
    assert err.code == 403 and err.reason == "Forbidden"
    assert err.message == (
        'pods "web" is forbidden: User "alice" cannot create resource "pods/exec" in API '
        'group "" in the namespace "ns"'
    )
    assert err.details == {"name": "web", "kind": "pods"}
    err = forbidden(attrs("GET", "/apis/apps/v1/deployments"), "no RBAC policy matched")
    assert err.message == (
        'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in '
        'API group "apps" at the cluster scope: no RBAC policy matched'
    )
    err = forbidden(attrs("GET", "/metrics"))
    assert err.message == 'forbidden: User "alice" cannot get path "/metrics"'


def test_identities_named_by_convention() -> None:
    assert node_name_of(UserInfo("system:node:n1", ("system:nodes",))) == "n1"
    assert node_name_of(UserInfo("system:node:n1")) is None
    assert service_account_of(UserInfo("system:serviceaccount:ns:sa")) == ("ns", "sa")
    assert service_account_of(UserInfo("system:serviceaccount:ns")) is None
