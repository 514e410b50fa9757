"""The Deployment controller: roll a pod template out through ReplicaSets.

A Deployment never manages pods itself. For every distinct pod template it has run it owns
one ReplicaSet named ``<deployment>-<pod-template-hash>``, whose selector and template carry
the extra label ``pod-template-hash`` so the ReplicaSets' pods never overlap. The ReplicaSet
whose template equals the Deployment's (ignoring that label) is the *new* one; all others
are *old*. A rollout moves replicas from old to new (``pkg/controller/deployment``):

* **RollingUpdate** scales the new ReplicaSet up while the total stays within
  ``replicas + maxSurge`` (``reconcileNewReplicaSet``) and scales old ones down while at least
  ``replicas - maxUnavailable`` pods stay available (``reconcileOldReplicaSets``), first
  removing old replicas that are not available anyway (``cleanupUnhealthyReplicas``).
  Percentages resolve against ``replicas``: surge rounds up, unavailability rounds down, and
  if both come to zero unavailability becomes one.
* **Recreate** scales every old ReplicaSet to zero, waits until their pods are gone, then
  creates/scales the new one.

A change of ``spec.replicas`` alone is a *scaling event*: replicas are spread proportionally
over the active ReplicaSets instead of rolling (``scale``); a paused Deployment only scales.

Each ReplicaSet carries ``deployment.kubernetes.io/revision``; the new one always has the
highest, so a rollback (``kubectl rollout undo`` writes an old template back) reuses the old
ReplicaSet (same template, same hash), gives it a new revision and records the previous ones
in ``revision-history``. ``desired-replicas``/``max-replicas`` annotations remember the size
the Deployment had when the ReplicaSet was last scaled, for proportional scaling. Old
ReplicaSets at zero beyond ``revisionHistoryLimit`` are deleted once a rollout completes.

Status mirrors the ReplicaSets (replicas, updated, ready, available, unavailable) plus two
conditions: ``Available`` (at least ``replicas - maxUnavailable`` available) and
``Progressing`` (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
NewReplicaSetAvailable, or ProgressDeadlineExceeded when nothing moved within
``progressDeadlineSeconds``; a stuck Deployment is requeued for when the deadline passes).
That is what ``kubectl rollout status`` and ``kubectl wait --for=condition=Available`` read.

The revision annotation on the Deployment itself is written with a status update, as
upstream's ``getNewReplicaSet`` does (a Deployment's status subresource keeps annotation
changes), so ``metadata.generation`` changes only with the spec.

The package mirrors upstream's ``pkg/controller/deployment``, one module per upstream file, so
the two can be read side by side:

- :mod:`~setpoint.controllers.deployment.controller`: informers, handlers and
  ``syncDeployment`` (``deployment_controller.go``);
- :mod:`~setpoint.controllers.deployment.rolling`: RollingUpdate (``rolling.go``);
- :mod:`~setpoint.controllers.deployment.recreate`: Recreate (``recreate.go``);
- :mod:`~setpoint.controllers.deployment.sync`: scaling events, the new ReplicaSet, sizing,
  clean-up and status (``sync.go``);
- :mod:`~setpoint.controllers.deployment.progress`: ``Progressing`` and the progress
  deadline (``progress.go``);
- :mod:`~setpoint.controllers.deployment.util`: annotations, revisions, fenceposts, the
  template hash, conditions (``util/deployment_util.go``).

Steps that act on a Deployment live in the module of their upstream file as functions whose
first argument is the controller (``rollout_rolling(dc, d, replica_sets)``), as Go's methods
on ``*DeploymentController`` are spread over those files.
"""

from setpoint.controllers.deployment.controller import DeploymentController
from setpoint.controllers.deployment.util import HASH_LABEL, REVISION

__all__ = ["HASH_LABEL", "REVISION", "DeploymentController"]
