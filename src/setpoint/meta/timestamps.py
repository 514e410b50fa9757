"""Kubernetes timestamps: ``metav1.Time`` (``2026-11-25T19:00:00Z``) and ``metav1.MicroTime``
(``2026-11-25T19:00:00.123456Z``), read and written the same way everywhere.

Controllers work with aware datetimes (:func:`parse_time`, :func:`format_time`,
:func:`format_micro_time`); node agents with Unix times (:func:`rfc3339`, :func:`micro_time`,
:func:`parse_epoch`). What time it is now is :mod:`setpoint.meta.clock`'s.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC if it names no zone); None when
    unset or malformed."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """``metav1.Time``: whole seconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """``metav1.MicroTime``: microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(epoch: float) -> str:
    """``metav1.Time`` of a Unix time."""
    return _rfc3339_second(int(epoch) if epoch >= 0 else math.floor(epoch))


@functools.lru_cache(maxsize=4096)
def _rfc3339_second(second: int) -> str:
    # hollow nodes and agents format the same few seconds thousands of times
    return format_time(datetime.fromtimestamp(second, UTC))


def micro_time(epoch: float) -> str:
    """``metav1.MicroTime`` of a Unix time."""
    return format_micro_time(datetime.fromtimestamp(epoch, UTC))


def parse_epoch(value: Any) -> float | None:
    """A timestamp as a Unix time; None when unset or malformed."""
    moment = parse_time(value)
    return moment.timestamp() if moment else None
