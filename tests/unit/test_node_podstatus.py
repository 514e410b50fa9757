"""The pod-status pieces both node agents build on (setpoint.node.podstatus)."""

from __future__ import annotations

from setpoint.meta.timestamps import rfc3339
from setpoint.node.podstatus import others_conditions, pod_condition, same_status, terminated_state

T0 = 1_800_000_000.0


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    before = pod_condition("Ready", True, T0)
    assert before == {
        "type": "Ready",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(T0),
    }
    assert pod_condition("Ready", True, T0 + 60, previous=before)["lastTransitionTime"] == (
        rfc3339(T0)
    )
    flipped = pod_condition("Ready", False, T0 + 60, previous=before, reason="R", message="M")
    assert flipped["lastTransitionTime"] == rfc3339(T0 + 60)
    assert list(flipped)[-2:] == ["reason", "message"]


def test_terminated_state_leaves_out_what_is_not_known() -> None:
    assert terminated_state(0, "Completed", T0, T0 + 1) == {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": rfc3339(T0),
        "finishedAt": rfc3339(T0 + 1),
    }
    failed = terminated_state(
        128, "StartError", None, T0, container_id="setpoint://u/c", signal=None, message="no"
    )
    assert failed == {
        "containerID": "setpoint://u/c",
        "exitCode": 128,
        "reason": "StartError",
        "finishedAt": rfc3339(T0),
        "message": "no",
    }


def test_statuses_are_the_same_up_to_explicit_nulls() -> None:
    written = {"conditions": [{"type": "Ready", "lastProbeTime": None}], "podIP": "10.0.0.1"}
    echoed = {"conditions": [{"type": "Ready"}], "podIP": "10.0.0.1"}
    assert same_status(written, echoed) and same_status(echoed, written)
    assert not same_status(written, {**echoed, "podIP": "10.0.0.2"})


def test_conditions_a_node_does_not_own_are_kept_as_they_are() -> None:
    """An eviction's DisruptionTarget (or a readiness gate) survives the node's rewrites of
    the pod status, as the kubelet keeps conditions it does not own."""
    evicted = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}
    gate = {"type": "example.com/gate", "status": "False"}
    previous = [{"type": "Ready", "status": "True"}, evicted, gate]
    assert others_conditions(previous) == [evicted, gate]
    assert others_conditions(None) == []
