"""Relaying TCP connections in userspace: what a node port does when no kernel rule can.

Both the ``hostPort`` listeners (:mod:`setpoint.agent.hostports`) and the node proxy's
userspace mode (:mod:`setpoint.agent.proxy.userspace`) accept a connection on the node and
copy bytes both ways between it and a connection they open to a pod. :class:`Relay` is that
copying, once: it owns the streams it relays, so closing it (a pod gone, a Service gone)
cuts every connection it carries. Half-closes are passed on (``write_eof``), so
request/response protocols that shut their sending side keep working. The client's address
is not preserved: the pod sees the connection come from the node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

CHUNK = 64 * 1024

Target = tuple[str, int]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` into ``writer`` until end of stream, then half-close ``writer``."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


class Relay:
    """Listeners and the connections they relay; :meth:`close` ends all of them."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.streams: set[asyncio.StreamWriter] = set()

    async def listen(
        self, host: str | None, port: int, target: Target | Callable[[], Target | None]
    ) -> asyncio.Server:
        """Accept on ``host:port`` and relay each connection to ``target``, or to what
        ``target()`` answers for it (None: close it at once). Raises OSError if the port
        cannot be bound."""

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.relay(reader, writer, target if isinstance(target, tuple) else target())

        server = await asyncio.start_server(accept, host, port, reuse_address=True)
        self.servers.append(server)
        return server

    async def relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: Target | None
    ) -> None:
        """Connect to ``target`` and copy both ways until both sides are done."""
        try:
            if target is None:
                raise ConnectionRefusedError
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        self.streams.update((writer, up_writer))
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self.streams.discard(w)
                w.close()

    async def close_server(self, server: asyncio.Server) -> None:
        """Stop one listener (its relayed connections go on)."""
        server.close()
        with contextlib.suppress(ValueError):
            self.servers.remove(server)
        with contextlib.suppress(Exception):
            await server.wait_closed()

    async def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        servers, self.servers = self.servers, []
        for server in servers:
            server.close()
        for writer in list(self.streams):
            writer.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
