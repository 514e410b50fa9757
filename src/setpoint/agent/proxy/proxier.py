"""The node proxy as the agent runs it: informers in, a data path kept in step.

:class:`NodeProxy` follows every Service and EndpointSlice of the cluster (the agent's two
informers; kube-proxy watches the same), and after each change computes what to serve
(:func:`~.servicemap.service_ports`) and hands it whole to its data path. Changes are
coalesced: an event only sets a flag; the sync loop waits ``DEBOUNCE_SECONDS`` for the rest
of a burst, syncs once, and keeps ``MIN_SYNC_INTERVAL`` between syncs (kube-proxy's
``--min-sync-period``, 1 s there; 0.1 s here so a pod leaving rotation is out of the data
path well within a second). A failed sync is retried after ``RETRY_SECONDS``.

``--proxy-mode`` chooses the data path (:data:`PROXY_MODES`):

- ``nftables`` (:mod:`.nftables`): kernel rules, one table per agent;
- ``userspace`` (:mod:`.userspace`): the agent relays TCP connections itself;
- ``auto`` (default): nftables where ``nft`` is installed and the kernel takes the rules,
  else userspace; if nftables fails later the proxy falls back to userspace, with a warning;
- ``none``: no proxy (another one runs, or none is wanted).

The proxy needs root (kernel rules, addresses on an interface); an agent that is not root
runs none and says so once. It removes its table and interface when the agent stops, so
Service traffic through this node stops with the agent (pod IPs keep working) and resumes
within a sync of its return.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from setpoint.agent.network import NetworkError, node_key, pod_network_unavailable
from setpoint.agent.proxy.addresses import ServiceAddresses, interface_name, remove_interface
from setpoint.agent.proxy.nftables import (
    NftablesDataPath,
    NftablesError,
    nftables_unavailable,
    remove_table,
    table_name,
)
from setpoint.agent.proxy.servicemap import ServicePort, service_ports
from setpoint.agent.proxy.userspace import UserspaceDataPath
from setpoint.client.informer import EventHandler, Informer

log = logging.getLogger(__name__)

PROXY_MODES = ("auto", "nftables", "userspace", "none")
DEBOUNCE_SECONDS = 0.01
MIN_SYNC_INTERVAL = 0.1
RETRY_SECONDS = 1.0


class DataPath(Protocol):
    mode: str

    async def apply(self, ports: Sequence[ServicePort], node_ips: Sequence[str]) -> None: ...

    async def remove(self) -> None: ...


def proxy_unavailable() -> str:
    """Why this agent can run no proxy at all ("" if it can)."""
    if os.geteuid() != 0:
        return "the setpoint agent is not running as root"
    return pod_network_unavailable()  # iproute2, for the cluster IP interface


def node_port_addresses(host_ip: str) -> list[str]:
    """Where node ports are served: the node's address, unless it is a loopback one (the
    kernel does not DNAT 127.0.0.0/8 from outside, and kube-proxy leaves it out too)."""
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host_ip)
        if address.version == 4 and not address.is_loopback:
            return [host_ip]
    return []


class NodeProxy:
    """Keeps the data path of ``mode`` serving the Services of ``services`` and
    ``endpoint_slices`` (informers the caller starts); :meth:`run` until cancelled, then
    :meth:`close`."""

    def __init__(
        self,
        services: Informer,
        endpoint_slices: Informer,
        *,
        data_dir: Path,
        host_ip: str,
        mode: str = "auto",
    ) -> None:
        if mode not in PROXY_MODES:
            raise ValueError(f"proxy mode must be one of {', '.join(PROXY_MODES)}")
        self.services = services
        self.endpoint_slices = endpoint_slices
        self.key = node_key(data_dir)
        self.node_ips = node_port_addresses(host_ip)
        self.requested = mode
        self.addresses = ServiceAddresses(self.key)
        self.data_path: DataPath | None = None
        self.synced = asyncio.Event()  # the data path holds the informers' state of late
        self.syncs = 0
        self._changed = asyncio.Event()
        for informer in (services, endpoint_slices):
            informer.add_handler(
                EventHandler(
                    on_add=lambda o: self._changed.set(),
                    on_update=lambda old, new: self._changed.set(),
                    on_delete=lambda o: self._changed.set(),
                )
            )

    @property
    def mode(self) -> str:
        """The data path in use: nftables, userspace or none."""
        return self.data_path.mode if self.data_path is not None else "none"

    def _choose(self) -> DataPath | None:
        if self.requested == "none":
            log.info("node proxy: off (--proxy-mode=none)")
            return None
        why_not = proxy_unavailable()
        if why_not:
            log.warning(
                "node proxy: off: %s; Service cluster IPs and node ports are not reachable "
                "through this node",
                why_not,
            )
            return None
        if self.requested == "userspace":
            return UserspaceDataPath()
        why_not = nftables_unavailable(table_name(self.key))
        if not why_not:
            return NftablesDataPath(self.key)
        if self.requested == "nftables":
            log.warning("node proxy: nftables: %s; retrying", why_not)
            return NftablesDataPath(self.key)
        log.warning("node proxy: %s; using the userspace proxy instead", why_not)
        return UserspaceDataPath()

    async def run(self) -> None:
        self.data_path = await asyncio.to_thread(self._choose)
        if self.data_path is None:
            return
        log.info("node proxy: %s mode", self.data_path.mode)
        await self.services.synced.wait()
        await self.endpoint_slices.synced.wait()
        self._changed.set()
        while True:
            await self._changed.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            self._changed.clear()
            try:
                await self.sync()
            except (OSError, NftablesError, NetworkError) as exc:
                await self._failed(exc)
                continue
            await asyncio.sleep(MIN_SYNC_INTERVAL)

    async def sync(self) -> None:
        """Bring the data path in line with the informers, once."""
        assert self.data_path is not None
        ports = service_ports(self.services.objects(), self.endpoint_slices.objects())
        await self.addresses.sync(sorted({p.cluster_ip for p in ports}))
        await self.data_path.apply(ports, self.node_ips)
        self.syncs += 1
        if not self._changed.is_set():
            self.synced.set()

    async def _failed(self, exc: BaseException) -> None:
        self.synced.clear()
        if isinstance(self.data_path, NftablesDataPath) and self.requested == "auto":
            log.warning("node proxy: nftables failed (%s); using the userspace proxy", exc)
            await self.data_path.remove()
            self.data_path = UserspaceDataPath()
        else:
            log.warning("node proxy: sync failed, retrying in %.0fs: %s", RETRY_SECONDS, exc)
            await asyncio.sleep(RETRY_SECONDS)
        self._changed.set()

    async def close(self) -> None:
        """Remove the data path and the cluster IP interface."""
        if self.data_path is not None:
            await self.data_path.remove()
            await self.addresses.remove()


def remove_all(data_dir: Path) -> None:
    """Remove the node proxy's table and interface of the agent with ``data_dir`` (for
    ``setpoint killall``; nothing to do if it never ran)."""
    if proxy_unavailable():
        return
    key = node_key(data_dir)
    remove_table(table_name(key))
    remove_interface(interface_name(key))
