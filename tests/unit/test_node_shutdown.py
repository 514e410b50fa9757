"""Graceful node shutdown's decisions (``setpoint.agent.shutdown``): which pods go in which
group, how long each gets, and the status a terminated pod is reported with."""

from __future__ import annotations

from typing import Any

from setpoint.agent.pods import pod_status
from setpoint.agent.runtime import ContainerState, ExitRecord
from setpoint.agent.shutdown import (
    SHUTDOWN_MESSAGE,
    node_shutdown_status,
    pod_grace_seconds,
    shutdown_groups,
)
from setpoint.cli.server import CHILD_STOP_SECONDS, agent_stop_seconds
from setpoint.client.nodes import node_conditions
from tests import objects

T0 = 1_800_000_000.0


def pod(name: str, phase: str = "Running", **spec: Any) -> dict[str, Any]:
    app = objects.container("app", "none", command=["sleep", "1000"])
    return objects.pod(
        name, namespace="ns", metadata={"uid": f"uid-{name}"}, containers=[app],
        status={"phase": phase}, **spec,
    )  # fmt: skip


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_regular_pods_go_first_within_what_critical_pods_leave_them() -> None:
    pods = [
        pod("node-critical", priorityClassName="system-node-critical"),
        pod("web"),
        pod("cluster-critical", priorityClassName="system-cluster-critical"),
        pod("important", priority=2_000_000_000),
        pod("low", priority=-5),
    ]
    regular, critical = shutdown_groups(pods, grace_period=30, critical_grace_period=10)
    assert (names(regular.pods), regular.grace_seconds) == (["web", "low"], 20)
    assert critical.grace_seconds == 10
    assert names(critical.pods) == ["node-critical", "cluster-critical", "important"]


def test_finished_pods_are_left_alone_and_empty_groups_left_out() -> None:
    pods = [pod("done", "Succeeded"), pod("failed", "Failed"), pod("web")]
    (group,) = shutdown_groups(pods, grace_period=30, critical_grace_period=10)
    assert names(group.pods) == ["web"]


def test_a_pod_gets_its_own_grace_period_when_shorter_than_its_groups() -> None:
    (group,) = shutdown_groups(
        [pod("quick", terminationGracePeriodSeconds=2), pod("slow")],
        grace_period=30,
        critical_grace_period=10,
    )
    quick, slow = group.pods
    assert (pod_grace_seconds(quick, group), pod_grace_seconds(slow, group)) == (2, 20)


def killed(name: str) -> dict[str, Any]:
    """The status computed for ``name`` once its Always-restarting container was killed."""
    last = ExitRecord(143, 15, "Error", 1, 1, T0, T0 + 5, restart_count=0)
    state = ContainerState(
        id=f"uid-{name}/app", state="exited", pid=None, pid_start_time=None, restart_count=0,
        started_at=None, last_exit=last,
    )  # fmt: skip
    return pod_status(pod(name), {"app": state}, {}, now=T0 + 5, host_ip="h")


def test_terminated_pod_is_failed_with_the_kubelets_reason_and_disruption_target() -> None:
    status = node_shutdown_status(pod("web"), killed("web"), now=T0 + 5, terminated=True)
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "Terminated",
        "Pod was terminated in response to imminent node shutdown.",
    )
    target = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
    assert (target["status"], target["reason"], target["message"]) == (
        "True",
        "TerminationByKubelet",
        SHUTDOWN_MESSAGE,
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodFailed")


def test_pod_that_had_succeeded_stays_succeeded() -> None:
    status = {**killed("job"), "phase": "Succeeded"}
    assert node_shutdown_status(pod("job"), status, now=T0, terminated=True)["phase"] == (
        "Succeeded"
    )


def test_pod_failed_by_a_shutdown_stays_failed_for_the_next_agent() -> None:
    before = node_shutdown_status(pod("web"), killed("web"), now=T0 + 5, terminated=True)
    reported = {**pod("web"), "status": before}
    again = node_shutdown_status(reported, killed("web"), now=T0 + 60, terminated=False)
    assert again["phase"] == "Failed"
    target = next(c for c in again["conditions"] if c["type"] == "DisruptionTarget")
    assert (
        target["lastTransitionTime"]
        == next(c for c in before["conditions"] if c["type"] == "DisruptionTarget")[
            "lastTransitionTime"
        ]
    )


def test_other_pods_keep_the_status_their_containers_give() -> None:
    status = killed("web")
    assert node_shutdown_status(pod("web"), status, now=T0, terminated=False) is status


def test_node_shutting_down_is_not_ready_as_the_kubelet_reports_it() -> None:
    ready = next(
        c
        for c in node_conditions(T0, None, not_ready="node is shutting down")
        if c["type"] == "Ready"
    )
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "KubeletNotReady",
        "node is shutting down",
    )


def test_server_waits_for_its_agents_graceful_shutdown_before_killing_it() -> None:
    assert agent_stop_seconds(()) == CHILD_STOP_SECONDS
    assert agent_stop_seconds(("max-pods=10", "shutdown-grace-period=1m")) == (
        CHILD_STOP_SECONDS + 60
    )
