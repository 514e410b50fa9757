"""PodDisruptionBudget arithmetic (the disruption controller's) and the eviction
subresource's decisions, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from setpoint.api.errors import APIError
from setpoint.api.eviction import (
    can_ignore_budget,
    decode_eviction,
    matching_budgets,
    spend_disruption,
)
from setpoint.controllers.disruption import budget as logic
from setpoint.meta.timestamps import format_time
from tests.objects import pod, pod_disruption_budget

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def ready_pod(name: str, *, ready: bool = True, phase: str = "Running", **meta: Any) -> Obj:
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    return pod(
        name,
        namespace="ns",
        labels={"app": "web"},
        metadata=meta,
        status={"phase": phase, "conditions": [condition]},
    )


def budget(status: Obj | None = None, generation: int = 1, **spec: Any) -> Obj:
    return pod_disruption_budget(
        "web",
        namespace="ns",
        match_labels={"app": "web"},
        metadata={"generation": generation},
        status=status,
        **spec,
    )


# --- expected and desired pods ---------------------------------------------------------------


def test_integer_min_available_counts_the_pods_found() -> None:
    pdb = budget(minAvailable=2)
    assert not logic.needs_scale(pdb)
    assert logic.expected_and_desired(pdb, pods_found=3, scale=0) == (3, 2)


def test_percentage_min_available_rounds_up_against_the_controllers_scale() -> None:
    pdb = budget(minAvailable="50%")
    assert logic.needs_scale(pdb)
    assert logic.expected_and_desired(pdb, pods_found=2, scale=5) == (5, 3)


def test_max_unavailable_subtracts_from_the_scale_and_never_goes_below_zero() -> None:
    assert logic.expected_and_desired(budget(maxUnavailable=1), 3, 4) == (4, 3)
    assert logic.expected_and_desired(budget(maxUnavailable="34%"), 3, 3) == (3, 1)
    assert logic.expected_and_desired(budget(maxUnavailable=5), 3, 3) == (3, 0)


def test_a_budget_with_neither_count_asks_nothing() -> None:
    assert logic.expected_and_desired(budget(), 3, 0) == (0, 0)


# --- healthy pods and recorded evictions -----------------------------------------------------


def test_only_ready_pods_not_being_deleted_or_evicted_are_healthy() -> None:
    pods = [
        ready_pod("a"),
        ready_pod("b", ready=False),
        ready_pod("c", deletionTimestamp=format_time(NOW)),
        ready_pod("d"),
    ]
    assert logic.count_healthy(pods, {}, NOW) == 2
    assert logic.count_healthy(pods, {"d": format_time(NOW - timedelta(seconds=30))}, NOW) == 1


def test_recorded_evictions_expire_after_two_minutes() -> None:
    recent = format_time(NOW - timedelta(seconds=30))
    old = format_time(NOW - timedelta(minutes=3))
    pdb = budget(status={"disruptedPods": {"a": recent, "b": old, "gone": recent}})
    found = logic.disrupted_pods([ready_pod("a"), ready_pod("b")], pdb, NOW)
    assert found.pods == {"a": recent}
    assert found.expired == ["b"]
    assert found.recheck_at == NOW + timedelta(seconds=90)


def test_a_pod_being_deleted_leaves_the_recorded_evictions() -> None:
    recent = format_time(NOW - timedelta(seconds=30))
    pdb = budget(status={"disruptedPods": {"a": recent}})
    found = logic.disrupted_pods([ready_pod("a", deletionTimestamp=recent)], pdb, NOW)
    assert found.pods == {}
    assert found.recheck_at is None


# --- status ---------------------------------------------------------------------------------


def test_status_allows_the_healthy_pods_above_the_desired() -> None:
    status = logic.new_status(
        budget(minAvailable=2),
        current_healthy=3,
        desired_healthy=2,
        expected=3,
        disrupted={},
        now=NOW,
    )
    assert status == {
        "observedGeneration": 1,
        "disruptionsAllowed": 1,
        "currentHealthy": 3,
        "desiredHealthy": 2,
        "expectedPods": 3,
        "conditions": [
            {
                "type": "DisruptionAllowed",
                "status": "True",
                "observedGeneration": 1,
                "lastTransitionTime": format_time(NOW),
                "reason": "SufficientPods",
                "message": "",
            }
        ],
    }


def test_status_allows_nothing_while_no_pod_is_expected() -> None:
    status = logic.new_status(
        budget(maxUnavailable=1),
        current_healthy=2,
        desired_healthy=0,
        expected=0,
        disrupted={},
        now=NOW,
    )
    assert status is not None
    assert status["disruptionsAllowed"] == 0
    assert status["conditions"][0]["reason"] == "InsufficientPods"


def test_an_up_to_date_status_is_not_written_again() -> None:
    pdb = budget(minAvailable=2)
    status = logic.new_status(
        pdb, current_healthy=3, desired_healthy=2, expected=3, disrupted={}, now=NOW
    )
    written = {**pdb, "status": status}
    later = NOW + timedelta(minutes=1)
    again = logic.new_status(
        written, current_healthy=3, desired_healthy=2, expected=3, disrupted={}, now=later
    )
    assert again is None


def test_a_failed_sync_allows_nothing_and_says_why() -> None:
    pdb = budget(status={"disruptionsAllowed": 2, "observedGeneration": 1})
    status = logic.fail_safe_status(pdb, 'found no controllers for pod "a"', NOW)
    assert status["disruptionsAllowed"] == 0
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
    assert condition["message"] == 'found no controllers for pod "a"'


# --- the eviction subresource's decisions ---------------------------------------------------


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Pending"])
def test_finished_and_pending_pods_need_no_budget(phase: str) -> None:
    assert can_ignore_budget(ready_pod("a", phase=phase))


def test_running_pods_need_their_budget_unless_being_deleted() -> None:
    assert not can_ignore_budget(ready_pod("a"))
    assert can_ignore_budget(ready_pod("a", deletionTimestamp=format_time(NOW)))


def test_budgets_without_a_selector_or_with_an_empty_one_match_no_pod() -> None:
    matching = budget(minAvailable=1)
    other = pod_disruption_budget("other", match_labels={"app": "db"})
    empty = pod_disruption_budget("empty", selector={})
    none = pod_disruption_budget("none")
    assert matching_budgets(ready_pod("a"), [matching, other, empty, none]) == [matching]


def test_spending_a_disruption_decrements_and_records_the_pod() -> None:
    pdb = budget(status={"disruptionsAllowed": 1, "observedGeneration": 1, "desiredHealthy": 2})
    spent = spend_disruption(pdb, "a", format_time(NOW), dry_run=False)
    assert spent["status"]["disruptionsAllowed"] == 0
    assert spent["status"]["disruptedPods"] == {"a": format_time(NOW)}
    assert spent["status"]["conditions"][0]["reason"] == "InsufficientPods"
    assert "disruptedPods" not in pdb["status"]  # the cached budget is not touched
    dry = spend_disruption(pdb, "a", format_time(NOW), dry_run=True)
    assert "disruptedPods" not in dry["status"]


def test_an_exhausted_budget_is_429_with_a_disruption_budget_cause() -> None:
    status = {
        "disruptionsAllowed": 0,
        "observedGeneration": 1,
        "desiredHealthy": 2,
        "currentHealthy": 2,
    }
    with pytest.raises(APIError) as caught:
        spend_disruption(budget(status=status), "a", format_time(NOW), dry_run=False)
    assert caught.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
                }
            ]
        },
        "code": 429,
    }
    assert caught.value.headers == {}  # no Retry-After: kubectl waits and asks again itself


def test_a_budget_the_controller_has_not_seen_is_429_retry_after_10() -> None:
    pdb = budget(status={"disruptionsAllowed": 3, "observedGeneration": 1}, generation=2)
    with pytest.raises(APIError) as caught:
        spend_disruption(pdb, "a", format_time(NOW), dry_run=False)
    assert caught.value.code == 429
    assert caught.value.headers == {"Retry-After": "10"}
    assert caught.value.status()["details"]["retryAfterSeconds"] == 10


def test_a_negative_budget_is_forbidden() -> None:
    pdb = budget(status={"disruptionsAllowed": -1, "observedGeneration": 1})
    with pytest.raises(APIError) as caught:
        spend_disruption(pdb, "a", format_time(NOW), dry_run=False)
    assert caught.value.code == 403
    assert caught.value.message == (
        'poddisruptionbudget.policy "web" is forbidden: pdb disruptions allowed is negative'
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "b"}}, "name in URL"),
        ({"apiVersion": "v1", "kind": "Eviction", "metadata": {"name": "a"}}, "API version"),
        ([], "cannot unmarshal array"),
        (
            {
                "kind": "Eviction",
                "metadata": {"name": "a"},
                "deleteOptions": {"gracePeriodSeconds": "x"},
            },
            "cannot unmarshal string",
        ),
    ],
)
def test_bad_eviction_bodies_are_400(body: Any, message: str) -> None:
    with pytest.raises(APIError) as caught:
        decode_eviction(body, "ns", "a")
    assert caught.value.code == 400
    assert message in caught.value.message


def test_v1beta1_evictions_are_accepted() -> None:
    body = {"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "a"}}
    assert decode_eviction(body, "ns", "a")["metadata"] == {"name": "a"}
