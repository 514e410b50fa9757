"""Request bodies, read whole and never beyond a limit.

A body arrives in pieces — TLS records, TCP segments, HTTP chunks — and a client may pause
between them, so reading "what is there" is not reading the body: a read must go on until
the body ends (its ``Content-Length`` is reached, or the last chunk of a chunked body
arrives). Every body is bounded by kube-apiserver's limit, 3 MiB: a declared length beyond it
is refused before a byte is read, and a chunked body that grows past it is refused as soon as
it does, so the excess is never buffered. Either way the answer is 413
``RequestEntityTooLarge`` and the connection is closed after it (the rest of the body is
not worth reading).
"""

from __future__ import annotations

from typing import Any

from aiohttp import StreamReader, web

from setpoint.api import errors, negotiation

# the body a request's handler read (the stream cannot be read twice)
RAW_BODY_KEY: web.RequestKey[bytes] = web.RequestKey("setpoint.raw-body", bytes)


class BodyTooLarge(Exception):
    """The body is longer than the limit it was read with."""


async def read_limited(stream: StreamReader, limit: int, *, truncate: bool = False) -> bytes:
    """Everything ``stream`` carries until its end. Past ``limit`` bytes: BodyTooLarge (what
    came so far is dropped, the rest is not read), or with ``truncate`` the first ``limit``
    bytes, as Go's ``io.LimitReader`` reads an answer only so far."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            if not truncate:
                raise BodyTooLarge(size)
            chunks.append(chunk[: len(chunk) - (size - limit)])
            return b"".join(chunks)
        chunks.append(chunk)


async def read_raw_body(request: web.BaseRequest) -> bytes:
    """The request's whole body (413 past :data:`negotiation.MAX_BODY_BYTES`)."""
    limit = negotiation.MAX_BODY_BYTES
    length = request.content_length
    if length is not None and length > limit:
        raise errors.too_large(limit)
    try:
        raw = await read_limited(request.content, limit)
    except BodyTooLarge:
        raise errors.too_large(limit) from None
    request[RAW_BODY_KEY] = raw  # for the audit log's requestObject
    return raw


async def read_body(request: web.BaseRequest) -> Any:
    """The request's body decoded by its Content-Type; 400 when empty or malformed."""
    raw = await read_raw_body(request)
    if not raw.strip():
        raise errors.bad_request("the request body is empty")
    return negotiation.decode_body(raw, request.headers.get("Content-Type", ""))
