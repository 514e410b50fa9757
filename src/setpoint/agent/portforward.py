"""``kubectl port-forward`` on the node: connections to a pod's ports, carried over one
WebSocket (``/portForward/{namespace}/{pod}``, the kubelet's path).

Two protocols, chosen by the client's subprotocol:

- ``SPDY/3.1+portforward.k8s.io`` (kubectl): a SPDY session inside the WebSocket
  (:mod:`setpoint.agent.spdy`). For each local connection kubectl opens two streams with
  the same ``requestID`` header: an ``error`` stream and a ``data`` stream, both naming the
  remote ``port``. Once both are there the agent connects to the port and copies bytes both
  ways over the data stream; the client's FIN half-closes the connection to the pod (so a
  server sees its request end), the pod's EOF becomes our FIN. A port that cannot be
  reached is reported on the error stream as the kubelet words it (``error forwarding port
  8080 to pod web, uid ...: ...``), which kubectl prints. The pairing follows
  ``kubelet/pkg/cri/streaming/portforward/httpstream.go``.
- ``v4.channel.k8s.io`` and its base64 twin (the official clients' ``portforward``): the
  ports are in the ``ports`` query; port *i* has data channel ``2i`` and error channel
  ``2i+1``, each first carrying the port number (two bytes, little endian); one connection
  per port, made at once, and the WebSocket closes when they are all done
  (``portforward/websocket.go``).

Where a connection goes (:func:`dial`): ``localhost`` on the pod's port, IPv4 then IPv6, as
the runtimes' port forwarding dials it. setpoint's pods share the node's network today, so
that is the node's loopback; given the pod's network namespace (``netns``) the socket is
made inside it, which is the one change that pod networking needs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from setpoint.agent import spdy
from setpoint.agent.channels import Channels, protocol_named
from setpoint.agent.remotecommand import StreamRequestError

SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
READ_BYTES = 64 * 1024
CLONE_NEWNET = 0x40000000

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


def query_ports(values: list[str]) -> list[int]:
    """The ``ports`` of a WebSocket port-forward request (``NewV4Options``); raises
    :class:`StreamRequestError` (400) with the kubelet's words."""
    if not values:
        raise StreamRequestError(400, 'query parameter "port" is required')
    ports = []
    for value in values:
        if not value:
            raise StreamRequestError(400, 'query parameter "port" cannot be empty')
        for part in value.split(","):
            try:
                port = int(part)
                if not 0 <= port < 65536:
                    raise ValueError(part)
            except ValueError:
                raise StreamRequestError(400, f'unable to parse "{value}" as a port') from None
            if port < 1:
                raise StreamRequestError(400, f'port "{value}" must be > 0')
            ports.append(port)
    return ports


# ------------------------------------------------------------------ dialing


def _socket_in(netns: Path, family: int) -> socket.socket:
    """A TCP socket made inside the network namespace ``netns`` (a socket stays in the
    namespace it was made in). Runs in a thread of its own: ``setns`` moves only the
    calling thread, which moves back before it returns."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}: {os.strerror(ctypes.get_errno())}")
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:  # a thread left elsewhere must not live on
                os.abort()
    finally:
        os.close(target)
        os.close(home)


async def dial(
    port: int, *, netns: Path | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``localhost:port`` (in ``netns`` if given): IPv4, then IPv6."""
    errors = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = None
        try:
            if netns is not None:
                sock = await asyncio.to_thread(_socket_in, netns, family)
            else:
                sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            return await asyncio.open_connection(sock=sock, limit=READ_BYTES)
        except OSError as exc:
            if sock is not None:
                sock.close()
            version = "IPv4" if family == socket.AF_INET else "IPv6"
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            errors.append(f"{version}: dial tcp {host}:{port}: connect: {why}")
    where = f" inside namespace {netns}" if netns is not None else ""
    raise OSError(f"failed to connect to localhost:{port}{where}, {', '.join(errors)}")


# ------------------------------------------------------------------ copying


async def _copy_to_pod(read: Callable[[], Awaitable[bytes]], writer: asyncio.StreamWriter) -> None:
    while chunk := await read():
        writer.write(chunk)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()  # the client is done sending: the pod sees the end


async def _copy_from_pod(
    reader: asyncio.StreamReader, write: Callable[[bytes], Awaitable[None]]
) -> None:
    while chunk := await reader.read(READ_BYTES):
        await write(chunk)


def forwarding_error(port: int, pod: str, uid: str, exc: BaseException) -> bytes:
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {exc}".encode()


# ------------------------------------------------------------------ SPDY (kubectl)


async def serve_spdy(ws: web.WebSocketResponse, dial: Dial, *, pod: str, uid: str) -> None:
    """kubectl's tunnelled SPDY session, until the client closes the WebSocket."""
    tasks: set[asyncio.Task[None]] = set()
    pairs: dict[str, dict[str, spdy.Stream]] = {}

    async def send(frame: bytes) -> None:
        await ws.send_bytes(frame)

    async def forward(data: spdy.Stream, error: spdy.Stream, port: int) -> None:
        try:
            try:
                reader, writer = await dial(port)
            except OSError as exc:
                await error.write(forwarding_error(port, pod, uid, exc))
                return
            try:
                upstream = asyncio.create_task(_copy_to_pod(data.read, writer))
                await _copy_from_pod(reader, data.write)
                await data.close()
                await upstream  # until the client is done too (it half-closes after us)
            finally:
                upstream.cancel()
                writer.close()
        except (OSError, ConnectionError) as exc:
            with contextlib.suppress(ConnectionError):
                await error.write(forwarding_error(port, pod, uid, exc))
        finally:
            with contextlib.suppress(ConnectionError):
                await data.close()
                await error.close()
            session.forget(data)
            session.forget(error)

    def on_stream(stream: spdy.Stream) -> None:
        request = stream.headers.get("requestid") or str(stream.id)
        kind = stream.headers.get("streamtype", "")
        pair = pairs.setdefault(request, {})
        pair[kind] = stream
        if "data" in pair and "error" in pair:
            del pairs[request]
            try:
                port = int(pair["data"].headers.get("port", ""))
            except ValueError:
                port = 0
            task = asyncio.create_task(forward(pair["data"], pair["error"], port))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    session = spdy.Session(send, on_stream)
    try:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                await session.receive(message.data)
    except spdy.ProtocolError:
        pass
    finally:
        session.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------ WebSocket (clients)


async def serve_channels(
    ws: web.WebSocketResponse, dial: Dial, ports: list[int], *, pod: str, uid: str
) -> None:
    """The v4 channel protocol: one connection per port, the WebSocket closes after."""
    channels = Channels(ws, protocol_named(ws.ws_protocol))
    queues: dict[int, asyncio.Queue[bytes]] = {i: asyncio.Queue(16) for i in range(len(ports))}

    async def forward(index: int, port: int) -> None:
        data_channel, error_channel = 2 * index, 2 * index + 1
        try:
            reader, writer = await dial(port)
        except OSError as exc:
            await channels.send(error_channel, forwarding_error(port, pod, uid, exc))
            return
        try:
            upstream = asyncio.create_task(_copy_to_pod(queues[index].get, writer))

            async def write(chunk: bytes) -> None:
                await channels.send(data_channel, chunk)

            await _copy_from_pod(reader, write)
        finally:
            upstream.cancel()
            writer.close()

    for index, port in enumerate(ports):
        number = struct.pack("<H", port)
        await channels.send(2 * index, number)
        await channels.send(2 * index + 1, number)

    async def forward_all() -> None:
        await asyncio.gather(*(forward(i, p) for i, p in enumerate(ports)))

    forwards = asyncio.create_task(forward_all())

    async def receive() -> None:
        while (frame := await channels.receive()) is not None:
            index, is_error = divmod(frame.channel, 2)
            if not is_error and index in queues and frame.data and not frame.closed:
                await queues[index].put(frame.data)

    receiving = asyncio.create_task(receive())
    try:
        await asyncio.wait({forwards, receiving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        receiving.cancel()
        forwards.cancel()
        await asyncio.gather(receiving, forwards, return_exceptions=True)
        await ws.close()
