"""``clusterdns``: the node's DNS server, and what a pod's own resolv.conf costs a container start.

Method: a :class:`~setpoint.agent.clusterdns.server.DNSServer` on 127.0.0.1 (the agent's
code, without an agent) indexes ``SERVICES`` Services; a plain UDP socket sends ``QUERIES``
queries one after another, each timed from send to answer: an ``A`` of a Service, an unknown
name (``NXDOMAIN``), and a name forwarded to a fake upstream on loopback. Then
``CONCURRENT`` clients at once for the queries answered per second (one core).

Then, as root, the price of the mount namespace every container of a pod with its own
network now gets for its ``/etc/resolv.conf``: the namespace made once per container
(``unshare`` + a ``sh`` doing one bind mount, what the agent runs), and ``STARTS`` starts of
``true`` under one supervisor, plain and as ``nsenter --mount=<file> -- true`` (what the
supervisor runs for such a container at every (re)start).

Standalone: ``python -m bench clusterdns``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rrset

from bench.common import Context, Figure, container_start_times, info, percentiles
from setpoint.agent.clusterdns.records import ClusterRecords
from setpoint.agent.clusterdns.server import DNSServer, Upstream
from setpoint.agent.sandbox import BindMount, Sandboxes

NAME = "clusterdns"
SERVICES = 1000
QUERIES = 2000
CONCURRENT = 20
STARTS = 100
NAMESPACES = 50


class Upstream53(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        response.answer.append(
            dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.1")
        )
        self.transport.sendto(response.to_wire(), addr)


def timed_queries(port: int, name: str, count: int) -> list[float]:
    wire = bytearray(dns.message.make_query(name, "A").to_wire())
    times = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        for n in range(count):
            wire[0:2] = (n % 65536).to_bytes(2, "big")
            started = time.perf_counter()
            sock.send(wire)
            sock.recv(4096)
            times.append(time.perf_counter() - started)
    return times


async def measure_server(ctx: Context) -> list[Figure]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Upstream53, local_addr=("127.0.0.1", 0))
    records = ClusterRecords()
    for n in range(SERVICES):
        ip = f"10.96.{n // 250}.{n % 250 + 2}"
        records.set_service(
            {"metadata": {"name": f"svc{n}", "namespace": "default"}, "spec": {"clusterIP": ip}}
        )
    upstream = Upstream("127.0.0.1", transport.get_extra_info("sockname")[1])
    server = DNSServer(records, host="127.0.0.1", port=0, upstreams=[upstream])
    await server.start()
    figures = []
    try:
        for label, name in (
            ("service A", "svc500.default.svc.cluster.local."),
            ("NXDOMAIN", "nope.default.svc.cluster.local."),
            ("forwarded", "example.org."),
        ):
            ctx.say(f"{QUERIES} queries, {label} ...")
            times = await asyncio.to_thread(timed_queries, server.port, name, QUERIES)
            p50, p99 = percentiles([t * 1000 for t in times], (50, 99))
            figures += [
                info(NAME, f"query {label} p50", p50, "ms", digits=2),
                info(NAME, f"query {label} p99", p99, "ms", digits=2),
            ]
        ctx.say(f"{CONCURRENT} clients at once ...")
        started = time.perf_counter()
        per_client = QUERIES // CONCURRENT
        await asyncio.gather(
            *(
                asyncio.to_thread(
                    timed_queries, server.port, "svc1.default.svc.cluster.local.", per_client
                )
                for _ in range(CONCURRENT)
            )
        )
        rate = per_client * CONCURRENT / (time.perf_counter() - started)
        figures.append(
            info(NAME, f"queries/s, {CONCURRENT} clients (service A)", rate, "/s", digits=0)
        )
    finally:
        await server.close()
        transport.close()
    return figures


async def measure_mount_namespaces(ctx: Context) -> list[Figure]:
    if os.geteuid() != 0:
        ctx.say("mount namespaces not measured: not root")
        return []
    work = Path(tempfile.mkdtemp(prefix="sp-dnsbench-", dir="/tmp"))
    sandboxes = Sandboxes(None, None, data_dir=work)  # type: ignore[arg-type]  # (no API needed)
    uid = "00000000-0000-4000-8000-000000000000"
    resolv = sandboxes.resolv_conf_path(uid)
    resolv.parent.mkdir(parents=True)
    resolv.write_text("nameserver 10.244.0.1\n")
    plan = [BindMount(str(resolv), "/etc/resolv.conf", False, is_file=True)]
    made = []
    try:
        ctx.say(f"{NAMESPACES} mount namespaces holding a resolv.conf ...")
        for n in range(NAMESPACES):
            started = time.perf_counter()
            ns_file = await sandboxes._namespace(uid, f"c{n}", plan)
            made.append(time.perf_counter() - started)
        ctx.say(f"{STARTS} container starts, plain and entering that namespace ...")
        plain = await container_start_times(work / "plain", STARTS)
        wrapped = await container_start_times(
            work / "wrapped", STARTS, wrap=["nsenter", f"--mount={ns_file}", "--"]
        )
    finally:
        from setpoint.agent.sandbox import remove_all_sandboxes

        remove_all_sandboxes(work)
        shutil.rmtree(work, ignore_errors=True)
    m50, m99 = percentiles([t * 1000 for t in made], (50, 99))
    (p50,) = percentiles([t * 1000 for t in plain], (50,))
    w50, w99 = percentiles([t * 1000 for t in wrapped], (50, 99))
    return [
        info(NAME, "resolv.conf mount namespace made p50", m50, "ms", digits=2),
        info(NAME, "resolv.conf mount namespace made p99", m99, "ms", digits=2),
        info(NAME, "container start, no mount namespace p50", p50, "ms", digits=2),
        info(NAME, "container start, nsenter --mount p50", w50, "ms", digits=2),
        info(NAME, "container start, nsenter --mount p99", w99, "ms", digits=2),
    ]


async def run(ctx: Context) -> list[Figure]:
    return [*await measure_server(ctx), *await measure_mount_namespaces(ctx)]
