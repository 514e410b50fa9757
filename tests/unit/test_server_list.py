"""The client's list of API servers: where it starts, how it moves on, what discovery
changes (``client.servers``), and how the ``kubernetes`` Endpoints of several servers read
(``api.services.kubernetes``)."""

from __future__ import annotations

import pytest

from setpoint.api.services.identity import ServerEndpoint, lease_name
from setpoint.api.services.kubernetes import desired_endpoints, desired_service, desired_slices
from setpoint.client.servers import RECHECK_SECONDS, ServerList, endpoint_urls

A, B, C = "https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_agents_with_the_same_list_start_on_different_servers() -> None:
    starts = {ServerList([A, B, C], key=f"node-{i}").current for i in range(30)}
    assert starts == {A, B, C}


def test_the_start_is_the_same_for_the_same_key() -> None:
    assert ServerList([A, B, C], key="n1").current == ServerList([A, B, C], key="n1").current


def test_a_failed_current_server_makes_the_next_one_current() -> None:
    servers = ServerList([A, B, C], key="")
    first = servers.current
    following = servers.urls[(servers.urls.index(first) + 1) % 3]
    assert servers.failed(first) == following
    assert servers.current == following


def test_a_failure_of_a_server_not_in_use_changes_nothing() -> None:
    servers = ServerList([A, B, C], key="")
    current = servers.current
    other = next(u for u in servers.urls if u != current)
    assert servers.failed(other) == current


def test_recently_failed_servers_are_skipped_until_rechecked() -> None:
    clock = Clock()
    key = next(k for k in map(str, range(100)) if ServerList([A, B, C], key=k).current == A)
    servers = ServerList([A, B, C], key=key, clock=clock)
    servers.failed(B)  # B failed while A was current
    assert servers.failed(A) == C  # B is skipped
    clock.now += RECHECK_SECONDS
    assert servers.failed(C) == A  # A's failure is old enough to try it again


def test_when_every_server_failed_the_next_is_tried_anyway() -> None:
    servers = ServerList([A, B])
    first = servers.current
    second = servers.failed(first)
    assert second != first
    assert servers.failed(second) == first


def test_a_single_server_stays_current() -> None:
    servers = ServerList([A])
    assert servers.failed(A) == A


def test_update_keeps_the_current_server_when_still_listed() -> None:
    servers = ServerList([A], key="x")
    servers.update([B, A, C])
    assert servers.current == A
    assert servers.urls == (B, A, C)
    servers.update([B, C])
    assert servers.current == B
    servers.update([])
    assert servers.urls == (B, C)


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ValueError):
        ServerList([])


def test_endpoint_urls_read_every_subset() -> None:
    endpoints = desired_endpoints(
        [ServerEndpoint("127.0.0.1", 7001), ServerEndpoint("127.0.0.1", 7002)]
    )
    assert endpoint_urls(endpoints) == ["https://127.0.0.1:7001", "https://127.0.0.1:7002"]
    assert endpoint_urls(
        {
            "subsets": [
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"name": "https", "port": 6443}]}
            ]
        }
    ) == ["https://[fd00::1]:6443"]


def test_servers_on_one_port_make_one_subset_one_slice_and_a_numbered_target_port() -> None:
    servers = [ServerEndpoint("10.0.0.2", 6443), ServerEndpoint("10.0.0.1", 6443)]
    (subset,) = desired_endpoints(servers)["subsets"]
    assert subset["addresses"] == [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]
    (only,) = desired_slices(servers)
    assert only["metadata"]["name"] == "kubernetes"
    assert [e["addresses"] for e in only["endpoints"]] == [["10.0.0.1"], ["10.0.0.2"]]
    assert desired_service("10.96.0.1", servers)["spec"]["ports"][0]["targetPort"] == 6443


def test_servers_sharing_an_address_get_a_subset_and_a_slice_per_port() -> None:
    servers = [ServerEndpoint("127.0.0.1", 7002), ServerEndpoint("127.0.0.1", 7001)]
    subsets = desired_endpoints(servers)["subsets"]
    assert [s["ports"][0]["port"] for s in subsets] == [7001, 7002]
    slices = desired_slices(servers)
    assert [s["metadata"]["name"] for s in slices] == ["kubernetes", "kubernetes-7002-ipv4"]
    assert all(s["ports"][0]["name"] == "https" for s in slices)
    assert desired_service("10.96.0.1", servers)["spec"]["ports"][0]["targetPort"] == "https"


def test_no_server_left_leaves_an_empty_slice() -> None:
    (empty,) = desired_slices([])
    assert empty["metadata"]["name"] == "kubernetes"
    assert empty["endpoints"] == [] and empty["ports"] == []
    assert desired_endpoints([])["subsets"] == []


def test_servers_on_one_host_have_different_identity_leases() -> None:
    one = lease_name("host", ServerEndpoint("127.0.0.1", 7001))
    two = lease_name("host", ServerEndpoint("127.0.0.1", 7002))
    assert one != two and one.startswith("apiserver-")
    assert ServerEndpoint.parse(str(ServerEndpoint("fd00::1", 6443))) == ServerEndpoint(
        "fd00::1", 6443
    )
