"""Specification of Service allocation: the ranges, the records in the store, the write hooks
(what a create, update or delete allocates and releases) and repair.

The allocators run over a real SQLite store (the records are plain keys there); the hooks are
called as the storage calls them, without an HTTP server."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.api.errors import APIError
from setpoint.api.services.allocation import ServiceAllocations
from setpoint.api.services.allocator import (
    AlreadyAllocated,
    NotInRange,
    Owner,
    RangeFull,
    RecordAllocator,
)
from setpoint.api.services.ranges import (
    IPRange,
    PortRange,
    RangeError,
    candidates,
    parse_ip_range,
    parse_port_range,
)
from setpoint.api.services.repair import AllocationRepair
from setpoint.store.sqlite import SQLiteStore

OWNER = Owner("default", "web", "uid-1")
OTHER = Owner("default", "db", "uid-2")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = await SQLiteStore.open(tmp_path / "state.db")
    yield backend
    await backend.close()


def ip_allocator(store: SQLiteStore, cidr: str = "10.96.0.0/28") -> RecordAllocator:
    return RecordAllocator(
        store, "serviceips", parse_ip_range(cidr), what="IP", rng=random.Random(1)
    )


def port_allocator(store: SQLiteStore, ports: str = "30000-30009") -> RecordAllocator:
    return RecordAllocator(
        store, "servicenodeports", parse_port_range(ports), what="port", rng=random.Random(1)
    )


def allocations(store: SQLiteStore, **kwargs: str) -> ServiceAllocations:
    return ServiceAllocations(
        ip_allocator(store, kwargs.get("cidr", "10.96.0.0/28")),
        port_allocator(store, kwargs.get("ports", "30000-30009")),
    )


def service(name: str = "web", uid: str = "uid-1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "ClusterIP",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "selector": {"app": name},
    }
    body.update(spec)
    return {"metadata": {"namespace": "default", "name": name, "uid": uid}, "spec": body}


# ------------------------------------------------------------------------------ ranges


def test_ip_range_leaves_out_network_and_broadcast_addresses() -> None:
    parsed = parse_ip_range("10.96.0.0/29")
    assert parsed.size == 6
    assert [parsed.value(i) for i in range(6)] == [f"10.96.0.{i}" for i in range(1, 7)]
    assert parsed.offset("10.96.0.0") is None
    assert parsed.offset("10.96.0.7") is None
    assert parsed.offset("10.96.0.1") == 0


def test_ipv6_range_keeps_its_last_address() -> None:
    parsed = parse_ip_range("fd00::/125")
    assert parsed.family == "IPv6"
    assert parsed.size == 7
    assert parsed.offset("fd00::7") == 6
    assert parsed.offset("10.0.0.1") is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10.96.0.0/33", "is not a CIDR"),
        ("10.96.0.1/16", "is not a CIDR"),
        ("banana", "is not a CIDR"),
        ("10.96.0.0/31", "too small"),
    ],
)
def test_bad_cluster_ip_ranges_are_refused_in_one_line(text: str, why: str) -> None:
    with pytest.raises(RangeError, match=why) as caught:
        parse_ip_range(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["32767-30000", "0-10", "30000-70000", "a-b"])
def test_bad_node_port_ranges_are_refused(text: str) -> None:
    with pytest.raises(RangeError):
        parse_port_range(text)


def test_node_port_range_includes_both_ends() -> None:
    parsed = parse_port_range("30000-32767")
    assert parsed.size == 2768
    assert str(parsed) == "30000-32767"
    assert parsed.offset("32767") == 2767 and parsed.offset("32768") is None


def test_dynamic_allocation_walks_the_upper_band_before_the_static_one() -> None:
    parsed = IPRange(parse_ip_range("10.96.0.0/24").network)  # 254 addresses, 16 static
    order = list(candidates(parsed, random.Random(7)))
    assert sorted(order) == list(range(254))
    assert set(order[: 254 - 16]) == set(range(16, 254))
    assert set(order[254 - 16 :]) == set(range(16))


def test_port_static_band_follows_kubernetes_formula() -> None:
    assert PortRange(30000, 2768).static_size == 86  # max(16, 2768/32)
    assert PortRange(30000, 100).static_size == 16
    assert PortRange(1, 65535).static_size == 128


# ------------------------------------------------------------------------- records


async def test_requested_ip_is_recorded_and_cannot_be_taken_twice(store: SQLiteStore) -> None:
    ips = ip_allocator(store)
    await ips.allocate("10.96.0.5", OWNER)
    with pytest.raises(AlreadyAllocated, match="provided IP is already allocated"):
        await ips.allocate("10.96.0.5", OTHER)
    assert [(r.value, r.owner) for r in await ips.records()] == [("10.96.0.5", OWNER)]


async def test_ip_outside_the_range_names_the_range(store: SQLiteStore) -> None:
    with pytest.raises(NotInRange) as caught:
        await ip_allocator(store).allocate("10.0.0.1", OWNER)
    assert str(caught.value) == (
        "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/28"
    )


async def test_port_outside_the_range_names_the_range(store: SQLiteStore) -> None:
    with pytest.raises(NotInRange) as caught:
        await port_allocator(store).allocate("80", OWNER)
    assert str(caught.value) == (
        "provided port is not in the valid range. The range of valid ports is 30000-30009"
    )


async def test_allocate_next_fills_the_range_then_says_it_is_full(store: SQLiteStore) -> None:
    ports = port_allocator(store)
    taken = {await ports.allocate_next(OWNER) for _ in range(10)}
    assert taken == {str(p) for p in range(30000, 30010)}
    with pytest.raises(RangeFull, match="range is full"):
        await ports.allocate_next(OWNER)


async def test_two_allocators_on_one_store_never_hand_out_one_value_twice(
    store: SQLiteStore,
) -> None:
    """Two API servers: each believes the other's values free until it tries them."""
    first, second = port_allocator(store), port_allocator(store)
    await first.load()
    await second.load()
    values = [await first.allocate_next(OWNER) for _ in range(5)]
    values += [await second.allocate_next(OTHER) for _ in range(5)]
    assert len(set(values)) == 10


async def test_released_value_can_be_allocated_again(store: SQLiteStore) -> None:
    ports = port_allocator(store, "30000-30000")
    assert await ports.allocate_next(OWNER) == "30000"
    await ports.release("30000", OWNER)
    assert await ports.allocate_next(OTHER) == "30000"


async def test_release_by_someone_else_leaves_the_record(store: SQLiteStore) -> None:
    ips = ip_allocator(store)
    await ips.allocate("10.96.0.9", OWNER)
    await ips.release("10.96.0.9", OTHER)
    assert [r.value for r in await ips.records()] == ["10.96.0.9"]


async def test_records_survive_a_new_allocator(store: SQLiteStore) -> None:
    """A restarted server learns the allocations from the store."""
    await ip_allocator(store).allocate("10.96.0.3", OWNER)
    fresh = ip_allocator(store)
    await fresh.load()
    with pytest.raises(AlreadyAllocated):
        await fresh.allocate("10.96.0.3", OTHER)


async def test_dry_run_writes_no_record(store: SQLiteStore) -> None:
    ips = ip_allocator(store)
    value = await ips.allocate_next(OWNER, dry_run=True)
    await ips.allocate(value, OWNER, dry_run=True)
    assert await ips.records() == []


# ---------------------------------------------------------------------------- hooks


async def test_create_allocates_a_cluster_ip_and_ip_family_fields(store: SQLiteStore) -> None:
    svc = service()
    txn = await allocations(store).begin_create(svc, dry_run=False)
    await txn.commit()
    spec = svc["spec"]
    assert parse_ip_range("10.96.0.0/28").offset(spec["clusterIP"]) is not None
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"


async def test_headless_service_gets_no_ip_and_selectorless_one_requires_dual_stack(
    store: SQLiteStore,
) -> None:
    alloc = allocations(store)
    headless = service(clusterIP="None", clusterIPs=["None"])
    await alloc.begin_create(headless, dry_run=False)
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["ipFamilyPolicy"] == "SingleStack"
    selectorless = service("ext", "uid-9", clusterIP="None", clusterIPs=["None"])
    del selectorless["spec"]["selector"]
    await alloc.begin_create(selectorless, dry_run=False)
    assert selectorless["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    assert selectorless["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    assert await alloc.ips.records() == []


async def test_dual_stack_required_on_a_single_stack_cluster_is_invalid(
    store: SQLiteStore,
) -> None:
    with pytest.raises(APIError) as caught:
        await allocations(store).begin_create(
            service(ipFamilyPolicy="RequireDualStack"), dry_run=False
        )
    assert caught.value.code == 422
    assert "this cluster is not configured for dual-stack services" in caught.value.message


async def test_node_ports_one_per_port_number_and_requested_ones_kept(
    store: SQLiteStore,
) -> None:
    svc = service(
        type="NodePort",
        ports=[
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "web", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30007},
        ],
    )
    await allocations(store).begin_create(svc, dry_run=False)
    ports = svc["spec"]["ports"]
    assert ports[0]["nodePort"] == ports[1]["nodePort"] != 30007
    assert ports[2]["nodePort"] == 30007


async def test_duplicate_node_port_is_invalid_and_the_cluster_ip_given_back(
    store: SQLiteStore,
) -> None:
    alloc = allocations(store)
    first = service(type="NodePort")
    first["spec"]["ports"][0]["nodePort"] = 30001
    await alloc.begin_create(first, dry_run=False)
    second = service("db", "uid-2", type="NodePort")
    second["spec"]["ports"][0]["nodePort"] = 30001
    with pytest.raises(APIError) as caught:
        await alloc.begin_create(second, dry_run=False)
    assert caught.value.code == 422
    assert caught.value.details["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 30001: provided port is already allocated",
            "field": "spec.ports[0].nodePort",
        }
    ]
    assert [r.owner.name for r in await alloc.ips.records()] == ["web"]


async def test_exhausted_ip_range_is_an_internal_error_as_upstream(store: SQLiteStore) -> None:
    alloc = allocations(store, cidr="10.96.0.0/30")  # two addresses
    for i in range(2):
        await alloc.begin_create(service(f"s{i}", f"u{i}"), dry_run=False)
    with pytest.raises(APIError) as caught:
        await alloc.begin_create(service("s3", "u3"), dry_run=False)
    assert caught.value.code == 500
    assert caught.value.message == (
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    )


async def test_revert_gives_back_what_a_failed_create_took(store: SQLiteStore) -> None:
    alloc = allocations(store)
    txn = await alloc.begin_create(service(type="NodePort"), dry_run=False)
    await txn.revert()
    assert await alloc.ips.records() == []
    assert await alloc.node_ports.records() == []


async def test_type_change_to_cluster_ip_releases_node_ports_after_the_write(
    store: SQLiteStore,
) -> None:
    alloc = allocations(store)
    old = service(type="NodePort")
    await alloc.begin_create(old, dry_run=False)
    new = service(
        type="ClusterIP",
        clusterIP=old["spec"]["clusterIP"],
        clusterIPs=old["spec"]["clusterIPs"],
    )
    txn = await alloc.begin_update(new, old, dry_run=False)
    assert len(await alloc.node_ports.records()) == 1  # still held until the write lands
    await txn.commit()
    assert await alloc.node_ports.records() == []
    assert len(await alloc.ips.records()) == 1


async def test_type_change_to_external_name_releases_the_cluster_ip(store: SQLiteStore) -> None:
    alloc = allocations(store)
    old = service()
    await alloc.begin_create(old, dry_run=False)
    new = service(type="ExternalName", externalName="example.com")
    await (await alloc.begin_update(new, old, dry_run=False)).commit()
    assert await alloc.ips.records() == []


async def test_delete_releases_everything(store: SQLiteStore) -> None:
    alloc = allocations(store)
    svc = service(type="NodePort")
    await alloc.begin_create(svc, dry_run=False)
    await alloc.after_delete(svc)
    assert await alloc.ips.records() == []
    assert await alloc.node_ports.records() == []


# ---------------------------------------------------------------------------- repair


async def test_repair_records_a_services_ip_again(store: SQLiteStore) -> None:
    alloc = allocations(store)
    svc = service(clusterIP="10.96.0.4", clusterIPs=["10.96.0.4"])

    async def services() -> list[dict[str, Any]]:
        return [svc]

    assert await AllocationRepair(alloc, services).run_once() == 1
    assert [(r.value, r.owner) for r in await alloc.ips.records()] == [("10.96.0.4", OWNER)]


async def test_repair_reclaims_a_leak_only_on_its_second_sighting(store: SQLiteStore) -> None:
    """A record written a moment before its Service must not be taken away."""
    alloc = allocations(store)
    await alloc.ips.allocate("10.96.0.6", OWNER)

    async def services() -> list[dict[str, Any]]:
        return []

    repair = AllocationRepair(alloc, services)
    assert await repair.run_once() == 0
    assert len(await alloc.ips.records()) == 1
    assert await repair.run_once() == 1
    assert await alloc.ips.records() == []
