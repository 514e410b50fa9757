"""The event correlator decides, like client-go's, which Events get written."""

from __future__ import annotations

from setpoint.client.events import (
    AGGREGATE_MESSAGE_PREFIX,
    SPAM_BURST,
    EventCorrelator,
    Observation,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(message: str, *, name: str = "web", reason: str = "SuccessfulCreate") -> dict:
    return {
        "involvedObject": {"kind": "ReplicaSet", "namespace": "ns", "name": name, "uid": name},
        "source": {"component": "replicaset-controller"},
        "type": "Normal",
        "reason": reason,
        "message": message,
    }


def test_repeated_identical_event_bumps_the_written_one() -> None:
    correlator = EventCorrelator(clock=Clock())
    first = correlator.correlate(event("Created pod: a"))
    assert first.previous is None and not first.skip
    correlator.observed(first.key, Observation("ns", "web.1", 1, "t"))
    again = correlator.correlate(event("Created pod: a"))
    assert again.previous == Observation("ns", "web.1", 1, "t")
    assert again.message == "Created pod: a"


def test_tenth_similar_event_is_aggregated_under_one_key() -> None:
    correlator = EventCorrelator(clock=Clock())
    verdicts = [correlator.correlate(event(f"Created pod: p{i}")) for i in range(12)]
    assert all(v.previous is None for v in verdicts[:9])
    assert len({v.key for v in verdicts[:9]}) == 9
    aggregated = verdicts[9:]
    assert len({v.key for v in aggregated}) == 1
    assert aggregated[0].message == AGGREGATE_MESSAGE_PREFIX + "Created pod: p9"


def test_similar_events_are_not_aggregated_after_ten_quiet_minutes() -> None:
    clock = Clock()
    correlator = EventCorrelator(clock=clock)
    for i in range(9):
        correlator.correlate(event(f"Created pod: p{i}"))
    clock.now += 601
    assert not correlator.correlate(event("Created pod: late")).message.startswith("(")


def test_spam_filter_allows_a_burst_per_object_then_one_every_five_minutes() -> None:
    clock = Clock()
    correlator = EventCorrelator(clock=clock)
    verdicts = [correlator.correlate(event(f"m{i}", reason=f"R{i}")) for i in range(SPAM_BURST + 5)]
    assert [v.skip for v in verdicts] == [False] * SPAM_BURST + [True] * 5
    assert not correlator.correlate(event("other object", name="db")).skip
    clock.now += 300
    assert not correlator.correlate(event("after refill")).skip
    assert correlator.correlate(event("and again")).skip
