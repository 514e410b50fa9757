"""Services against a real server: cluster IPs and node ports allocated by the API server,
kept across a restart, released on delete and type change, the ``kubernetes`` Service, and
the range flags (``pkg/registry/core/service/storage``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.disks import EXIT_CANNOT_START, run_server_expecting_refusal
from tests.support import Server, start_server, wait_for


def svc(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": [{"port": 80}], "selector": {"app": name}}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def create(server: Server, namespace: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, out, _ = server.request("POST", f"/api/v1/namespaces/{namespace}/services", body)
    return status, out


def causes(body: dict[str, Any]) -> list[str]:
    return [f"{c['field']}: {c['message']}" for c in body["details"]["causes"]]


def test_kubernetes_service_points_at_the_api_server(server: Server) -> None:
    status, service, _ = server.request("GET", "/api/v1/namespaces/default/services/kubernetes")
    assert status == 200
    assert service["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    assert service["spec"]["clusterIP"] == "10.96.0.1"
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.port}
    ]
    assert "selector" not in service["spec"]
    _, endpoints, _ = server.request("GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert endpoints["subsets"] == [
        {
            "addresses": [{"ip": "127.0.0.1"}],
            "ports": [{"name": "https", "port": server.port, "protocol": "TCP"}],
        }
    ]
    _, slices, _ = server.request(
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        "?labelSelector=kubernetes.io/service-name=kubernetes",
    )
    (endpoint_slice,) = slices["items"]
    assert endpoint_slice["endpoints"] == [
        {"addresses": ["127.0.0.1"], "conditions": {"ready": True}}
    ]


def test_kubernetes_service_comes_back_when_deleted(server: Server) -> None:
    path = "/api/v1/namespaces/default/endpoints/kubernetes"
    status, _, _ = server.request("DELETE", path)
    assert status == 200
    wait_for(
        lambda: server.request("GET", path)[0] == 200,
        timeout=30,
        what="the kubernetes Endpoints to be written again",
    )


def test_requested_cluster_ip_is_honoured_then_refused_to_others(
    server: Server, namespace: str
) -> None:
    status, out = create(server, namespace, svc("a", clusterIP="10.96.200.7"))
    assert status == 201, out
    assert out["spec"]["clusterIPs"] == ["10.96.200.7"]
    status, out = create(server, namespace, svc("b", clusterIP="10.96.200.7"))
    assert status == 422
    assert causes(out) == [
        'spec.clusterIPs: Invalid value: []string{"10.96.200.7"}: failed to allocate IP '
        "10.96.200.7: provided IP is already allocated"
    ]
    status, out = create(server, namespace, svc("c", clusterIP="192.168.0.1"))
    assert status == 422
    assert out["message"].endswith(
        "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16"
    )


def test_deleted_service_gives_its_ip_and_node_port_back(server: Server, namespace: str) -> None:
    body = svc("np", type="NodePort", clusterIP="10.96.201.1")
    body["spec"]["ports"][0]["nodePort"] = 31111
    assert create(server, namespace, body)[0] == 201
    other = svc("np2", type="NodePort")
    other["spec"]["ports"][0]["nodePort"] = 31111
    status, out = create(server, namespace, other)
    assert status == 422
    assert causes(out) == [
        "spec.ports[0].nodePort: Invalid value: 31111: provided port is already allocated"
    ]
    server.request("DELETE", f"/api/v1/namespaces/{namespace}/services/np")
    assert create(server, namespace, other)[0] == 201
    assert create(server, namespace, svc("again", clusterIP="10.96.201.1"))[0] == 201


def test_type_change_releases_node_ports(server: Server, namespace: str) -> None:
    body = svc("web", type="NodePort")
    status, out = create(server, namespace, body)
    node_port = out["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    status, out, _ = server.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/web",
        {"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": None}]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200, out
    assert "nodePort" not in out["spec"]["ports"][0]
    again = svc("taker", type="NodePort")
    again["spec"]["ports"][0]["nodePort"] = node_port
    assert create(server, namespace, again)[0] == 201


def test_dry_run_shows_an_ip_and_keeps_nothing(server: Server, namespace: str) -> None:
    status, out, _ = server.request(
        "POST", f"/api/v1/namespaces/{namespace}/services?dryRun=All", svc("dry")
    )
    assert status == 201
    assert out["spec"]["clusterIP"].startswith("10.96.")
    assert create(server, namespace, svc("real", clusterIP=out["spec"]["clusterIP"]))[0] == 201


def test_allocations_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    try:
        body = svc("web", type="NodePort")
        status, out = create(first, "default", body)
        assert status == 201
        ip, node_port = out["spec"]["clusterIP"], out["spec"]["ports"][0]["nodePort"]
    finally:
        assert first.stop() == 0
    second = start_server(data)
    try:
        taker = svc("taker", type="NodePort", clusterIP=ip)
        status, out = create(second, "default", taker)
        assert status == 422
        assert "provided IP is already allocated" in out["message"]
        taker = svc("taker", type="NodePort")
        taker["spec"]["ports"][0]["nodePort"] = node_port
        status, out = create(second, "default", taker)
        assert status == 422
        assert "provided port is already allocated" in out["message"]
        _, kube, _ = second.request("GET", "/api/v1/namespaces/default/services/kubernetes")
        assert kube["spec"]["ports"][0]["targetPort"] == second.port
    finally:
        second.stop()
    assert "Traceback" not in second.log()


def test_service_range_flags_are_used(tmp_path: Path) -> None:
    srv = start_server(
        tmp_path / "data",
        extra=[
            "--service-cluster-ip-range",
            "10.200.0.0/24",
            "--service-node-port-range",
            "40000-40010",
        ],
    )
    try:
        _, kube, _ = srv.request("GET", "/api/v1/namespaces/default/services/kubernetes")
        assert kube["spec"]["clusterIP"] == "10.200.0.1"
        status, out = create(srv, "default", svc("np", type="NodePort"))
        assert status == 201
        assert out["spec"]["clusterIP"].startswith("10.200.0.")
        assert 40000 <= out["spec"]["ports"][0]["nodePort"] <= 40010
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--service-cluster-ip-range", "10.96.0.1/16"], "is not a CIDR"),
        (["--service-cluster-ip-range", "10.96.0.0/32"], "is too small"),
        (["--service-node-port-range", "32767-30000"], "must be within 1-65535"),
    ],
)
def test_bad_ranges_stop_the_server_with_one_line(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    refusal = run_server_expecting_refusal(tmp_path / "data", *flags)
    assert refusal.returncode == EXIT_CANNOT_START
    (line,) = refusal.stderr.strip().splitlines()
    assert line.startswith("setpoint server: cannot start: --service-")
    assert message in line
