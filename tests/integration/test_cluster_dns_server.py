"""The node's DNS server over real UDP and TCP sockets on loopback, with dnspython as the
client: cluster names, NXDOMAIN, forwarding to a fake upstream (this machine has no outside
network), SERVFAIL when the upstream is dead, truncation over UDP and the retry over TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from setpoint.agent.clusterdns.records import ClusterRecords
from setpoint.agent.clusterdns.server import DNSServer, Upstream

HOST = "127.0.0.1"


class FakeUpstream(asyncio.DatagramProtocol):
    """An upstream resolver that knows ``example.org`` (and counts what it is asked)."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        self.asked.append(question.name.to_text())
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if question.name.to_text() == "example.org." and question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text("example.org.", 60, "IN", "A", "192.0.2.53"))
        elif question.name.to_text() != "example.org.":
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


def free_udp_port() -> int:
    """A port nothing listens on (a dead upstream)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[FakeUpstream, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(FakeUpstream, local_addr=(HOST, 0))
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


@pytest.fixture
def records() -> ClusterRecords:
    zone = ClusterRecords("cluster.local")
    zone.set_service(
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "clusterIP": "10.96.0.10",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            },
        }
    )
    zone.set_service(
        {"metadata": {"name": "many", "namespace": "default"}, "spec": {"clusterIP": "None"}}
    )
    zone.set_slice(
        {
            "metadata": {
                "name": "many-1",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "many"},
            },
            "endpoints": [
                {"addresses": [f"10.244.{i // 250}.{i % 250 + 2}"], "conditions": {"ready": True}}
                for i in range(100)
            ],
        }
    )
    zone.set_service(
        {
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.org"},
        }
    )
    return zone


@pytest.fixture
async def server(
    records: ClusterRecords, upstream: tuple[FakeUpstream, int]
) -> AsyncIterator[DNSServer]:
    dns_server = DNSServer(records, host=HOST, port=0, upstreams=[Upstream(HOST, upstream[1])])
    await dns_server.start()
    yield dns_server
    await dns_server.close()


async def udp(server: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(query, HOST, port=server.port, timeout=5)


async def tcp(server: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.tcp(query, HOST, port=server.port, timeout=5)


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in response.answer if rrset.rdtype == 1 for r in rrset)


async def test_a_service_name_over_udp_and_tcp(server: DNSServer) -> None:
    for ask in (udp, tcp):
        response = await ask(server, "web.default.svc.cluster.local.")
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA
        assert addresses(response) == ["10.96.0.10"]


async def test_srv_over_udp(server: DNSServer) -> None:
    response = await udp(server, "_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert [r.to_text() for r in response.answer[0]] == ["0 100 80 web.default.svc.cluster.local."]
    assert response.additional[0].to_text() == "web.default.svc.cluster.local. 5 IN A 10.96.0.10"


async def test_unknown_cluster_name_is_nxdomain_with_soa(server: DNSServer) -> None:
    response = await udp(server, "nope.default.svc.cluster.local.")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


async def test_other_names_are_forwarded_upstream(
    server: DNSServer, upstream: tuple[FakeUpstream, int]
) -> None:
    response = await udp(server, "example.org.")
    assert addresses(response) == ["192.0.2.53"]
    assert (await udp(server, "missing.example.")).rcode() == dns.rcode.NXDOMAIN
    assert upstream[0].asked == ["example.org.", "missing.example."]


async def test_external_name_is_a_cname_and_its_targets_address(server: DNSServer) -> None:
    response = await udp(server, "ext.default.svc.cluster.local.")
    assert [rrset.to_text() for rrset in response.answer] == [
        "ext.default.svc.cluster.local. 5 IN CNAME example.org.",
        "example.org. 60 IN A 192.0.2.53",
    ]


async def test_a_dead_upstream_is_servfail(records: ClusterRecords) -> None:
    dead = DNSServer(
        records, host=HOST, port=0, upstreams=[Upstream(HOST, free_udp_port())], timeout=0.5
    )
    await dead.start()
    try:
        response = await udp(dead, "example.org.")
        assert response.rcode() == dns.rcode.SERVFAIL
        # the cluster's own names do not need the upstream
        assert addresses(await udp(dead, "web.default.svc.cluster.local.")) == ["10.96.0.10"]
    finally:
        await dead.close()


async def test_no_upstream_at_all_is_servfail(records: ClusterRecords) -> None:
    alone = DNSServer(records, host=HOST, port=0, upstreams=[])
    await alone.start()
    try:
        assert (await udp(alone, "example.org.")).rcode() == dns.rcode.SERVFAIL
    finally:
        await alone.close()


async def test_a_big_answer_is_truncated_over_udp_and_whole_over_tcp(server: DNSServer) -> None:
    truncated = await udp(server, "many.default.svc.cluster.local.")
    assert truncated.flags & dns.flags.TC
    whole = await tcp(server, "many.default.svc.cluster.local.")
    assert not whole.flags & dns.flags.TC
    assert len(addresses(whole)) == 100


async def test_several_queries_on_one_tcp_connection(server: DNSServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        for name in ("web.default.svc.cluster.local.", "nope.default.svc.cluster.local."):
            wire = dns.message.make_query(name, "A").to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            length = int.from_bytes(await reader.readexactly(2), "big")
            response = dns.message.from_wire(await reader.readexactly(length))
            assert response.question[0].name.to_text() == name
    finally:
        writer.close()


async def test_garbage_gets_formerr_or_nothing(server: DNSServer) -> None:
    reply = await server.answer(b"\x12\x34\x01\x00" + b"\x00\x01" + b"\x00" * 6 + b"\xff", udp=True)
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
    assert await server.answer(b"\x00", udp=True) is None
