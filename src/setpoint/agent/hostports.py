"""``hostPort``: a node port that reaches a pod in its own network namespace.

Kubernetes maps a container's ``hostPort`` with kernel rules (the CNI ``portmap`` plugin's
DNAT). setpoint's nodes may have neither nftables nor iptables, so the agent forwards in
userspace: for each TCP ``hostPort`` of a pod with a network of its own it listens on
``hostIP`` (every address when unset) and relays each connection to ``podIP:containerPort``.
The client's address is not preserved (the pod sees the node's bridge address), and the
listeners live in the agent: while it restarts, new connections are refused (established
ones to the pod's own IP are not affected). A ``UDP`` or ``SCTP`` hostPort, and one that
cannot be bound, is a ``HostPortNotMapped`` Warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from setpoint.client.api import Obj

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


@dataclass
class _Mapping:
    servers: list[asyncio.Server] = field(default_factory=list)
    streams: set[asyncio.StreamWriter] = field(default_factory=set)


def host_ports(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return [
        port
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        for port in c.get("ports") or []
        if port.get("hostPort")
    ]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


class HostPorts:
    """The hostPort listeners of one node's pods, by pod uid."""

    def __init__(self) -> None:
        self._pods: dict[str, _Mapping] = {}

    def mapped(self, uid: str) -> bool:
        return uid in self._pods

    async def open(self, pod: Obj, pod_ip: str) -> list[str]:
        """Listen for the pod's hostPorts; returns what could not be mapped, in words."""
        uid = pod["metadata"]["uid"]
        mapping = self._pods.setdefault(uid, _Mapping())
        problems = []
        for port in host_ports(pod):
            protocol = port.get("protocol") or "TCP"
            where = f"{port.get('hostIP') or '0.0.0.0'}:{port['hostPort']}/{protocol}"
            if protocol != "TCP":
                problems.append(f"{where}: only TCP hostPorts are forwarded")
                continue
            target = (pod_ip, int(port["containerPort"]))

            async def relay(
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                target: tuple[str, int] = target,
            ) -> None:
                await self._relay(mapping, reader, writer, target)

            try:
                server = await asyncio.start_server(
                    relay, port.get("hostIP") or None, int(port["hostPort"]), reuse_address=True
                )
            except OSError as exc:
                problems.append(f"{where}: {exc.strerror or exc}")
                continue
            mapping.servers.append(server)
        return problems

    async def _relay(
        self,
        mapping: _Mapping,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: tuple[str, int],
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        mapping.streams.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                mapping.streams.discard(w)
                w.close()

    async def close(self, uid: str) -> None:
        mapping = self._pods.pop(uid, None)
        if mapping is None:
            return
        for server in mapping.servers:
            server.close()
        for writer in list(mapping.streams):
            writer.close()
        for server in mapping.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def close_all(self) -> None:
        for uid in list(self._pods):
            await self.close(uid)
