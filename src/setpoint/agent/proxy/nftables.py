"""The node proxy's kernel data path: one nftables table per agent, as kube-proxy's nftables
mode (``pkg/proxy/nftables/proxier.go``), whose chain and map names it keeps.

:func:`ruleset` is a pure function from the Service ports (:mod:`.servicemap`) to an ``nft``
script; :class:`NftablesDataPath` runs it. The table, ``ip setpoint-<key>`` (``<key>`` as the
pod network derives it from the agent's data dir, so several agents on one machine never
collide), holds everything the proxy does and nothing else is touched: no other table, no
rule of the host's. Each sync replaces the whole table in one ``nft -f`` transaction (add,
delete, add: the kernel applies all of it or none of it), so a packet sees the old rules or
the new ones, never half of each.

What a packet meets:

- ``nat-prerouting`` (traffic from pods, through the node bridge, and from other machines)
  and ``nat-output`` (the node's own) jump to ``services``: ``clusterIP . proto . port`` in
  the verdict map ``service-ips``, and ``proto . nodePort`` in ``service-nodeports`` for the
  node's addresses (``nodeport-ips``), go to the Service port's chain ``service-<hash>-
  <ns/name/proto/port>``. That one picks an endpoint at random (``numgen random mod N
  vmap``), each endpoint chain ``endpoint-<hash>-...__<ip>/<port>`` marks the packet for
  masquerade and DNATs it. Only a connection's first packet is looked at; conntrack does the
  rest, so a change of endpoints never breaks connections already made.
- ``nat-postrouting`` masquerades what was marked. Every DNATed connection is masqueraded
  (kube-proxy's ``--masquerade-all``): when client and endpoint are pods on the same bridge
  the endpoint would otherwise answer the client directly, at layer 2, from an address the
  client never spoke to, and the client drops it; a node's own connections leave from the
  cluster IP (a local address here, see :mod:`.addresses`) that other nodes hold too.
  The price: pods see Service traffic come from the node, not from the client.
- A Service port without endpoints is in ``no-endpoint-services`` (and
  ``no-endpoint-nodeports``), checked by filter chains on input, forward and output for new
  connections, which reject at once: a TCP reset, ICMP port unreachable otherwise — a client
  learns there is nobody instead of waiting for a timeout.
- ``sessionAffinity: ClientIP``: each endpoint has a set ``affinity-<hash>-...`` of client
  addresses with the Service's timeout; the Service chain first sends a known client back to
  its endpoint. The sets live in the table, so replacing it (any change of Services or
  endpoints on the node) forgets them: affinity holds between changes, not across them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import shutil
import subprocess
from collections.abc import Sequence

from setpoint.agent.proxy.servicemap import Endpoint, ServicePort

log = logging.getLogger(__name__)

MASQUERADE_MARK = "0x4000"  # kube-proxy's bit
FILTER_PRIORITY = -110  # before other filter chains: the rejection is ours to give
NAT_OUTPUT_PRIORITY = -100  # dstnat, for the output hook


class NftablesError(Exception):
    """``nft`` refused the script; the text is its complaint."""


def table_name(key: str) -> str:
    return f"setpoint-{key}"


def _hashed(name: str) -> str:
    """kube-proxy's hashAndTruncate: a hash first, so names differing late stay distinct."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    return f"{digest[:8]}-{name}"


def service_chain(port: ServicePort) -> str:
    return "service-" + _hashed(port.name)


def endpoint_chain(port: ServicePort, endpoint: Endpoint) -> str:
    return "endpoint-" + _hashed(f"{port.name}__{endpoint.ip}/{endpoint.port}")


def affinity_set(port: ServicePort, endpoint: Endpoint) -> str:
    return "affinity-" + _hashed(f"{port.name}__{endpoint.ip}/{endpoint.port}")


def _map(name: str, key_type: str, elements: list[str]) -> list[str]:
    lines = [f"\tmap {name} {{", f"\t\ttype {key_type} : verdict"]
    if elements:
        lines.append("\t\telements = { " + ", ".join(elements) + " }")
    return [*lines, "\t}"]


def _chain(name: str, rules: list[str], hook: str = "") -> list[str]:
    return [
        f"\tchain {name} {{",
        *([f"\t\t{hook}"] if hook else []),
        *(f"\t\t{r}" for r in rules),
        "\t}",
    ]


def ruleset(table: str, ports: Sequence[ServicePort], node_ips: Sequence[str]) -> str:
    """The ``nft -f`` script that makes table ``table`` proxy ``ports``, node ports on
    ``node_ips``, replacing whatever the table held, atomically."""
    service_ips, nodeports, no_ep_services, no_ep_nodeports = [], [], [], []
    body: list[str] = []
    for port in ports:
        proto = port.protocol.lower()
        if port.endpoints:
            verdict = f"goto {service_chain(port)}"
            body += _port_chains(port)
            service_ips.append(f"{port.cluster_ip} . {proto} . {port.port} : {verdict}")
            if port.node_port:
                nodeports.append(f"{proto} . {port.node_port} : {verdict}")
        else:
            no_ep_services.append(f"{port.cluster_ip} . {proto} . {port.port} : goto reject-chain")
            if port.node_port:
                no_ep_nodeports.append(f"{proto} . {port.node_port} : goto reject-chain")
    head = [f"table ip {table}", f"delete table ip {table}", f"table ip {table} {{"]
    addr_proto_port = "ipv4_addr . inet_proto . inet_service"
    head += _map("service-ips", addr_proto_port, service_ips)
    head += _map("service-nodeports", "inet_proto . inet_service", nodeports)
    head += _map("no-endpoint-services", addr_proto_port, no_ep_services)
    head += _map("no-endpoint-nodeports", "inet_proto . inet_service", no_ep_nodeports)
    head += ["\tset nodeport-ips {", "\t\ttype ipv4_addr"]
    if node_ips:
        head.append("\t\telements = { " + ", ".join(sorted(node_ips)) + " }")
    head.append("\t}")
    for port in ports:
        if port.affinity_seconds and port.endpoints:
            for endpoint in port.endpoints:
                head += [
                    f"\tset {affinity_set(port, endpoint)} {{",
                    "\t\ttype ipv4_addr",
                    "\t\tflags dynamic,timeout",
                    f"\t\ttimeout {port.affinity_seconds}s",
                    "\t}",
                ]
    nodeport_match = "ip daddr @nodeport-ips meta l4proto . th dport"
    head += _chain("reject-chain", ["meta l4proto tcp reject with tcp reset", "reject"])
    head += _chain(
        "endpoints-check",
        [
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            f"{nodeport_match} vmap @no-endpoint-nodeports",
        ],
    )
    for hook in ("input", "forward", "output"):
        head += _chain(
            f"filter-{hook}",
            ["ct state new jump endpoints-check"],
            f"type filter hook {hook} priority {FILTER_PRIORITY}; policy accept;",
        )
    head += _chain(
        "services",
        [
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            f"{nodeport_match} vmap @service-nodeports",
        ],
    )
    head += _chain("mark-for-masquerade", [f"meta mark set meta mark | {MASQUERADE_MARK}"])
    head += _chain(
        "masquerading",
        [
            f"meta mark & {MASQUERADE_MARK} == 0 return",
            f"meta mark set meta mark ^ {MASQUERADE_MARK}",
            "masquerade fully-random",
        ],
    )
    head += _chain(
        "nat-prerouting",
        ["jump services"],
        "type nat hook prerouting priority dstnat; policy accept;",
    )
    head += _chain(
        "nat-output",
        ["jump services"],
        f"type nat hook output priority {NAT_OUTPUT_PRIORITY}; policy accept;",
    )
    head += _chain(
        "nat-postrouting",
        ["jump masquerading"],
        "type nat hook postrouting priority srcnat; policy accept;",
    )
    return "\n".join([*head, *body, "}", ""])


def _port_chains(port: ServicePort) -> list[str]:
    """The Service port's chain and one chain per endpoint."""
    rules = []
    if port.affinity_seconds:
        rules += [
            f"ip saddr @{affinity_set(port, e)} goto {endpoint_chain(port, e)}"
            for e in port.endpoints
        ]
    choices = ", ".join(
        f"{i} : goto {endpoint_chain(port, e)}" for i, e in enumerate(port.endpoints)
    )
    rules.append(f"numgen random mod {len(port.endpoints)} vmap {{ {choices} }}")
    lines = _chain(service_chain(port), rules)
    for endpoint in port.endpoints:
        steps = (
            [f"update @{affinity_set(port, endpoint)} {{ ip saddr }}"]
            if port.affinity_seconds
            else []
        )
        steps += [
            "jump mark-for-masquerade",
            f"meta l4proto {port.protocol.lower()} dnat to {endpoint}",
        ]
        lines += _chain(endpoint_chain(port, endpoint), steps)
    return lines


def delete_script(table: str) -> str:
    """Remove the table if it exists (``destroy`` is newer than Debian 12's nft)."""
    return f"table ip {table}\ndelete table ip {table}\n"


def run_nft(script: str, *, check: bool = False) -> None:
    """``nft -f -`` (``-c``: only check it against the kernel); raise :class:`NftablesError`."""
    argv = ["nft", *(["-c"] if check else []), "-f", "-"]
    try:
        done = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NftablesError(str(exc)) from None
    if done.returncode != 0:
        raise NftablesError(done.stderr.strip() or f"nft exited {done.returncode}")


def nftables_unavailable(table: str) -> str:
    """Why this agent cannot use nftables ("" if it can): nft missing, or the kernel refuses
    an empty proxy table (checked only, nothing is changed)."""
    if not shutil.which("nft"):
        return "nft (the nftables package) is not installed"
    try:
        run_nft(ruleset(table, [], []), check=True)
    except NftablesError as exc:
        return f"nft cannot load the proxy's rules here: {exc}"
    return ""


class NftablesDataPath:
    """The agent's nftables table: :meth:`apply` the Service ports, :meth:`remove` it."""

    mode = "nftables"

    def __init__(self, key: str) -> None:
        self.table = table_name(key)

    async def apply(self, ports: Sequence[ServicePort], node_ips: Sequence[str]) -> None:
        await asyncio.to_thread(run_nft, ruleset(self.table, ports, node_ips))

    async def remove(self) -> None:
        await asyncio.to_thread(remove_table, self.table)


def remove_table(table: str) -> None:
    """Delete the table if there is one (no nft: there can be none)."""
    if shutil.which("nft"):
        try:
            run_nft(delete_script(table))
        except NftablesError as exc:
            log.warning("node proxy: removing nftables table %s: %s", table, exc)
