"""The resource quota controller, in-process, against a real server (no other controllers):
it computes a quota's status from what the namespace holds, follows scopes, counts kinds of
other groups through the API, and gives usage back when objects go or pods finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from setpoint.client.api import CONFIGMAPS, DEPLOYMENTS, PODS, ApiClient, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.resourcequota import ResourceQuotaController
from setpoint.controllers.resourcequota.controller import RESOURCEQUOTAS
from tests import objects
from tests.support import eventually


@pytest.fixture
async def controller(client: ApiClient) -> AsyncIterator[ResourceQuotaController]:
    informers = SharedInformers(client)
    ctrl = ResourceQuotaController(informers, EventRecorder(client, "resourcequota-controller"))
    informers.start()
    await informers.wait_synced()
    task = asyncio.create_task(ctrl.run())
    yield ctrl
    await ctrl.stop()
    task.cancel()
    await informers.stop()


def sized(name: str, cpu: str | None = None, **spec: Any) -> Obj:
    resources = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}} if cpu else {}
    return objects.pod(name, containers=[objects.container(resources=resources)], **spec)


async def quota(client: ApiClient, namespace: str, hard: dict[str, str], **spec: Any) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": hard, **spec},
    }
    await client.create(RESOURCEQUOTAS, body, namespace)


async def used_becomes(client: ApiClient, namespace: str, expected: dict[str, str]) -> None:
    async def seen() -> bool:
        status = (await client.get(RESOURCEQUOTAS, "q", namespace)).get("status") or {}
        return status.get("used") == expected

    await eventually(seen, what=f"used to become {expected}")


async def test_usage_is_computed_from_what_the_namespace_holds(
    controller: ResourceQuotaController, client: ApiClient, namespace: str
) -> None:
    await client.create(PODS, sized("a", "250m"), namespace)
    await client.create(PODS, sized("b", "500m"), namespace)
    await client.create(CONFIGMAPS, objects.configmap("c", data={"k": "v"}), namespace)
    await quota(client, namespace, {"pods": "10", "requests.cpu": "2", "configmaps": "5"})
    await used_becomes(client, namespace, {"pods": "2", "requests.cpu": "750m", "configmaps": "1"})
    stored = await client.get(RESOURCEQUOTAS, "q", namespace)
    assert stored["status"]["hard"] == {"pods": "10", "requests.cpu": "2", "configmaps": "5"}


async def test_deleted_and_finished_pods_give_usage_back(
    controller: ResourceQuotaController, client: ApiClient, namespace: str
) -> None:
    await quota(client, namespace, {"pods": "10", "count/pods": "10"})
    await used_becomes(client, namespace, {"pods": "0", "count/pods": "0"})
    for name in ("a", "b", "c"):
        await client.create(PODS, sized(name), namespace)
    await used_becomes(client, namespace, {"pods": "3", "count/pods": "3"})
    await client.delete(PODS, "a", namespace)
    await used_becomes(client, namespace, {"pods": "2", "count/pods": "2"})
    finished = await client.get(PODS, "b", namespace)
    finished["status"] = {"phase": "Failed"}
    await client.update_status(PODS, finished)
    # a finished pod still exists: it counts as an object, not as a running pod
    await used_becomes(client, namespace, {"pods": "1", "count/pods": "2"})


async def test_scoped_quota_counts_only_the_pods_it_selects(
    controller: ResourceQuotaController, client: ApiClient, namespace: str
) -> None:
    await client.create(PODS, sized("best-effort"), namespace)
    await client.create(PODS, sized("burstable", "100m"), namespace)
    await client.create(PODS, sized("deadline", activeDeadlineSeconds=60), namespace)
    await quota(client, namespace, {"pods": "10"}, scopes=["BestEffort", "NotTerminating"])
    await used_becomes(client, namespace, {"pods": "1"})


async def test_kinds_of_other_groups_are_counted(
    controller: ResourceQuotaController, client: ApiClient, namespace: str
) -> None:
    for name in ("one", "two"):
        await client.create(DEPLOYMENTS, objects.deployment(name, replicas=0), namespace)
    await quota(
        client, namespace, {"count/deployments.apps": "5", "count/widgets.example.com": "1"}
    )
    await used_becomes(
        client, namespace, {"count/deployments.apps": "2", "count/widgets.example.com": "0"}
    )
