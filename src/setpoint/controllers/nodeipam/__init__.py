"""Node IPAM (``pkg/controller/nodeipam``): the subnet arithmetic in
:mod:`~setpoint.controllers.nodeipam.cidrset`, the controller in
:mod:`~setpoint.controllers.nodeipam.controller`."""

from setpoint.controllers.nodeipam.controller import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_NODE_CIDR_MASK_SIZE,
    NodeIPAMController,
)

__all__ = ["DEFAULT_CLUSTER_CIDR", "DEFAULT_NODE_CIDR_MASK_SIZE", "NodeIPAMController"]
