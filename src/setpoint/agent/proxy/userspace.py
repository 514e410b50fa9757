"""The node proxy's userspace data path, where nftables is missing or refuses the rules.

kube-proxy had such a mode until 1.26; setpoint keeps one because its nodes may lack
``nft``. The cluster IPs are local addresses (:mod:`.addresses`); for each TCP Service port
with endpoints the agent listens on ``clusterIP:port`` (and ``nodeIP:nodePort``) and relays
each connection to an endpoint picked at random from the ready ones
(:class:`~setpoint.agent.relay.Relay`, shared with hostPorts). A port without endpoints has
no listener, so a connection is refused at once (the kernel's TCP reset).

Differences from the kernel path: TCP only (UDP and SCTP ports are not served, logged once
each); no session affinity; the endpoint sees the connection come from the node; every byte
crosses the agent's process (see ``docs/benchmarks.md`` for what that costs); and while the
agent restarts, new connections are refused.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from setpoint.agent.proxy.servicemap import Endpoint, ServicePort
from setpoint.agent.relay import Relay, Target

log = logging.getLogger(__name__)

Listen = tuple[str, int]


@dataclass
class _Listener:
    server: asyncio.Server
    endpoints: tuple[Endpoint, ...]


class UserspaceDataPath:
    """Listeners for the Service ports: :meth:`apply` them, :meth:`remove` them all."""

    mode = "userspace"

    def __init__(self) -> None:
        self.relay = Relay()
        self._listeners: dict[Listen, _Listener] = {}
        self._warned: set[str] = set()

    def _pick(self, where: Listen) -> Target | None:
        listener = self._listeners.get(where)
        if listener is None or not listener.endpoints:
            return None
        endpoint = random.choice(listener.endpoints)
        return (endpoint.ip, endpoint.port)

    async def apply(self, ports: Sequence[ServicePort], node_ips: Sequence[str]) -> None:
        wanted: dict[Listen, tuple[Endpoint, ...]] = {}
        for port in ports:
            if port.protocol != "TCP":
                if port.name not in self._warned:
                    self._warned.add(port.name)
                    log.warning("node proxy (userspace): %s: only TCP is proxied", port.name)
                continue
            if not port.endpoints:
                continue
            wanted[(port.cluster_ip, port.port)] = port.endpoints
            for ip in node_ips if port.node_port else ():
                wanted[(ip, port.node_port or 0)] = port.endpoints
        for where in [w for w in self._listeners if w not in wanted]:
            await self.relay.close_server(self._listeners.pop(where).server)
        for where, endpoints in wanted.items():
            listener = self._listeners.get(where)
            if listener is not None:
                listener.endpoints = endpoints
                continue
            try:
                server = await self.relay.listen(*where, functools.partial(self._pick, where))
            except OSError as exc:
                log.warning("node proxy (userspace): cannot listen on %s:%s: %s", *where, exc)
                continue
            self._listeners[where] = _Listener(server, endpoints)

    async def remove(self) -> None:
        self._listeners.clear()
        await self.relay.close()
