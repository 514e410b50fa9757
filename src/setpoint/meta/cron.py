"""Cron schedules as CronJobs use them: parsing and "when is the next run".

Kubernetes parses ``spec.schedule`` with ``robfig/cron``'s standard parser, and this module
follows it, error messages included: five fields (minute, hour, day of month, month, day of
week) of numbers, ``*``/``?``, ranges ``a-b``, steps ``/n`` and lists ``a,b``, with month and
weekday names (``JAN``, ``MON``, any case); or one of the descriptors ``@yearly``
(``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``), ``@hourly`` and
``@every <duration>``. A ``TZ=<zone>`` / ``CRON_TZ=<zone>`` prefix sets the schedule's time
zone (CronJob validation rejects it in new objects; the controller adds it for
``spec.timeZone``). As in cron, when both day fields are restricted a day matching either one
is a match.

:meth:`Schedule.next_after` is the earliest instant strictly after the given one whose wall
clock in the schedule's zone (or, without one, in the given datetime's zone) matches every
field. Wall-clock times skipped by a daylight-saving jump never fire; repeated ones fire at
each occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SEARCH_YEARS = 5  # like robfig/cron: a schedule that does not fire within 5 years never does
_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1


class CronError(ValueError):
    """The schedule does not parse; the message is robfig/cron's."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DAYS = _Bounds(1, 31)
_MONTHS = _Bounds(1, 12, _MONTH_NAMES, 1)
_WEEKDAYS = _Bounds(0, 6, _DAY_NAMES, 0)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``every`` is set for ``@every``; otherwise the field sets are."""

    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday
    any_day: bool = True  # day-of-month or day-of-week was "*": both must match
    location: tzinfo | None = None
    every: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime | None:
        """The first run strictly after ``moment`` (naive means UTC), in ``moment``'s zone.

        None if the schedule never fires (e.g. ``0 0 30 2 *``) within five years.
        """
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if self.every is not None:
            return moment.replace(microsecond=0) + self.every
        zone = self.location or moment.tzinfo
        local = moment.astimezone(zone)
        for candidate in self._wall_clock_times(local.date(), local.year + _SEARCH_YEARS):
            for fold in (0, 1):
                instant = candidate.replace(tzinfo=zone, fold=fold)
                if _exists(instant) and instant > moment:
                    return instant.astimezone(moment.tzinfo)
        return None

    def matches(self, moment: datetime) -> bool:
        """Whether ``moment`` (to the minute, in the schedule's zone if it has one) fires."""
        if self.location is not None:
            moment = moment.astimezone(self.location)
        return (
            moment.month in self.months
            and self._day_matches(moment.date())
            and moment.hour in self.hours
            and moment.minute in self.minutes
        )

    def _day_matches(self, day: date) -> bool:
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        return (in_month and in_week) if self.any_day else (in_month or in_week)

    def _wall_clock_times(self, start: date, last_year: int) -> Iterator[datetime]:
        day = start
        while day.year <= last_year:
            if day.month not in self.months:
                day = _first_of_next_month(day)
                continue
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        yield datetime.combine(day, time(hour, minute))
            day += timedelta(days=1)


def parse(schedule: str) -> Schedule:
    """robfig/cron's ``ParseStandard``; raises :class:`CronError` with its message."""
    if not schedule:
        raise CronError("empty spec string")
    location: tzinfo | None = None
    if schedule.startswith(("TZ=", "CRON_TZ=")):
        location, schedule = _split_zone(schedule)
    if schedule.startswith("@"):
        return _parse_descriptor(schedule, location)
    fields = schedule.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minute, hour, day, month, weekday = fields
    days, day_star = _parse_field(day, _DAYS)
    weekdays, weekday_star = _parse_field(weekday, _WEEKDAYS)
    return Schedule(
        minutes=_parse_field(minute, _MINUTES)[0],
        hours=_parse_field(hour, _HOURS)[0],
        days=days,
        months=_parse_field(month, _MONTHS)[0],
        weekdays=weekdays,
        any_day=day_star or weekday_star,
        location=location,
    )


def _split_zone(schedule: str) -> tuple[tzinfo, str]:
    name, _, rest = schedule.partition("=")[2].partition(" ")
    try:
        return (ZoneInfo(name) if name else UTC), rest.strip()
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name too long for a file name (Go's LoadLocation just fails to find it)
        raise CronError(f"provided bad location {name}: unknown time zone {name}") from None


def _parse_descriptor(spec: str, location: tzinfo | None) -> Schedule:
    if spec in _DESCRIPTORS:
        return replace(parse(_DESCRIPTORS[spec]), location=location)
    if spec.startswith("@every "):
        try:
            delay = parse_go_duration(spec[len("@every ") :])
        except ValueError as exc:
            raise CronError(f"failed to parse duration {spec}: {exc}") from None
        delay = max(timedelta(seconds=int(delay.total_seconds())), timedelta(seconds=1))
        return Schedule(every=delay, location=location)
    raise CronError(f"unrecognized descriptor: {spec}")


def _parse_field(field: str, bounds: _Bounds) -> tuple[frozenset[int], bool]:
    """A comma-separated list of ranges; also says whether it was an unstepped ``*``."""
    values: set[int] = set()
    star = False
    for expr in field.split(","):
        part, part_star = _parse_range(expr, bounds)
        values |= part
        star = star or part_star
    return frozenset(values), star


def _parse_range(expr: str, bounds: _Bounds) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    star = low_and_high[0] in ("*", "?")
    if star:
        start, end = bounds.low, bounds.high
    else:
        start = _int_or_name(low_and_high[0], bounds)
        if len(low_and_high) > 2:
            raise CronError(f"too many hyphens: {expr}")
        end = _int_or_name(low_and_high[1], bounds) if len(low_and_high) == 2 else start
    if len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if len(low_and_high) == 1:  # "N/step" means "N-max/step"
            end = bounds.high
        star = star and step <= 1
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _int_or_name(expr: str, bounds: _Bounds) -> int:
    if expr.lower() in bounds.names:
        return bounds.names.index(expr.lower()) + bounds.name_base
    return _int(expr)


def _int(expr: str) -> int:
    """Go's ``strconv.Atoi`` plus robfig's non-negative check, with their messages."""
    if _INT.fullmatch(expr) is None:
        raise CronError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax'
        )
    # past 19 digits it is out of int64's range whatever they are; and Python refuses to
    # convert very long digit strings at all
    digits = expr.lstrip("+-").lstrip("0")
    number = int(expr) if len(digits) <= 19 else _INT64_MAX + 1
    if abs(number) > _INT64_MAX:
        raise CronError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": value out of range'
        )
    if number < 0:
        raise CronError(f"negative number ({number}) not allowed: {expr}")
    return number


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_MAX_DURATION_SECONDS = (2**63 - 1) / 1e9
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]*)([^0-9.]*)")


def parse_go_duration(text: str) -> timedelta:
    """Go's ``time.ParseDuration`` ("1h30m", "90s", "1.5h"), raising ValueError as Go words it."""
    rest = text.lstrip("+-")
    negative = text.startswith("-")
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise ValueError(f'time: invalid duration "{text}"')
    seconds = 0.0
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern matches the empty string
        number, unit = match.groups()
        if number in ("", "."):
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        seconds += float(number) * _DURATION_UNITS[unit]
        if seconds > _MAX_DURATION_SECONDS:  # Go's int64 nanoseconds overflow
            raise ValueError(f'time: invalid duration "{text}"')
        rest = rest[len(number) + len(unit) :]
    return timedelta(seconds=-seconds if negative else seconds)


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _exists(instant: datetime) -> bool:
    """False for wall-clock times inside a daylight-saving gap (and for a fold that is not
    a real second occurrence)."""
    round_trip = instant.astimezone(UTC).astimezone(instant.tzinfo)
    return round_trip.replace(tzinfo=None) == instant.replace(tzinfo=None) and (
        instant.fold == 0 or instant.utcoffset() != instant.replace(fold=0).utcoffset()
    )
