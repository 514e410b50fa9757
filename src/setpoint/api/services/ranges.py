"""The ranges Services draw from: cluster IPs (``--service-cluster-ip-range``) and node ports
(``--service-node-port-range``).

A range is a numbered sequence of values (offset 0, 1, ... ``size - 1``), each written as the
string the Service carries (``10.96.0.10``, ``30080``). A cluster-IP range leaves out the
network address and, for IPv4, the broadcast address, as Kubernetes' allocator does; its
first address (offset 0) is the ``kubernetes`` Service's.

*Where a new value comes from.* Kubernetes splits each range in two bands (KEP-3070 for IPs,
KEP-3668 for node ports): a lower, "static" band for values users pick themselves and an
upper band that dynamic allocation prefers, so that a value someone wants to request is
rarely taken already. The lower band holds ``min(max(16, size/16), 256)`` IPs or
``min(max(16, size/32), 128)`` ports; :meth:`Range.candidates` walks the upper band from a
random place, then the lower one. The walk is pure: the allocator
(:mod:`setpoint.api.services.allocator`) skips the values it knows are taken.

:func:`parse_ip_range` and :func:`parse_port_range` read the flags, raising
:class:`RangeError` (one line, for a server that cannot start) for nonsense or a range too
small to hold anything.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

DEFAULT_SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
DEFAULT_SERVICE_NODE_PORT_RANGE = "30000-32767"
# a range larger than this allocates from its first this-many values (as Kubernetes caps an
# IPv6 range's bitmap)
MAX_RANGE_SIZE = 1 << 20


class RangeError(ValueError):
    """A range flag that cannot be used; ``str()`` says why in one line."""


class Range(Protocol):
    """A numbered sequence of allocatable values."""

    @property
    def size(self) -> int: ...

    @property
    def static_size(self) -> int:
        """How many values, from offset 0, form the lower (requested-values) band."""
        ...

    def value(self, offset: int) -> str: ...

    def offset(self, value: str) -> int | None:
        """The value's offset, or None if the value is not in the range (or not one)."""
        ...


def candidates(allocatable: Range, rng: random.Random) -> Iterator[int]:
    """Every offset once: the upper band from a random offset (wrapping within the band),
    then the lower band likewise."""
    static = min(allocatable.static_size, allocatable.size)
    for low, high in ((static, allocatable.size), (0, static)):
        width = high - low
        if width <= 0:
            continue
        start = rng.randrange(width)
        for step in range(width):
            yield low + (start + step) % width


@dataclass(frozen=True)
class IPRange:
    """``--service-cluster-ip-range``: a CIDR, less its network (and IPv4 broadcast) address."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    @property
    def family(self) -> str:
        return "IPv4" if self.network.version == 4 else "IPv6"

    @property
    def size(self) -> int:
        reserved = 2 if self.network.version == 4 else 1
        return max(0, min(self.network.num_addresses - reserved, MAX_RANGE_SIZE))

    @property
    def static_size(self) -> int:
        return min(max(16, self.size // 16), 256)

    def value(self, offset: int) -> str:
        return str(self.network.network_address + 1 + offset)

    def offset(self, value: str) -> int | None:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return None
        if address.version != self.network.version:
            return None
        offset = int(address) - int(self.network.network_address) - 1
        return offset if 0 <= offset < self.size else None

    def __str__(self) -> str:
        return str(self.network)


@dataclass(frozen=True)
class PortRange:
    """``--service-node-port-range``: ``base`` to ``base + size - 1``, inclusive."""

    base: int
    count: int

    @property
    def size(self) -> int:
        return self.count

    @property
    def static_size(self) -> int:
        return min(max(16, self.count // 32), 128)

    def value(self, offset: int) -> str:
        return str(self.base + offset)

    def offset(self, value: str) -> int | None:
        try:
            offset = int(value) - self.base
        except ValueError:
            return None
        return offset if 0 <= offset < self.count else None

    def __str__(self) -> str:
        return f"{self.base}-{self.base + self.count - 1}"


def parse_ip_range(text: str) -> IPRange:
    """``10.96.0.0/16``; host bits must be zero, and the range must hold at least one address
    besides the ``kubernetes`` Service's."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise RangeError(f"--service-cluster-ip-range {text!r} is not a CIDR: {exc}") from None
    parsed = IPRange(network)
    if parsed.size < 2:
        raise RangeError(
            f"--service-cluster-ip-range {text} is too small: it must hold at least 2 addresses"
        )
    return parsed


def parse_port_range(text: str) -> PortRange:
    """``30000-32767`` (both ends included) or a single port."""
    first, sep, last = text.strip().partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise RangeError(
            f"--service-node-port-range {text!r} is not a port range (e.g. 30000-32767)"
        ) from None
    if not 1 <= low <= high <= 65535:
        raise RangeError(
            f"--service-node-port-range {text} must be within 1-65535 with its start before its end"
        )
    return PortRange(low, high - low + 1)
