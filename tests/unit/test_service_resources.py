"""Specification of the Service, Endpoints and EndpointSlice kinds: defaults, validation,
the update strategy, and the ``kubectl get`` tables (``pkg/apis/core/validation``,
``pkg/apis/core/v1/defaults.go``, ``pkg/printers/internalversion/printers.go``)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from setpoint.resources.catalog import default_registry
from setpoint.resources.meta import validate_object_meta
from setpoint.resources.printers.network import (
    endpoint_slice_cells,
    endpoints_cells,
    service_cells,
)
from setpoint.resources.registry import Obj, ResourceType

REGISTRY = default_registry()
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
CREATED = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def kind(name: str) -> ResourceType:
    rtype = next(t for t in REGISTRY.types if t.kind == name)
    return rtype


def service(name: str = "web", **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": CREATED},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}, **spec},
    }


def defaulted(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    kind(obj["kind"]).defaulter(out)
    return out


def problems(obj: Obj, old: Obj | None = None) -> list[str]:
    rtype = kind(obj["kind"])
    new = defaulted(obj)
    if old is not None:
        rtype.prepare_for_update(new, old)
    found = validate_object_meta(rtype, new, old) + rtype.validator(new, old)
    return [f"{e.field}: {e.message}" for e in found]


# --------------------------------------------------------------------------- defaults


def test_service_defaults_as_upstream() -> None:
    svc = defaulted(service())
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert "externalTrafficPolicy" not in spec
    assert svc["status"] == {"loadBalancer": {}}


def test_node_port_service_defaults_external_traffic_policy() -> None:
    spec = defaulted(service(type="NodePort"))["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    lb = defaulted(service(type="LoadBalancer"))["spec"]
    assert lb["allocateLoadBalancerNodePorts"] is True


def test_given_cluster_ip_fills_cluster_ips() -> None:
    assert defaulted(service(clusterIP="None"))["spec"]["clusterIPs"] == ["None"]


def test_endpoint_slice_ports_default_to_tcp_and_empty_name() -> None:
    es = defaulted(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "default"},
            "addressType": "IPv4",
            "ports": [{"port": 80}],
        }
    )
    assert es["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]


# ------------------------------------------------------------------------- validation


def test_valid_service_has_no_problems() -> None:
    assert problems(service()) == []


def test_service_name_must_be_a_dns_1035_label() -> None:
    (problem,) = problems(service("1web"))
    assert problem.startswith('metadata.name: Invalid value: "1web": a DNS-1035 label must')


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"ports": []}, "spec.ports: Required value"),
        (
            {"type": "Fancy"},
            'spec.type: Unsupported value: "Fancy": supported values: '
            '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
        ),
        (
            {"ports": [{"port": 0}]},
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
        (
            {"ports": [{"port": 80, "nodePort": 30080}]},
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            {"ports": [{"port": 80, "name": "a"}, {"port": 81}]},
            "spec.ports[1].name: Required value",
        ),
        (
            {"clusterIP": "banana"},
            'spec.clusterIPs[0]: Invalid value: "banana": must be empty, '
            "'None', or a valid IP address",
        ),
        (
            {"type": "NodePort", "clusterIP": "None"},
            'spec.clusterIPs[0]: Invalid value: "None": '
            "may not be set to 'None' for NodePort services",
        ),
        ({"type": "ExternalName", "ports": []}, "spec.externalName: Required value"),
        (
            {"sessionAffinity": "Sticky"},
            'spec.sessionAffinity: Unsupported value: "Sticky": '
            'supported values: "ClientIP", "None"',
        ),
        ({"selector": {"app": "-x"}}, 'spec.selector: Invalid value: "-x": a valid label must'),
    ],
)
def test_invalid_services(spec: Obj, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(service(**spec))), problems(service(**spec))


def test_duplicate_port_and_protocol() -> None:
    found = problems(service(ports=[{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]))
    assert found == [
        'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
        "AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, "
        'StrVal:""}, NodePort:0}'
    ]


def test_headless_service_needs_no_ports() -> None:
    assert problems(service(clusterIP="None", ports=[])) == []


def test_a_port_without_a_matching_container_port_is_fine() -> None:
    assert problems(service(ports=[{"port": 80, "targetPort": "http"}])) == []


def test_cluster_ip_is_immutable() -> None:
    old = defaulted(service(clusterIP="10.96.0.10"))
    new = service(clusterIP="10.96.0.11")
    assert 'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable' in problems(new, old)


def test_update_without_allocated_values_keeps_them() -> None:
    """A PUT that omits clusterIP and nodePort (e.g. an edited manifest) keeps the old ones."""
    old = defaulted(service(type="NodePort", clusterIP="10.96.0.10"))
    old["spec"]["ports"][0]["nodePort"] = 30080
    new = defaulted(service(type="NodePort"))
    kind("Service").prepare_for_update(new, old)
    assert new["spec"]["clusterIP"] == "10.96.0.10"
    assert new["spec"]["ports"][0]["nodePort"] == 30080
    assert problems(service(type="NodePort"), old) == []


def test_change_to_cluster_ip_drops_the_node_ports() -> None:
    old = defaulted(service(type="NodePort", clusterIP="10.96.0.10"))
    old["spec"]["ports"][0]["nodePort"] = 30080
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    kind("Service").prepare_for_update(new, old)
    assert "nodePort" not in new["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in new["spec"]


def test_endpoint_slice_address_type_and_addresses() -> None:
    es = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": []}],
    }
    assert problems(es) == [
        'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be an IPv4 address',
        "endpoints[1].addresses: Required value: must contain at least 1 address",
    ]
    changed = copy.deepcopy(es)
    changed["addressType"] = "IPv6"
    changed["endpoints"] = []
    assert problems(changed, defaulted(es)) == [
        'addressType: Invalid value: "IPv6": field is immutable'
    ]


def test_endpoints_addresses_must_be_ips() -> None:
    ep = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "web-0"}], "ports": [{"port": 80}]}],
    }
    assert problems(ep) == [
        'subsets[0].addresses[0].ip: Invalid value: "web-0": must be a valid IP address'
    ]


# ----------------------------------------------------------------------------- tables


def test_service_row() -> None:
    svc = defaulted(service(type="NodePort", clusterIPs=["10.96.0.10"]))
    svc["spec"]["ports"][0]["nodePort"] = 30080
    assert service_cells(svc, NOW) == [
        "web",
        "NodePort",
        "10.96.0.10",
        "<none>",
        "80:30080/TCP",
        "5m",
        "app=web",
    ]


def test_service_rows_of_other_types() -> None:
    headless = defaulted(service(clusterIP="None", ports=[], selector=None))
    assert service_cells(headless, NOW)[1:5] == ["ClusterIP", "None", "<none>", "<none>"]
    external = defaulted(service(type="ExternalName", externalName="db.example.com", ports=[]))
    assert service_cells(external, NOW)[2:4] == ["<none>", "db.example.com"]
    lb = defaulted(service(type="LoadBalancer", clusterIPs=["10.96.0.3"]))
    assert service_cells(lb, NOW)[3] == "<pending>"


def test_endpoints_row_shows_three_then_more() -> None:
    ep = {
        "metadata": {"name": "web", "creationTimestamp": CREATED},
        "subsets": [
            {
                "addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)],
                "ports": [{"port": 8080}],
            }
        ],
    }
    assert endpoints_cells(ep, NOW) == [
        "web",
        "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more...",
        "5m",
    ]
    assert endpoints_cells({"metadata": {"name": "x"}}, NOW)[1] == "<none>"


def test_endpoint_slice_row() -> None:
    es = {
        "metadata": {"name": "web-abc", "creationTimestamp": CREATED},
        "addressType": "IPv4",
        "ports": [{"port": 8080}, {"name": "metrics"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["fd00::1"]}],
    }
    assert endpoint_slice_cells(es, NOW) == [
        "web-abc",
        "IPv4",
        "8080,metrics",
        "10.0.0.1,fd00::1",
        "5m",
    ]
    empty = {"metadata": {"name": "web-x"}, "addressType": "IPv4"}
    assert endpoint_slice_cells(empty, NOW)[2:4] == ["<unset>", "<unset>"]
