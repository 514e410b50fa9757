"""Audit policies evaluated as kube-apiserver's policy checker does (first matching rule,
users, groups, verbs, resources with subresources and names, namespaces, non-resource URL
prefixes, omitStages), the cap that keeps Secret data out, and the default policy."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.api.audit import (
    DEFAULT_POLICY,
    Level,
    Policy,
    PolicyError,
    capped,
    micro_time,
)
from setpoint.api.auth.attributes import request_attributes
from setpoint.api.auth.user import UserInfo

ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))
NODE = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))


def policy(*rules: dict[str, Any], **extra: Any) -> Policy:
    return Policy.parse(
        {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **extra}
    )


def level(p: Policy, method: str, path: str, user: UserInfo = ADMIN, **query: str) -> str:
    return p.level_of(request_attributes(user, method, path, query))[0].text


def test_first_matching_rule_wins() -> None:
    p = policy(
        {"level": "None", "users": ["system:kube-proxy"]},
        {"level": "None", "userGroups": ["system:nodes"], "verbs": ["get", "watch"]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["pods/log"]}]},
        {"level": "Request", "resources": [{"group": "apps", "resources": ["*/scale"]}]},
        {
            "level": "Metadata",
            "resources": [{"group": "", "resources": ["configmaps"], "resourceNames": ["special"]}],
        },
        {"level": "None", "namespaces": ["kube-system"]},
        {"level": "None", "nonResourceURLs": ["/healthz*", "/version"]},
        {"level": "Request", "verbs": ["create"]},
        {"level": "Metadata"},
    )
    assert level(p, "GET", "/api/v1/nodes/n1", NODE) == "None"
    assert level(p, "PATCH", "/api/v1/nodes/n1/status", NODE) == "Metadata"
    assert level(p, "GET", "/api/v1/namespaces/d/pods/p/log") == "RequestResponse"
    assert level(p, "PUT", "/apis/apps/v1/namespaces/d/deployments/x/scale") == "Request"
    assert level(p, "GET", "/api/v1/namespaces/d/configmaps/special") == "Metadata"
    assert level(p, "POST", "/api/v1/namespaces/kube-system/configmaps") == "None"
    assert level(p, "POST", "/api/v1/namespaces/d/configmaps") == "Request"
    assert level(p, "GET", "/healthz/etcd") == "None"
    assert level(p, "GET", "/version") == "None"
    assert level(p, "GET", "/metrics") == "Metadata"


def test_resource_rules_never_match_non_resource_urls_and_back() -> None:
    p = policy(
        {"level": "RequestResponse", "resources": [{"group": ""}]},
        {"level": "Request", "nonResourceURLs": ["*"]},
    )
    assert level(p, "GET", "/api/v1/pods") == "RequestResponse"
    assert level(p, "GET", "/apis/apps/v1/deployments") == "None"
    assert level(p, "GET", "/openapi/v2") == "Request"


def test_omit_stages_of_the_policy_and_the_rule_add_up() -> None:
    p = policy(
        {"level": "Metadata", "omitStages": ["ResponseStarted"]},
        omitStages=["RequestReceived"],
    )
    _, omit = p.level_of(request_attributes(ADMIN, "GET", "/api/v1/pods", {}))
    assert omit == {"RequestReceived", "ResponseStarted"}


def test_secret_bearing_requests_are_capped_at_metadata() -> None:
    def at(method: str, path: str) -> Level:
        return capped(Level.REQUEST_RESPONSE, request_attributes(ADMIN, method, path, {}))

    assert at("GET", "/api/v1/namespaces/d/secrets/s") is Level.METADATA
    assert at("GET", "/api/v1/secrets") is Level.METADATA
    assert at("POST", "/api/v1/namespaces/d/serviceaccounts/sa/token") is Level.METADATA
    assert at("POST", "/apis/authentication.k8s.io/v1/tokenreviews") is Level.METADATA
    assert at("GET", "/api/v1/namespaces/d/serviceaccounts/sa") is Level.REQUEST_RESPONSE
    assert at("GET", "/api/v1/namespaces/d/configmaps") is Level.REQUEST_RESPONSE
    assert capped(Level.NONE, request_attributes(ADMIN, "GET", "/api/v1/secrets", {})) is Level.NONE


def test_the_default_policy_logs_changes_and_refusals() -> None:
    for method, path in (
        ("POST", "/api/v1/namespaces/d/configmaps"),
        ("PUT", "/api/v1/namespaces/d/configmaps/c"),
        ("PATCH", "/api/v1/namespaces/d/configmaps/c"),
        ("DELETE", "/api/v1/namespaces/d/configmaps/c"),
        ("DELETE", "/api/v1/namespaces/d/configmaps"),
    ):
        assert level(DEFAULT_POLICY, method, path) == "Metadata"
    attrs = request_attributes(ADMIN, "GET", "/api/v1/pods", {"watch": "true"})
    assert DEFAULT_POLICY.level_of(attrs)[0] is Level.NONE
    assert DEFAULT_POLICY.level_of_refused(attrs, 403) is not None
    assert DEFAULT_POLICY.level_of_refused(attrs, 404) is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"kind": "Policy", "apiVersion": "audit.k8s.io/v1beta1", "rules": []}, "want kind Policy"),
        ({"kind": "Policy", "apiVersion": "audit.k8s.io/v1", "rules": []}, "at least one rule"),
        ({"kind": "Policy", "apiVersion": "audit.k8s.io/v1", "rules": [{}]}, "level is required"),
        (
            {"kind": "Policy", "apiVersion": "audit.k8s.io/v1", "rules": [{"level": "Everything"}]},
            "unknown level 'Everything'",
        ),
        (
            {
                "kind": "Policy",
                "apiVersion": "audit.k8s.io/v1",
                "rules": [{"level": "None", "omitStages": ["Sometimes"]}],
            },
            "unknown stage 'Sometimes'",
        ),
        (
            {
                "kind": "Policy",
                "apiVersion": "audit.k8s.io/v1",
                "rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}],
            },
            "both regular and non-resource URLs",
        ),
    ],
)
def test_bad_policies_say_what_is_wrong(doc: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.parse(doc)


def test_micro_time_is_rfc3339_with_microseconds() -> None:
    assert micro_time(0.5) == "1970-01-01T00:00:00.500000Z"
