"""The linearizability checker of the HA fault tests (tests/linearizability.py): it accepts
the histories a correct register gives and rejects the anomalies the fault tests look for."""

from __future__ import annotations

from tests.linearizability import Operation, Outcome, check_register, nonlinearizable_keys


def read(value: int, call: float, ret: float, key: str = "a") -> Operation:
    return Operation(key, "read", "ok", call, ret, value=value)


def cas(
    expected: int, call: float, ret: float, outcome: Outcome = "ok", key: str = "a"
) -> Operation:
    return Operation(key, "cas", outcome, call, ret, expected=expected, new=expected + 1)


def test_a_sequential_history_is_linearizable() -> None:
    assert check_register([read(0, 0, 1), cas(0, 2, 3), read(1, 4, 5), cas(1, 6, 7)], 0)


def test_concurrent_operations_may_take_effect_in_either_order() -> None:
    # the read overlaps the write: it may see the old or the new value
    assert check_register([cas(0, 0, 10), read(1, 1, 2)], 0)
    assert check_register([cas(0, 0, 10), read(0, 1, 2)], 0)
    # two overlapping increments, answered in the opposite order to their effect
    assert check_register([cas(1, 0, 10), cas(0, 1, 5), read(2, 11, 12)], 0)


def test_a_stale_read_is_rejected() -> None:
    # the write was acknowledged before the read began, yet the read saw the old value
    assert not check_register([cas(0, 0, 1), read(0, 2, 3)], 0)


def test_a_read_going_back_in_time_is_rejected() -> None:
    assert not check_register([cas(0, 0, 10), read(1, 1, 2), read(0, 3, 4)], 0)


def test_a_lost_acknowledged_write_is_rejected() -> None:
    # acknowledged, then a later read does not see it
    assert not check_register([cas(0, 0, 1), cas(1, 2, 3), read(1, 4, 5)], 0)


def test_two_cas_from_the_same_version_cannot_both_succeed() -> None:
    assert not check_register([cas(0, 0, 10), cas(0, 1, 11)], 0)


def test_a_conflict_is_only_right_when_the_value_had_moved() -> None:
    assert check_register([cas(0, 0, 1), cas(0, 2, 3, "fail"), read(1, 4, 5)], 0)
    # nothing changed the value, so the compare-and-swap must have succeeded
    assert not check_register([cas(0, 0, 1, "fail"), read(0, 2, 3)], 0)


def test_an_unknown_write_may_or_may_not_have_happened() -> None:
    assert check_register([cas(0, 0, 1, "unknown"), read(1, 5, 6)], 0)
    assert check_register([cas(0, 0, 1, "unknown"), read(0, 5, 6)], 0)
    # but it happens at most once, at one moment: it cannot be seen and then unseen
    assert not check_register([cas(0, 0, 1, "unknown"), read(1, 5, 6), read(0, 7, 8)], 0)
    # and it cannot take effect before it was invoked
    assert not check_register([read(1, 0, 1), cas(0, 2, 3, "unknown")], 0)


def test_keys_are_checked_apart() -> None:
    history = [cas(0, 0, 1, key="a"), read(1, 2, 3, key="a"), read(5, 0, 1, key="b")]
    assert nonlinearizable_keys(history) == ["b"]


def test_a_long_concurrent_history_is_checked_quickly() -> None:
    # 4 clients x 100 increments, each overlapping the others; each read sees the count
    history = []
    for i in range(400):
        history.append(cas(i, i, i + 3.5))
        history.append(read(i + 1, i + 3.6, i + 3.7))
    assert check_register(history, 0)
