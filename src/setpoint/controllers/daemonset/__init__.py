"""The DaemonSet controller: one pod per eligible node, rolled out revision by revision.

A DaemonSet runs one copy of its pod template on every node its template admits (node
selector, required node affinity, taints against the template's tolerations plus those every
daemon pod gets), creates one on each node that joins or becomes eligible, and deletes the
copy of a node that stops being eligible. It does not wait for the scheduler to choose: each
pod is pinned to its node with a required node affinity on ``metadata.name`` and the
scheduler only binds it there. Each distinct template is a ControllerRevision; a new
template is rolled out node by node within ``maxUnavailable`` (deleting old pods first) or
``maxSurge`` (starting new pods first), or, with ``OnDelete``, only where old pods are
deleted by hand. ``kubectl rollout status/history/undo/restart ds/NAME`` read and write
exactly that.

The package mirrors upstream's ``pkg/controller/daemon``:

- :mod:`~setpoint.controllers.daemonset.controller`: informers, handlers, ``syncDaemonSet``,
  ``manage``/``syncNodes`` and the status (``daemon_controller.go``);
- :mod:`~setpoint.controllers.daemonset.manage`: the per-node decisions and the status
  counts, pure (``podsShouldBeOnNode``, ``updateDaemonSetStatus``);
- :mod:`~setpoint.controllers.daemonset.update`: rolling updates and the history
  (``update.go``);
- :mod:`~setpoint.controllers.daemonset.util`: tolerations, labels, node pinning, placement
  (``util/daemonset_util.go``).
"""

from setpoint.controllers.daemonset.controller import DaemonSetController
from setpoint.controllers.daemonset.util import HASH_LABEL

__all__ = ["HASH_LABEL", "DaemonSetController"]
