"""RBAC's rule matching, the index's reading of bindings, and the escalation check, table
by table from upstream's cases (``pkg/apis/rbac/helpers_test.go``, ``rbac_test.go``,
``pkg/registry/rbac/validation/rule_test.go``, ``policy_compact``'s message)."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.api.auth.attributes import RequestAttributes, request_attributes
from setpoint.api.auth.authorizer import Decision
from setpoint.api.auth.bootstrappolicy import cluster_role_bindings, cluster_roles
from setpoint.api.auth.rbac import (
    PolicyIndex,
    RBACAuthorizer,
    Rule,
    StaticPolicy,
    compact_string,
    covers,
    escalation_message,
)
from setpoint.api.auth.user import UserInfo
from setpoint.controllers.clusterroleaggregation import aggregated_rules

BOB = UserInfo("bob", ("devs", "system:authenticated"))


def rule(
    verbs: list[str],
    groups: list[str] | None = None,
    resources: list[str] | None = None,
    names: list[str] | None = None,
    urls: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs}
    if groups is not None:
        out["apiGroups"] = groups
    if resources is not None:
        out["resources"] = resources
    if names is not None:
        out["resourceNames"] = names
    if urls is not None:
        out["nonResourceURLs"] = urls
    return out


def resource(
    verb: str, group: str, res: str, *, sub: str = "", name: str = "", namespace: str = "ns"
) -> RequestAttributes:
    return RequestAttributes(
        BOB,
        verb,
        resource_request=True,
        api_group=group,
        resource=res,
        subresource=sub,
        name=name,
        namespace=namespace,
    )


def path(verb: str, url: str) -> RequestAttributes:
    return RequestAttributes(BOB, verb, path=url)


@pytest.mark.parametrize(
    ("policy", "request_", "allowed"),
    [
        # verbs
        (rule(["*"], ["g1"], ["r1"]), resource("get", "g1", "r1"), True),
        (rule(["get"], ["g1"], ["r1"]), resource("list", "g1", "r1"), False),
        # groups
        (rule(["get"], ["*"], ["r1"]), resource("get", "any", "r1"), True),
        (rule(["get"], ["g1"], ["r1"]), resource("get", "g2", "r1"), False),
        # resources and subresources
        (rule(["get"], ["g1"], ["*"]), resource("get", "g1", "r1", sub="status"), True),
        (rule(["get"], ["g1"], ["r1"]), resource("get", "g1", "r1", sub="status"), False),
        (rule(["get"], ["g1"], ["r1/status"]), resource("get", "g1", "r1", sub="status"), True),
        (rule(["get"], ["g1"], ["r1/status"]), resource("get", "g1", "r1"), False),
        (
            rule(["get"], ["g1"], ["*/scale"]),
            resource("get", "g1", "deployments", sub="scale"),
            True,
        ),
        (rule(["get"], ["g1"], ["*/scale"]), resource("get", "g1", "deployments"), False),
        (rule(["get"], ["g1"], ["*/scale"]), resource("get", "g1", "r1", sub="status"), False),
        # resource names
        (rule(["get"], ["g1"], ["r1"], names=["a"]), resource("get", "g1", "r1", name="a"), True),
        (rule(["get"], ["g1"], ["r1"], names=["a"]), resource("get", "g1", "r1", name="b"), False),
        (rule(["list"], ["g1"], ["r1"], names=["a"]), resource("list", "g1", "r1"), False),
        # non-resource URLs
        (rule(["get"], urls=["*"]), path("get", "/anything"), True),
        (rule(["get"], urls=["/healthz"]), path("get", "/healthz"), True),
        (rule(["get"], urls=["/healthz"]), path("get", "/healthz/etcd"), False),
        (rule(["get"], urls=["/apis/*"]), path("get", "/apis/apps"), True),
        (rule(["get"], urls=["/apis/*"]), path("get", "/apis"), False),
        (rule(["get"], urls=["/apis*"]), path("get", "/apis"), True),
        (rule(["get"], urls=["/metrics"]), path("post", "/metrics"), False),
        # a resource rule never matches a path, nor a URL rule a resource
        (rule(["*"], ["*"], ["*"]), path("get", "/healthz"), False),
        (rule(["*"], urls=["*"]), resource("get", "", "pods"), False),
    ],
)
def test_rule_allows(policy: dict[str, Any], request_: RequestAttributes, allowed: bool) -> None:
    assert Rule.of(policy).allows(request_) is allowed


def _binding(
    kind: str,
    name: str,
    role_kind: str,
    role: str,
    subjects: list[dict[str, str]],
    namespace: str = "",
) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    }


READ_PODS = {"metadata": {"name": "read-pods"}, "rules": [rule(["get", "list"], [""], ["pods"])]}
WRITE_CMS = {
    "metadata": {"name": "write-cms", "namespace": "ns"},
    "rules": [rule(["create"], [""], ["configmaps"])],
}


def _authorizer(**kwargs: Any) -> RBACAuthorizer:
    return RBACAuthorizer(StaticPolicy(PolicyIndex(**kwargs)))


def test_cluster_role_binding_grants_everywhere_to_user_or_group() -> None:
    rbac = _authorizer(
        cluster_roles=[READ_PODS],
        cluster_role_bindings=[
            _binding(
                "ClusterRoleBinding",
                "b",
                "ClusterRole",
                "read-pods",
                [{"kind": "Group", "name": "devs"}],
            )
        ],
    )
    decision, reason = rbac.authorize(resource("list", "", "pods", namespace="other"))
    assert decision is Decision.ALLOW
    assert reason == (
        'RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "read-pods" to Group "devs"'
    )
    assert rbac.authorize(resource("delete", "", "pods"))[0] is Decision.NO_OPINION


def test_role_binding_to_a_cluster_role_grants_only_in_its_namespace() -> None:
    rbac = _authorizer(
        cluster_roles=[READ_PODS],
        role_bindings=[
            _binding(
                "RoleBinding",
                "b",
                "ClusterRole",
                "read-pods",
                [{"kind": "User", "name": "bob"}],
                namespace="ns",
            )
        ],
    )
    assert rbac.authorize(resource("get", "", "pods", namespace="ns"))[0] is Decision.ALLOW
    assert rbac.authorize(resource("get", "", "pods", namespace="x"))[0] is Decision.NO_OPINION
    assert rbac.authorize(resource("list", "", "pods", namespace=""))[0] is Decision.NO_OPINION


def test_role_binding_refers_to_a_role_of_its_own_namespace() -> None:
    rbac = _authorizer(
        roles=[WRITE_CMS],
        role_bindings=[
            _binding(
                "RoleBinding",
                "b",
                "Role",
                "write-cms",
                [{"kind": "User", "name": "bob"}],
                namespace="ns",
            ),
            _binding(
                "RoleBinding",
                "b",
                "Role",
                "write-cms",
                [{"kind": "User", "name": "bob"}],
                namespace="elsewhere",
            ),
        ],
    )
    assert rbac.authorize(resource("create", "", "configmaps"))[0] is Decision.ALLOW
    create_elsewhere = resource("create", "", "configmaps", namespace="elsewhere")
    assert rbac.authorize(create_elsewhere)[0] is Decision.NO_OPINION  # no Role there


@pytest.mark.parametrize(
    ("subject", "binding_namespace", "user", "allowed"),
    [
        (
            {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
            "",
            "system:serviceaccount:ns:sa",
            True,
        ),
        ({"kind": "ServiceAccount", "name": "sa"}, "ns", "system:serviceaccount:ns:sa", True),
        ({"kind": "ServiceAccount", "name": "sa"}, "", "system:serviceaccount:ns:sa", False),
        (
            {"kind": "ServiceAccount", "name": "sa", "namespace": "other"},
            "ns",
            "system:serviceaccount:ns:sa",
            False,
        ),
        (
            {"kind": "User", "name": "system:serviceaccount:ns:sa"},
            "",
            "system:serviceaccount:ns:sa",
            True,
        ),
        ({"kind": "Group", "name": "bob"}, "", "bob", False),
    ],
)
def test_subjects_match_as_upstream(
    subject: dict[str, str], binding_namespace: str, user: str, allowed: bool
) -> None:
    kind = "RoleBinding" if binding_namespace else "ClusterRoleBinding"
    rbac = _authorizer(
        cluster_roles=[READ_PODS],
        role_bindings=[
            _binding(kind, "b", "ClusterRole", "read-pods", [subject], namespace=binding_namespace)
        ]
        if binding_namespace
        else [],
        cluster_role_bindings=[]
        if binding_namespace
        else [_binding(kind, "b", "ClusterRole", "read-pods", [subject])],
    )
    attrs = RequestAttributes(
        UserInfo(user), "get", resource_request=True, resource="pods", namespace="ns"
    )
    assert (rbac.authorize(attrs)[0] is Decision.ALLOW) is allowed


def test_default_policy_gives_masters_everything_and_everyone_discovery() -> None:
    rbac = _authorizer(cluster_roles=cluster_roles(), cluster_role_bindings=cluster_role_bindings())
    admin = UserInfo("root", ("system:masters",))
    anyone = UserInfo("carol", ("system:authenticated",))
    assert rbac.authorize(request_attributes(admin, "DELETE", "/api/v1/nodes/n1", {}))[0] is (
        Decision.ALLOW
    )
    assert rbac.authorize(request_attributes(anyone, "GET", "/apis/apps/v1", {}))[0] is (
        Decision.ALLOW
    )
    review = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert rbac.authorize(request_attributes(anyone, "POST", review, {}))[0] is Decision.ALLOW
    assert rbac.authorize(request_attributes(anyone, "GET", "/api/v1/pods", {}))[0] is (
        Decision.NO_OPINION
    )


def test_aggregated_view_reads_pods_but_not_secrets_and_edit_writes_but_not_roles() -> None:
    roles = {r["metadata"]["name"]: r for r in cluster_roles()}
    for name in ("view", "edit", "admin"):  # view first: edit aggregates it, admin edit
        roles[name] = {**roles[name], "rules": aggregated_rules(roles[name], roles.values())}
    rbac = _authorizer(cluster_roles=list(roles.values()))
    index = rbac.policy.index()
    view, edit = index.cluster_roles["view"], index.cluster_roles["edit"]

    def can(rules: tuple[Rule, ...], attrs: RequestAttributes) -> bool:
        return any(r.allows(attrs) for r in rules)

    assert can(view, resource("list", "", "pods"))
    assert not can(view, resource("get", "", "secrets"))
    assert not can(view, resource("create", "", "pods"))
    assert can(edit, resource("create", "", "pods"))
    assert can(edit, resource("get", "", "secrets"))
    assert can(edit, resource("update", "apps", "deployments", sub="scale"))
    assert not can(edit, resource("list", "rbac.authorization.k8s.io", "roles"))
    assert can(
        index.cluster_roles["admin"],
        resource("create", "rbac.authorization.k8s.io", "rolebindings"),
    )


# ------------------------------------------------------------------- escalation (Covers)


@pytest.mark.parametrize(
    ("owned", "wanted", "missing"),
    [
        # exact and star
        ([rule(["*"], ["v1"], ["builds"])], [rule(["get"], ["v1"], ["builds"])], []),
        ([rule(["get"], ["*"], ["*"])], [rule(["get"], ["apps"], ["deployments"])], []),
        (
            [rule(["get", "list"], ["v1"], ["builds"])],
            [rule(["get", "list", "watch"], ["v1"], ["builds"])],
            [rule(["watch"], ["v1"], ["builds"])],
        ),
        # subresources: */scale covers any scale, but not the resource itself
        (
            [rule(["get"], ["apps"], ["*/scale"])],
            [rule(["get"], ["apps"], ["deployments/scale"])],
            [],
        ),
        (
            [rule(["get"], ["apps"], ["*/scale"])],
            [rule(["get"], ["apps"], ["deployments"])],
            [rule(["get"], ["apps"], ["deployments"])],
        ),
        # resource names
        ([rule(["get"], [""], ["pods"])], [rule(["get"], [""], ["pods"], names=["a"])], []),
        (
            [rule(["get"], [""], ["pods"], names=["a", "b"])],
            [rule(["get"], [""], ["pods"], names=["a"])],
            [],
        ),
        (
            [rule(["get"], [""], ["pods"], names=["a"])],
            [rule(["get"], [""], ["pods"])],
            [rule(["get"], [""], ["pods"])],
        ),
        # non-resource URLs
        ([rule(["get"], urls=["/apis/*"])], [rule(["get"], urls=["/apis/foo"])], []),
        (
            [rule(["get"], urls=["/apis/*"])],
            [rule(["get"], urls=["/api"])],
            [rule(["get"], urls=["/api"])],
        ),
        ([rule(["*"], urls=["*"])], [rule(["get", "post"], urls=["/x", "/y"])], []),
        # split across several owned rules
        (
            [rule(["get"], [""], ["pods"]), rule(["list"], [""], ["pods"])],
            [rule(["get", "list"], [""], ["pods"])],
            [],
        ),
    ],
)
def test_covers(
    owned: list[dict[str, Any]], wanted: list[dict[str, Any]], missing: list[dict[str, Any]]
) -> None:
    assert covers([Rule.of(r) for r in owned], wanted) == missing


def test_escalation_message_is_upstreams() -> None:
    missing = [rule(["create"], [""], ["pods"]), rule(["get"], urls=["/metrics"])]
    assert compact_string(missing[0]) == '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}'
    assert escalation_message(UserInfo("bob", ("devs", "system:authenticated")), missing) == (
        'user "bob" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC '
        "permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}\n'
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}'
    )


def test_aggregation_collects_selected_roles_in_name_order_without_duplicates() -> None:
    selector = {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}
    target = {"metadata": {"name": "target", "labels": {"agg": "yes"}}, "aggregationRule": selector}
    b = {"metadata": {"name": "b", "labels": {"agg": "yes"}}, "rules": [rule(["get"], [""], ["b"])]}
    a = {
        "metadata": {"name": "a", "labels": {"agg": "yes"}},
        "rules": [rule(["get"], [""], ["a"]), rule(["get"], [""], ["b"])],
    }
    other = {"metadata": {"name": "c"}, "rules": [rule(["get"], [""], ["c"])]}
    assert aggregated_rules(target, [target, b, other, a]) == [
        rule(["get"], [""], ["a"]),
        rule(["get"], [""], ["b"]),
    ]
