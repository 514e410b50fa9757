"""LimitRange: its defaults and validation (``SetDefaults_LimitRangeItem``,
``ValidateLimitRange``) and what the LimitRanger admission plugin does with it (container
defaults, min/max/ratio per Container, per Pod and per PersistentVolumeClaim), with
upstream's messages."""

from __future__ import annotations

from typing import Any

from setpoint.api.admission_plugins.limitranger import (
    aggregate,
    claim_limit_errors,
    default_container_resources,
    merge_pod_resources,
    pod_limit_errors,
)
from tests.kinds import problems, stored


def limit_range(*items: dict[str, Any]) -> dict[str, Any]:
    return stored("", "LimitRange", {"spec": {"limits": list(items)}})


def pod(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": "p"}, "spec": spec}


def container(name: str, requests: Any = None, limits: Any = None) -> dict[str, Any]:
    resources = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": name, "resources": resources}


def test_container_defaults_fall_back_to_max_then_default_then_min() -> None:
    lr = limit_range(
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
        {"type": "Pod", "max": {"cpu": "4"}},
    )
    container_item, pod_item = lr["spec"]["limits"]
    assert container_item["default"] == {"cpu": "2"}
    assert container_item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
    assert "default" not in pod_item


def test_quantities_are_stored_canonical() -> None:
    lr = limit_range({"type": "Container", "default": {"cpu": "0.5", "memory": "1024Mi"}})
    assert lr["spec"]["limits"][0]["default"] == {"cpu": "500m", "memory": "1Gi"}


def test_validation_orders_min_default_max() -> None:
    item = {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}
    assert problems("", "LimitRange", {"spec": {"limits": [item]}}) == [
        'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1',
        'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater '
        "than default request value 1",
        'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default '
        "value 1",
    ]


def test_pod_items_may_not_have_defaults_and_types_are_unique() -> None:
    items = [
        {"type": "Pod", "default": {"cpu": "1"}},
        {"type": "Pod", "max": {"cpu": "1"}},
        {"type": "Volume", "max": {"cpu": "1"}},
    ]
    assert problems("", "LimitRange", {"spec": {"limits": items}}) == [
        "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'",
        'spec.limits[1].type: Duplicate value: "Pod"',
        'spec.limits[2].type: Invalid value: "Volume": must be a standard limit type or fully '
        "qualified",
    ]


def test_claim_items_need_a_storage_bound_and_ratios_are_at_least_one() -> None:
    items = [
        {"type": "PersistentVolumeClaim", "max": {"cpu": "1"}},
        {"type": "Container", "maxLimitRequestRatio": {"cpu": "0.5"}},
    ]
    assert problems("", "LimitRange", {"spec": {"limits": items}}) == [
        "spec.limits[0].limits: Required value: either minimum or maximum storage value is "
        "required, but neither was provided",
        'spec.limits[1].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less '
        "than 1",
    ]


def test_admission_fills_unset_container_resources_and_says_so() -> None:
    lr = limit_range({"type": "Container", "default": {"cpu": "200m", "memory": "64Mi"}})
    requests, limits = default_container_resources(lr)
    p = pod(container("app", requests={"cpu": "100m"}), init=[container("setup")])
    notes = merge_pod_resources(p, requests, limits)
    assert p["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "64Mi"},
    }
    assert notes == [
        "memory request for container app",
        "cpu, memory limit for container app",
        "cpu, memory request for init container setup",
        "cpu, memory limit for init container setup",
    ]


def test_container_minimum_and_maximum_with_upstream_messages() -> None:
    lr = limit_range({"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}})
    p = pod(container("a", requests={"cpu": "50m"}, limits={"memory": "2Gi"}))
    found = pod_limit_errors(lr, p)
    assert found == [
        "minimum cpu usage per Container is 100m, but request is 50m",
        "maximum memory usage per Container is 1Gi, but limit is 2Gi",
    ]
    assert aggregate(found) == f"[{found[0]}, {found[1]}]"
    assert aggregate(found[:1]) == found[0]


def test_missing_request_or_limit_is_named() -> None:
    lr = limit_range({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}})
    lr["spec"]["limits"][0].pop("default")
    lr["spec"]["limits"][0].pop("defaultRequest")
    assert pod_limit_errors(lr, pod(container("a"))) == [
        "minimum cpu usage per Container is 100m.  No request is specified",
        "maximum cpu usage per Container is 1.  No limit is specified",
    ]


def test_limit_to_request_ratio() -> None:
    lr = limit_range({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}})
    ok = pod(container("a", requests={"cpu": "100m"}, limits={"cpu": "200m"}))
    assert pod_limit_errors(lr, ok) == []
    over = pod(container("a", requests={"cpu": "100m"}, limits={"cpu": "300m"}))
    assert pod_limit_errors(lr, over) == [
        "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"
    ]


def test_pod_bound_counts_containers_together_and_init_containers_at_their_maximum() -> None:
    lr = limit_range({"type": "Pod", "max": {"cpu": "1"}})
    two = pod(
        container("a", requests={"cpu": "600m"}, limits={"cpu": "600m"}),
        container("b", requests={"cpu": "600m"}, limits={"cpu": "600m"}),
    )
    assert pod_limit_errors(lr, two) == [
        "maximum cpu usage per Pod is 1, but limit is 1200m",
    ]
    one = pod(
        container("a", requests={"cpu": "600m"}, limits={"cpu": "600m"}),
        init=[container("i", requests={"cpu": "900m"}, limits={"cpu": "900m"})],
    )
    assert pod_limit_errors(lr, one) == []


def test_claim_storage_between_min_and_max() -> None:
    lr = limit_range(
        {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}
    )
    claim = {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    assert claim_limit_errors(lr, claim) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    ]
    claim["spec"]["resources"]["requests"]["storage"] = "500Mi"
    assert claim_limit_errors(lr, claim) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
    ]
