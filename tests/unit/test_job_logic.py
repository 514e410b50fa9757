"""The Job controller's pure decisions: how many pods, backoff, failure policy, indexes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from setpoint.controllers.job.backoff import (
    FailureStreak,
    backoff_delay,
    failures_since_last_success,
    remaining_backoff,
)
from setpoint.controllers.job.controller import (
    ensure_condition,
    new_pod,
    past_active_deadline,
    past_backoff_limit_on_failure,
    want_active,
)
from setpoint.controllers.job.failure_policy import match_pod_failure_policy
from setpoint.controllers.job.indexed import (
    COMPLETION_INDEX,
    INDEX_FAILURE_COUNT,
    first_pending_indexes,
    format_indexes,
    is_index_failed,
    next_index_failure_counts,
    parse_indexes,
)
from setpoint.controllers.job.tracking import JOB_TRACKING_FINALIZER
from setpoint.controllers.job.ttl import ttl_expires_at
from setpoint.controllers.job.util import is_pod_failed
from tests import objects
from tests.objects import container, pod_template

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(**spec: Any) -> dict[str, Any]:
    """The Job ``pi`` as its controller sees it: pods labelled with its name, six retries."""
    template = pod_template(
        {"batch.kubernetes.io/job-name": "pi"},
        containers=[container("main", "x")],
        restartPolicy="Never",
    )
    spec = {"backoffLimit": 6, "template": template, **spec}
    return objects.job("pi", namespace="ns", metadata={"uid": "job-uid"}, status={}, **spec)


def pod(
    phase: str = "Running",
    *,
    exit_code: int | None = None,
    finished: datetime | None = None,
    index: int | None = None,
    annotations: dict[str, str] | None = None,
    conditions: list[dict[str, str]] | None = None,
    restarts: int = 0,
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod of that Job in ``phase``, its container ``main`` having exited with
    ``exit_code`` (if given) at ``finished``, for completion ``index`` (if given)."""
    state: dict[str, Any] = {}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "finishedAt": stamp(finished or T0)}}
    notes = dict(annotations or {})
    if index is not None:
        notes[COMPLETION_INDEX] = str(index)
    meta: dict[str, Any] = {
        "uid": f"u{id(notes)}",
        "finalizers": [JOB_TRACKING_FINALIZER],
        "creationTimestamp": stamp(T0),
    }
    if deleting:
        meta["deletionTimestamp"] = stamp(T0)
    return objects.pod(
        f"p{id(state)}",
        namespace="ns",
        annotations=notes,
        metadata=meta,
        containers=[container("main", "x")],
        status={
            "phase": phase,
            "conditions": conditions or [],
            "containerStatuses": [{"name": "main", "state": state, "restartCount": restarts}],
        },
    )


# ------------------------------------------------------------------ active pods


def test_active_is_min_of_parallelism_and_remaining_completions() -> None:
    assert want_active(completions=3, parallelism=2, succeeded=0, active=0) == 2
    assert want_active(completions=3, parallelism=2, succeeded=2, active=1) == 1
    assert want_active(completions=3, parallelism=2, succeeded=3, active=0) == 0
    assert want_active(completions=3, parallelism=5, succeeded=4, active=0) == 0


def test_work_queue_job_stops_starting_pods_after_first_success() -> None:
    assert want_active(completions=None, parallelism=3, succeeded=0, active=1) == 3
    assert want_active(completions=None, parallelism=3, succeeded=1, active=2) == 2


# ---------------------------------------------------------------------- backoff


def test_backoff_doubles_from_initial_up_to_cap() -> None:
    assert backoff_delay(0, 1.0, 60.0) == 0.0
    assert [backoff_delay(n, 1.0, 60.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delay(10, 1.0, 60.0) == 60.0


def test_failure_streak_restarts_after_a_success() -> None:
    pods = [
        pod("Failed", exit_code=1, finished=T0),
        pod("Succeeded", exit_code=0, finished=T0 + timedelta(seconds=1)),
        pod("Failed", exit_code=1, finished=T0 + timedelta(seconds=2)),
        pod("Failed", exit_code=1, finished=T0 + timedelta(seconds=3)),
    ]
    streak = failures_since_last_success(pods, job())
    assert streak == FailureStreak(2, T0 + timedelta(seconds=3))


def test_remaining_backoff_counts_from_last_failure() -> None:
    streak = FailureStreak(3, T0)
    assert remaining_backoff(streak, T0 + timedelta(seconds=1), 1.0, 60.0) == 3.0
    assert remaining_backoff(streak, T0 + timedelta(seconds=5), 1.0, 60.0) == 0.0


def test_ignored_failures_do_not_back_off() -> None:
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}
    streak = failures_since_last_success([pod("Failed", exit_code=3)], job(podFailurePolicy=policy))
    assert streak.failures == 0


def test_on_failure_restarts_count_against_backoff_limit() -> None:
    on_failure = job(backoffLimit=2)
    on_failure["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert not past_backoff_limit_on_failure(on_failure, [pod(restarts=1)])
    assert past_backoff_limit_on_failure(on_failure, [pod(restarts=1), pod(restarts=1)])
    assert not past_backoff_limit_on_failure(job(backoffLimit=2), [pod(restarts=5)])


def test_deleted_pod_counts_as_failed_unless_only_failed_pods_are_replaced() -> None:
    deleting = pod("Running", deleting=True)
    assert is_pod_failed(deleting, job())
    assert not is_pod_failed(deleting, job(podReplacementPolicy="Failed"))
    assert not is_pod_failed(pod("Succeeded", deleting=True), job())


# --------------------------------------------------------------- failure policy


def test_exit_code_rule_matches_first_nonzero_container_by_name() -> None:
    policy = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
            }
        ]
    }
    match = match_pod_failure_policy(policy, pod("Failed", exit_code=42))
    assert match is not None and match.action == "FailJob"
    assert match.message is not None and "failed with exit code 42 matching FailJob rule" in (
        match.message
    )
    assert match_pod_failure_policy(policy, pod("Failed", exit_code=1)) is None


def test_not_in_operator_never_matches_exit_code_zero() -> None:
    policy = {"rules": [{"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}}]}
    assert match_pod_failure_policy(policy, pod("Failed", exit_code=0)) is None
    match = match_pod_failure_policy(policy, pod("Failed", exit_code=2))
    assert match is not None and match.action == "Count" and match.count_failed


def test_pod_condition_rule_ignores_disruptions() -> None:
    policy = {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            }
        ]
    }
    disrupted = pod("Failed", conditions=[{"type": "DisruptionTarget", "status": "True"}])
    match = match_pod_failure_policy(policy, disrupted)
    assert match is not None and match.action == "Ignore" and not match.count_failed


def test_rules_are_matched_in_order() -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [5]}},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [5, 6]}},
        ]
    }
    first = match_pod_failure_policy(policy, pod("Failed", exit_code=5))
    second = match_pod_failure_policy(policy, pod("Failed", exit_code=6))
    assert first is not None and first.rule_index == 0
    assert second is not None and second.rule_index == 1


# ------------------------------------------------------------------ indexed jobs


def test_compressed_index_form_round_trips() -> None:
    assert format_indexes({0, 1, 2, 4}) == "0-2,4"
    assert format_indexes({3, 5, 6}) == "3,5-6"
    assert format_indexes(set()) == ""
    assert parse_indexes("0-2,4") == {0, 1, 2, 4}
    assert parse_indexes("0-9", completions=3) == {0, 1, 2}
    assert parse_indexes("x,1") == {1}


def test_first_pending_indexes_skip_done_failed_and_running() -> None:
    pending = first_pending_indexes(6, 2, succeeded={0}, failed={2}, active={1})
    assert pending == [3, 4]


def test_index_fails_once_its_budget_is_used() -> None:
    per_index = job(completionMode="Indexed", completions=3, backoffLimitPerIndex=1)
    first = pod("Failed", exit_code=1, index=0, annotations={INDEX_FAILURE_COUNT: "0"})
    second = pod("Failed", exit_code=1, index=0, annotations={INDEX_FAILURE_COUNT: "1"})
    assert not is_index_failed(per_index, first)
    assert is_index_failed(per_index, second)


def test_fail_index_rule_fails_index_at_once() -> None:
    policy = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [7]}}]}
    per_index = job(
        completionMode="Indexed", completions=2, backoffLimitPerIndex=5, podFailurePolicy=policy
    )
    assert is_index_failed(per_index, pod("Failed", exit_code=7, index=1))


def test_replacement_pod_inherits_failure_count_plus_one() -> None:
    per_index = job(completionMode="Indexed", completions=2, backoffLimitPerIndex=3)
    failed = pod("Failed", exit_code=1, index=1, annotations={INDEX_FAILURE_COUNT: "1"})
    assert next_index_failure_counts(per_index, [failed]) == {1: (2, 0)}


def test_indexed_pod_carries_its_index() -> None:
    indexed = job(completionMode="Indexed", completions=3)
    created = new_pod(indexed, 2)
    meta = created["metadata"]
    assert meta["generateName"] == "pi-2-"
    assert meta["annotations"][COMPLETION_INDEX] == "2"
    assert meta["labels"][COMPLETION_INDEX] == "2"
    assert meta["finalizers"] == [JOB_TRACKING_FINALIZER]
    assert meta["ownerReferences"][0]["controller"] is True
    assert created["spec"]["hostname"] == "pi-2"
    env = created["spec"]["containers"][0]["env"]
    assert env[0]["name"] == "JOB_COMPLETION_INDEX"


def test_non_indexed_pod_uses_job_name_prefix_and_template_labels() -> None:
    created = new_pod(job())
    assert created["metadata"]["generateName"] == "pi-"
    assert created["metadata"]["labels"] == {"batch.kubernetes.io/job-name": "pi"}
    assert "hostname" not in created["spec"]


# -------------------------------------------------------------- deadline, TTL


def test_active_deadline_is_measured_from_start_time() -> None:
    running = job(activeDeadlineSeconds=10)
    running["status"]["startTime"] = stamp(T0)
    assert not past_active_deadline(running, T0 + timedelta(seconds=9))
    assert past_active_deadline(running, T0 + timedelta(seconds=10))
    running["spec"]["suspend"] = True
    assert not past_active_deadline(running, T0 + timedelta(seconds=60))


def test_ttl_counts_from_completion_time() -> None:
    done = job(ttlSecondsAfterFinished=30)
    done["status"] = {
        "completionTime": stamp(T0),
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    assert ttl_expires_at(done) == T0 + timedelta(seconds=30)
    assert ttl_expires_at(job(ttlSecondsAfterFinished=30)) is None


def test_false_condition_is_not_added_but_true_one_is() -> None:
    conditions: list[dict[str, Any]] = []
    assert not ensure_condition(conditions, "Suspended", "False", "JobResumed", "m", T0)
    assert ensure_condition(conditions, "Suspended", "True", "JobSuspended", "m", T0)
    assert ensure_condition(conditions, "Suspended", "False", "JobResumed", "m", T0)
    assert conditions[0]["status"] == "False"
