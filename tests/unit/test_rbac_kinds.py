"""The RBAC kinds' validation and defaults (``pkg/apis/rbac/validation``), and the default
policy's reconciliation at start (``pkg/registry/rbac/reconciliation``)."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.api.auth.bootstrap import reconciled
from setpoint.resources.meta import validate_name
from setpoint.resources.rbac import KINDS

ROLE, CLUSTER_ROLE, ROLE_BINDING, CLUSTER_ROLE_BINDING = KINDS
GROUP = "rbac.authorization.k8s.io"


def messages(errors: list[Any]) -> list[str]:
    return [f"{e.field}: {e.message}" for e in errors]


def test_names_are_path_segments() -> None:
    assert validate_name(CLUSTER_ROLE, "system:node") == []
    assert messages(validate_name(ROLE, "a/b")) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"
    ]
    assert messages(validate_name(ROLE, "..")) == [
        "metadata.name: Invalid value: \"..\": may not be '..'"
    ]


@pytest.mark.parametrize(
    ("rtype", "rule", "expected"),
    [
        (
            ROLE,
            {"apiGroups": [""], "resources": ["pods"]},
            ["rules[0].verbs: Required value: verbs must contain at least one value"],
        ),
        (
            ROLE,
            {"verbs": ["get"], "resources": ["pods"]},
            [
                "rules[0].apiGroups: Required value: resource rules must supply at least one "
                "api group"
            ],
        ),
        (
            ROLE,
            {"verbs": ["get"], "apiGroups": [""]},
            [
                "rules[0].resources: Required value: resource rules must supply at least one "
                "resource"
            ],
        ),
        (
            ROLE,
            {"verbs": ["get"], "nonResourceURLs": ["/x"]},
            [
                "rules[0].nonResourceURLs: Invalid value: [...]: namespaced rules cannot apply to "
                "non-resource URLs"
            ],
        ),
        (CLUSTER_ROLE, {"verbs": ["get"], "nonResourceURLs": ["/x"]}, []),
        (
            CLUSTER_ROLE,
            {"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]},
            [
                "rules[0].nonResourceURLs: Invalid value: [...]: rules cannot apply to both "
                "regular resources and non-resource URLs"
            ],
        ),
    ],
)
def test_rules_are_validated(rtype: Any, rule: dict[str, Any], expected: list[str]) -> None:
    role = {"metadata": {"name": "r"}, "rules": [rule]}
    assert messages(rtype.validator(role, None)) == expected


def test_aggregation_rule_needs_a_selector() -> None:
    role = {"metadata": {"name": "r"}, "aggregationRule": {"clusterRoleSelectors": []}}
    assert messages(CLUSTER_ROLE.validator(role, None)) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector "
        "required if aggregationRule is non-nil"
    ]


def binding(role_kind: str = "ClusterRole", **subject: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": "view"},
        "subjects": [subject] if subject else [],
    }


def test_bindings_default_api_groups() -> None:
    obj = {
        "metadata": {"name": "b"},
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}],
    }
    ROLE_BINDING.defaulter(obj)
    assert obj["roleRef"]["apiGroup"] == GROUP
    assert obj["subjects"][0]["apiGroup"] == GROUP
    assert "apiGroup" not in obj["subjects"][1]


@pytest.mark.parametrize(
    ("rtype", "obj", "expected"),
    [
        (ROLE_BINDING, binding("Role", kind="User", apiGroup=GROUP, name="u"), []),
        (
            CLUSTER_ROLE_BINDING,
            binding("Role"),
            ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'],
        ),
        (
            ROLE_BINDING,
            binding("Pod"),
            ['roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"'],
        ),
        (
            ROLE_BINDING,
            binding(kind="Robot", name="r"),
            [
                'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
                '"User", "Group"'
            ],
        ),
        (
            ROLE_BINDING,
            binding(kind="User", name="u"),
            [
                'subjects[0].apiGroup: Unsupported value: "": supported values: '
                '"rbac.authorization.k8s.io"'
            ],
        ),
        (ROLE_BINDING, binding(kind="ServiceAccount", name="s"), []),
        (
            CLUSTER_ROLE_BINDING,
            binding(kind="ServiceAccount", name="s"),
            ["subjects[0].namespace: Required value"],
        ),
        (
            ROLE_BINDING,
            binding(kind="Group", apiGroup=GROUP, name=""),
            ["subjects[0].name: Required value"],
        ),
    ],
)
def test_bindings_are_validated(rtype: Any, obj: dict[str, Any], expected: list[str]) -> None:
    assert messages(rtype.validator(obj, None)) == expected


def test_role_ref_cannot_change() -> None:
    old = binding()
    new = binding()
    new["roleRef"] = {**new["roleRef"], "name": "edit"}
    assert messages(ROLE_BINDING.validator(new, old)) == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
        'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef'
    ]
    assert ROLE_BINDING.validator(old, old) == []


DEFAULT_ROLE = {
    "metadata": {
        "name": "r",
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    },
    "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
}


def test_reconcile_adds_what_is_missing_and_keeps_additions() -> None:
    extra = {"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]}
    existing = {"metadata": {"name": "r"}, "rules": [extra]}
    out = reconciled(existing, DEFAULT_ROLE)
    assert out is not None
    assert out["rules"] == [extra, *DEFAULT_ROLE["rules"]]
    assert out["metadata"]["labels"] == DEFAULT_ROLE["metadata"]["labels"]
    assert reconciled(out, DEFAULT_ROLE) is None  # nothing more to do


def test_reconcile_leaves_a_role_whose_autoupdate_is_false() -> None:
    existing = {
        "metadata": {
            "name": "r",
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "false"},
        },
        "rules": [],
    }
    assert reconciled(existing, DEFAULT_ROLE) is None


def test_reconcile_adds_default_subjects_to_a_binding() -> None:
    default = {
        **binding(kind="Group", apiGroup=GROUP, name="system:masters"),
        "metadata": {"name": "b"},
    }
    existing = binding(kind="User", apiGroup=GROUP, name="alice")
    out = reconciled(existing, default)
    assert out is not None
    assert [s["name"] for s in out["subjects"]] == ["alice", "system:masters"]


def test_token_auth_file_is_kube_apiservers_csv() -> None:
    from setpoint.api.auth.authn import token_file_users
    from setpoint.api.auth.user import UserInfo

    text = '# users\ntok1,alice,u1,"devs,qa"\n\ntok2,bob,u2\n'
    assert token_file_users(text) == [
        ("tok1", UserInfo("alice", ("devs", "qa"), "u1")),
        ("tok2", UserInfo("bob", (), "u2")),
    ]
    with pytest.raises(ValueError, match="line 1"):
        token_file_users("tok-only\n")
