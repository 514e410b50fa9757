"""What the API server does for Services itself, as kube-apiserver does: cluster IPs and node
ports allocated as Services are written (``ranges``, ``allocator``, ``allocation``), the
records kept in step with the Services (``repair``), and the ``kubernetes`` Service that
points at the API server (``kubernetes``).

:class:`ServiceNetwork` holds the two flags, ``--service-cluster-ip-range`` and
``--service-node-port-range``, parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from setpoint.api.services.ranges import (
    DEFAULT_SERVICE_CLUSTER_IP_RANGE,
    DEFAULT_SERVICE_NODE_PORT_RANGE,
    IPRange,
    PortRange,
    parse_ip_range,
    parse_port_range,
)


@dataclass(frozen=True)
class ServiceNetwork:
    cluster_ips: IPRange = field(
        default_factory=lambda: parse_ip_range(DEFAULT_SERVICE_CLUSTER_IP_RANGE)
    )
    node_ports: PortRange = field(
        default_factory=lambda: parse_port_range(DEFAULT_SERVICE_NODE_PORT_RANGE)
    )
