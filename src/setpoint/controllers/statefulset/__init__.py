"""The StatefulSet controller: pods with stable names, stable storage and ordered rollouts.

A StatefulSet runs ``replicas`` copies of its pod template named ``<set>-0``, ``<set>-1``, ...
Each keeps its name and its claims (``<template>-<set>-<ordinal>``, one per
``volumeClaimTemplates`` entry) for life: a pod that fails or is deleted comes back with the
same name and the same claims. With ``OrderedReady`` pod management pods are created one at a
time in ordinal order, each once its predecessors are Running and Ready, and removed one at a
time from the highest ordinal; ``Parallel`` does both at once. A new template is rolled out
from the highest ordinal down to ``partition``, one pod at a time, each replaced only once
the one above is healthy again (``RollingUpdate``), or only as pods are deleted by hand
(``OnDelete``). Each template is a ControllerRevision, so ``kubectl rollout status/history/
undo sts/NAME`` work as for DaemonSets.

The package mirrors upstream's ``pkg/controller/statefulset``:

- :mod:`~setpoint.controllers.statefulset.controller`: informers, handlers, the sync, the
  revisions, pod and claim writes (``stateful_set.go``, ``stateful_set_control.go``'s
  ``UpdateStatefulSet``, ``stateful_pod_control.go``);
- :mod:`~setpoint.controllers.statefulset.control`: the decisions of one sync, pure
  (``updateStatefulSet``);
- :mod:`~setpoint.controllers.statefulset.utils`: ordinals, identity, claims, health and the
  status counts (``stateful_set_utils.go``).
"""

from setpoint.controllers.statefulset.controller import StatefulSetController

__all__ = ["StatefulSetController"]
