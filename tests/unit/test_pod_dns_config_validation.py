"""``validatePodDNSConfig``: what the API server refuses in a pod's dnsPolicy/dnsConfig, with
Kubernetes' field paths and words."""

from __future__ import annotations

from typing import Any

from setpoint.resources.podspec import validate_dns_config


def messages(config: Any, policy: str | None = "ClusterFirst") -> list[str]:
    return [
        f"{e.field}: {e.message}" for e in validate_dns_config(config, policy, "spec.dnsConfig")
    ]


def test_none_without_dns_config_is_required() -> None:
    assert messages(None, "None") == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


def test_none_without_a_nameserver_is_required() -> None:
    assert messages({"searches": ["a.example"]}, "None") == [
        "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver "
        "when `dnsPolicy` is None"
    ]


def test_more_than_three_nameservers_are_refused() -> None:
    config = {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]}
    assert messages(config, "None") == [
        'spec.dnsConfig.nameservers: Invalid value: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3", '
        '"4.4.4.4"}: must not have more than 3 nameservers'
    ]


def test_a_nameserver_must_be_an_ip_and_a_search_a_subdomain() -> None:
    config = {"nameservers": ["dns.example"], "searches": ["ok.example.", "Not_OK"]}
    found = messages(config)
    assert found[0] == (
        'spec.dnsConfig.nameservers[0]: Invalid value: "dns.example": must be a valid IP '
        "address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
    )
    assert found[1].startswith('spec.dnsConfig.searches[1]: Invalid value: "Not_OK": ')
    assert len(found) == 2


def test_an_option_needs_a_name() -> None:
    assert messages({"options": [{"value": "2"}]}) == [
        "spec.dnsConfig.options[0]: Required value: must not be empty"
    ]


def test_good_configs_pass() -> None:
    assert messages(None) == []
    assert (
        messages(
            {"nameservers": ["1.1.1.1"], "searches": ["."], "options": [{"name": "edns0"}]}, "None"
        )
        == []
    )
