"""A cluster CIDR cut into equal node subnets: which are taken (``ipam/cidrset/cidr_set.go``).

:class:`CIDRSet` is the pure part of node IPAM. ``--cluster-cidr`` (e.g. ``10.244.0.0/16``)
is divided into subnets of ``--node-cidr-mask-size`` (``/24``: 256 of them, 254 pod
addresses each); :meth:`~CIDRSet.allocate_next` hands out the first free one after the last
one handed out (round robin, as upstream's ``nextCandidate``, so a subnet released by a
deleted node is not given to the next node at once), :meth:`~CIDRSet.occupy` marks subnets
taken that Nodes already carry (after a controller restart), :meth:`~CIDRSet.release` frees
them. Like upstream, a network larger or smaller than the node size marks every subnet it
overlaps, and at most 2^16 subnets are tracked.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_PREFIX_DIFFERENCE = 16  # upstream's clusterSubnetMaxDiff


class CIDRSetError(ValueError):
    """A CIDR that does not fit the set (bad size, outside the cluster CIDR)."""


class CIDRRangeFullError(CIDRSetError):
    """Every node subnet is taken (upstream's ``ErrCIDRRangeNoCIDRsRemaining``)."""


class CIDRSet:
    def __init__(self, cluster_cidr: str | Network, node_mask_size: int) -> None:
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=False)
        if not self.cluster.prefixlen <= node_mask_size <= self.cluster.max_prefixlen:
            raise CIDRSetError(
                f"node CIDR mask size {node_mask_size} must lie between the cluster CIDR's "
                f"/{self.cluster.prefixlen} and /{self.cluster.max_prefixlen}"
            )
        if node_mask_size - self.cluster.prefixlen > MAX_PREFIX_DIFFERENCE:
            raise CIDRSetError(
                f"node CIDR mask size {node_mask_size} is more than {MAX_PREFIX_DIFFERENCE} "
                f"bits longer than the cluster CIDR {self.cluster}"
            )
        self.node_mask_size = node_mask_size
        self.size = 1 << (node_mask_size - self.cluster.prefixlen)
        self._step = 1 << (self.cluster.max_prefixlen - node_mask_size)
        self._used: set[int] = set()
        self._next = 0

    @property
    def free(self) -> int:
        return self.size - len(self._used)

    def subnet(self, index: int) -> Network:
        base = int(self.cluster.network_address) + index * self._step
        return ipaddress.ip_network((base, self.node_mask_size))

    def allocate_next(self) -> Network:
        """The first free subnet from the one after the last allocated, marked taken."""
        for offset in range(self.size):
            index = (self._next + offset) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self.subnet(index)
        raise CIDRRangeFullError(f"no remaining CIDRs in cluster CIDR {self.cluster}")

    def occupy(self, cidr: str | Network) -> None:
        """Mark every subnet ``cidr`` overlaps as taken."""
        self._used.update(self._indices(cidr))

    def release(self, cidr: str | Network) -> None:
        """Free every subnet ``cidr`` overlaps."""
        self._used.difference_update(self._indices(cidr))

    def is_taken(self, cidr: str | Network) -> bool:
        return any(i in self._used for i in self._indices(cidr))

    def _indices(self, cidr: str | Network) -> range:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise CIDRSetError(str(exc)) from None
        if network.version != self.cluster.version or not (
            network.subnet_of(self.cluster) or self.cluster.subnet_of(network)  # type: ignore[arg-type]
        ):
            raise CIDRSetError(f"CIDR {network} is not in the cluster CIDR {self.cluster}")
        start = max(int(network.network_address), int(self.cluster.network_address))
        end = min(int(network.broadcast_address), int(self.cluster.broadcast_address))
        first = (start - int(self.cluster.network_address)) // self._step
        last = (end - int(self.cluster.network_address)) // self._step
        return range(first, last + 1)
