"""The pure status logic of hollow nodes: what a hollow kubelet reports, and when."""

from __future__ import annotations

import re
from typing import Any

from setpoint.client.nodes import node_conditions
from setpoint.meta.timestamps import micro_time
from setpoint.sim.hollow import (
    NodeShape,
    desired_pod_status,
    next_transition,
    node_object,
    pod_timing,
    terminated_pod_status,
)
from tests import objects
from tests.objects import container

T0 = 1_800_000_000.0


def pod(restart_policy: str = "Always", **annotations: str) -> dict[str, Any]:
    """A pod of two containers, ``a`` and ``b``, whose ``annotations`` tell the hollow node
    how it runs."""
    return objects.pod(
        "p",
        namespace="ns",
        annotations=annotations,
        metadata={"uid": "u-1"},
        containers=[container("a", "img"), container("b", "img")],
        status={"phase": "Pending", "qosClass": "BestEffort"},
        restartPolicy=restart_policy,
    )


def test_service_pod_runs_forever() -> None:
    timing = pod_timing(pod(), T0)
    assert timing.start_at == T0 and timing.finish_at is None
    assert next_transition(timing, T0 + 1000) is None
    status = desired_pod_status(pod(), timing, T0 + 1000)
    assert status["phase"] == "Running"
    assert [c["ready"] for c in status["containerStatuses"]] == [True, True]
    assert status["containerStatuses"][1]["containerID"] == "hollow://u-1/b"
    assert status["qosClass"] == "BestEffort"


def test_never_restarting_pod_exits_zero_after_default_run_time() -> None:
    timing = pod_timing(pod("Never"), T0)
    assert timing.exit_code == 0 and timing.finish_at == T0 + 0.1
    assert desired_pod_status(pod("Never"), timing, T0 + 0.05)["phase"] == "Running"
    assert desired_pod_status(pod("Never"), timing, T0 + 0.2)["phase"] == "Succeeded"


def test_exit_code_annotation_fails_the_pod_after_run_seconds() -> None:
    p = pod("Never", **{"sim.setpoint.dev/exit-code": "3", "sim.setpoint.dev/run-seconds": "5"})
    timing = pod_timing(p, T0)
    assert next_transition(timing, T0 + 1) == 4
    status = desired_pod_status(p, timing, T0 + 6)
    assert status["phase"] == "Failed"
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"


def test_start_delay_keeps_the_pod_pending_until_it_passes() -> None:
    p = pod(**{"sim.setpoint.dev/start-delay-seconds": "2"})
    timing = pod_timing(p, T0)
    pending = desired_pod_status(p, timing, T0 + 1)
    assert pending["phase"] == "Pending"
    assert pending["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert desired_pod_status(p, timing, T0 + 2)["phase"] == "Running"


def test_status_is_stable_once_written_even_after_a_restart() -> None:
    p = pod("Never", **{"sim.setpoint.dev/run-seconds": "60"})
    written = desired_pod_status(p, pod_timing(p, T0), T0 + 10)
    p["status"] = written
    # a restarted hollow node sees the pod first at a later time: the status wins
    assert desired_pod_status(p, pod_timing(p, T0 + 30), T0 + 31) == written


def test_deleted_pod_is_terminated_with_exit_zero() -> None:
    status = terminated_pod_status(pod(), pod_timing(pod(), T0), T0 + 50)
    assert status["phase"] == "Succeeded"
    assert all(cs["state"]["terminated"]["exitCode"] == 0 for cs in status["containerStatuses"])


def test_node_condition_keeps_transition_time_while_unchanged() -> None:
    first = node_conditions(T0)
    later = node_conditions(T0 + 120, first)
    assert [c["lastTransitionTime"] for c in later] == [c["lastTransitionTime"] for c in first]
    assert later[0]["lastHeartbeatTime"] != first[0]["lastHeartbeatTime"]


def test_node_not_ready_is_kubelet_not_ready_with_its_reason_and_a_new_transition() -> None:
    ready = node_conditions(T0)
    down = node_conditions(T0 + 1, ready, not_ready="container runtime is down")
    condition = next(c for c in down if c["type"] == "Ready")
    assert (condition["status"], condition["reason"]) == ("False", "KubeletNotReady")
    assert condition["message"] == "container runtime is down"
    before = next(c for c in ready if c["type"] == "Ready")
    assert condition["lastTransitionTime"] != before["lastTransitionTime"]


def test_node_object_carries_well_known_labels_and_extra_labels() -> None:
    node = node_object("n-1", NodeShape(labels=(("tier", "sim"),)), T0)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "n-1" and labels["tier"] == "sim"
    assert node["status"]["capacity"]["pods"] == "110"


def test_micro_time_has_microseconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", micro_time(T0 + 0.5))
