"""The clusterrole-aggregation controller (see :mod:`.controller`)."""

from setpoint.controllers.clusterroleaggregation.controller import (
    ClusterRoleAggregationController,
    aggregated_rules,
)

__all__ = ["ClusterRoleAggregationController", "aggregated_rules"]
