"""Specification of the endpoint controllers' decisions, as pure functions: which pods back a
Service and how (``staging/src/k8s.io/endpointslice``, ``pkg/controller/endpoint``)."""

from __future__ import annotations

import copy
from typing import Any

from setpoint.client.api import Obj
from setpoint.controllers.endpoints.controller import desired_subsets
from setpoint.controllers.endpointslice import reconciler
from setpoint.controllers.util import endpoints as eputil


def service(**spec: Any) -> Obj:
    body: Obj = {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
        "ipFamilies": ["IPv4"],
        "clusterIP": "10.96.0.10",
    }
    body.update(spec)
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"a": "b"}},
        "spec": body,
    }


def pod(
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    terminating: bool = False,
    phase: str = "Running",
    ports: list[Obj] | None = None,
) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "labels": {"app": "web"},
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: Obj = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {
        "metadata": meta,
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports or []}]},
        "status": status,
    }


def addresses(endpoint_slice: Obj) -> list[str]:
    return [e["addresses"][0] for e in endpoint_slice["endpoints"]]


# --------------------------------------------------------------------------- pods


def test_pods_without_an_ip_or_finished_are_left_out() -> None:
    assert not eputil.should_pod_be_in_endpoints(pod("a", None), include_terminating=True)
    done = pod("b", "10.0.0.2", phase="Succeeded")
    assert not eputil.should_pod_be_in_endpoints(done, include_terminating=True)
    going = pod("c", "10.0.0.3", terminating=True)
    assert eputil.should_pod_be_in_endpoints(going, include_terminating=True)
    assert not eputil.should_pod_be_in_endpoints(going, include_terminating=False)


def test_named_target_port_resolves_per_pod() -> None:
    port = {"port": 80, "protocol": "TCP", "targetPort": "http"}
    one = pod("a", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}])
    two = pod("b", "10.0.0.2", ports=[{"name": "http", "containerPort": 9090}])
    udp = pod("c", "10.0.0.3", ports=[{"name": "http", "containerPort": 53, "protocol": "UDP"}])
    assert eputil.find_port(one, port) == 8080
    assert eputil.find_port(two, port) == 9090
    assert eputil.find_port(udp, port) is None


def test_readiness_conditions() -> None:
    svc = service()
    ready = eputil.endpoint_readiness(pod("a", "10.0.0.1"), svc)
    assert (ready.ready, ready.serving, ready.terminating) == (True, True, False)
    going = eputil.endpoint_readiness(pod("b", "10.0.0.2", terminating=True), svc)
    assert (going.ready, going.serving, going.terminating) == (False, True, True)
    unready = eputil.endpoint_readiness(pod("c", "10.0.0.3", ready=False), svc)
    assert (unready.ready, unready.serving) == (False, False)
    published = eputil.endpoint_readiness(
        pod("c", "10.0.0.3", ready=False), service(publishNotReadyAddresses=True)
    )
    assert published.ready


# ------------------------------------------------------------------------- slices


def test_new_service_gets_one_slice_with_its_pods() -> None:
    pods = [pod("b", "10.0.0.2"), pod("a", "10.0.0.1", ready=False), pod("x", None)]
    plan = reconciler.reconcile(service(), pods, [])
    (created,) = plan.create
    assert addresses(created) == ["10.0.0.1", "10.0.0.2"]
    assert created["addressType"] == "IPv4"
    assert created["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    assert created["metadata"]["labels"] == {
        "a": "b",
        "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    assert created["metadata"]["generateName"] == "web-"
    (owner,) = created["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Service", "svc-uid", True)
    first = created["endpoints"][0]
    assert first["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert first["nodeName"] == "n1"
    assert first["targetRef"] == {
        "kind": "Pod",
        "namespace": "default",
        "name": "a",
        "uid": "uid-a",
    }


def test_at_most_max_endpoints_per_slice() -> None:
    pods = [pod(f"p{i:03}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(250)]
    plan = reconciler.reconcile(service(), pods, [], max_per_slice=100)
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]


def test_pods_on_different_ports_get_different_slices() -> None:
    svc = service(ports=[{"port": 80, "protocol": "TCP", "targetPort": "http"}])
    pods = [
        pod("a", "10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]),
        pod("b", "10.0.0.2", ports=[{"name": "http", "containerPort": 9090}]),
    ]
    plan = reconciler.reconcile(svc, pods, [])
    assert sorted((s["ports"][0]["port"], addresses(s)) for s in plan.create) == [
        (8080, ["10.0.0.1"]),
        (9090, ["10.0.0.2"]),
    ]


def test_pods_sharing_an_address_stay_apart() -> None:
    """Host-network pods: one address, several pods."""
    pods = [pod("a", "192.168.1.5"), pod("b", "192.168.1.5")]
    (created,) = reconciler.reconcile(service(), pods, []).create
    assert [e["targetRef"]["name"] for e in created["endpoints"]] == ["a", "b"]


def stored(endpoint_slice: Obj, name: str) -> Obj:
    out = copy.deepcopy(endpoint_slice)
    out["metadata"]["name"] = name
    out["metadata"]["uid"] = f"uid-{name}"
    return out


def test_unchanged_pods_change_nothing() -> None:
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")]
    (created,) = reconciler.reconcile(service(), pods, []).create
    assert reconciler.reconcile(service(), pods, [stored(created, "web-1")]).is_empty()


def test_readiness_change_updates_the_slice_in_place() -> None:
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")]
    existing = stored(reconciler.reconcile(service(), pods, []).create[0], "web-1")
    pods[1] = pod("b", "10.0.0.2", ready=False)
    plan = reconciler.reconcile(service(), pods, [existing])
    (updated,) = plan.update
    assert not plan.create and not plan.delete
    assert updated["metadata"]["name"] == "web-1"
    assert updated["endpoints"][1]["conditions"]["ready"] is False


def test_new_endpoints_fill_existing_slices_before_new_ones() -> None:
    existing = stored(
        reconciler.reconcile(service(), [pod("a", "10.0.0.1")], []).create[0], "web-1"
    )
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2"), pod("c", "10.0.0.3")]
    plan = reconciler.reconcile(service(), pods, [existing], max_per_slice=2)
    (updated,) = plan.update
    assert addresses(updated) == ["10.0.0.1", "10.0.0.2"]
    (created,) = plan.create
    assert addresses(created) == ["10.0.0.3"]


def test_service_without_endpoints_keeps_one_placeholder_slice() -> None:
    existing = stored(
        reconciler.reconcile(service(), [pod("a", "10.0.0.1")], []).create[0], "web-1"
    )
    plan = reconciler.reconcile(service(), [], [existing])
    assert plan.delete == [existing]
    (placeholder,) = plan.create
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    kept = stored(placeholder, "web-2")
    assert reconciler.reconcile(service(), [], [kept]).is_empty()


def test_service_port_change_replaces_the_slices() -> None:
    existing = stored(
        reconciler.reconcile(service(), [pod("a", "10.0.0.1")], []).create[0], "web-1"
    )
    changed = service(ports=[{"port": 80, "protocol": "TCP", "targetPort": 9000}])
    plan = reconciler.reconcile(changed, [pod("a", "10.0.0.1")], [existing])
    assert plan.delete == [existing]
    assert plan.create[0]["ports"][0]["port"] == 9000


# ----------------------------------------------------------------------- Endpoints


def test_endpoints_split_ready_and_not_ready_addresses() -> None:
    pods = [
        pod("b", "10.0.0.2", ready=False),
        pod("a", "10.0.0.1"),
        pod("c", "10.0.0.3", terminating=True),
    ]
    subsets, truncated = desired_subsets(service(), pods)
    assert not truncated
    assert subsets == [
        {
            "addresses": [
                {
                    "ip": "10.0.0.1",
                    "nodeName": "n1",
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": "default",
                        "name": "a",
                        "uid": "uid-a",
                    },
                }
            ],
            "notReadyAddresses": [
                {
                    "ip": "10.0.0.2",
                    "nodeName": "n1",
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": "default",
                        "name": "b",
                        "uid": "uid-b",
                    },
                }
            ],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }
    ]


def test_endpoints_publish_not_ready_addresses() -> None:
    pods = [pod("b", "10.0.0.2", ready=False), pod("c", "10.0.0.3", terminating=True)]
    subsets, _ = desired_subsets(service(publishNotReadyAddresses=True), pods)
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.2", "10.0.0.3"]


def test_headless_service_without_ports_lists_addresses_only() -> None:
    subsets, _ = desired_subsets(service(clusterIP="None", ports=[]), [pod("a", "10.0.0.1")])
    assert subsets == [{"addresses": [subsets[0]["addresses"][0]]}]


def test_target_port_resolves_to_the_port_the_agent_assigned() -> None:
    annotated = pod("a", "192.168.1.5", ports=[{"name": "http", "containerPort": 8080}])
    annotated["metadata"]["annotations"] = {"setpoint.io/assigned-ports": '{"8080/TCP": 34567}'}
    plain = pod("b", "10.0.0.2", ports=[{"name": "http", "containerPort": 8080}])
    by_number = {"port": 80, "protocol": "TCP", "targetPort": 8080}
    by_name = {"port": 80, "protocol": "TCP", "targetPort": "http"}
    unset = {"port": 8080, "protocol": "TCP"}
    assert eputil.find_port(annotated, by_number) == 34567
    assert eputil.find_port(annotated, by_name) == 34567
    assert eputil.find_port(annotated, unset) == 34567
    assert eputil.find_port(plain, by_name) == 8080
    assert eputil.find_port(annotated, {"port": 80, "targetPort": 9090}) == 9090
