"""The node's DNS server: UDP and TCP port 53 on the node bridge's address, in asyncio.

Every node agent with a pod network runs one (:class:`DNSServer`), listening on the first
address of the node's podCIDR — the bridge address every pod's default route goes through,
so every pod of the node reaches it without a route or a Service of its own, and nothing
outside the node does. The sockets are bound with ``IP_FREEBIND``: the server starts before
the bridge holds its address (the bridge is made with the node's first pod) and keeps its
sockets when the bridge is made again.

A query is parsed and answered with dnspython (the wire format is never written by hand):

- a name of the cluster domain, or a reverse name of a cluster address, is answered from
  :class:`~setpoint.agent.clusterdns.records.ClusterRecords` (authoritative, ``aa`` set);
- any other name is forwarded, as the client asked it (recursion desired), to the node's
  upstream resolvers (the ``nameserver`` lines of the host's ``/etc/resolv.conf``), one
  after another within ``timeout`` seconds in all; over UDP first, then TCP if the upstream
  answer was truncated. No upstream, or none answering in time: ``SERVFAIL``. An
  ExternalName Service's target outside the cluster is looked up the same way and added
  after its ``CNAME``, as CoreDNS does, because stub resolvers (glibc) do not chase a
  ``CNAME`` themselves.

Over UDP an answer larger than the client's buffer (512 bytes, or its EDNS payload size up
to :data:`EDNS_PAYLOAD`) is sent truncated (``tc`` set, no records) and the client asks
again over TCP, where a connection may carry any number of queries, each with its two-byte
length. A datagram that does not parse gets ``FORMERR`` if its header can be read, else
nothing. Each query is one task owned by the server, cancelled when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from setpoint.agent.clusterdns.records import ClusterRecords

log = logging.getLogger(__name__)

DNS_PORT = 53
IP_FREEBIND = 15  # <linux/in.h>; Python 3.11's socket module does not name it
EDNS_PAYLOAD = 1232  # the DNS flag day's safe UDP size
UDP_MIN_PAYLOAD = 512
FORWARD_TIMEOUT = 2.0  # seconds for all upstreams together, within glibc's 5 s per try
TCP_IDLE_SECONDS = 10.0


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int = DNS_PORT


def upstreams_from(nameservers: tuple[str, ...] | list[str]) -> list[Upstream]:
    """The node's resolvers to forward to: ``host`` or ``host#port`` (dig's spelling)."""
    found = []
    for server in nameservers:
        host, _, port = server.partition("#")
        found.append(Upstream(host, int(port) if port else DNS_PORT))
    return found


class DNSServer:
    """Answers DNS queries on ``host``:``port`` from ``records``, forwarding the rest."""

    def __init__(
        self,
        records: ClusterRecords,
        *,
        host: str,
        port: int = DNS_PORT,
        upstreams: list[Upstream] | None = None,
        timeout: float = FORWARD_TIMEOUT,
    ) -> None:
        self.records = records
        self.host = host
        self.port = port
        self.upstreams = list(upstreams or [])
        self.timeout = timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind UDP and TCP (``port`` 0: a free port, the same for both, kept in ``port``)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        tcp = socket.socket(family, socket.SOCK_STREAM)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            for sock in (tcp, udp):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
                sock.setblocking(False)
            tcp.bind((self.host, self.port))
            self.port = tcp.getsockname()[1]
            udp.bind((self.host, self.port))
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self), sock=udp)
        except BaseException:
            tcp.close()
            udp.close()
            if self._tcp is not None:
                self._tcp.close()
            raise
        self._udp = transport
        log.info(
            "cluster DNS: serving %s on %s:%d (udp, tcp)", self.records.zone, self.host, self.port
        )

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster DNS: a query failed", exc_info=task.exception())

    # ------------------------------------------------------------- transports

    async def _answer_datagram(self, data: bytes, peer: tuple[str, int]) -> None:
        reply = await self.answer(data, udp=True)
        if reply is not None and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(reply, peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # (asyncio owns it; we cancel it at close)
        try:
            while True:
                length = struct.unpack(
                    "!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                )[0]
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_SECONDS)
                reply = await self.answer(data, udp=False)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # ------------------------------------------------------------- answering

    async def answer(self, data: bytes, *, udp: bool) -> bytes | None:
        """The reply to one query in wire format (None: nothing to send)."""
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return _format_error(data)
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
            response.set_rcode(
                dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR
            )
            return response.to_wire()
        question = query.question[0]
        found = None
        if question.rdclass == dns.rdataclass.IN:
            found = self.records.resolve(question.name, question.rdtype)
        if found is None:
            response = await self._forward(query, udp=udp)
        else:
            response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
            response.flags |= dns.flags.AA
            response.set_rcode(found.rcode)
            response.answer = found.answer
            response.additional = found.additional
            response.authority = found.authority
            if found.follow is not None:
                await self._follow(query, response, found.follow)
        max_size = 65535
        if udp:
            max_size = (
                max(UDP_MIN_PAYLOAD, min(query.payload, EDNS_PAYLOAD))
                if query.edns >= 0
                else UDP_MIN_PAYLOAD
            )
        return response.to_wire(max_size=max_size, prefer_truncation=True)

    async def _forward(self, query: dns.message.Message, *, udp: bool) -> dns.message.Message:
        """The upstream answer to ``query`` (with its id), or SERVFAIL."""
        upstream = await self._ask_upstream(query)
        if upstream is None:
            response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
            response.flags |= dns.flags.RA
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        upstream.id = query.id
        return upstream

    async def _follow(
        self, query: dns.message.Message, response: dns.message.Message, target: dns.name.Name
    ) -> None:
        """Add what upstream says about an ExternalName's target to ``response``."""
        question = query.question[0]
        ask = dns.message.make_query(target, question.rdtype, question.rdclass)
        answer = await self._ask_upstream(ask)
        if answer is None:
            response.set_rcode(dns.rcode.SERVFAIL)
            return
        response.set_rcode(answer.rcode())
        response.answer += answer.answer

    async def _ask_upstream(self, query: dns.message.Message) -> dns.message.Message | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for upstream in self.upstreams:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                answer = await dns.asyncquery.udp(
                    query, upstream.host, timeout=left, port=upstream.port
                )
                if answer.flags & dns.flags.TC:
                    left = max(0.1, deadline - loop.time())
                    answer = await dns.asyncquery.tcp(
                        query, upstream.host, timeout=left, port=upstream.port
                    )
            except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
                log.debug("cluster DNS: upstream %s: %r", upstream, exc)
                continue
            if answer.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                continue
            return answer
        return None


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.server._spawn(self.server._answer_datagram(data, addr))

    def error_received(self, exc: Exception) -> None:
        log.debug("cluster DNS: udp: %s", exc)


def _format_error(data: bytes) -> bytes | None:
    """FORMERR for a query whose header can be read; nothing for noise."""
    if len(data) < 12:
        return None
    query_id, flags = struct.unpack("!HH", data[:4])
    if flags & 0x8000:  # a response, not a query: never answer those
        return None
    reply_flags = 0x8000 | (flags & 0x7900) | dns.rcode.FORMERR  # QR, opcode, RD; rcode
    return struct.pack("!HHHHHH", query_id, reply_flags, 0, 0, 0, 0)
