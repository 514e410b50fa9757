"""The rbac.authorization.k8s.io group's four kinds, declared whole (``KINDS``): Role,
ClusterRole, RoleBinding and ClusterRoleBinding.

A Role (in a namespace) or ClusterRole (cluster-wide) is a list of rules, each granting some
verbs on some resources of some API groups (or, for a ClusterRole, on non-resource URLs such
as ``/healthz``); a RoleBinding or ClusterRoleBinding grants one role (``roleRef``) to
subjects (users, groups, service accounts). A RoleBinding may name a ClusterRole: it then
grants that role's rules inside its own namespace only. The authorizer that reads them is
:mod:`setpoint.api.auth.rbac`; a ClusterRole with an ``aggregationRule`` has its rules filled
in by the clusterrole-aggregation controller.

Validation is Kubernetes' ``pkg/apis/rbac/validation``: names are path segments (so
``system:node`` is a fine name), every rule has verbs, a resource rule has API groups and
resources, a non-resource rule has neither and lives only in a ClusterRole, a roleRef points
into this group at a Role or ClusterRole (a ClusterRoleBinding only at a ClusterRole) and can
never change, and a subject is a User, Group or ServiceAccount (the latter with a namespace in
a ClusterRoleBinding). Defaults are v1's: a roleRef's and a user's or group's ``apiGroup`` is
this group.
"""

from __future__ import annotations

from setpoint.meta.validation import dns1123_subdomain_errors, path_segment_name_errors
from setpoint.resources.checks import label_selector_errors
from setpoint.resources.fielderrors import (
    FieldError,
    invalid,
    invalid_rendered,
    not_supported,
    required,
)
from setpoint.resources.printers.rbac import BINDING_PRINTER, ROLE_PRINTER
from setpoint.resources.registry import Obj, ResourceType

GROUP = "rbac.authorization.k8s.io"
ROLE = "Role"
CLUSTER_ROLE = "ClusterRole"
USER = "User"
GROUP_KIND = "Group"
SERVICE_ACCOUNT = "ServiceAccount"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _rules_errors(obj: Obj, *, namespaced: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or []):
        errors += policy_rule_errors(rule, namespaced=namespaced, path=f"rules[{i}]")
    return errors


def policy_rule_errors(rule: Obj, *, namespaced: bool, path: str) -> list[FieldError]:
    """``ValidatePolicyRule``."""
    errors: list[FieldError] = []
    if not rule.get("verbs"):
        errors.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            detail = "namespaced rules cannot apply to non-resource URLs"
            errors.append(invalid(f"{path}.nonResourceURLs", urls, detail))
        if rule.get("apiGroups") or rule.get("resources"):
            detail = "rules cannot apply to both regular resources and non-resource URLs"
            errors.append(invalid(f"{path}.nonResourceURLs", urls, detail))
        return errors
    if not rule.get("apiGroups"):
        detail = "resource rules must supply at least one api group"
        errors.append(required(f"{path}.apiGroups", detail))
    if not rule.get("resources"):
        errors.append(
            required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    return errors


def _validate_role(role: Obj, old: Obj | None) -> list[FieldError]:
    return _rules_errors(role, namespaced=True)


def _validate_cluster_role(role: Obj, old: Obj | None) -> list[FieldError]:
    errors = _rules_errors(role, namespaced=False)
    aggregation = role.get("aggregationRule")
    if aggregation is not None:
        selectors = aggregation.get("clusterRoleSelectors") or []
        if not selectors:
            detail = "at least one clusterRoleSelector required if aggregationRule is non-nil"
            errors.append(required("aggregationRule.clusterRoleSelectors", detail))
        for i, selector in enumerate(selectors):
            errors += label_selector_errors(selector, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errors


def _role_ref_text(ref: Obj) -> str:
    """``%#v`` of the internal ``rbac.RoleRef``, as the immutability error prints it."""
    return (
        f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup") or ""}", Kind:"{ref.get("kind") or ""}", '
        f'Name:"{ref.get("name") or ""}"}}'
    )


def _binding_errors(binding: Obj, old: Obj | None, *, namespaced: bool) -> list[FieldError]:
    """``ValidateRoleBinding`` / ``ValidateClusterRoleBinding`` and their updates."""
    errors: list[FieldError] = []
    ref = binding.get("roleRef") or {}
    if ref.get("apiGroup") != GROUP:
        errors.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
    kinds = [ROLE, CLUSTER_ROLE] if namespaced else [CLUSTER_ROLE]
    if ref.get("kind") not in kinds:
        errors.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    name = ref.get("name") or ""
    if not name:
        errors.append(required("roleRef.name", ""))
    else:
        errors += [invalid("roleRef.name", name, m) for m in path_segment_name_errors(name)]
    for i, subject in enumerate(binding.get("subjects") or []):
        errors += subject_errors(subject, namespaced=namespaced, path=f"subjects[{i}]")
    if old is not None and (old.get("roleRef") or {}) != ref:
        errors.append(invalid_rendered("roleRef", _role_ref_text(ref), "cannot change roleRef"))
    return errors


def subject_errors(subject: Obj, *, namespaced: bool, path: str) -> list[FieldError]:
    """``ValidateRoleBindingSubject``."""
    errors: list[FieldError] = []
    name = subject.get("name") or ""
    if not name:
        errors.append(required(f"{path}.name", ""))
    kind, group = subject.get("kind") or "", subject.get("apiGroup") or ""
    if kind == SERVICE_ACCOUNT:
        if name:
            errors += [invalid(f"{path}.name", name, m) for m in dns1123_subdomain_errors(name)]
        if group:
            errors.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            errors.append(required(f"{path}.namespace", ""))
    elif kind in (USER, GROUP_KIND):
        if group != GROUP:
            errors.append(not_supported(f"{path}.apiGroup", group, [GROUP]))
    else:
        errors.append(not_supported(f"{path}.kind", kind, [SERVICE_ACCOUNT, USER, GROUP_KIND]))
    return errors


def _validate_role_binding(binding: Obj, old: Obj | None) -> list[FieldError]:
    return _binding_errors(binding, old, namespaced=True)


def _validate_cluster_role_binding(binding: Obj, old: Obj | None) -> list[FieldError]:
    return _binding_errors(binding, old, namespaced=False)


def _default_binding(binding: Obj) -> None:
    """v1's defaults: ``roleRef.apiGroup`` and a user's or group's ``apiGroup`` are this
    group (``SetDefaults_RoleRef``, ``SetDefaults_Subject``)."""
    ref = binding.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in binding.get("subjects") or []:
        if (
            isinstance(subject, dict)
            and not subject.get("apiGroup")
            and subject.get("kind") in (USER, GROUP_KIND)
        ):
            subject["apiGroup"] = GROUP


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group=GROUP,
        version="v1",
        kind="Role",
        plural="roles",
        singular="role",
        namespaced=True,
        definition="io.k8s.api.rbac.v1.Role",
        printer=ROLE_PRINTER,
        protobuf="k8s.io.api.rbac.v1.Role",
        validator=_validate_role,
    ),
    ResourceType(
        group=GROUP,
        version="v1",
        kind="ClusterRole",
        plural="clusterroles",
        singular="clusterrole",
        namespaced=False,
        definition="io.k8s.api.rbac.v1.ClusterRole",
        printer=ROLE_PRINTER,
        protobuf="k8s.io.api.rbac.v1.ClusterRole",
        validator=_validate_cluster_role,
    ),
    ResourceType(
        group=GROUP,
        version="v1",
        kind="RoleBinding",
        plural="rolebindings",
        singular="rolebinding",
        namespaced=True,
        definition="io.k8s.api.rbac.v1.RoleBinding",
        printer=BINDING_PRINTER,
        protobuf="k8s.io.api.rbac.v1.RoleBinding",
        defaulter=_default_binding,
        validator=_validate_role_binding,
    ),
    ResourceType(
        group=GROUP,
        version="v1",
        kind="ClusterRoleBinding",
        plural="clusterrolebindings",
        singular="clusterrolebinding",
        namespaced=False,
        definition="io.k8s.api.rbac.v1.ClusterRoleBinding",
        printer=BINDING_PRINTER,
        protobuf="k8s.io.api.rbac.v1.ClusterRoleBinding",
        defaulter=_default_binding,
        validator=_validate_cluster_role_binding,
    ),
)
