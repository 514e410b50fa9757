"""The node lifecycle controller (``pkg/controller/nodelifecycle``), in three files as upstream
splits the ideas:

- :mod:`~setpoint.controllers.nodelifecycle.health`: when a node was last heard from, the
  conditions written for a lost node, and the taints its conditions call for (pure);
- :mod:`~setpoint.controllers.nodelifecycle.zones`: zone states and the rate-limited
  ``NoExecute`` tainting per zone (pure, with its own token bucket);
- :mod:`~setpoint.controllers.nodelifecycle.controller`: the informers, the monitor pass and
  ``reconcile(node)``.

Removing the pods of a tainted node is the taint eviction controller's job
(:mod:`setpoint.controllers.tainteviction`), deleting the pods of a deleted node PodGC's
(:mod:`setpoint.controllers.podgc`).
"""

from setpoint.controllers.nodelifecycle.controller import (
    NodeLifecycleController,
    NodeLifecycleSettings,
)

__all__ = ["NodeLifecycleController", "NodeLifecycleSettings"]
