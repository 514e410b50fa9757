"""The server end of a SPDY/3.1 session: the framing ``kubectl port-forward`` speaks.

kubectl 1.30 and later forward ports over a WebSocket whose subprotocol is
``SPDY/3.1+portforward.k8s.io``: the WebSocket's binary messages carry the bytes of a SPDY
session, exactly as the older clients spoke it over an upgraded HTTP connection
(client-go's ``tools/portforward/tunneling_connection.go``; kube-apiserver's
``streamtunnel.go`` unwraps it). Each forwarded connection is a pair of streams the client
opens. No maintained Python SPDY library exists, so this module frames it, after the
SPDY/3 draft and Go's ``spdystream``, which kubectl uses:

- frames: control frames (``SYN_STREAM``, ``SYN_REPLY``, ``RST_STREAM``, ``SETTINGS``,
  ``PING``, ``GOAWAY``, ``HEADERS``, ``WINDOW_UPDATE``) and data frames (stream id, ``FIN``
  flag, up to 16 MiB of data);
- header blocks: name/value pairs, zlib-compressed with the SPDY/3 dictionary, one
  compression context per direction for the whole session;
- every stream the client opens is answered at once with a ``SYN_REPLY`` (what
  ``spdystream``'s ``CreateStream`` waits for); ``FIN`` half-closes a stream, ``RST_STREAM``
  ends it; ``PING`` is echoed.

Flow control (``WINDOW_UPDATE``) is ignored both ways, as ``spdystream`` ignores it; the
reader applies backpressure instead: a stream's incoming data waits in a bounded queue, and
the session reads no further frames while it is full, so a slow pod slows its client down
through TCP.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Final

VERSION: Final = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN: Final = 0x01
RST_CANCEL: Final = 5
MAX_DATA: Final = 64 * 1024  # what one data frame of ours carries
MAX_FRAME: Final = (1 << 24) - 1
STREAM_BACKLOG: Final = 16  # frames of a stream waiting to be read before the session waits


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): length-prefixed
    common header names and values, then common text."""
    words = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        "charset=iso-8859-1,utf-,*,enq=0."
    )
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY: Final = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1; the session ends."""


def control_frame(kind: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


class HeaderCodec:
    """One direction's header compression context."""

    def __init__(self) -> None:
        self._compress = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)
        self._decompress = zlib.decompressobj(zdict=DICTIONARY)

    def encode(self, headers: dict[str, str]) -> bytes:
        block = bytearray(struct.pack(">I", len(headers)))
        for name, value in headers.items():
            for part in (name.lower().encode(), value.encode()):
                block += struct.pack(">I", len(part)) + part
        return self._compress.compress(bytes(block)) + self._compress.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, compressed: bytes) -> dict[str, str]:
        try:
            block = self._decompress.decompress(compressed)
            (count,) = struct.unpack_from(">I", block)
            offset, headers = 4, {}
            for _ in range(count):
                (size,) = struct.unpack_from(">I", block, offset)
                name = block[offset + 4 : offset + 4 + size].decode()
                offset += 4 + size
                (size,) = struct.unpack_from(">I", block, offset)
                value = block[offset + 4 : offset + 4 + size].decode()
                offset += 4 + size
                headers[name.lower()] = value.split("\x00")[0]
        except (zlib.error, struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(f"bad header block: {exc}") from None
        return headers


class Stream:
    """One stream the client opened: its ``headers``, what it sends (:meth:`read`) and
    what we send back (:meth:`write`, :meth:`close` half-closes)."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue(STREAM_BACKLOG)
        self.remote_closed = False  # FIN or RST seen
        self.local_closed = False

    async def read(self) -> bytes:
        """The next chunk the client sent; b"" once it half-closed or reset the stream."""
        if self.remote_closed and self._incoming.empty():
            return b""
        chunk = await self._incoming.get()
        if chunk is None:
            self.remote_closed = True
            return b""
        return chunk

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_DATA):
            if self.local_closed:
                return
            await self.session.send(data_frame(self.id, data[start : start + MAX_DATA]))

    async def close(self) -> None:
        """Half-close: FIN, we send nothing more."""
        if not self.local_closed:
            self.local_closed = True
            await self.session.send(data_frame(self.id, b"", FLAG_FIN))

    async def feed(self, data: bytes | None) -> None:
        if not self.remote_closed:
            await self._incoming.put(data)

    def abort(self) -> None:
        self.local_closed = True
        self.remote_closed = True
        while not self._incoming.empty():
            self._incoming.get_nowait()
        self._incoming.put_nowait(None)


class Session:
    """The server end of one SPDY session. Feed it what the client sends
    (:meth:`receive`); it sends frames with ``send`` and hands each new stream to
    ``on_stream``."""

    def __init__(
        self, send: Callable[[bytes], Awaitable[None]], on_stream: Callable[[Stream], None]
    ) -> None:
        self._send = send
        self._on_stream = on_stream
        self._lock = asyncio.Lock()
        self._buffer = bytearray()
        self._headers = HeaderCodec()
        self.streams: dict[int, Stream] = {}
        self.gone_away = False

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self._send(frame)

    async def receive(self, data: bytes) -> None:
        """Bytes from the client, in any pieces: handle every whole frame among them."""
        self._buffer += data
        while len(self._buffer) >= 8:
            (length,) = struct.unpack_from(">I", self._buffer, 4)
            length &= 0xFFFFFF
            if len(self._buffer) < 8 + length:
                return
            head = bytes(self._buffer[:8])
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            await self._handle(head, payload)

    async def _handle(self, head: bytes, payload: bytes) -> None:
        first, second = struct.unpack(">II", head)
        flags = second >> 24
        if not first & 0x80000000:
            stream = self.streams.get(first & 0x7FFFFFFF)
            if stream is None:
                return  # a stream already gone: spdystream drops such data too
            if payload:
                await stream.feed(payload)
            if flags & FLAG_FIN:
                await stream.feed(None)
            return
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} is not supported")
        if kind == SYN_STREAM:
            await self._open(payload, flags)
        elif kind == RST_STREAM and len(payload) >= 8:
            (stream_id,) = struct.unpack_from(">I", payload)
            stream = self.streams.pop(stream_id & 0x7FFFFFFF, None)
            if stream is not None:
                stream.abort()
        elif kind == PING:
            await self.send(control_frame(PING, payload))
        elif kind == GOAWAY:
            self.gone_away = True
        elif kind == HEADERS and len(payload) >= 4:
            self._headers.decode(payload[4:])  # keeps the decompression context in step
        # SETTINGS and WINDOW_UPDATE: nothing to do (see the module docstring)

    async def _open(self, payload: bytes, flags: int) -> None:
        if len(payload) < 10:
            raise ProtocolError("short SYN_STREAM")
        (stream_id,) = struct.unpack_from(">I", payload)
        stream_id &= 0x7FFFFFFF
        headers = self._headers.decode(payload[10:])
        if stream_id in self.streams or self.gone_away:
            await self.send(control_frame(RST_STREAM, struct.pack(">II", stream_id, 8)))
            return
        stream = Stream(self, stream_id, headers)
        self.streams[stream_id] = stream
        reply = struct.pack(">I", stream_id) + self._headers.encode({})
        await self.send(control_frame(SYN_REPLY, reply))
        if flags & FLAG_FIN:
            await stream.feed(None)
        self._on_stream(stream)

    async def reset(self, stream: Stream) -> None:
        """End a stream both ways (RST_STREAM, CANCEL)."""
        if self.streams.pop(stream.id, None) is not None:
            stream.abort()
            await self.send(control_frame(RST_STREAM, struct.pack(">II", stream.id, RST_CANCEL)))

    def forget(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)

    def close(self) -> None:
        """The transport ended: every stream sees EOF."""
        for stream in self.streams.values():
            stream.abort()
        self.streams.clear()
