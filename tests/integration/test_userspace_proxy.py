"""The node proxy's userspace data path on loopback: a Service port's listener relays each
connection to one of its endpoints, follows endpoint changes, and goes when the port has no
endpoints left (a connection is then refused at once). No root needed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest

from setpoint.agent.proxy.servicemap import Endpoint, ServicePort
from setpoint.agent.proxy.userspace import UserspaceDataPath
from tests.support import free_port


@contextlib.asynccontextmanager
async def name_server(name: str) -> AsyncIterator[Endpoint]:
    """A TCP server on loopback answering ``name`` to every connection."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield Endpoint("127.0.0.1", server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def port(listen: int, *endpoints: Endpoint) -> ServicePort:
    return ServicePort(
        namespace="default",
        service="web",
        port_name="http",
        protocol="TCP",
        cluster_ip="127.0.0.1",
        port=listen,
        node_port=None,
        endpoints=tuple(sorted(endpoints)),
    )


async def ask(listen: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", listen)
    try:
        return (await reader.read()).decode()
    finally:
        writer.close()


async def test_connections_are_relayed_to_every_endpoint_and_stop_with_none_left() -> None:
    listen = free_port()
    data_path = UserspaceDataPath()
    try:
        async with name_server("a") as a, name_server("b") as b:
            await data_path.apply([port(listen, a, b)], [])
            assert {await ask(listen) for _ in range(40)} == {"a", "b"}
            await data_path.apply([port(listen, b)], [])  # a left rotation
            assert {await ask(listen) for _ in range(20)} == {"b"}
            await data_path.apply([port(listen)], [])  # no endpoints: no listener
            with pytest.raises(ConnectionRefusedError):
                await ask(listen)
    finally:
        await data_path.remove()


async def test_udp_ports_are_not_served_in_userspace() -> None:
    listen = free_port()
    data_path = UserspaceDataPath()
    try:
        udp = port(listen, Endpoint("127.0.0.1", 9))
        await data_path.apply([dataclasses.replace(udp, protocol="UDP")], [])
        with pytest.raises(ConnectionRefusedError):
            await ask(listen)
    finally:
        await data_path.remove()
