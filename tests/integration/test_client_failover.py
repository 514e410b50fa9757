"""An API client that knows two API servers (``client.servers``) against two small HTTP
servers on loopback: it moves to the other when one cannot be reached, sends again only
what is safe to send again, and its informers resume their watch there from the last
resourceVersion instead of listing again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from setpoint.client.api import CONFIGMAPS, ApiClient, ApiError, ClientConfig
from setpoint.client.http import ServerUnreachable
from setpoint.client.informer import Informer
from setpoint.client.servers import ServerList
from setpoint.pki import ensure_server_credentials
from tests.support import free_port


@dataclass
class FakeApi:
    """A server of a handful of ConfigMaps: it records what it was asked, and can be made
    to drop a connection instead of answering (``drop``)."""

    name: str
    drop: bool = False
    delay: float = 0.0  # before answering (or dropping)
    requests: list[str] = field(default_factory=list)
    watch_versions: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.method)
        await asyncio.sleep(self.delay)
        if self.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if request.method == "GET" and request.query.get("watch") == "true":
            self.watch_versions.append(request.query.get("resourceVersion", ""))
            response = web.StreamResponse()
            await response.prepare(request)
            rv = int(request.query.get("resourceVersion") or 0) + 1
            event = {
                "type": "ADDED",
                "object": {
                    "metadata": {
                        "name": f"from-{self.name}",
                        "namespace": "ns",
                        "resourceVersion": str(rv),
                    }
                },
            }
            await response.write(orjson.dumps(event) + b"\n")
            await asyncio.sleep(3600)  # held open until the server goes
            return response
        if request.method == "GET" and request.path.endswith("/configmaps"):
            body = {"items": [], "metadata": {"resourceVersion": "10"}}
        else:
            body = {"served_by": self.name, "method": request.method}
        return web.json_response(body)

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def apis() -> AsyncIterator[tuple[FakeApi, FakeApi]]:
    a, b = FakeApi("a"), FakeApi("b")
    await a.start()
    await b.start()
    yield a, b
    for api in (a, b):
        await api.stop()


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    data_dir: Path = tmp_path_factory.mktemp("ca")
    return ensure_server_credentials(data_dir, hosts=["127.0.0.1"]).ca_pem()


def client_for(ca_pem: bytes, first: str, second: str) -> ApiClient:
    config = ClientConfig(first, "t", ca_pem, fallback_urls=(second,))
    client = ApiClient(config)
    assert client.server_url == first  # no key: the list's order
    return client


async def test_a_refused_connection_moves_the_request_to_the_next_server(
    apis: tuple[FakeApi, FakeApi], ca_pem: bytes
) -> None:
    _, b = apis
    dead = f"http://127.0.0.1:{free_port()}"
    async with client_for(ca_pem, dead, b.url) as client:
        # even a POST: a connection that was never made carried nothing
        answer = await client.request("POST", "/api/v1/namespaces/ns/configmaps", body={})
        assert answer["served_by"] == "b"
        assert client.server_url == b.url
        assert (await client.get(CONFIGMAPS, "x", "ns"))["served_by"] == "b"


async def test_an_idempotent_request_cut_midway_is_sent_again_to_the_next_server(
    apis: tuple[FakeApi, FakeApi], ca_pem: bytes
) -> None:
    a, b = apis
    a.drop = True
    async with client_for(ca_pem, a.url, b.url) as client:
        body = {"metadata": {"name": "x", "namespace": "ns"}}
        assert (await client.update(CONFIGMAPS, body))["served_by"] == "b"
        assert a.requests == ["PUT"] and b.requests == ["PUT"]


async def test_a_post_cut_midway_is_not_sent_again(
    apis: tuple[FakeApi, FakeApi], ca_pem: bytes
) -> None:
    a, b = apis
    a.drop = True
    async with client_for(ca_pem, a.url, b.url) as client:
        with pytest.raises(ConnectionError) as caught:
            await client.create(CONFIGMAPS, {"metadata": {"name": "x"}}, "ns")
        assert not isinstance(caught.value, ServerUnreachable)
        assert b.requests == []
        # the next request goes to the other server at once
        assert (await client.get(CONFIGMAPS, "x", "ns"))["served_by"] == "b"


async def test_a_server_learned_while_a_request_was_under_way_takes_it_over(
    apis: tuple[FakeApi, FakeApi], ca_pem: bytes
) -> None:
    a, b = apis
    a.drop, a.delay = True, 0.3
    servers = ServerList([a.url])
    async with ApiClient(ClientConfig(a.url, "t", ca_pem), servers=servers) as client:
        request = asyncio.create_task(client.get(CONFIGMAPS, "x", "ns"))
        await asyncio.sleep(0.1)
        servers.update([a.url, b.url])  # discovery found b meanwhile
        assert (await request)["served_by"] == "b"


async def test_an_http_error_is_an_answer_not_a_reason_to_move(ca_pem: bytes) -> None:
    async def conflict(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "code": 409, "reason": "Conflict"}, status=409)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", conflict)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with client_for(ca_pem, url, f"http://127.0.0.1:{free_port()}") as client:
            with pytest.raises(ApiError) as caught:
                await client.get(CONFIGMAPS, "x", "ns")
            assert caught.value.code == 409
            assert client.server_url == url
    finally:
        await runner.cleanup()


async def test_an_informer_resumes_its_watch_on_the_next_server_without_listing_again(
    apis: tuple[FakeApi, FakeApi], ca_pem: bytes
) -> None:
    a, b = apis
    async with client_for(ca_pem, a.url, b.url) as client:
        informer = Informer(client, CONFIGMAPS, namespace="ns")
        informer.start()
        try:
            await informer.wait_synced(timeout=10)
            async with asyncio.timeout(10):
                while informer.get("ns/from-a") is None:
                    await asyncio.sleep(0.01)
            await a.stop()  # the server dies, its watch breaks
            async with asyncio.timeout(10):
                while informer.get("ns/from-b") is None:
                    await asyncio.sleep(0.01)
        finally:
            await informer.stop()
    assert a.watch_versions == ["10"]
    assert b.watch_versions == ["11"]  # from the last event a sent
    assert b.requests == ["GET"]  # the watch only: nothing was listed again


async def test_the_agents_server_list_is_shared_by_every_view(ca_pem: bytes) -> None:
    servers = ServerList(["https://127.0.0.1:1", "https://127.0.0.1:2"], key="node")
    async with ApiClient(ClientConfig(servers.current, "t", ca_pem), servers=servers) as client:
        view = client.with_token("other")
        servers.failed(servers.current)
        assert client.server_url == view.server_url == servers.current
