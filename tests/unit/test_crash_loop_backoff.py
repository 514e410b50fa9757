"""The crash-loop backoff curve and how a container waiting it out is reported.

The curve is the kubelet's with ``ReduceDefaultCrashLoopBackOffDecay`` (KEP-4603): 1 s,
doubling, capped at the node's ``maxContainerRestartPeriod`` (KEP-5593, 60 s by default),
after setpoint's (and the kubelet's) immediate first restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.agent.pods import (
    NodeContainerSettings,
    back_off_event_message,
    container_spec,
    container_status,
)
from setpoint.agent.runtime import ContainerSpec, ContainerState, ExitRecord
from tests import objects

APP = objects.container("app", "none", command=["false"])
POD = objects.pod("web", namespace="ns", metadata={"uid": "u-1"}, containers=[APP])


def spec(settings: NodeContainerSettings | None = None) -> ContainerSpec:
    return container_spec(
        POD, APP, log_dir=Path("/logs"), base_env={}, pod_ip="h", host_ip="h", settings=settings
    )


def curve(container: ContainerSpec, restarts: int) -> list[float]:
    """The wait before each of the first ``restarts`` restarts of a crash loop."""
    return [container.backoff(n) for n in range(1, restarts + 1)]


def test_first_restart_is_immediate_then_one_second_doubling_to_a_minute() -> None:
    assert curve(spec(), 10) == [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_max_container_restart_period_caps_the_curve() -> None:
    capped = spec(NodeContainerSettings(backoff_max=10.0))
    assert curve(capped, 7) == [0, 1, 2, 4, 8, 10, 10]


def test_longest_max_container_restart_period_is_five_minutes() -> None:
    longest = spec(NodeContainerSettings(backoff_max=300.0))
    assert curve(longest, 12)[-4:] == [128, 256, 300, 300]


def test_a_cap_below_the_initial_wait_lowers_the_initial_wait() -> None:
    # newCrashLoopBackOff: boInitial = boMax when the max is below it
    assert curve(spec(NodeContainerSettings(backoff_max=0.5)), 3) == [0, 0.5, 0.5]


def test_crash_loop_backoff_configured_first_delay_is_kept() -> None:
    delayed = spec(NodeContainerSettings(initial_backoff=0.25))
    assert curve(delayed, 3) == [0.25, 1, 2]


def test_backoff_is_reset_after_ten_minutes_of_running() -> None:
    assert spec().reset_after == 600.0


def waiting(backoff: float) -> ContainerState:
    last = ExitRecord(1, None, "Error", 1, 1, 0.0, 1.0, restart_count=3)
    return ContainerState(
        id="u-1/app", state="waiting", pid=None, pid_start_time=None, restart_count=3,
        started_at=None, last_exit=last, reason="CrashLoopBackOff", next_start_at=5.0,
        backoff=backoff,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("backoff", "shown"), [(1.0, "1s"), (2.0, "2s"), (60.0, "1m0s"), (0.5, "500ms")]
)
def test_waiting_container_says_how_long_it_backs_off_as_the_kubelet_does(
    backoff: float, shown: str
) -> None:
    status = container_status(POD, APP, waiting(backoff))
    assert status["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": f"back-off {shown} restarting failed container=app pod=web_ns(u-1)",
    }


def test_back_off_event_names_the_pod_as_the_kubelet_does() -> None:
    assert back_off_event_message(POD, "app") == (
        "Back-off restarting failed container app in pod web_ns(u-1)"
    )
