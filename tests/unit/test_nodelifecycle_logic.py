"""The node lifecycle controller's decisions: heartbeats and grace periods, the conditions
of a lost node, the taints its conditions call for, zone states and the eviction rate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from setpoint.controllers.nodelifecycle.health import (
    NodeHealth,
    grace_period,
    lost_conditions,
    no_schedule_taints,
    observe_lease,
    observe_node,
    reconciled_taints,
    silent_for,
    wanted_no_execute_taint,
)
from setpoint.controllers.nodelifecycle.zones import (
    ZoneState,
    ZoneTainter,
    compute_zone_state,
    zone_eviction_rate,
    zone_key,
)
from setpoint.meta.clock import FakeClock
from tests import objects

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NoSchedule, NoExecute = "NoSchedule", "NoExecute"
UNREACHABLE, NOT_READY = "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"


def ready(status: str = "True", heartbeat: str = "2026-01-01T11:59:00Z") -> dict[str, str]:
    return {
        "type": "Ready",
        "status": status,
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": heartbeat,
        "lastTransitionTime": "2026-01-01T10:00:00Z",
    }


def lease(renew: str) -> dict[str, object]:
    return {"metadata": {"name": "n"}, "spec": {"renewTime": renew}}


# ------------------------------------------------------------------ heartbeats


def test_a_renewed_lease_counts_as_a_heartbeat() -> None:
    health = observe_lease(None, lease("2026-01-01T12:00:00.000000Z"), 100.0)
    renewed = observe_lease(health, lease("2026-01-01T12:00:04.000000Z"), 104.0)
    assert renewed.probe == 104.0


def test_an_unchanged_lease_is_no_heartbeat() -> None:
    health = observe_lease(None, lease("2026-01-01T12:00:00.000000Z"), 100.0)
    assert observe_lease(health, lease("2026-01-01T12:00:00.000000Z"), 120.0).probe == 100.0


def test_a_new_status_heartbeat_counts_and_the_controllers_own_write_does_not() -> None:
    node = objects.node("n", conditions=[ready()])
    health = observe_node(None, node, 100.0)
    assert observe_node(health, node, 110.0).probe == 100.0
    conditions = lost_conditions(node, NOW)
    assert conditions is not None
    marked = objects.node("n", conditions=conditions)  # same lastHeartbeatTime
    assert observe_node(health, marked, 120.0).probe == 100.0
    fresh = objects.node("n", conditions=[ready(heartbeat="2026-01-01T12:00:30Z")])
    assert observe_node(health, fresh, 130.0).probe == 130.0


def test_a_node_that_never_reported_ready_gets_the_startup_grace() -> None:
    assert grace_period(objects.node("n", conditions=[]), grace=15, startup_grace=30) == 30
    assert grace_period(objects.node("n", conditions=[ready()]), grace=15, startup_grace=30) == 15


def test_silence_is_measured_on_the_controllers_clock() -> None:
    assert silent_for(NodeHealth(probe=100.0), 116.0) == 16.0


# ------------------------------------------------------------------ a lost node


def test_a_lost_node_gets_every_kubelet_condition_unknown() -> None:
    pressure = {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "x"}
    network = {"type": "NetworkUnavailable", "status": "False"}
    node = objects.node("n", conditions=[ready(), pressure, network])
    conditions = lost_conditions(node, NOW)
    assert conditions is not None
    by_type = {c["type"]: c for c in conditions}
    assert by_type["Ready"]["status"] == "Unknown"
    assert by_type["Ready"]["reason"] == "NodeStatusUnknown"
    assert by_type["Ready"]["message"] == "Kubelet stopped posting node status."
    assert by_type["Ready"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert by_type["Ready"]["lastHeartbeatTime"] == "2026-01-01T11:59:00Z"
    assert by_type["MemoryPressure"]["status"] == "Unknown"
    assert by_type["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert by_type["PIDPressure"]["message"] == "Kubelet never posted node status."
    assert by_type["NetworkUnavailable"] == network  # the control plane's, left alone


def test_a_node_already_unknown_needs_no_write() -> None:
    assert lost_conditions(objects.node("n", conditions=[ready("Unknown")]), NOW) is None


# ------------------------------------------------------------------ taints


@pytest.mark.parametrize(
    ("status", "no_schedule", "no_execute"),
    [
        ("True", [], None),
        ("False", [NOT_READY], NOT_READY),
        ("Unknown", [UNREACHABLE], UNREACHABLE),
    ],
)
def test_taints_follow_the_ready_condition(
    status: str, no_schedule: list[str], no_execute: str | None
) -> None:
    node = objects.node("n", conditions=[ready(status)])
    assert [t["key"] for t in no_schedule_taints(node)] == no_schedule
    wanted = wanted_no_execute_taint(node)
    assert (wanted or {}).get("key") == no_execute


def test_pressure_and_cordon_taint_no_schedule() -> None:
    disk = {"type": "DiskPressure", "status": "True"}
    node = objects.node("n", conditions=[ready(), disk], unschedulable=True)
    assert no_schedule_taints(node) == [
        {"key": "node.kubernetes.io/disk-pressure", "effect": NoSchedule},
        {"key": "node.kubernetes.io/unschedulable", "effect": NoSchedule},
    ]


def test_a_lost_node_is_tainted_and_keeps_its_users_taints() -> None:
    mine = {"key": "dedicated", "value": "gpu", "effect": NoExecute}
    node = objects.node("n", conditions=[ready("Unknown")], taints=[mine])
    taints = reconciled_taints(
        node, no_execute=wanted_no_execute_taint(node), keep_no_execute=False, now=NOW
    )
    assert taints == [
        mine,
        {"key": UNREACHABLE, "effect": NoSchedule},
        {"key": UNREACHABLE, "effect": NoExecute, "timeAdded": "2026-01-01T12:00:00Z"},
    ]


def test_a_node_ready_again_loses_the_controllers_taints() -> None:
    node = objects.node(
        "n",
        conditions=[ready("True")],
        taints=[
            {"key": UNREACHABLE, "effect": NoSchedule},
            {"key": UNREACHABLE, "effect": NoExecute, "timeAdded": "2026-01-01T11:00:00Z"},
        ],
    )
    assert reconciled_taints(node, no_execute=None, keep_no_execute=False, now=NOW) == []


def test_not_ready_and_unreachable_swap_at_once() -> None:
    added = {"key": NOT_READY, "effect": NoExecute, "timeAdded": "2026-01-01T11:00:00Z"}
    node = objects.node("n", conditions=[ready("Unknown")], taints=[added])
    taints = reconciled_taints(
        node, no_execute=wanted_no_execute_taint(node), keep_no_execute=False, now=NOW
    )
    assert [(t["key"], t["effect"]) for t in taints] == [
        (UNREACHABLE, NoSchedule),
        (UNREACHABLE, NoExecute),
    ]


def test_a_node_waiting_for_its_turn_keeps_its_no_execute_taints_as_they_are() -> None:
    node = objects.node("n", conditions=[ready("Unknown")])
    taints = reconciled_taints(node, no_execute=None, keep_no_execute=True, now=NOW)
    assert taints == [{"key": UNREACHABLE, "effect": NoSchedule}]


# ------------------------------------------------------------------ zones


def test_nodes_without_zone_labels_share_one_zone() -> None:
    assert zone_key(objects.node("a")) == zone_key(objects.node("b")) == ""
    east = objects.node("c", labels={"topology.kubernetes.io/zone": "east"})
    west = objects.node("d", labels={"topology.kubernetes.io/zone": "west"})
    assert zone_key(east) != zone_key(west)


@pytest.mark.parametrize(
    ("statuses", "state"),
    [
        (["True", "True", "Unknown"], ZoneState.NORMAL),
        (["Unknown", "Unknown"], ZoneState.FULL_DISRUPTION),
        (["True", "Unknown", "Unknown"], ZoneState.NORMAL),  # two are never a disruption
        (["True", "Unknown", "Unknown", "False"], ZoneState.PARTIAL_DISRUPTION),
        (["True", "True", "Unknown", "Unknown", "False", "True"], ZoneState.NORMAL),  # 50 %
        ([None, "True"], ZoneState.NORMAL),
    ],
)
def test_zone_state(statuses: list[str | None], state: ZoneState) -> None:
    assert compute_zone_state(statuses, 0.55)[1] == state


def test_partial_disruption_stops_evictions_in_small_zones_and_slows_them_in_large_ones() -> None:
    rates = {"rate": 1.0, "secondary_rate": 0.1, "large_cluster_threshold": 50}
    assert zone_eviction_rate(ZoneState.NORMAL, 10, **rates) == 1.0
    assert zone_eviction_rate(ZoneState.PARTIAL_DISRUPTION, 10, **rates) == 0.0
    assert zone_eviction_rate(ZoneState.PARTIAL_DISRUPTION, 100, **rates) == 0.1
    assert zone_eviction_rate(ZoneState.FULL_DISRUPTION, 10, **rates) == 1.0


def test_the_zone_tainter_lets_one_node_through_per_token() -> None:
    clock = FakeClock(NOW)
    tainter = ZoneTainter(0.5, clock=clock.time)
    for name in ("a", "b", "c"):
        tainter.add(name)
    assert tainter.take() == ["a"]
    clock.step(1)
    assert tainter.take() == []
    clock.step(1)
    assert tainter.take() == ["b"]
    tainter.remove("c")
    clock.step(10)
    assert tainter.take() == []


def test_a_zone_tainter_at_rate_zero_lets_nothing_through() -> None:
    clock = FakeClock(NOW)
    tainter = ZoneTainter(0.0, clock=clock.time)
    tainter.add("a")
    clock.step(100)
    assert tainter.take() == []
    tainter.swap_rate(1.0)
    assert tainter.take() == ["a"]
