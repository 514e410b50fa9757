"""PodGC's decisions: which finished pods go first, and which terminating pods are
force-deleted (including setpoint's lost-node case); the DisruptionTarget condition merge."""

from __future__ import annotations

from datetime import UTC, datetime

from setpoint.controllers.podgc.controller import (
    Reason,
    excess_terminated,
    gc_index,
    terminating_reason,
)
from setpoint.controllers.util.disruption import update_pod_condition
from tests import objects

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T0 = NOW.timestamp()


def finished(name: str, created: str, *, reason: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"phase": "Failed" if reason else "Succeeded"}
    if reason:
        status["reason"] = reason
    return objects.pod(name, metadata={"creationTimestamp": created}, status=status)


def terminating(
    node: str | None = "n", deleted_at: str = "2026-01-01T11:59:50Z"
) -> dict[str, object]:
    spec = {"nodeName": node} if node else {}
    return objects.pod(
        "p", metadata={"deletionTimestamp": deleted_at}, status={"phase": "Running"}, **spec
    )


def node(ready: str, *taints: dict[str, str]) -> dict[str, object]:
    return objects.node("n", conditions=[{"type": "Ready", "status": ready}], taints=list(taints))


def test_terminated_pods_beyond_the_threshold_go_evicted_first_then_oldest() -> None:
    pods = [
        finished("new", "2026-01-01T10:00:00Z"),
        finished("old", "2026-01-01T08:00:00Z"),
        finished("evicted", "2026-01-01T11:00:00Z", reason="Evicted"),
        finished("middle", "2026-01-01T09:00:00Z"),
    ]
    names = [p["metadata"]["name"] for p in excess_terminated(pods, 2)]  # type: ignore[index]
    assert names == ["evicted", "old"]
    assert excess_terminated(pods, 4) == []
    assert excess_terminated(pods, 0) == []  # 0 turns it off


def test_the_index_names_finished_and_terminating_pods() -> None:
    assert gc_index(finished("a", "2026-01-01T10:00:00Z")) == ["terminated"]
    assert gc_index(terminating()) == ["terminating"]
    assert gc_index(objects.pod("running")) == []


def test_an_unscheduled_terminating_pod_goes() -> None:
    reason = terminating_reason(terminating(None), None, now=T0, lost_nodes_allowed=True)
    assert reason == Reason.UNSCHEDULED_TERMINATING


def test_a_terminating_pod_on_an_out_of_service_node_goes() -> None:
    out = {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}
    pod = terminating(deleted_at="2026-01-01T12:10:00Z")
    assert terminating_reason(pod, node("False", out), now=T0, lost_nodes_allowed=True) == (
        Reason.OUT_OF_SERVICE
    )
    assert terminating_reason(pod, node("True", out), now=T0, lost_nodes_allowed=True) is None


def test_a_terminating_pod_on_a_lost_node_goes_once_its_grace_period_is_over() -> None:
    over = terminating(deleted_at="2026-01-01T11:59:59Z")
    running = terminating(deleted_at="2026-01-01T12:00:20Z")
    lost = node("Unknown")
    assert terminating_reason(over, lost, now=T0, lost_nodes_allowed=True) == Reason.LOST_NODE
    assert terminating_reason(running, lost, now=T0, lost_nodes_allowed=True) is None
    assert terminating_reason(over, node("False"), now=T0, lost_nodes_allowed=True) is None
    assert terminating_reason(over, node("True"), now=T0, lost_nodes_allowed=True) is None


def test_nothing_goes_for_a_lost_node_while_every_node_is_lost() -> None:
    over = terminating(deleted_at="2026-01-01T11:59:59Z")
    assert terminating_reason(over, node("Unknown"), now=T0, lost_nodes_allowed=False) is None


def test_the_disruption_condition_is_added_once_and_keeps_its_transition_time() -> None:
    status: dict[str, object] = {"conditions": [{"type": "Ready", "status": "True"}]}
    condition = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC"}
    assert update_pod_condition(status, condition, NOW)
    assert status["conditions"][1] == {  # type: ignore[index]
        **condition,
        "lastTransitionTime": "2026-01-01T12:00:00Z",
    }
    later = datetime(2026, 1, 1, 13, 0, 0, tzinfo=UTC)
    assert not update_pod_condition(status, condition, later)
