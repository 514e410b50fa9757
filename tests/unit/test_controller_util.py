"""The helpers every workload controller shares: expectations, conditions, pod facts and
controller references (setpoint.controllers.util)."""

from __future__ import annotations

from datetime import UTC, datetime

from setpoint.client.api import Obj
from setpoint.controllers.util import conditions, ownerrefs, pods
from setpoint.controllers.util.expectations import (
    ControllerExpectations,
    UIDTrackingControllerExpectations,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_setting_expectations_replaces_what_was_expected() -> None:
    exp = ControllerExpectations()
    exp.expect_creations("ns/o", 3)
    exp.expect_deletions("ns/o", 1)
    assert exp.pending("ns/o") == (0, 1)
    exp.deletion_observed("ns/o")
    assert exp.satisfied("ns/o")


def test_observations_never_count_below_zero() -> None:
    exp = ControllerExpectations()
    exp.expect_creations("ns/o", 1)
    exp.creation_observed("ns/o")
    exp.creation_observed("ns/o")  # a pod the controller did not create
    assert exp.pending("ns/o") == (0, 0)
    exp.expect_creations("ns/o", 1)
    assert not exp.satisfied("ns/o")


def test_unknown_owner_is_satisfied_and_forgotten_owner_too() -> None:
    exp = ControllerExpectations()
    assert exp.satisfied("ns/o")
    exp.expect_creations("ns/o", 2)
    exp.delete_expectations("ns/o")
    assert exp.satisfied("ns/o")


def test_a_graceful_deletion_seen_twice_counts_once() -> None:
    exp = UIDTrackingControllerExpectations()
    exp.expect_deletions("ns/o", ["a", "b"])
    exp.deletion_observed("ns/o", "a")  # seen terminating
    exp.deletion_observed("ns/o", "a")  # seen gone
    assert exp.pending("ns/o") == (0, 1)
    exp.deletion_observed("ns/o", "b")
    assert exp.satisfied("ns/o")


def test_failed_creations_are_no_longer_waited_for() -> None:
    exp = UIDTrackingControllerExpectations()
    exp.expect_creations("ns/o", 4)
    exp.creation_observed("ns/o")
    exp.lower_creations("ns/o", 3)
    assert exp.satisfied("ns/o")


def test_conditions_carry_the_kinds_own_timestamp_in_kubernetes_key_order() -> None:
    job = conditions.new_condition("Complete", "True", "R", "m", NOW, heartbeat="lastProbeTime")
    assert list(job) == [
        "type",
        "status",
        "lastProbeTime",
        "lastTransitionTime",
        "reason",
        "message",
    ]
    plain = conditions.new_condition("ReplicaFailure", "True", "R", "m", NOW)
    assert list(plain) == ["type", "status", "lastTransitionTime", "reason", "message"]
    assert plain["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_conditions_are_found_tested_and_removed_by_type() -> None:
    status: Obj = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert conditions.condition_true(status, "Ready")
    assert conditions.get_condition(status, "Other") is None
    conditions.remove_condition(status, "Ready")
    assert "conditions" not in status


def test_a_pod_without_a_phase_is_pending() -> None:
    pod: Obj = {"metadata": {"name": "p"}}
    assert pods.pod_phase(pod) == "Pending"
    assert pods.is_pod_active(pod)


def test_active_pods_order_puts_unscheduled_and_pending_first() -> None:
    def pod(name: str, node: str, phase: str) -> Obj:
        return {"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": phase}}

    ranked = sorted(
        [pod("running", "n", "Running"), pod("pending", "n", "Pending"), pod("free", "", "")],
        key=pods.active_pods_order,
    )
    assert [p["metadata"]["name"] for p in ranked] == ["free", "pending", "running"]


def test_controller_uid_reads_the_controller_reference_only() -> None:
    owned: Obj = {
        "metadata": {
            "ownerReferences": [
                {"uid": "plain"},
                {"uid": "boss", "controller": True},
            ]
        }
    }
    assert ownerrefs.controller_uid(owned) == "boss"
    assert ownerrefs.controller_uid({"metadata": {}}) is None
