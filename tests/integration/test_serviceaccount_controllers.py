"""The ServiceAccounts controller and the root CA publisher in-process against a real server
(without its own controller manager): every namespace gets ``default`` and
``kube-root-ca.crt``, both come back when deleted, an edited CA bundle is put back, and a
namespace being deleted is left alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from setpoint.client.api import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS, ApiClient, ApiError
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.serviceaccount import RootCACertPublisher, ServiceAccountsController
from tests import objects
from tests.support import eventually

Obj = dict[str, Any]
CA = "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"


@pytest.fixture
async def controllers(client: ApiClient) -> AsyncIterator[None]:
    informers = SharedInformers(client)
    recorder = EventRecorder(client, "test-serviceaccounts")
    running = [
        ServiceAccountsController(informers, recorder),
        RootCACertPublisher(informers, recorder, root_ca=CA),
    ]
    informers.start()
    await informers.wait_synced()
    tasks = [asyncio.create_task(c.run()) for c in running]
    yield
    for c in running:
        await c.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await informers.stop()


async def get_or_none(client: ApiClient, resource: Any, name: str, namespace: str) -> Obj | None:
    try:
        return await client.get(resource, name, namespace)
    except ApiError as exc:
        if exc.is_not_found:
            return None
        raise


async def new_namespace(client: ApiClient) -> str:
    name = f"sac-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, objects.namespace(name))
    return name


async def test_new_namespace_gets_default_account_and_root_ca(
    client: ApiClient, controllers: None
) -> None:
    ns = await new_namespace(client)
    await eventually(lambda: get_or_none(client, SERVICEACCOUNTS, "default", ns))
    cm = await eventually(lambda: get_or_none(client, CONFIGMAPS, "kube-root-ca.crt", ns))
    assert cm["data"] == {"ca.crt": CA}
    assert "kubernetes.io/description" in cm["metadata"]["annotations"]


async def test_deleted_default_account_and_root_ca_come_back(
    client: ApiClient, controllers: None
) -> None:
    ns = await new_namespace(client)
    first = await eventually(lambda: get_or_none(client, SERVICEACCOUNTS, "default", ns))
    await eventually(lambda: get_or_none(client, CONFIGMAPS, "kube-root-ca.crt", ns))
    await client.delete(SERVICEACCOUNTS, "default", ns)
    await client.delete(CONFIGMAPS, "kube-root-ca.crt", ns)

    async def recreated() -> Obj | None:
        account = await get_or_none(client, SERVICEACCOUNTS, "default", ns)
        fresh = account is not None and account["metadata"]["uid"] != first["metadata"]["uid"]
        return account if fresh else None

    await eventually(recreated)
    await eventually(lambda: get_or_none(client, CONFIGMAPS, "kube-root-ca.crt", ns))


async def test_edited_root_ca_is_put_back(client: ApiClient, controllers: None) -> None:
    ns = await new_namespace(client)
    cm = await eventually(lambda: get_or_none(client, CONFIGMAPS, "kube-root-ca.crt", ns))
    cm["data"] = {"ca.crt": "tampered"}
    await client.update(CONFIGMAPS, cm)

    async def restored() -> bool:
        current = await get_or_none(client, CONFIGMAPS, "kube-root-ca.crt", ns)
        return current is not None and current["data"] == {"ca.crt": CA}

    await eventually(restored)
