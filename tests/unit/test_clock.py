"""The one clock (setpoint.meta.clock) and the Unix-time stamps of setpoint.meta.timestamps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

from setpoint.meta.clock import REAL_CLOCK, FakeClock, now_rfc3339
from setpoint.meta.timestamps import micro_time, parse_epoch, rfc3339

T0 = datetime(2026, 11, 25, 19, 0, 0, 500000, tzinfo=UTC)


def test_the_real_clock_tells_the_time_in_utc() -> None:
    before = time.time()
    now, epoch = REAL_CLOCK.now(), REAL_CLOCK.time()
    after = time.time()
    assert now.tzinfo is UTC
    assert before - 1 <= now.timestamp() <= after + 1
    assert before <= epoch <= after


def test_a_fake_clock_stands_still_until_moved() -> None:
    clock = FakeClock(T0)
    assert clock.now() == T0 and clock.now() == T0
    assert clock.time() == T0.timestamp()
    clock.step(90)
    assert clock.now() == T0 + timedelta(seconds=90)
    clock.set(datetime(2026, 11, 25, 21, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    assert clock.now().tzinfo == UTC


def test_now_rfc3339_is_the_clocks_whole_second_plus_an_offset() -> None:
    clock = FakeClock(T0)
    assert now_rfc3339(clock) == "2026-11-25T19:00:00Z"
    assert now_rfc3339(clock, offset_seconds=30) == "2026-11-25T19:00:30Z"


def test_unix_times_as_metav1_time_and_micro_time() -> None:
    epoch = T0.timestamp()
    assert rfc3339(epoch) == "2026-11-25T19:00:00Z"
    assert micro_time(epoch) == "2026-11-25T19:00:00.500000Z"
    assert parse_epoch("2026-11-25T19:00:00.500000Z") == epoch
    assert parse_epoch("not a time") is None and parse_epoch(None) is None
