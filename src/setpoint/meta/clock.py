"""What time it is: the one clock every component asks, injectable so tests can move it.

A component that needs "now" (to stamp a condition's ``lastTransitionTime``, a Lease's
``renewTime``, an object's ``creationTimestamp``, or to decide that a deadline passed) asks a
:class:`Clock` it was given, as Kubernetes' components take a ``k8s.io/utils/clock.Clock``.
Production code passes nothing and gets :data:`REAL_CLOCK`; a test passes a
:class:`FakeClock` and moves it by hand.

A clock answers in the two shapes components use: :meth:`Clock.now`, an aware datetime in UTC
(controllers, which compare with parsed timestamps), and :meth:`Clock.time`, a Unix time in
seconds (node agents, which add seconds to it). Both are wall-clock time; measuring how long
something took, where the wall clock may jump, is ``time.monotonic``'s job and not this
module's. :func:`now_rfc3339` is the current time as ``metav1.Time`` text (see
:mod:`setpoint.meta.timestamps` for the formats).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from setpoint.meta.timestamps import rfc3339

__all__ = ["REAL_CLOCK", "Clock", "FakeClock", "RealClock", "now_rfc3339"]


class Clock(Protocol):
    """Where a component reads the wall-clock time."""

    def now(self) -> datetime:
        """The current time, an aware datetime in UTC."""
        ...

    def time(self) -> float:
        """The current time as seconds since the Unix epoch."""
        ...


class RealClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()


REAL_CLOCK: Final[Clock] = RealClock()
"""The clock components use unless they are given another."""


class FakeClock:
    """A clock that stands still until it is moved (``k8s.io/utils/clock/testing``'s
    ``FakeClock``)."""

    def __init__(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def time(self) -> float:
        return self._at.timestamp()

    def set(self, at: datetime) -> None:
        """Jump to ``at``."""
        self._at = at.astimezone(UTC)

    def step(self, seconds: float) -> None:
        """Move on by ``seconds`` (back, if negative)."""
        self._at += timedelta(seconds=seconds)


def now_rfc3339(clock: Clock = REAL_CLOCK, *, offset_seconds: int = 0) -> str:
    """``metav1.Time`` of ``clock``'s current second, plus ``offset_seconds``."""
    return rfc3339(int(clock.time()) + offset_seconds)
