"""The roles and bindings every setpoint cluster starts with, as kube-apiserver's
``plugin/pkg/auth/authorizer/rbac/bootstrappolicy`` declares them: data, reconciled into the
store at start by :mod:`setpoint.api.auth.bootstrap`.

* ``cluster-admin`` (everything; bound to ``system:masters``), and the user-facing ``admin``,
  ``edit`` and ``view``: aggregated ClusterRoles whose rules the clusterrole-aggregation
  controller collects from every ClusterRole labelled
  ``rbac.authorization.k8s.io/aggregate-to-<role>: "true"`` — the ``system:aggregate-to-*``
  roles here, and whatever a user adds. As upstream, ``view`` reads no Secrets and no roles;
  ``edit`` writes workloads and Secrets but not roles or bindings; ``admin`` also manages
  roles and bindings in a namespace.
* What every identity may do: ``system:discovery`` and ``system:basic-user`` (bound to
  ``system:authenticated``), ``system:public-info-viewer`` (also to
  ``system:unauthenticated``), as upstream.
* setpoint's own components. The controller manager runs every controller in one process
  as ``system:kube-controller-manager``; upstream gives each controller its own service
  account and role, and the union of those roles is ``system:setpoint:controllers`` (the
  garbage collector and namespace controller need to read and delete everything, so the
  union is broad, as theirs are). The scheduler in that process binds and writes pod status
  as ``system:kube-scheduler``, which holds upstream's ``system:kube-scheduler`` role. Node
  agents (``system:nodes``) hold, since the agent is also the node proxy,
  ``system:node-proxier``; ``system:node`` is bound to nobody, as
  upstream: the Node authorizer (:mod:`setpoint.api.auth.node`) decides for nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from setpoint.api.auth.user import (
    AUTHENTICATED,
    CONTROLLER_MANAGER_USER,
    NODES_GROUP,
    SCHEDULER_USER,
    SYSTEM_MASTERS,
    UNAUTHENTICATED,
)
from setpoint.resources.rbac import (
    AUTOUPDATE_ANNOTATION,
    BOOTSTRAPPING_LABEL,
    CLUSTER_ROLE,
    GROUP,
    GROUP_KIND,
    USER,
)

Obj = dict[str, Any]

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = (*READ, *WRITE)
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
KUBE_PROXY_USER = "system:kube-proxy"
MONITORING_GROUP = "system:monitoring"
CONTROLLERS_ROLE = "system:setpoint:controllers"


def rule(
    verbs: Sequence[str],
    groups: Sequence[str] = (),
    resources: Sequence[str] = (),
    *,
    names: Sequence[str] = (),
    urls: Sequence[str] = (),
) -> Obj:
    """One PolicyRule (``rbacv1helpers.NewRule(...).Groups(...).Resources(...)``)."""
    out: Obj = {"verbs": list(verbs)}
    if urls:
        out["nonResourceURLs"] = list(urls)
        return out
    out["apiGroups"] = list(groups)
    out["resources"] = list(resources)
    if names:
        out["resourceNames"] = list(names)
    return out


def _events() -> Obj:
    return rule(("create", "update", "patch"), ("", "events.k8s.io"), ("events",))


def _cluster_role(
    name: str,
    rules: Sequence[Obj] = (),
    *,
    labels: dict[str, str] | None = None,
    aggregate_from: str = "",
) -> Obj:
    role: Obj = {
        "apiVersion": f"{GROUP}/v1",
        "kind": CLUSTER_ROLE,
        "metadata": {
            "name": name,
            "labels": {**BOOTSTRAPPING_LABEL, **(labels or {})},
            "annotations": {AUTOUPDATE_ANNOTATION: "true"},
        },
    }
    if rules:  # an aggregated role's rules are the aggregation controller's to fill
        role["rules"] = list(rules)
    if aggregate_from:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {f"{AGGREGATE_TO}{aggregate_from}": "true"}}]
        }
    return role


def _aggregate_to(*roles: str) -> dict[str, str]:
    return {f"{AGGREGATE_TO}{role}": "true" for role in roles}


def _binding(name: str, role: str, *, users: Sequence[str] = (), groups: Sequence[str] = ()) -> Obj:
    subjects = [{"kind": USER, "apiGroup": GROUP, "name": u} for u in users]
    subjects += [{"kind": GROUP_KIND, "apiGroup": GROUP, "name": g} for g in groups]
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": dict(BOOTSTRAPPING_LABEL),
            "annotations": {AUTOUPDATE_ANNOTATION: "true"},
        },
        "roleRef": {"apiGroup": GROUP, "kind": CLUSTER_ROLE, "name": role},
        "subjects": subjects,
    }


def _view_rules() -> list[Obj]:
    return [
        rule(
            READ,
            [""],
            [
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            [""],
            [
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        # reading namespaces at namespace scope reads *this* namespace
        rule(READ, [""], ["namespaces"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(
            READ,
            ["apps"],
            [
                "controllerrevisions",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
            ],
        ),
        rule(
            READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]
        ),
        rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
        rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(
            READ,
            ["networking.k8s.io"],
            ["ingresses", "ingresses/status", "networkpolicies"],
        ),
    ]


def _edit_rules() -> list[Obj]:
    return [
        rule(
            WRITE,
            [""],
            ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
        ),
        rule(("create",), [""], ["pods/eviction"]),
        rule(
            WRITE,
            [""],
            [
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(("create",), [""], ["serviceaccounts/token"]),
        rule(
            WRITE,
            ["apps"],
            [
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
        rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
        rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
        rule(WRITE, ["discovery.k8s.io"], ["endpointslices"]),
        rule(
            READ,
            [""],
            [
                "secrets",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "services/proxy",
            ],
        ),
        rule(("impersonate",), [""], ["serviceaccounts"]),
    ]


def _admin_rules() -> list[Obj]:
    return [
        rule(("create",), ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
        rule(READ_WRITE, [GROUP], ["rolebindings", "roles"]),
    ]


def _node_rules() -> list[Obj]:
    """``NodeRules()``: what a node's kubelet needs (the Node authorizer narrows it to the
    node's own objects)."""
    return [
        rule(("create",), ["authentication.k8s.io"], ["tokenreviews"]),
        rule(
            ("create",),
            ["authorization.k8s.io"],
            ["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, [""], ["services"]),
        rule(("create", "get", "list", "watch"), [""], ["nodes"]),
        rule(("update", "patch"), [""], ["nodes/status"]),
        rule(("update", "patch"), [""], ["nodes"]),
        rule(("create", "update", "patch"), [""], ["events"]),
        rule(READ, [""], ["pods"]),
        rule(("create", "delete"), [""], ["pods"]),
        rule(("update", "patch"), [""], ["pods/status"]),
        rule(("create",), [""], ["pods/eviction"]),
        rule(READ, [""], ["secrets", "configmaps"]),
        rule(("get",), [""], ["persistentvolumeclaims", "persistentvolumes"]),
        rule(("get",), [""], ["endpoints"]),
        rule(("get", "create", "update", "patch", "delete"), ["coordination.k8s.io"], ["leases"]),
        rule(("create",), [""], ["serviceaccounts/token"]),
        rule(("get", "update", "patch"), [""], ["persistentvolumeclaims/status"]),
    ]


def _controllers_rules() -> list[Obj]:
    """The union of upstream's per-controller roles (``controller_policy.go``) for the
    controllers setpoint's controller manager runs (not the scheduler's: it has its own)."""
    return [
        # garbage collector and namespace controller: every resource
        rule(
            ("get", "list", "watch", "patch", "update", "delete", "deletecollection"), ["*"], ["*"]
        ),
        rule(
            ("create",),
            [""],
            [
                "pods",
                "pods/eviction",
                "endpoints",
                "endpoints/restricted",
                "persistentvolumeclaims",
                "events",
                "serviceaccounts",
                "configmaps",  # root-ca-cert-publisher: kube-root-ca.crt in every namespace
            ],
        ),
        rule(("create",), ["apps"], ["replicasets", "controllerrevisions"]),
        rule(("create",), ["batch"], ["jobs"]),
        rule(("create",), ["discovery.k8s.io"], ["endpointslices"]),
        rule(("create",), ["events.k8s.io"], ["events"]),
        rule(("create",), ["coordination.k8s.io"], ["leases"]),
        rule(("create",), ["authorization.k8s.io"], ["subjectaccessreviews"]),
        rule(("create",), ["authentication.k8s.io"], ["tokenreviews"]),
        # the clusterrole-aggregation controller writes rules it may not hold itself
        rule(("escalate",), [GROUP], ["clusterroles"]),
    ]


def cluster_roles() -> list[Obj]:
    """``ClusterRoles()``."""
    return [
        _cluster_role("cluster-admin", [rule(("*",), ["*"], ["*"]), rule(("*",), urls=["*"])]),
        _cluster_role(
            "system:discovery",
            [
                rule(
                    ("get",),
                    urls=[
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/openapi",
                        "/openapi/*",
                        "/version",
                        "/version/",
                    ],
                )
            ],
        ),
        _cluster_role(
            "system:basic-user",
            [
                rule(
                    ("create",),
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(("create",), ["authentication.k8s.io"], ["selfsubjectreviews"]),
            ],
        ),
        _cluster_role(
            "system:public-info-viewer",
            [rule(("get",), urls=["/healthz", "/livez", "/readyz", "/version", "/version/"])],
        ),
        _cluster_role(
            "system:monitoring",
            [
                rule(
                    ("get",),
                    urls=[
                        "/metrics",
                        "/metrics/slis",
                        "/livez",
                        "/readyz",
                        "/healthz",
                        "/livez/*",
                        "/readyz/*",
                        "/healthz/*",
                    ],
                )
            ],
        ),
        _cluster_role("admin", aggregate_from="admin"),
        _cluster_role("edit", labels=_aggregate_to("admin"), aggregate_from="edit"),
        _cluster_role("view", labels=_aggregate_to("edit"), aggregate_from="view"),
        _cluster_role("system:aggregate-to-admin", _admin_rules(), labels=_aggregate_to("admin")),
        _cluster_role("system:aggregate-to-edit", _edit_rules(), labels=_aggregate_to("edit")),
        _cluster_role("system:aggregate-to-view", _view_rules(), labels=_aggregate_to("view")),
        _cluster_role(
            "system:auth-delegator",
            [
                rule(("create",), ["authentication.k8s.io"], ["tokenreviews"]),
                rule(("create",), ["authorization.k8s.io"], ["subjectaccessreviews"]),
            ],
        ),
        _cluster_role("system:node", _node_rules()),
        _cluster_role(
            "system:node-proxier",
            [
                rule(("list", "watch"), [""], ["services", "endpoints"]),
                rule(("get", "list", "watch"), [""], ["nodes"]),
                rule(("list", "watch"), ["discovery.k8s.io"], ["endpointslices"]),
                _events(),
            ],
        ),
        _cluster_role(
            "system:kube-controller-manager",
            [
                _events(),
                rule(("create",), ["coordination.k8s.io"], ["leases"]),
                rule(
                    ("get", "update"),
                    ["coordination.k8s.io"],
                    ["leases"],
                    names=["kube-controller-manager", "setpoint-controller-manager"],
                ),
                rule(("create",), [""], ["secrets", "serviceaccounts"]),
                rule(("delete",), [""], ["secrets"]),
                rule(("get",), [""], ["namespaces", "secrets", "serviceaccounts"]),
                rule(("update",), [""], ["secrets", "serviceaccounts"]),
                rule(("create",), ["authentication.k8s.io"], ["tokenreviews"]),
                rule(("create",), ["authorization.k8s.io"], ["subjectaccessreviews"]),
                rule(("list", "watch"), ["*"], ["*"]),
                rule(("create",), [""], ["serviceaccounts/token"]),
            ],
        ),
        _cluster_role(
            "system:kube-scheduler",
            [
                _events(),
                rule(("create",), ["coordination.k8s.io"], ["leases"]),
                rule(
                    ("get", "update"), ["coordination.k8s.io"], ["leases"], names=["kube-scheduler"]
                ),
                rule(("delete", "get", "list", "watch"), [""], ["pods"]),
                rule(("create",), [""], ["pods/binding", "bindings"]),
                rule(("patch", "update"), [""], ["pods/status"]),
                rule(
                    READ,
                    [""],
                    [
                        "nodes",
                        "namespaces",
                        "services",
                        "replicationcontrollers",
                        "persistentvolumeclaims",
                        "persistentvolumes",
                        "configmaps",
                    ],
                ),
                rule(READ, ["apps"], ["replicasets", "statefulsets"]),
                rule(READ, ["policy"], ["poddisruptionbudgets"]),
                rule(("create",), ["authentication.k8s.io"], ["tokenreviews"]),
                rule(("create",), ["authorization.k8s.io"], ["subjectaccessreviews"]),
            ],
        ),
        _cluster_role(CONTROLLERS_ROLE, _controllers_rules()),
    ]


def cluster_role_bindings() -> list[Obj]:
    """``ClusterRoleBindings()``, and setpoint's own components' bindings."""
    return [
        _binding("cluster-admin", "cluster-admin", groups=[SYSTEM_MASTERS]),
        _binding("system:discovery", "system:discovery", groups=[AUTHENTICATED]),
        _binding("system:basic-user", "system:basic-user", groups=[AUTHENTICATED]),
        _binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            groups=[AUTHENTICATED, UNAUTHENTICATED],
        ),
        _binding("system:monitoring", "system:monitoring", groups=[MONITORING_GROUP]),
        # bound to nobody, as upstream since 1.8: the Node authorizer decides for nodes (a
        # system:nodes subject here would let every node read every Secret)
        _binding("system:node", "system:node"),
        _binding("system:node-proxier", "system:node-proxier", users=[KUBE_PROXY_USER]),
        _binding("system:setpoint:node-proxier", "system:node-proxier", groups=[NODES_GROUP]),
        _binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            users=[CONTROLLER_MANAGER_USER],
        ),
        _binding("system:kube-scheduler", "system:kube-scheduler", users=[SCHEDULER_USER]),
        _binding(CONTROLLERS_ROLE, CONTROLLERS_ROLE, users=[CONTROLLER_MANAGER_USER]),
    ]
