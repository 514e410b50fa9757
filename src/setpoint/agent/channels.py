"""Kubernetes' channel protocols over one WebSocket (apimachinery's ``wsstream``).

``kubectl exec``, ``attach`` and the official clients' ``stream()`` and ``portforward``
multiplex several byte streams over one WebSocket: each message starts with the number of
the *channel* it belongs to. Which framing, and what the error channel carries, depends on
the subprotocol the client offered (``Sec-WebSocket-Protocol``) and the server chose:

- ``channel.k8s.io`` (and no subprotocol at all): binary messages, ``[channel, data...]``
  (a text message from the client counts as its UTF-8 bytes, as Go's ``websocket.Message``
  reads it: the Python client sends ``str`` stdin so); the error channel carries a failure
  as plain text;
- ``base64.channel.k8s.io``: text messages, the channel as an ASCII digit followed by the
  data in base64 (for clients that cannot send binary messages);
- ``v4.channel.k8s.io`` / ``v4.base64.channel.k8s.io``: the same framings, and the error
  channel carries the outcome as a JSON ``Status`` (success, or ``NonZeroExitCode`` with an
  ``ExitCode`` cause), and the resize channel terminal sizes as JSON;
- ``v5.channel.k8s.io``: v4's binary framing plus the CLOSE signal ``[255, channel]``, by
  which a client half-closes a channel (kubectl sends it when its stdin ends, so that a
  command reading stdin sees EOF while its output still flows back).

The server picks the first protocol in the client's list that it supports, as wsstream's
handshake does. Remote command uses channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4
resize; port forwarding two per port (data, error). :class:`Channels` is the framing only;
what flows on which channel is :mod:`setpoint.agent.remotecommand`'s and
:mod:`setpoint.agent.portforward`'s business.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import NamedTuple

import aiohttp
from aiohttp import web

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
CLOSE_SIGNAL = 255  # v5: [255, channel] closes the channel's direction from the client

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class ChannelProtocol:
    name: str
    binary: bool  # binary messages with a channel byte; else text, digit + base64
    json_status: bool  # the error channel carries a JSON Status (v4 and later)
    close_signal: bool  # v5's CLOSE signal


PROTOCOLS = {
    p.name: p
    for p in (
        ChannelProtocol(V5, binary=True, json_status=True, close_signal=True),
        ChannelProtocol(V4, binary=True, json_status=True, close_signal=False),
        ChannelProtocol(V4_BASE64, binary=False, json_status=True, close_signal=False),
        ChannelProtocol(V1, binary=True, json_status=False, close_signal=False),
        ChannelProtocol(V1_BASE64, binary=False, json_status=False, close_signal=False),
    )
}
REMOTE_COMMAND_PROTOCOLS = (V5, V4, V4_BASE64, V1, V1_BASE64)
PORT_FORWARD_PROTOCOLS = (V4, V4_BASE64)
_DEFAULT = PROTOCOLS[V1]
_DATA = (
    aiohttp.WSMsgType.BINARY,
    aiohttp.WSMsgType.TEXT,
)  # a client that names no subprotocol gets wsstream's "" entry


def protocol_named(name: str | None) -> ChannelProtocol:
    return PROTOCOLS.get(name or "", _DEFAULT)


class Frame(NamedTuple):
    """One message from the client: ``data`` for ``channel``, or (``closed``) the v5
    CLOSE signal for it."""

    channel: int
    data: bytes
    closed: bool = False


class Channels:
    """The channel framing of one accepted WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, protocol: ChannelProtocol) -> None:
        self.ws = ws
        self.protocol = protocol

    async def send(self, channel: int, data: bytes) -> None:
        if self.protocol.binary:
            await self.ws.send_bytes(bytes((channel,)) + data)
        else:
            await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())

    async def receive(self) -> Frame | None:
        """The next frame from the client; None once the connection is closed. Empty and
        undecodable messages are skipped, as wsstream skips them."""
        async for message in self.ws:
            if self.protocol.binary and message.type in _DATA:
                # a text message counts as its bytes (the Python client writes str as text)
                raw: bytes = (
                    message.data if isinstance(message.data, bytes) else (message.data.encode())
                )
                if not raw:
                    continue
                if raw[0] == CLOSE_SIGNAL and self.protocol.close_signal:
                    if len(raw) > 1:
                        return Frame(raw[1], b"", closed=True)
                    continue
                return Frame(raw[0], raw[1:])
            if message.type == aiohttp.WSMsgType.TEXT and not self.protocol.binary:
                text: str = message.data
                if not text:
                    continue
                try:
                    return Frame(ord(text[0]) - ord("0"), base64.b64decode(text[1:]))
                except (binascii.Error, ValueError):
                    continue
        return None
