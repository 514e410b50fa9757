"""The cluster IPs as addresses of the node: the interface ``spsvc<key>`` the agent owns.

kube-proxy's IPVS mode puts every cluster IP on a dummy interface (``kube-ipvs0``); setpoint's
proxy does the same in both its modes, for two reasons. The userspace relay must *listen* on
``clusterIP:port``, which needs the address to be local. And the kernel rules then work on a
node without a default route (the tests' nodes, an air-gapped machine): a connection to a
cluster IP is routed locally, so it reaches the output and input hooks where the DNAT or the
no-endpoints rejection waits, instead of failing with "network unreachable" first. A cluster
IP is also refused (TCP reset) on ports that are not the Service's, as a real host would.

The interface is a bridge without ports, not a ``dummy``: the dummy driver is not built into
every kernel (this project's CI machines lack it), the bridge driver is (the pod network
needs it). Addresses are /32, so no route to a range is added; nothing else on the machine
changes. :func:`remove_interface` deletes it (agent stop, ``setpoint killall``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterable

from setpoint.agent.network import link_exists, run_ip


def interface_name(key: str) -> str:
    return f"spsvc{key}"


def _current(name: str) -> set[str]:
    shown = subprocess.run(
        ["ip", "-j", "addr", "show", "dev", name], capture_output=True, text=True
    ).stdout
    return {
        a["local"]
        for link in json.loads(shown or "[]")
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    }


def sync_addresses(name: str, wanted: Iterable[str]) -> None:
    """Make ``name`` exist, be up and hold exactly the addresses ``wanted`` (as /32)."""
    lines = [] if link_exists(name) else [f"link add {name} type bridge"]
    if lines:
        run_ip(lines)
    have, want = _current(name), set(wanted)
    lines = [f"addr del {ip}/32 dev {name}" for ip in sorted(have - want)]
    lines += [f"addr add {ip}/32 dev {name}" for ip in sorted(want - have)]
    run_ip([*lines, f"link set {name} up", "link set lo up"])


def remove_interface(name: str) -> None:
    if link_exists(name):
        run_ip([f"link del {name}"], force=True)


class ServiceAddresses:
    """The agent's cluster IP interface."""

    def __init__(self, key: str) -> None:
        self.name = interface_name(key)
        self._held: frozenset[str] | None = None

    async def sync(self, ips: Iterable[str]) -> None:
        wanted = frozenset(ips)
        if wanted != self._held or not link_exists(self.name):
            await asyncio.to_thread(sync_addresses, self.name, wanted)
            self._held = wanted

    async def remove(self) -> None:
        self._held = None
        await asyncio.to_thread(remove_interface, self.name)
