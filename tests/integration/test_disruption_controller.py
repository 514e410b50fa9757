"""The disruption controller, in-process, against a real server (no other controllers: the
tests write the pods, their owners and their readiness themselves)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from setpoint.client.api import (
    JOBS,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    ApiClient,
    Obj,
)
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.disruption import DisruptionController
from tests import objects
from tests.support import eventually


@pytest.fixture
async def controller(client: ApiClient) -> AsyncIterator[DisruptionController]:
    informers = SharedInformers(client)
    ctrl = DisruptionController(informers, EventRecorder(client, "controllermanager"))
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(ctrl.run())
    yield ctrl
    await ctrl.stop()
    task.cancel()
    await informers.stop()


def stamp(seconds_ago: float = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


async def ready_pod(
    client: ApiClient, namespace: str, name: str, *, owner: Obj | None = None, ready: bool = True
) -> Obj:
    metadata: Obj = {}
    if owner is not None:
        kind, api_version = owner["kind"], owner["apiVersion"]
        metadata["ownerReferences"] = [
            {
                "apiVersion": api_version,
                "kind": kind,
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    pod = await client.create(
        PODS, objects.pod(name, labels={"app": "web"}, metadata=metadata), namespace
    )
    pod["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return await client.update_status(PODS, pod)


async def budget(client: ApiClient, namespace: str, **spec: Any) -> Obj:
    pdb = objects.pod_disruption_budget("web", match_labels={"app": "web"}, **spec)
    return await client.create(PODDISRUPTIONBUDGETS, pdb, namespace)


async def status_where(client: ApiClient, namespace: str, check: Any, what: str) -> Obj:
    async def seen() -> Obj | None:
        pdb = await client.get(PODDISRUPTIONBUDGETS, "web", namespace)
        status = pdb.get("status") or {}
        return status if status.get("observedGeneration") and check(status) else None

    return await eventually(seen, what=what)


def allowed_condition(status: Obj) -> Obj:
    return next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")


async def test_integer_min_available_counts_ready_pods(
    client: ApiClient, namespace: str, controller: DisruptionController
) -> None:
    for name in ("a", "b"):
        await ready_pod(client, namespace, name)
    await ready_pod(client, namespace, "c", ready=False)
    await budget(client, namespace, minAvailable=1)
    status = await status_where(
        client, namespace, lambda s: s["expectedPods"] == 3, "the budget's status"
    )
    assert (status["currentHealthy"], status["desiredHealthy"]) == (2, 1)
    assert status["disruptionsAllowed"] == 1
    condition = allowed_condition(status)
    assert (condition["status"], condition["reason"]) == ("True", "SufficientPods")


async def test_max_unavailable_counts_against_the_replica_sets_scale(
    client: ApiClient, namespace: str, controller: DisruptionController
) -> None:
    rs = objects.replica_set(
        "web",
        pod_labels={"app": "web"},
        template=objects.pod_template({"app": "web"}),
        replicas=4,
    )
    owner = await client.create(REPLICASETS, rs, namespace)
    for name in ("a", "b", "c"):
        await ready_pod(client, namespace, name, owner=owner)
    await budget(client, namespace, maxUnavailable=1)
    status = await status_where(
        client, namespace, lambda s: s["currentHealthy"] == 3, "the budget's status"
    )
    assert (status["expectedPods"], status["desiredHealthy"]) == (4, 3)
    assert status["disruptionsAllowed"] == 0
    assert allowed_condition(status)["reason"] == "InsufficientPods"


async def test_a_percentage_over_job_pods_fails_safe(
    client: ApiClient, namespace: str, controller: DisruptionController
) -> None:
    job = await client.create(
        JOBS,
        objects.job("work", template=objects.pod_template({"app": "web"}, restartPolicy="Never")),
        namespace,
    )
    await ready_pod(client, namespace, "a", owner=job)
    await budget(client, namespace, minAvailable="50%")

    async def failed() -> Obj | None:
        pdb = await client.get(PODDISRUPTIONBUDGETS, "web", namespace)
        conditions = (pdb.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["reason"] == "SyncFailed"), None)

    condition = await eventually(failed, what="a SyncFailed condition")
    assert condition["status"] == "False"
    assert condition["message"] == 'found no controllers for pod "a"'


async def test_an_eviction_that_never_became_a_deletion_is_forgotten(
    client: ApiClient, namespace: str, controller: DisruptionController
) -> None:
    for name in ("a", "b"):
        await ready_pod(client, namespace, name)
    await budget(client, namespace, minAvailable=1)
    await status_where(client, namespace, lambda s: s["currentHealthy"] == 2, "two healthy")
    pdb = await client.get(PODDISRUPTIONBUDGETS, "web", namespace)
    pdb["status"]["disruptedPods"] = {"a": stamp(seconds_ago=30), "b": stamp(seconds_ago=600)}
    await client.update_status(PODDISRUPTIONBUDGETS, pdb)
    status = await status_where(
        client,
        namespace,
        lambda s: list(s.get("disruptedPods") or {}) == ["a"],
        "the expired eviction to go",
    )
    assert status["currentHealthy"] == 1  # "a" is still on its way out
    assert status["disruptionsAllowed"] == 0
