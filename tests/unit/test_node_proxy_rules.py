"""The node proxy's pure parts: which endpoints take a Service port's traffic
(:mod:`setpoint.agent.proxy.servicemap`) and the nftables script made of them
(:mod:`setpoint.agent.proxy.nftables`). Where root and ``nft`` are at hand, each script is
also loaded for real into a throwaway network namespace (``unshare -n``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.proxy.nftables import endpoint_chain, ruleset, service_chain
from setpoint.agent.proxy.servicemap import Endpoint, service_ports, usable_endpoints

Obj = dict[str, Any]
TABLE = "setpoint-0123abcd"


def service(name: str = "web", cluster_ip: str = "10.96.0.10", **spec: Any) -> Obj:
    ports = spec.pop("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "ports": ports, **spec},
    }


def endpoint(ip: str, **conditions: bool) -> Obj:
    return {"addresses": [ip], "conditions": conditions}


def endpoint_slice(*endpoints: Obj, service_name: str = "web", **fields: Any) -> Obj:
    return {
        "metadata": {
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": list(endpoints),
        **fields,
    }


def ips(slices: list[Obj]) -> list[str]:
    return [e.ip for e in usable_endpoints(slices, "http", "TCP")]


def test_only_ready_endpoints_take_traffic() -> None:
    slices = [
        endpoint_slice(endpoint("10.244.0.2", ready=True), endpoint("10.244.0.3", ready=False))
    ]
    assert ips(slices) == ["10.244.0.2"]


def test_unset_ready_counts_as_ready() -> None:
    assert ips([endpoint_slice({"addresses": ["10.244.0.4"]})]) == ["10.244.0.4"]


def test_with_none_ready_serving_terminating_endpoints_take_traffic() -> None:
    slices = [
        endpoint_slice(
            endpoint("10.244.0.2", ready=False, serving=True, terminating=True),
            endpoint("10.244.0.3", ready=False, serving=False, terminating=True),
            endpoint("10.244.0.5", ready=False, serving=False),
        )
    ]
    assert ips(slices) == ["10.244.0.2"]


def test_terminating_endpoints_are_left_out_while_one_is_ready() -> None:
    slices = [
        endpoint_slice(
            endpoint("10.244.0.2", ready=False, serving=True, terminating=True),
            endpoint("10.244.0.3", ready=True),
        )
    ]
    assert ips(slices) == ["10.244.0.3"]


def test_endpoints_across_slices_count_once_and_ipv6_slices_are_ignored() -> None:
    slices = [
        endpoint_slice(endpoint("10.244.0.2", ready=True)),
        endpoint_slice(endpoint("10.244.0.2", ready=True), endpoint("10.244.1.2", ready=True)),
        endpoint_slice(endpoint("fd00::2", ready=True), addressType="IPv6"),
    ]
    assert ips(slices) == ["10.244.0.2", "10.244.1.2"]


def test_the_slice_port_is_matched_by_name_and_protocol() -> None:
    udp = endpoint_slice(
        endpoint("10.244.0.2"), ports=[{"name": "http", "port": 53, "protocol": "UDP"}]
    )
    assert ips([udp]) == []
    assert usable_endpoints([udp], "http", "UDP") == (Endpoint("10.244.0.2", 53),)


def test_headless_and_external_name_services_are_not_proxied() -> None:
    services = [
        service("headless", "None"),
        service("external", "", type="ExternalName", externalName="example.com"),
        service("web"),
    ]
    assert [p.service for p in service_ports(services, [])] == ["web"]


def test_service_ports_carry_node_ports_affinity_and_their_endpoints() -> None:
    svc = service(
        type="NodePort",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
        ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
    )
    (port,) = service_ports([svc], [endpoint_slice(endpoint("10.244.0.2", ready=True))])
    assert (port.name, port.node_port, port.affinity_seconds) == (
        "default/web/tcp/http",
        30080,
        60,
    )
    assert port.endpoints == (Endpoint("10.244.0.2", 8080),)
    other_namespace = endpoint_slice(endpoint("10.244.9.9"))
    other_namespace["metadata"]["namespace"] = "elsewhere"
    (alone,) = service_ports([service()], [other_namespace])
    assert alone.endpoints == () and alone.node_port is None


def three_replicas() -> list[Obj]:
    return [
        endpoint_slice(
            endpoint("10.244.0.2", ready=True),
            endpoint("10.244.0.3", ready=True),
            endpoint("10.244.1.2", ready=True),
        )
    ]


def test_a_cluster_ip_is_dnatted_to_a_random_one_of_its_endpoints() -> None:
    ports = service_ports([service()], three_replicas())
    script = ruleset(TABLE, ports, [])
    (port,) = ports
    assert f"10.96.0.10 . tcp . 80 : goto {service_chain(port)}" in script
    assert "numgen random mod 3 vmap {" in script
    for e in port.endpoints:
        assert f"\tchain {endpoint_chain(port, e)} {{" in script
        assert f"meta l4proto tcp dnat to {e.ip}:8080" in script
    assert script.count("jump mark-for-masquerade") == 3


def test_the_table_is_replaced_in_one_transaction() -> None:
    script = ruleset(TABLE, [], [])
    assert script.splitlines()[:3] == [
        f"table ip {TABLE}",
        f"delete table ip {TABLE}",
        f"table ip {TABLE} {{",
    ]
    assert re.findall(r"^table ip (\S+)", script, re.M) == [TABLE] * 2  # no other table


def test_a_service_port_without_endpoints_is_rejected() -> None:
    svc = service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30081}])
    script = ruleset(TABLE, service_ports([svc], []), ["192.0.2.7"])
    assert "10.96.0.10 . tcp . 80 : goto reject-chain" in script
    assert "tcp . 30081 : goto reject-chain" in script
    assert "meta l4proto tcp reject with tcp reset" in script
    assert "service-ips" in script and "dnat" not in script


def test_node_ports_are_served_on_the_nodes_addresses() -> None:
    svc = service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30082}])
    (port,) = service_ports([svc], three_replicas())
    script = ruleset(TABLE, [port], ["192.0.2.7"])
    assert "elements = { 192.0.2.7 }" in script
    assert f"tcp . 30082 : goto {service_chain(port)}" in script


def test_client_ip_affinity_remembers_each_clients_endpoint() -> None:
    svc = service(sessionAffinity="ClientIP")
    (port,) = service_ports([svc], three_replicas())
    script = ruleset(TABLE, [port], [])
    assert script.count("flags dynamic,timeout") == 3
    assert script.count("timeout 10800s") == 3
    assert script.count("{ ip saddr }") == 3  # each endpoint chain records its clients


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"),
    reason="loading rules needs root, nft and unshare",
)
def test_the_kernel_takes_the_script_twice_over(tmp_path: Path) -> None:
    services = [
        service(sessionAffinity="ClientIP"),
        service("dns", "10.96.0.11", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}]),
        service("empty", "10.96.0.12", type="NodePort", ports=[{"port": 81, "nodePort": 30083}]),
    ]
    script = tmp_path / "rules.nft"
    script.write_text(ruleset(TABLE, service_ports(services, three_replicas()), ["192.0.2.7"]))
    # in a network namespace of its own: nothing of this machine's is touched
    load = f"nft -f {script} && nft -f {script} && nft list ruleset"
    done = subprocess.run(["unshare", "-n", "sh", "-c", load], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"table ip {TABLE}") == 1
