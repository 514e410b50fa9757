"""The Job controller in-process against a real server; pods are finished by hand (writing
their status), as no node runs them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from setpoint.client.api import EVENTS, JOBS, PODS, ApiClient, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.job import JOB_TRACKING_FINALIZER, JobController
from tests import objects
from tests.support import eventually


@pytest.fixture
async def controller(client: ApiClient) -> AsyncIterator[JobController]:
    informers = SharedInformers(client)
    recorder = EventRecorder(client, "job-controller-test")
    job_controller = JobController(informers, recorder, backoff_initial=0.05, backoff_max=0.2)
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(job_controller.run())
    yield job_controller
    await job_controller.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await informers.stop()


def job_manifest(name: str, **spec: Any) -> Obj:
    """A Job whose pods' one container, ``main``, runs ``true``."""
    return objects.job(name, containers=[objects.container("main", command=["true"])], **spec)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def finish(client: ApiClient, pod: Obj, phase: str, exit_code: int) -> None:
    pod = dict(pod)
    pod["status"] = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": "main",
                "image": "busybox",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "startedAt": now(),
                        "finishedAt": now(),
                    }
                },
            }
        ],
    }
    await client.update_status(PODS, pod)


async def running_pods(client: ApiClient, namespace: str) -> list[Obj]:
    pods = (await client.list(PODS, namespace))["items"]
    return [
        p
        for p in pods
        if p["status"].get("phase", "Pending") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    ]


def condition(job: Obj, kind: str) -> Obj | None:
    for item in job.get("status", {}).get("conditions") or []:
        if item["type"] == kind and item["status"] == "True":
            return dict(item)
    return None


async def test_job_runs_to_completion_with_exact_accounting(
    client: ApiClient, namespace: str, controller: JobController
) -> None:
    await client.create(JOBS, job_manifest("count", completions=3, parallelism=2), namespace)
    finished = 0
    most_running = 0
    while finished < 3:

        async def some_running() -> list[Obj]:
            return await running_pods(client, namespace)

        pods = await eventually(some_running)
        most_running = max(most_running, len(pods))
        created = pods[0]
        assert created["metadata"]["generateName"] == "count-"
        assert JOB_TRACKING_FINALIZER in created["metadata"]["finalizers"]
        assert created["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "count"
        assert created["metadata"]["ownerReferences"][0]["kind"] == "Job"
        await finish(client, created, "Succeeded", 0)
        finished += 1

    async def complete() -> Obj | None:
        job = await client.get(JOBS, "count", namespace)
        return job if condition(job, "Complete") else None

    job = await eventually(complete)
    assert most_running <= 2
    status = job["status"]
    assert status["succeeded"] == 3
    assert status.get("failed", 0) == 0
    assert status["active"] == 0
    assert status["completionTime"] and status["startTime"]
    kinds = [c["type"] for c in status["conditions"]]
    assert kinds.index("SuccessCriteriaMet") < kinds.index("Complete")
    assert not (status.get("uncountedTerminatedPods") or {}).get("succeeded")

    async def finalizers_gone() -> bool:
        pods = (await client.list(PODS, namespace))["items"]
        return all(
            JOB_TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods
        )

    await eventually(finalizers_gone)
    pods = (await client.list(PODS, namespace))["items"]
    assert len(pods) == 3  # no extra pod was started after the third success

    async def completed_event() -> bool:
        events = (await client.list(EVENTS, namespace))["items"]
        return any(e["reason"] == "Completed" for e in events)

    await eventually(completed_event)


async def test_failing_pods_exhaust_backoff_limit(
    client: ApiClient, namespace: str, controller: JobController
) -> None:
    await client.create(JOBS, job_manifest("doomed", backoffLimit=2), namespace)
    failed_pods: set[str] = set()

    async def failed() -> Obj | None:
        job = await client.get(JOBS, "doomed", namespace)
        if condition(job, "Failed"):
            return job
        for pod in await running_pods(client, namespace):
            if pod["metadata"]["name"] not in failed_pods:
                failed_pods.add(pod["metadata"]["name"])
                await finish(client, pod, "Failed", 1)
        return None

    job = await eventually(failed)
    status = job["status"]
    assert status["failed"] == 3
    assert len(failed_pods) == 3
    target = condition(job, "FailureTarget")
    final = condition(job, "Failed")
    assert target is not None and final is not None
    assert target["reason"] == final["reason"] == "BackoffLimitExceeded"
    kinds = [c["type"] for c in status["conditions"]]
    assert kinds.index("FailureTarget") < kinds.index("Failed")
    pods = (await client.list(PODS, namespace))["items"]
    assert all(JOB_TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods)


async def test_indexed_job_completes_every_index(
    client: ApiClient, namespace: str, controller: JobController
) -> None:
    manifest = job_manifest("idx", completions=3, parallelism=3, completionMode="Indexed")
    await client.create(JOBS, manifest, namespace)

    async def three_running() -> list[Obj] | None:
        pods = await running_pods(client, namespace)
        return pods if len(pods) == 3 else None

    pods = await eventually(three_running)
    indexes = sorted(
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods
    )
    assert indexes == ["0", "1", "2"]
    assert {p["spec"]["hostname"] for p in pods} == {"idx-0", "idx-1", "idx-2"}
    for pod in pods:
        await finish(client, pod, "Succeeded", 0)

    async def complete() -> Obj | None:
        job = await client.get(JOBS, "idx", namespace)
        return job if condition(job, "Complete") else None

    job = await eventually(complete)
    assert job["status"]["completedIndexes"] == "0-2"
    assert job["status"]["succeeded"] == 3


async def test_suspended_job_runs_no_pods_until_resumed(
    client: ApiClient, namespace: str, controller: JobController
) -> None:
    await client.create(JOBS, job_manifest("later", suspend=True), namespace)

    async def suspended() -> Obj | None:
        job = await client.get(JOBS, "later", namespace)
        return job if condition(job, "Suspended") else None

    job = await eventually(suspended)
    assert "startTime" not in job["status"]
    assert await running_pods(client, namespace) == []
    await client.patch(JOBS, "later", {"spec": {"suspend": False}}, namespace)

    async def started() -> list[Obj]:
        return await running_pods(client, namespace)

    await eventually(started)
    job = await client.get(JOBS, "later", namespace)
    assert job["status"]["startTime"]


async def test_active_deadline_fails_job_and_removes_its_pods(
    client: ApiClient, namespace: str, controller: JobController
) -> None:
    await client.create(JOBS, job_manifest("slow", activeDeadlineSeconds=1), namespace)

    async def failed() -> Obj | None:
        job = await client.get(JOBS, "slow", namespace)
        return job if condition(job, "Failed") else None

    job = await eventually(failed)
    final = condition(job, "Failed")
    assert final is not None and final["reason"] == "DeadlineExceeded"
    assert condition(job, "FailureTarget") is not None

    async def pods_gone() -> bool:
        return not (await client.list(PODS, namespace))["items"]

    await eventually(pods_gone)


async def test_fail_job_rule_fails_on_matching_exit_code(
    client: ApiClient, namespace: str, controller: JobController
) -> None:
    policy = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
            }
        ]
    }
    await client.create(JOBS, job_manifest("strict", podFailurePolicy=policy), namespace)

    async def some_running() -> list[Obj]:
        return await running_pods(client, namespace)

    [pod] = await eventually(some_running)
    await finish(client, pod, "Failed", 42)

    async def failed() -> Obj | None:
        job = await client.get(JOBS, "strict", namespace)
        return job if condition(job, "Failed") else None

    job = await eventually(failed)
    final = condition(job, "Failed")
    assert final is not None and final["reason"] == "PodFailurePolicy"
    assert "exit code 42" in final["message"]
    assert job["status"]["failed"] == 1
