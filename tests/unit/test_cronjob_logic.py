"""The CronJob controller's pure decisions: missed schedules, concurrency, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from setpoint.controllers.cronjob import (
    SCHEDULED_TIMESTAMP,
    Missed,
    StartDecision,
    concurrency_decision,
    job_from_template,
    job_name,
    jobs_to_clean_up,
    most_recent_schedule_time,
    next_schedule_delay,
    schedule_for,
    too_late,
)
from tests import objects
from tests.objects import job, job_template

CREATED = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cron_job(schedule: str = "*/5 * * * *", **spec: Any) -> dict[str, Any]:
    """The CronJob ``tick``, created at ``CREATED``, on ``schedule``."""
    jobs = job_template({"app": "tick"}, containers=[])
    spec = {"schedule": schedule, "concurrencyPolicy": "Allow", "jobTemplate": jobs, **spec}
    return objects.cron_job(
        "tick",
        namespace="ns",
        metadata={"uid": "cj-uid", "creationTimestamp": stamp(CREATED)},
        status={},
        **spec,
    )


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2030, 1, 1, 0, minute, second, tzinfo=UTC)


def test_nothing_is_due_before_the_first_schedule() -> None:
    cj = cron_job()
    recent = most_recent_schedule_time(cj, at(4, 59), schedule_for(cj))
    assert recent.scheduled is None and recent.missed is Missed.NONE


def test_first_due_time_after_creation() -> None:
    cj = cron_job()
    recent = most_recent_schedule_time(cj, at(5, 1), schedule_for(cj))
    assert recent.scheduled == at(5)


def test_only_the_most_recent_missed_time_is_started() -> None:
    cj = cron_job()
    recent = most_recent_schedule_time(cj, at(23), schedule_for(cj))
    assert recent.scheduled == at(20)
    assert recent.missed is Missed.FEW


def test_last_schedule_time_is_the_starting_point() -> None:
    cj = cron_job()
    cj["status"]["lastScheduleTime"] = stamp(at(20))
    assert most_recent_schedule_time(cj, at(24), schedule_for(cj)).scheduled is None
    assert most_recent_schedule_time(cj, at(25), schedule_for(cj)).scheduled == at(25)


def test_more_than_a_hundred_missed_times_are_many() -> None:
    cj = cron_job("* * * * *")
    now = CREATED + timedelta(hours=3)
    recent = most_recent_schedule_time(cj, now, schedule_for(cj))
    assert recent.missed is Missed.MANY
    assert recent.scheduled == datetime(2030, 1, 1, 3, 0, tzinfo=UTC)


def test_starting_deadline_limits_how_far_back_to_look() -> None:
    cj = cron_job("* * * * *", startingDeadlineSeconds=200)
    now = CREATED + timedelta(hours=3)
    recent = most_recent_schedule_time(cj, now, schedule_for(cj))
    assert recent.missed is Missed.FEW
    assert recent.scheduled == datetime(2030, 1, 1, 3, 0, tzinfo=UTC)


def test_start_too_long_after_its_time_is_skipped() -> None:
    cj = cron_job(startingDeadlineSeconds=10)
    assert not too_late(at(5), cj, at(5, 10))
    assert too_late(at(5), cj, at(5, 11))
    assert not too_late(at(5), cron_job(), at(50))


def test_time_zone_moves_the_schedule() -> None:
    cj = cron_job("0 9 * * *", timeZone="Europe/Berlin")
    now = datetime(2030, 1, 1, 8, 30, tzinfo=UTC)  # 09:30 in Berlin (UTC+1 in winter)
    recent = most_recent_schedule_time(cj, now, schedule_for(cj))
    assert recent.scheduled == datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


def test_requeue_just_after_the_next_schedule() -> None:
    cj = cron_job()
    delay = next_schedule_delay(cj, at(3), schedule_for(cj))
    assert delay is not None and abs(delay - 120.1) < 1e-6


def test_job_is_named_after_scheduled_minute_and_annotated() -> None:
    cj = cron_job(timeZone="Europe/Berlin")
    job = job_from_template(cj, at(5))
    assert job["metadata"]["name"] == job_name(cj, at(5)) == f"tick-{int(at(5).timestamp()) // 60}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2030-01-01T01:05:00+01:00"
    assert job["metadata"]["labels"] == {"app": "tick"}
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "CronJob" and owner["uid"] == "cj-uid" and owner["controller"]


def test_concurrency_policies() -> None:
    assert concurrency_decision("Allow", 2) is StartDecision.START
    assert concurrency_decision("Forbid", 1) is StartDecision.SKIP_FORBID
    assert concurrency_decision("Forbid", 0) is StartDecision.START
    assert concurrency_decision("Replace", 1) is StartDecision.REPLACE


def finished(name: str, kind: str, started: int) -> dict[str, Any]:
    """A Job started at minute ``started`` that has finished as ``kind``."""
    conditions = [{"type": kind, "status": "True"}]
    return job(name, status={"startTime": stamp(at(started)), "conditions": conditions})


def test_history_keeps_the_newest_finished_jobs() -> None:
    jobs = [
        finished("ok-3", "Complete", 3),
        finished("ok-1", "Complete", 1),
        finished("ok-2", "Complete", 2),
        finished("bad-1", "Failed", 1),
        finished("bad-2", "Failed", 2),
        job("running", status={"startTime": stamp(at(0))}),
    ]
    doomed = [j["metadata"]["name"] for j in jobs_to_clean_up(jobs, 2, 1)]
    assert doomed == ["ok-1", "bad-1"]
    assert jobs_to_clean_up(jobs, None, None) == []
