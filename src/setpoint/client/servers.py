"""Which API server a client talks to when it knows several, and how it moves to another.

Several ``setpoint server`` processes may serve one cluster (one etcd). A client that knows
them all (``setpoint agent --server A --server B``) talks to one at a time, the *current*
server of its :class:`ServerList`, and when a request cannot reach it (connection refused
or reset, a connect or TLS handshake that times out) the :class:`~setpoint.client.api.ApiClient`
marks it failed, which makes the next server current, and sends again what is safe to send
again: a request that surely never reached the server (its connection could not be made),
and an idempotent one (GET, PUT, DELETE, a merge or strategic-merge patch) whatever
happened. An HTTP error (409, 500, ...) is an answer, never a reason to move. Watches read
the current server when they (re)connect, and informers resume them there from their last
resourceVersion, so nothing is listed again and no workload notices.

This is k3s's agent load balancer (``pkg/agent/loadbalancer``: a server list, a preferred
server, failed servers skipped until they are checked again, the list learned from the
``default/kubernetes`` Endpoints by ``pkg/agent/tunnel``) moved into the client instead of
a local TCP proxy at 127.0.0.1:6444. A TCP proxy cannot tell whether a request it relayed
reached the server, so it can only break every connection and leave retries to clients
that do not know it exists; the client knows the method and whether its connection was
ever made. And each connection is verified against the address of the server it really
goes to, whose serving certificate carries that server's own SANs, rather than every
server's certificate having to name the proxy's loopback address. One process fewer on
the node, one hop fewer for every request.

Load is spread: the first current server is picked by a hash of a key (the node name), so
agents started with the same list do not all start on its first entry.
:meth:`ServerList.update` replaces the list with what discovery found (see
``client.serverdiscovery``: the ``kubernetes`` Endpoints plus the servers given on the
command line), keeping the current server when it is still listed.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)

# a server that failed is tried again only after this long, unless every server failed
RECHECK_SECONDS = 15.0


class ServerList:
    """The API servers a client may use (``https://host:port`` URLs) and the current one."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        key: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("a server list needs at least one server")
        self._urls = _unique(urls)
        self._clock = clock
        self._failed_at: dict[str, float] = {}
        self._current = self._urls[zlib.crc32(key.encode()) % len(self._urls)]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self._urls)

    @property
    def current(self) -> str:
        return self._current

    def failed(self, url: str) -> str:
        """Note that ``url`` could not be reached; when it is the current server, make the
        next one current that has not failed recently (or simply the next, when all have).
        Returns the current server."""
        self._failed_at[url] = self._clock()
        if url != self._current or len(self._urls) == 1:
            return self._current
        now = self._clock()
        start = self._urls.index(url) if url in self._urls else -1
        ring = [self._urls[(start + i) % len(self._urls)] for i in range(1, len(self._urls) + 1)]
        healthy = [
            u for u in ring if now - self._failed_at.get(u, -RECHECK_SECONDS) >= RECHECK_SECONDS
        ]
        self._current = (healthy or ring)[0]
        log.warning("API server %s unreachable; now using %s", url, self._current)
        return self._current

    def update(self, urls: Iterable[str]) -> None:
        """Use ``urls`` from now on (an empty list changes nothing); the current server
        stays current if it is among them."""
        fresh = _unique(urls)
        if not fresh or fresh == self._urls:
            return
        log.info("API servers: %s", ", ".join(fresh))
        self._urls = fresh
        if self._current not in fresh:
            self._current = fresh[0]
        self._failed_at = {u: t for u, t in self._failed_at.items() if u in fresh}


def _unique(urls: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(u.rstrip("/") for u in urls if u))


def endpoint_urls(endpoints: dict[str, Any]) -> list[str]:
    """The ``https://address:port`` of every ready address of the ``kubernetes`` Endpoints
    (one subset per port when servers share an address, see ``api.services.kubernetes``)."""
    urls = []
    for subset in endpoints.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or [] if p.get("name") == "https"]
        for address in subset.get("addresses") or []:
            ip = address.get("ip")
            for port in ports:
                if ip and port:
                    urls.append(f"https://[{ip}]:{port}" if ":" in ip else f"https://{ip}:{port}")
    return sorted(urls)
