"""The taint eviction controller (``pkg/controller/tainteviction``): the toleration arithmetic
in :mod:`~setpoint.controllers.tainteviction.eviction` (pure), the informers and
``reconcile(pod)`` in :mod:`~setpoint.controllers.tainteviction.controller`."""

from setpoint.controllers.tainteviction.controller import TaintEvictionController

__all__ = ["TaintEvictionController"]
