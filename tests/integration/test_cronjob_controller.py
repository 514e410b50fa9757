"""The CronJob controller in-process against a real server, with a clock moved by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from setpoint.client.api import CRONJOBS, EVENTS, JOBS, ApiClient, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.cronjob import SCHEDULED_TIMESTAMP, CronJobController
from setpoint.meta.clock import FakeClock
from tests import objects
from tests.support import eventually


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
async def controller(client: ApiClient, clock: FakeClock) -> AsyncIterator[CronJobController]:
    informers = SharedInformers(client)
    recorder = EventRecorder(client, "cronjob-controller-test")
    cron_controller = CronJobController(informers, recorder, clock=clock)
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(cron_controller.run())
    yield cron_controller
    await cron_controller.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await informers.stop()


def cron_job_manifest(name: str, policy: str = "Allow") -> Obj:
    """A CronJob due every minute under concurrency ``policy``, its Jobs labelled
    ``app: <name>``."""
    jobs = objects.job_template({"app": name}, containers=[objects.container("main")])
    return objects.cron_job(name, schedule="* * * * *", concurrencyPolicy=policy, jobTemplate=jobs)


def next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


async def advance_to(
    controller: CronJobController, clock: FakeClock, moment: datetime, key: str
) -> None:
    clock.set(moment)
    controller.queue.add(key)


async def jobs_of(client: ApiClient, namespace: str) -> list[Obj]:
    return list((await client.list(JOBS, namespace))["items"])


async def test_job_is_created_at_the_scheduled_time(
    client: ApiClient, namespace: str, clock: FakeClock, controller: CronJobController
) -> None:
    created = await client.create(CRONJOBS, cron_job_manifest("tick"), namespace)
    born = datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    key = f"{namespace}/tick"
    clock.set(born)  # born + 1 s would already be due when born at hh:mm:59
    controller.queue.add(key)
    await asyncio.sleep(0.3)
    assert await jobs_of(client, namespace) == []  # not due yet

    due = next_minute(born)
    await advance_to(controller, clock, due + timedelta(seconds=2), key)

    async def one_job() -> list[Obj] | None:
        jobs = await jobs_of(client, namespace)
        return jobs or None

    [job] = await eventually(one_job)
    assert job["metadata"]["name"] == f"tick-{int(due.timestamp()) // 60}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == due.strftime("%Y-%m-%dT%H:%M:%SZ")
    owner = job["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "CronJob" and owner["controller"] is True

    async def status_recorded() -> Obj | None:
        cron_job = await client.get(CRONJOBS, "tick", namespace)
        return cron_job if cron_job.get("status", {}).get("active") else None

    cron_job = await eventually(status_recorded)
    assert cron_job["status"]["active"][0]["name"] == job["metadata"]["name"]
    assert cron_job["status"]["lastScheduleTime"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_forbid_skips_while_a_job_is_active(
    client: ApiClient, namespace: str, clock: FakeClock, controller: CronJobController
) -> None:
    created = await client.create(CRONJOBS, cron_job_manifest("solo", "Forbid"), namespace)
    born = datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    key = f"{namespace}/solo"
    first = next_minute(born)
    await advance_to(controller, clock, first + timedelta(seconds=1), key)

    async def active_recorded() -> Obj | None:
        cron_job = await client.get(CRONJOBS, "solo", namespace)
        return cron_job if cron_job.get("status", {}).get("active") else None

    await eventually(active_recorded)

    async def active_cached() -> bool:
        # the next start is decided from the controller's cache, which may lag the server
        cached = controller.cron_jobs.get(key)
        return bool(cached and (cached.get("status") or {}).get("active"))

    await eventually(active_cached, what="the controller's cache to see the active Job")
    await advance_to(controller, clock, first + timedelta(minutes=1, seconds=1), key)

    async def skipped_event() -> bool:
        events = (await client.list(EVENTS, namespace))["items"]
        return any(e["reason"] == "JobAlreadyActive" for e in events)

    await eventually(skipped_event)
    assert len(await jobs_of(client, namespace)) == 1
    cron_job = await client.get(CRONJOBS, "solo", namespace)
    assert cron_job["status"]["lastScheduleTime"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")

    # Once the first Job finishes, the next due time starts a new one.
    [job] = await jobs_of(client, namespace)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    job["status"] = {
        "startTime": stamp,
        "completionTime": stamp,
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp},
            {"type": "Complete", "status": "True", "lastTransitionTime": stamp},
        ],
    }
    await client.update_status(JOBS, job)
    await advance_to(controller, clock, first + timedelta(minutes=2, seconds=1), key)

    async def two_jobs() -> list[Obj] | None:
        jobs = await jobs_of(client, namespace)
        return jobs if len(jobs) == 2 else None

    await eventually(two_jobs)

    async def success_recorded() -> Obj | None:
        cron_job = await client.get(CRONJOBS, "solo", namespace)
        return cron_job if cron_job.get("status", {}).get("lastSuccessfulTime") else None

    cron_job = await eventually(success_recorded)
    assert len(cron_job["status"]["active"]) == 1
