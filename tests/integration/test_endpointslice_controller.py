"""The EndpointSlice and Endpoints controllers, in-process, against a real server (no other
controllers): they follow the pods a Service selects as those get IPs, turn ready or
unready, terminate and go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from setpoint.client.api import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES, ApiClient, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.endpoints import EndpointsController
from setpoint.controllers.endpointslice import EndpointSliceController
from tests import objects
from tests.support import eventually


@pytest.fixture
async def controllers(client: ApiClient) -> AsyncIterator[None]:
    informers = SharedInformers(client)
    running = [
        EndpointSliceController(informers, EventRecorder(client, "endpoint-slice-controller")),
        EndpointsController(informers, EventRecorder(client, "endpoint-controller")),
    ]
    informers.start()
    await informers.wait_synced()
    tasks = [asyncio.create_task(c.run()) for c in running]
    yield
    for controller in running:
        await controller.stop()
    for task in tasks:
        task.cancel()
    await informers.stop()


def web_service(**spec: Any) -> Obj:
    body: Obj = {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": body}


async def running_pod(
    client: ApiClient, namespace: str, name: str, ip: str, *, ready: bool = True, port: int = 8080
) -> Obj:
    container = objects.container("c", ports=[{"name": "http", "containerPort": port}])
    created = await client.create(
        PODS, objects.pod(name, labels={"app": "web"}, containers=[container]), namespace
    )
    return await set_status(client, created, ip, ready=ready)


async def set_status(client: ApiClient, pod: Obj, ip: str, *, ready: bool) -> Obj:
    current = await client.get(PODS, pod["metadata"]["name"], pod["metadata"]["namespace"])
    current["status"] = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return await client.update_status(PODS, current)


async def slice_endpoints(client: ApiClient, namespace: str) -> list[tuple[str, int, bool]]:
    """(address, port, ready) of every endpoint in the Service's managed slices."""
    slices = await client.list(
        ENDPOINTSLICES, namespace, label_selector="kubernetes.io/service-name=web"
    )
    out = []
    for endpoint_slice in slices["items"]:
        port = (endpoint_slice.get("ports") or [{}])[0].get("port", 0)
        for endpoint in endpoint_slice.get("endpoints") or []:
            out.append((endpoint["addresses"][0], port, endpoint["conditions"]["ready"]))
    return sorted(out)


async def endpoints_addresses(client: ApiClient, namespace: str) -> tuple[list[str], list[str]]:
    endpoints = await client.get(ENDPOINTS, "web", namespace)
    ready, not_ready = [], []
    for subset in endpoints.get("subsets") or []:
        ready += [a["ip"] for a in subset.get("addresses") or []]
        not_ready += [a["ip"] for a in subset.get("notReadyAddresses") or []]
    return sorted(ready), sorted(not_ready)


async def test_slices_and_endpoints_follow_readiness(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(SERVICES, web_service(), namespace)
    a = await running_pod(client, namespace, "a", "10.244.0.11")
    await running_pod(client, namespace, "b", "10.244.0.12", port=9090)

    async def both_ready() -> bool:
        return await slice_endpoints(client, namespace) == [
            ("10.244.0.11", 8080, True),
            ("10.244.0.12", 9090, True),
        ]

    await eventually(both_ready, what="two ready endpoints on their own ports")
    assert await endpoints_addresses(client, namespace) == (["10.244.0.11", "10.244.0.12"], [])

    await set_status(client, a, "10.244.0.11", ready=False)

    async def a_unready() -> bool:
        endpoints = await endpoints_addresses(client, namespace)
        return endpoints == (["10.244.0.12"], ["10.244.0.11"]) and (
            await slice_endpoints(client, namespace)
        ) == [("10.244.0.11", 8080, False), ("10.244.0.12", 9090, True)]

    await eventually(a_unready, what="the unready pod to be listed as not ready")


async def test_terminating_pod_is_serving_in_slices_and_gone_from_endpoints(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(SERVICES, web_service(), namespace)
    pod = await running_pod(client, namespace, "a", "10.244.1.1")
    pod["metadata"]["finalizers"] = ["example.com/hold"]
    await client.update(PODS, pod)
    await eventually(
        lambda: _equals(endpoints_addresses(client, namespace), (["10.244.1.1"], [])),
        what="the pod in the Endpoints",
    )
    await client.delete(PODS, "a", namespace, grace_period_seconds=0)

    async def terminating() -> bool:
        slices = await client.list(
            ENDPOINTSLICES, namespace, label_selector="kubernetes.io/service-name=web"
        )
        conditions = [e["conditions"] for s in slices["items"] for e in s.get("endpoints") or []]
        return conditions == [{"ready": False, "serving": True, "terminating": True}] and (
            await endpoints_addresses(client, namespace)
        ) == ([], [])

    await eventually(terminating, what="a serving, terminating endpoint")
    current = await client.get(PODS, "a", namespace)
    current["metadata"]["finalizers"] = []
    await client.update(PODS, current)


async def test_pods_without_ip_are_skipped_and_deleted_service_takes_its_endpoints(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(SERVICES, web_service(), namespace)
    container = objects.container("c", ports=[{"name": "http", "containerPort": 8080}])
    await client.create(
        PODS, objects.pod("pending", labels={"app": "web"}, containers=[container]), namespace
    )

    async def placeholder() -> bool:
        slices = await client.list(
            ENDPOINTSLICES, namespace, label_selector="kubernetes.io/service-name=web"
        )
        items = slices["items"]
        endpoints = await client.get(ENDPOINTS, "web", namespace)
        return len(items) == 1 and not items[0].get("endpoints") and not endpoints.get("subsets")

    await eventually(placeholder, what="one empty slice and empty Endpoints")
    await client.delete(SERVICES, "web", namespace)

    async def endpoints_gone() -> bool:
        try:
            await client.get(ENDPOINTS, "web", namespace)
        except Exception:
            return True
        return False

    await eventually(endpoints_gone, what="the Endpoints to go with the Service")


async def test_slice_deleted_by_hand_is_written_again(
    client: ApiClient, namespace: str, controllers: None
) -> None:
    await client.create(SERVICES, web_service(), namespace)
    await running_pod(client, namespace, "a", "10.244.2.1")
    await eventually(
        lambda: _equals(slice_endpoints(client, namespace), [("10.244.2.1", 8080, True)]),
        what="the slice",
    )
    slices = await client.list(ENDPOINTSLICES, namespace)
    await client.delete(ENDPOINTSLICES, slices["items"][0]["metadata"]["name"], namespace)
    await eventually(
        lambda: _equals(slice_endpoints(client, namespace), [("10.244.2.1", 8080, True)]),
        what="the slice to be written again",
    )


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
