"""ResourceQuota: validation, the printer's columns, how objects count
(``pkg/quota/v1/evaluator/core``) and the admission check (``CheckRequest``) with upstream's
messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from setpoint.api.admission_plugins.resourcequota import QuotaRefused, check_request
from setpoint.meta.quantity import canonical
from setpoint.resources import quotausage as qu
from setpoint.resources.quota import quota_cells
from tests.kinds import problems

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers), **spec}}


def container(name: str, requests: Any = None, limits: Any = None) -> dict[str, Any]:
    return {"name": name, "resources": {"requests": requests or {}, "limits": limits or {}}}


def quota(
    name: str, hard: dict[str, str], used: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"hard": hard, **spec},
        "status": {"hard": hard, "used": used if used is not None else dict.fromkeys(hard, "0")},
    }


def rendered(usage: qu.ResourceList) -> dict[str, str]:
    return {name: canonical(q) for name, q in usage.items()}


# ---------------------------------------------------------------------------- validation


def test_quota_resource_names_must_be_standard_or_qualified() -> None:
    spec = {"hard": {"pods": "2", "bogus": "1", "count/deployments.apps": "3", "cpu": "-1"}}
    assert problems("", "ResourceQuota", {"spec": spec}) == [
        'spec.hard[bogus]: Invalid value: "bogus": must be a standard resource for quota',
        'spec.hard[cpu]: Invalid value: "-1": must be greater than or equal to 0',
    ]


def test_object_counts_are_integers() -> None:
    assert problems("", "ResourceQuota", {"spec": {"hard": {"pods": "1500m"}}}) == [
        'spec.hard[pods]: Invalid value: "1500m": must be an integer'
    ]


def test_scopes_must_fit_the_resources_and_each_other() -> None:
    spec = {"hard": {"cpu": "1"}, "scopes": ["BestEffort", "NotBestEffort"]}
    assert problems("", "ResourceQuota", {"spec": spec}) == [
        'spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort"}: '
        "unsupported scope applied to resource",
        'spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", "NotBestEffort"}: '
        "conflicting scopes",
    ]


def test_printer_splits_requests_from_limits_sorted() -> None:
    q = quota(
        "q",
        {"pods": "4", "limits.cpu": "2", "requests.memory": "1Gi"},
        {"pods": "1", "limits.cpu": "500m", "requests.memory": "128Mi"},
    )
    q["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert quota_cells(q, NOW)[2:] == [
        "pods: 1/4, requests.memory: 128Mi/1Gi",
        "limits.cpu: 500m/2",
    ]


# ------------------------------------------------------------------------------- usage


def test_pod_usage_counts_requests_limits_and_the_pod() -> None:
    p = pod(
        container("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m", "memory": "64Mi"}),
        container("b", {"cpu": "300m"}, {"cpu": "300m"}),
    )
    assert rendered(qu.usage("", "pods", p, NOW)) == {
        "count/pods": "1",
        "pods": "1",
        "cpu": "400m",
        "requests.cpu": "400m",
        "limits.cpu": "500m",
        "memory": "64Mi",
        "requests.memory": "64Mi",
        "limits.memory": "64Mi",
    }


def test_init_containers_count_at_their_maximum() -> None:
    p = pod(
        container("a", {"cpu": "100m"}),
        initContainers=[container("i", {"cpu": "700m"}), container("j", {"cpu": "50m"})],
    )
    assert canonical(qu.usage("", "pods", p, NOW)["requests.cpu"]) == "700m"


def test_finished_pods_only_count_as_objects() -> None:
    p = pod(container("a", {"cpu": "1"}))
    p["status"] = {"phase": "Succeeded"}
    assert rendered(qu.usage("", "pods", p, NOW)) == {"count/pods": "1"}


def test_pods_past_their_deletion_grace_period_do_not_count() -> None:
    p = pod(container("a", {"cpu": "1"}))
    p["metadata"].update(deletionTimestamp="2025-12-31T23:59:00Z", deletionGracePeriodSeconds=30)
    assert "pods" not in qu.usage("", "pods", p, NOW)
    p["metadata"]["deletionGracePeriodSeconds"] = 3600
    assert "pods" in qu.usage("", "pods", p, NOW)


def test_services_count_node_ports_and_load_balancers() -> None:
    svc = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert rendered(qu.usage("", "services", svc, NOW)) == {
        "count/services": "1",
        "services": "1",
        "services.loadbalancers": "1",
        "services.nodeports": "2",
    }


def test_other_kinds_count_as_objects_of_their_group() -> None:
    assert rendered(qu.usage("apps", "deployments", {}, NOW)) == {"count/deployments.apps": "1"}
    assert rendered(qu.usage("", "configmaps", {}, NOW)) == {
        "count/configmaps": "1",
        "configmaps": "1",
    }


@pytest.mark.parametrize(
    ("scope", "spec", "selected"),
    [
        ("Terminating", {"activeDeadlineSeconds": 30}, True),
        ("Terminating", {}, False),
        ("NotTerminating", {}, True),
        ("BestEffort", {}, True),
        ("NotBestEffort", {}, False),
    ],
)
def test_scopes_select_pods(scope: str, spec: dict[str, Any], selected: bool) -> None:
    p = pod(container("a"), **spec)
    assert qu.pod_matches_scope({"scopeName": scope, "operator": "Exists"}, p) is selected


def test_priority_class_scope_selector() -> None:
    p = pod(container("a"), priorityClassName="high")
    high = {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}
    assert qu.pod_matches_scope(high, p)
    assert not qu.pod_matches_scope({**high, "operator": "NotIn"}, p)


# ------------------------------------------------------------------ admission check


def check(
    quotas: list[dict[str, Any]], obj: dict[str, Any], **kw: Any
) -> list[tuple[int, dict[str, str]]]:
    changed = check_request(
        quotas,
        kw.get("group", ""),
        kw.get("plural", "pods"),
        kw.get("operation", "CREATE"),
        obj,
        kw.get("old"),
        NOW,
    )
    return [(i, rendered(used)) for i, used in changed]


def test_a_pod_that_fits_is_charged() -> None:
    q = quota("q", {"pods": "2", "requests.cpu": "1"}, {"pods": "1", "requests.cpu": "200m"})
    assert check([q], pod(container("a", {"cpu": "300m"}))) == [
        (0, {"pods": "2", "requests.cpu": "500m"})
    ]


def test_a_pod_over_quota_is_refused_with_upstream_message() -> None:
    q = quota("q", {"pods": "2", "requests.cpu": "1"}, {"pods": "2", "requests.cpu": "900m"})
    with pytest.raises(QuotaRefused) as refused:
        check([q], pod(container("a", {"cpu": "300m"})))
    assert str(refused.value) == (
        "exceeded quota: q, requested: pods=1,requests.cpu=300m, used: pods=2,requests.cpu=900m, "
        "limited: pods=2,requests.cpu=1"
    )


def test_compute_quota_requires_containers_to_declare_it() -> None:
    q = quota("q", {"limits.cpu": "2", "limits.memory": "1Gi"})
    with pytest.raises(QuotaRefused) as refused:
        check([q], pod(container("a"), container("b", limits={"cpu": "1"})))
    assert str(refused.value) == (
        "failed quota: q: must specify limits.cpu for: a; limits.memory for: a,b"
    )


def test_quota_without_status_refuses_what_it_covers() -> None:
    q = quota("q", {"pods": "2"}, used={})
    with pytest.raises(QuotaRefused, match="status unknown for quota: q, resources: pods"):
        check([q], pod(container("a")))


def test_scoped_quota_ignores_pods_outside_its_scope() -> None:
    q = quota("q", {"pods": "0"}, scopes=["BestEffort"])
    q["spec"]["scopes"] = ["BestEffort"]
    burstable = pod(container("a", {"cpu": "100m"}))
    assert check([q], burstable) == []
    with pytest.raises(QuotaRefused, match="exceeded quota: q"):
        check([q], pod(container("a")))


def test_object_counts_only_charge_on_create() -> None:
    q = quota("q", {"count/configmaps": "1", "configmaps": "1"})
    assert check([q], {"metadata": {"name": "c"}}, plural="configmaps") == [
        (0, {"count/configmaps": "1", "configmaps": "1"})
    ]
    assert not qu.handles("", "configmaps", "UPDATE")


def test_service_update_is_charged_for_its_growth() -> None:
    q = quota("q", {"services.nodeports": "3"}, {"services.nodeports": "1"})
    old = {"spec": {"type": "NodePort", "ports": [{"port": 1}]}}
    new = {"spec": {"type": "NodePort", "ports": [{"port": 1}, {"port": 2}]}}
    assert check([q], new, plural="services", operation="UPDATE", old=old) == [
        (0, {"services.nodeports": "2"})
    ]
