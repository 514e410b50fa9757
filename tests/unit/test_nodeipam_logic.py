"""Node IPAM's subnet arithmetic (``cidrset``) and the agent's host-local pod addresses."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from setpoint.agent.network import HostLocalIPAM, PodCIDRExhaustedError, other_node_routes
from setpoint.controllers.nodeipam.cidrset import CIDRRangeFullError, CIDRSet, CIDRSetError


def test_subnets_are_handed_out_in_order() -> None:
    cidrs = CIDRSet("10.244.0.0/16", 24)
    assert [str(cidrs.allocate_next()) for _ in range(3)] == [
        "10.244.0.0/24",
        "10.244.1.0/24",
        "10.244.2.0/24",
    ]
    assert cidrs.size == 256 and cidrs.free == 253


def test_a_released_subnet_is_not_given_out_again_at_once() -> None:
    cidrs = CIDRSet("10.0.0.0/22", 24)
    first = cidrs.allocate_next()
    cidrs.allocate_next()
    cidrs.release(first)
    assert str(cidrs.allocate_next()) == "10.0.2.0/24"  # round robin, as upstream
    cidrs.allocate_next()
    assert cidrs.allocate_next() == first  # wrapped around to the freed one


def test_occupied_subnets_are_skipped() -> None:
    cidrs = CIDRSet("10.0.0.0/22", 24)
    cidrs.occupy("10.0.0.0/24")
    cidrs.occupy("10.0.2.0/23")  # larger than a node subnet: both it covers
    assert str(cidrs.allocate_next()) == "10.0.1.0/24"
    with pytest.raises(CIDRRangeFullError):
        cidrs.allocate_next()


def test_a_cidr_outside_the_cluster_cidr_is_refused() -> None:
    cidrs = CIDRSet("10.0.0.0/16", 24)
    with pytest.raises(CIDRSetError):
        cidrs.occupy("192.168.0.0/24")
    with pytest.raises(CIDRSetError):
        cidrs.occupy("not a cidr")


@pytest.mark.parametrize(("cluster", "mask"), [("10.0.0.0/16", 8), ("10.0.0.0/8", 25)])
def test_impossible_node_mask_sizes_are_refused(cluster: str, mask: int) -> None:
    with pytest.raises(CIDRSetError):
        CIDRSet(cluster, mask)


def test_ipv6_cluster_cidrs_are_cut_too() -> None:
    cidrs = CIDRSet("fd00:10::/56", 64)
    assert str(cidrs.allocate_next()) == "fd00:10::/64"
    assert str(cidrs.allocate_next()) == "fd00:10:0:1::/64"


# ------------------------------------------------------------------ host-local addresses

SUBNET = ipaddress.IPv4Network("10.1.2.0/29")  # .1 is the bridge: .2 to .6 for pods


def test_pods_get_the_addresses_after_the_bridge_and_keep_theirs(tmp_path: Path) -> None:
    ipam = HostLocalIPAM(tmp_path)
    assert ipam.allocate(SUBNET, "a") == "10.1.2.2"
    assert ipam.allocate(SUBNET, "b") == "10.1.2.3"
    assert ipam.allocate(SUBNET, "a") == "10.1.2.2"


def test_addresses_survive_a_restart(tmp_path: Path) -> None:
    HostLocalIPAM(tmp_path).allocate(SUBNET, "a")
    again = HostLocalIPAM(tmp_path)
    assert again.lookup("a") == "10.1.2.2"
    assert again.allocate(SUBNET, "b") == "10.1.2.3"


def test_a_released_address_is_reused_only_after_the_others(tmp_path: Path) -> None:
    ipam = HostLocalIPAM(tmp_path)
    for uid in "abcde":
        ipam.allocate(SUBNET, uid)
    with pytest.raises(PodCIDRExhaustedError):
        ipam.allocate(SUBNET, "f")
    ipam.release("b")
    assert ipam.allocate(SUBNET, "f") == "10.1.2.3"
    ipam.release("f")
    ipam.release("a")
    assert ipam.allocate(SUBNET, "g") == "10.1.2.2"  # after .3, the last given: .4-.6 taken


def test_an_address_of_an_old_pod_cidr_is_replaced(tmp_path: Path) -> None:
    ipam = HostLocalIPAM(tmp_path)
    ipam.allocate(SUBNET, "a")
    assert ipam.allocate(ipaddress.IPv4Network("10.9.0.0/24"), "a") == "10.9.0.2"
    assert not (tmp_path / "10.1.2.2").exists()


def test_routes_go_to_other_nodes_with_a_pod_cidr_and_a_real_address() -> None:
    def node(name: str, cidr: str | None, ip: str) -> dict[str, object]:
        return {
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }

    nodes = [
        node("me", "10.244.0.0/24", "10.0.0.1"),
        node("other", "10.244.1.0/24", "10.0.0.2"),
        node("hollow", "10.244.2.0/24", "127.0.0.1"),
        node("new", None, "10.0.0.3"),
    ]
    assert other_node_routes(nodes, "me") == {"10.244.1.0/24": "10.0.0.2"}
