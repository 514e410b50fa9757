"""When a pod on a NoExecute-tainted node must go: toleration matching and timing."""

from __future__ import annotations

from datetime import UTC, datetime

from setpoint.controllers.tainteviction.eviction import eviction_time
from setpoint.meta.clock import FakeClock
from setpoint.meta.taints import Taint, matching_tolerations, tolerates
from tests import objects

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T0 = START.timestamp()
UNREACHABLE: Taint = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
DEDICATED: Taint = {"key": "dedicated", "value": "db", "effect": "NoExecute"}


def pod(*tolerations: dict[str, object], bound: str = "2026-01-01T11:00:00Z") -> dict[str, object]:
    return objects.pod(
        "p",
        tolerations=list(tolerations),
        status={
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": bound}]
        },
    )


def added_at(seconds: float) -> dict[str, float]:
    return {"node.kubernetes.io/unreachable": T0 + seconds, "dedicated": T0 + seconds}


def at(
    pod_: dict[str, object], taints: list[Taint], clock: FakeClock, added: float = 0.0
) -> float | None:
    starts = added_at(added)
    return eviction_time(pod_, taints, taint_start=lambda t: starts[t["key"]], now=clock.time())


def test_an_untolerated_taint_evicts_at_once() -> None:
    clock = FakeClock(START)
    assert at(pod(), [DEDICATED], clock) == clock.time()


def test_a_toleration_without_seconds_keeps_the_pod_forever() -> None:
    clock = FakeClock(START)
    assert at(pod({"key": "dedicated", "operator": "Exists"}), [DEDICATED], clock) is None


def test_toleration_seconds_count_from_when_the_taint_was_added() -> None:
    clock = FakeClock(START)
    tolerant = pod({"key": UNREACHABLE["key"], "operator": "Exists", "tolerationSeconds": 10})
    assert at(tolerant, [UNREACHABLE], clock, added=2) == T0 + 12
    clock.step(30)  # a restarted controller computes the same deadline
    assert at(tolerant, [UNREACHABLE], clock, added=2) == T0 + 12


def test_the_shortest_toleration_decides() -> None:
    clock = FakeClock(START)
    tolerant = pod(
        {"key": UNREACHABLE["key"], "operator": "Exists", "tolerationSeconds": 30},
        {"key": "dedicated", "operator": "Equal", "value": "db", "tolerationSeconds": 5},
    )
    assert at(tolerant, [UNREACHABLE, DEDICATED], clock) == T0 + 5


def test_one_untolerated_taint_among_tolerated_ones_evicts_at_once() -> None:
    clock = FakeClock(START)
    tolerant = pod({"key": UNREACHABLE["key"], "operator": "Exists"})
    assert at(tolerant, [UNREACHABLE, DEDICATED], clock) == clock.time()


def test_zero_toleration_seconds_evict_at_once() -> None:
    clock = FakeClock(START)
    tolerant = pod({"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0})
    assert at(tolerant, [UNREACHABLE], clock, added=5) == clock.time()


def test_a_pod_bound_after_the_taint_gets_its_full_toleration() -> None:
    clock = FakeClock(START)
    late = pod(
        {"key": UNREACHABLE["key"], "operator": "Exists", "tolerationSeconds": 10},
        bound="2026-01-01T12:01:00Z",
    )
    assert at(late, [UNREACHABLE], clock) == T0 + 70


def test_no_taints_no_eviction() -> None:
    assert at(pod(), [], FakeClock(START)) is None


def test_toleration_matching() -> None:
    assert tolerates({"operator": "Exists"}, DEDICATED)
    assert tolerates({"key": "dedicated", "value": "db"}, DEDICATED)
    assert not tolerates({"key": "dedicated", "value": "web"}, DEDICATED)
    assert not tolerates(
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, DEDICATED
    )
    assert matching_tolerations([DEDICATED], [{"key": "other", "operator": "Exists"}]) is None
