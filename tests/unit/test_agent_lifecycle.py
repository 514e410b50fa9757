"""``activeDeadlineSeconds`` as the agent decides it: when a pod runs out of time and the
status it then reports."""

from __future__ import annotations

from setpoint.agent.lifecycle import (
    DEADLINE_MESSAGE,
    DEADLINE_REASON,
    active_deadline,
    deadline_exceeded,
    deadline_exceeded_status,
)
from setpoint.meta.timestamps import rfc3339
from tests import objects


def _pod(phase: str = "Running", **status: str) -> dict[str, object]:
    """A pod in ``phase`` that started at 1000 and may run for 30 seconds."""
    return objects.pod(
        "p",
        namespace="ns",
        metadata={"uid": "u"},
        status={"phase": phase, "startTime": rfc3339(1000.0), **status},
        activeDeadlineSeconds=30,
    )


def test_active_deadline_is_start_time_plus_seconds() -> None:
    assert active_deadline(_pod()) == 1030.0


def test_pod_without_start_time_has_no_deadline_yet() -> None:
    pod = _pod()
    del pod["status"]["startTime"]  # type: ignore[attr-defined]
    assert active_deadline(pod) is None


def test_deadline_is_exceeded_once_the_time_has_come() -> None:
    assert not deadline_exceeded(_pod(), 1029.0)
    assert deadline_exceeded(_pod(), 1030.0)


def test_pod_that_succeeded_in_time_is_not_failed_for_the_deadline() -> None:
    assert not deadline_exceeded(_pod("Succeeded"), 5000.0)


def test_status_past_the_deadline_is_failed_with_reason_and_message() -> None:
    computed = {
        "phase": "Running",
        "startTime": rfc3339(1000.0),
        "containerStatuses": [{"name": "app", "ready": False, "state": {"terminated": {}}}],
        "conditions": [],
    }
    status = deadline_exceeded_status(_pod(), computed, now=2000.0)
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        DEADLINE_REASON,
        DEADLINE_MESSAGE,
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodFailed")
    assert deadline_exceeded_status(_pod(), computed, now=1001.0) is computed
