"""The API client's HTTP/1.1 connection pool against small real HTTP servers on loopback:
keep-alive reuse, servers closing idle connections, chunked bodies, timeouts, bad answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web

from setpoint.client.http import ConnectionPool

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler, **server_options: float) -> AsyncIterator[str]:
    app = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, **server_options)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class Recorder:
    """Answers with what it was asked, and counts the connections it saw."""

    def __init__(self) -> None:
        self.peers: set[object] = set()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport)
        body = await request.read()
        if request.path == "/chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (b'{"a":', b'"x"', b"}"):
                await response.write(part)
            await response.write_eof()
            return response
        if request.path == "/slow":
            await asyncio.sleep(5)
        return web.Response(
            body=orjson.dumps(
                {
                    "method": request.method,
                    "path": request.raw_path,
                    "body": body.decode(),
                    "type": request.headers.get("Content-Type", ""),
                    "auth": request.headers.get("Authorization", ""),
                }
            ),
            content_type="application/json",
            status=201 if request.method == "POST" else 200,
        )


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def url(recorder: Recorder) -> AsyncIterator[str]:
    async for address in _serve(recorder, keepalive_timeout=0.2):
        yield address


def _pool(url: str) -> ConnectionPool:
    return ConnectionPool(url, ssl_context=None, headers={"Authorization": "Bearer t"}, limit=4)


async def test_requests_reuse_keep_alive_connections(url: str, recorder: Recorder) -> None:
    pool = _pool(url)
    try:
        for _ in range(5):
            response = await pool.request("GET", "/api/v1/pods", query="limit=1")
            assert response.status == 200
        assert len(recorder.peers) == 1
        created = await pool.request("POST", "/api/v1/pods", body=b'{"k":1}')
        assert created.status == 201
        assert b'"body":"{\\"k\\":1}"' in created.body
        assert b'"type":"application/json"' in created.body
        assert b'"auth":"Bearer t"' in created.body
        results = await asyncio.gather(*(pool.request("GET", f"/p/{i}") for i in range(12)))
        assert [r.status for r in results] == [200] * 12
        assert len(recorder.peers) <= 4  # never more connections than the limit
    finally:
        await pool.close()


async def test_a_connection_the_server_closed_while_idle_is_not_used(url: str) -> None:
    pool = _pool(url)
    try:
        assert (await pool.request("GET", "/a")).status == 200
        await asyncio.sleep(0.6)  # the server's keep-alive timeout (0.2 s) closes it
        assert (await pool.request("POST", "/b", body=b"{}")).status == 201
        assert (await pool.request("GET", "/c")).status == 200
    finally:
        await pool.close()


async def test_chunked_bodies_and_quoted_paths(url: str) -> None:
    pool = _pool(url)
    try:
        chunked = await pool.request("GET", "/chunked")
        assert (chunked.status, chunked.body) == (200, b'{"a":"x"}')
        quoted = await pool.request("GET", "/api/v1/namespaces/a%2Fb/pods/with space")
        assert b'"path":"/api/v1/namespaces/a%2Fb/pods/with%20space"' in quoted.body
    finally:
        await pool.close()


async def test_a_timeout_raises_and_drops_the_connection(url: str, recorder: Recorder) -> None:
    pool = _pool(url)
    try:
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/slow", timeout=0.2)
        assert (await pool.request("GET", "/after")).status == 200
        assert len(recorder.peers) == 2  # the timed-out connection was not reused
    finally:
        await pool.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = _pool(f"http://127.0.0.1:{port}")
    with pytest.raises(OSError):
        await pool.request("GET", "/")
    await pool.close()


async def test_a_garbled_answer_is_a_connection_error() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\n{}")
        await writer.drain()

    server = await asyncio.start_server(garble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = _pool(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectionError, match="malformed HTTP response"):
            await pool.request("GET", "/")
    finally:
        await pool.close()
        server.close()


async def test_a_server_hanging_up_mid_answer_is_a_connection_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = _pool(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectionError):
            await pool.request("GET", "/")
    finally:
        await pool.close()
        server.close()
