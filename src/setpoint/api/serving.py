"""Serving HTTP: how long and how much a connection may take before it is answered or dropped.

The API server listens on the network to clients it does not trust until they have been
authenticated, so every connection is bounded before any handler runs, with the limits
kube-apiserver's secure serving sets on Go's ``http.Server``:

* **TLS handshake**: 10 s (Go's ``TLSHandshakeTimeout``; kube-apiserver bounds it with the
  read-header timeout).
* **Request header**: the request line and headers together may be 1 MiB
  (``MaxHeaderBytes: 1 << 20``, plus Go's 4 KiB of slack) and must arrive within 32 s of the
  connection, or of their first byte on a kept-alive connection (``ReadHeaderTimeout``). A
  header that is too large is answered with a ``Status`` (431), one that is too slow is
  dropped, as Go does. Bad HTTP is answered with a ``Status`` (400) rather than aiohttp's
  plain text, and logged without a traceback: a client's mistake is not the server's error.
* **Idle keep-alive**: a connection with no request for 90 s is closed (``IdleTimeout``).
* **Connections**: at most ``max_connections`` at once; a connection over the cap is closed
  as soon as it is accepted, with a log line (at most one per 10 s) saying how many were
  refused, so a client holding many sockets cannot run the process out of descriptors.

Request bodies are bounded where they are read (:mod:`setpoint.api.bodies`); how long a
request may take, once its header is in, is the API server's own deadline.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from http import HTTPStatus
from ssl import SSLContext
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from setpoint.api import errors, negotiation

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 1 << 20
# Go reads up to MaxHeaderBytes + 4096 before it gives up on a header
_HEADER_SLACK = 4096
# Go counts bytes, not headers; aiohttp also wants a count, and kubectl sends about ten
_MAX_HEADER_FIELDS = 1024
_REFUSAL_LOG_INTERVAL = 10.0
# descriptors kept for everything that is not a client connection (store, logs, children)
_RESERVED_DESCRIPTORS = 1024


@dataclass(frozen=True)
class ServingLimits:
    """The bounds on every connection (defaults: kube-apiserver's)."""

    max_header_bytes: int = MAX_HEADER_BYTES
    read_header_timeout: float = 32.0
    idle_timeout: float = 90.0
    tls_handshake_timeout: float = 10.0
    max_connections: int = 10_000


def raise_descriptor_limit(wanted_connections: int) -> int:
    """Raise this process's open-file limit as far as allowed and return how many client
    connections fit in it (``wanted_connections`` at most)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(wanted_connections, soft - _RESERVED_DESCRIPTORS))


def status_response(exc: errors.APIError) -> web.Response:
    """The ``Status`` for an error, as the apiserver encodes it."""
    response = web.Response(
        body=errors.encode_status(exc.status()), status=exc.code, content_type=negotiation.JSON
    )
    for key, value in exc.headers.items():
        response.headers[key] = value
    return response


def _status_bytes(exc: errors.APIError) -> bytes:
    """A whole HTTP/1.1 response carrying ``exc``'s Status, for the moments before aiohttp
    has a request to answer; the connection closes after it."""
    body = errors.encode_status(exc.status())
    phrase = HTTPStatus(exc.code).phrase
    head = (
        f"HTTP/1.1 {exc.code} {phrase}\r\n"
        f"Content-Type: {negotiation.JSON}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _header_too_large(limit: int) -> errors.APIError:
    return errors.APIError(
        431,
        "RequestHeaderFieldsTooLarge",
        f"request header fields too large: the request line and headers may be at most "
        f"{limit} bytes",
    )


class _Connection(RequestHandler):
    """aiohttp's HTTP/1.1 connection with setpoint's header limits, deadlines and errors."""

    __slots__ = ("_body", "_header_bytes", "_header_timer", "_limits")

    def __init__(self, manager: APIHTTPServer, *, limits: ServingLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # the last request's body, while it arrives

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        assert isinstance(manager, APIHTTPServer)
        if not manager.admit_connection():
            self._manager = None  # never registered: connection_lost has nothing to undo
            transport.close()
            return
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        self._body = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._body is None or self._body.is_eof():  # these bytes are a request header
            self._header_bytes += len(data)
            if self._header_bytes > self._limits.max_header_bytes + _HEADER_SLACK:
                self._refuse_header()
                return
            if self._header_timer is None:
                self._arm_header_timer()
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a header is complete: its body may follow
            self._header_bytes = 0
            self._cancel_header_timer()
            self._body = self._messages[-1][1] if self._messages else None

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(
            self._limits.read_header_timeout, self._header_deadline
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self._request_in_progress or self._messages:
            return  # the header came; how long the request takes is the server's deadline
        log.info(
            "closed a connection from %s: no complete request header within %.0fs",
            self.peername,
            self._limits.read_header_timeout,
        )
        self.force_close()

    def _refuse_header(self) -> None:
        if self.transport is not None and not (self._request_in_progress or self._messages):
            limit = self._limits.max_header_bytes
            self.transport.write(_status_bytes(_header_too_large(limit)))
        log.info(
            "refused a request header of over %d bytes from %s", self._header_bytes, self.peername
        )
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """What aiohttp answers itself — a request it cannot parse — as a Status."""
        if not isinstance(exc, BadHttpMessage):
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong) or "Too many headers" in exc.message:
            error = _header_too_large(self._limits.max_header_bytes)
        else:
            error = errors.bad_request(f"malformed HTTP request: {exc.message}")
        log.debug("answered a malformed request from %s: %s", self.peername, exc.message)
        response = status_response(error)
        response.force_close()
        return response


class APIHTTPServer(web.Server):
    """aiohttp's low-level server whose connections are :class:`_Connection`, counted
    against :attr:`ServingLimits.max_connections`."""

    def __init__(self, handler: Any, *, limits: ServingLimits, **kwargs: Any) -> None:
        super().__init__(
            handler,
            max_line_size=limits.max_header_bytes,
            max_field_size=limits.max_header_bytes,
            max_headers=_MAX_HEADER_FIELDS,
            keepalive_timeout=limits.idle_timeout,
            **kwargs,
        )
        self.limits = limits
        self.refused_connections = 0
        self._refusals_unlogged = 0
        self._last_refusal_log = 0.0

    def __call__(self) -> RequestHandler:
        return _Connection(self, limits=self.limits, loop=self._loop, **self._kwargs)

    def admit_connection(self) -> bool:
        if len(self._connections) < self.limits.max_connections:
            return True
        self.refused_connections += 1
        self._refusals_unlogged += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL:
            log.warning(
                "connection limit reached (%d open, --max-connections): refused %d "
                "connection(s) since the last report",
                len(self._connections),
                self._refusals_unlogged,
            )
            self._refusals_unlogged = 0
            self._last_refusal_log = now
        return False


class TLSSite(web.TCPSite):
    """A TCP site whose TLS handshakes must finish within the limit (asyncio's default
    would keep a silent client for 60 s)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: SSLContext,
        handshake_timeout: float,
        backlog: int = 1024,
    ) -> None:
        super().__init__(
            runner, host, port, ssl_context=ssl_context, backlog=backlog, reuse_address=True
        )
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            ssl_handshake_timeout=self._handshake_timeout,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
