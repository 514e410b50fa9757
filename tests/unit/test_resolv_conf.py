"""Specification of a pod's /etc/resolv.conf by dnsPolicy and dnsConfig, as the kubelet
builds it (pkg/kubelet/network/dns/dns.go) and containerd writes it."""

from __future__ import annotations

from typing import Any

from setpoint.agent.clusterdns.resolvconf import (
    DNSConfig,
    parse_resolv_conf,
    pod_dns,
    render,
)

HOST = parse_resolv_conf(
    "# generated\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n"
    "search old.example\nsearch corp.example. lab.example\noptions rotate timeout:2\n"
)


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "team", "uid": "u"}, "spec": spec}


def resolv(p: dict[str, Any], cluster_dns: list[str] | None = None) -> str:
    dns = cluster_dns if cluster_dns is not None else ["10.244.0.1"]
    return render(pod_dns(p, host=HOST, cluster_dns=dns, cluster_domain="cluster.local").config)


def test_the_hosts_file_is_parsed_as_the_kubelet_does() -> None:
    assert (
        DNSConfig(
            ("10.0.0.53", "10.0.0.54"), ("corp.example", "lab.example"), ("rotate", "timeout:2")
        )
        == HOST
    )


def test_cluster_first_is_the_node_dns_and_the_cluster_search_path() -> None:
    assert resolv(pod()) == (
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.244.0.1\n"
        "options ndots:5\n"
    )


def test_host_network_pods_with_cluster_first_get_the_nodes_file() -> None:
    expected = (
        "search corp.example lab.example\n"
        "nameserver 10.0.0.53\nnameserver 10.0.0.54\n"
        "options rotate timeout:2\n"
    )
    assert resolv(pod(hostNetwork=True)) == expected
    assert resolv(pod(dnsPolicy="Default")) == expected


def test_cluster_first_with_host_net_uses_cluster_dns() -> None:
    text = resolv(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"))
    assert "nameserver 10.244.0.1\n" in text and "options ndots:5\n" in text


def test_none_is_only_the_dns_config() -> None:
    config = {"nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "edns0"}]}
    assert resolv(pod(dnsPolicy="None", dnsConfig=config)) == (
        "search a.example\nnameserver 1.1.1.1\noptions edns0\n"
    )


def test_dns_config_is_merged_deduplicated_and_overrides_options() -> None:
    config = {
        "nameservers": ["10.244.0.1", "9.9.9.9"],
        "searches": ["cluster.local", "extra.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "single-request-reopen"}],
    }
    assert resolv(pod(dnsConfig=config)) == (
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example "
        "lab.example extra.example\n"
        "nameserver 10.244.0.1\nnameserver 9.9.9.9\n"
        "options ndots:2 single-request-reopen\n"
    )


def test_limits_cut_nameservers_and_searches_with_a_warning() -> None:
    config = {
        "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"],
        "searches": [f"s{i}.example" for i in range(40)],
    }
    formed = pod_dns(
        pod(dnsConfig=config), host=HOST, cluster_dns=["10.244.0.1"], cluster_domain="cluster.local"
    )
    assert formed.config.nameservers == ("10.244.0.1", "1.1.1.1", "2.2.2.2")
    assert len(formed.config.searches) == 32
    reasons = [reason for reason, _ in formed.warnings]
    assert reasons == ["DNSConfigForming", "DNSConfigForming"]
    assert formed.warnings[0][1].endswith(
        "the applied nameserver line is: 10.244.0.1 1.1.1.1 2.2.2.2"
    )


def test_without_a_cluster_dns_cluster_first_falls_back_to_default() -> None:
    formed = pod_dns(pod(), host=HOST, cluster_dns=[], cluster_domain="cluster.local")
    assert formed.config == HOST
    assert [reason for reason, _ in formed.warnings] == ["MissingClusterDNS"]
