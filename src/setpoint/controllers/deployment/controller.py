"""The Deployment controller: its informers, event handlers and ``syncDeployment``.

The controller watches Deployments, the ReplicaSets they own (a ReplicaSet change wakes its
owner, an orphan wakes every Deployment that might adopt it) and pod deletions (a Recreate
rollout waits for old pods to go). One reconcile claims the Deployment's ReplicaSets
(adopting matching orphans, releasing what no longer matches), then syncs it by the first
rule that applies: a Deployment being deleted only gets its status; a paused one, or a
scaling event, is resized (:mod:`~setpoint.controllers.deployment.sync`); otherwise it rolls
out by its strategy (:mod:`~setpoint.controllers.deployment.rolling`,
:mod:`~setpoint.controllers.deployment.recreate`). A write that loses to a newer
resourceVersion is retried rate-limited, backing off further while the cache stays behind.
Follows ``pkg/controller/deployment/deployment_controller.go``.
"""

from __future__ import annotations

import copy
import logging

from setpoint.client.api import DEPLOYMENTS, PODS, REPLICASETS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, by_owner_uid, object_key
from setpoint.client.workqueue import Requeue
from setpoint.controllers.deployment.recreate import rollout_recreate
from setpoint.controllers.deployment.rolling import rollout_rolling
from setpoint.controllers.deployment.sync import (
    calculate_status,
    check_paused_conditions,
    is_scaling_event,
    sync_scale,
    write_status,
)
from setpoint.controllers.deployment.util import (
    API_VERSION,
    KIND,
    find_new_replica_set,
    is_rolling_update,
)
from setpoint.controllers.util import ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.labels import Selector, selector_from_label_selector

log = logging.getLogger(__name__)


def deployment_selector(d: Obj) -> Selector:
    return selector_from_label_selector((d.get("spec") or {}).get("selector"))


class DeploymentController(Controller):
    name = "deployment"

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.deployments = informers.informer(DEPLOYMENTS, indexers={"namespace": by_namespace})
        self.replica_sets = informers.informer(
            REPLICASETS, indexers={"namespace": by_namespace, "owner": by_owner_uid}
        )
        self.pods = informers.informer(
            PODS, indexers={"namespace": by_namespace, "owner": by_owner_uid}
        )
        self.watch_owned(self.deployments)
        self.replica_sets.add_handler(
            EventHandler(
                on_add=self._on_rs_change,
                on_update=self._on_rs_update,
                on_delete=self._on_rs_change,
            )
        )
        self.pods.add_handler(EventHandler(on_delete=self._on_pod_delete))

    # ------------------------------------------------------------- event handlers

    def _owner_key(self, obj: Obj, kind: str) -> str | None:
        ref = ownerrefs.controller_ref(obj)
        if ref is None or ref.get("kind") != kind:
            return None
        return f"{obj['metadata'].get('namespace')}/{ref.get('name')}"

    def _on_rs_change(self, rs: Obj) -> None:
        key = self._owner_key(rs, KIND)
        if key is not None:
            self.queue.add(key)
            return
        labels = rs["metadata"].get("labels") or {}
        for d in self.deployments.by_index("namespace", rs["metadata"].get("namespace", "")):
            if deployment_selector(d).matches(labels):
                self.queue.add(object_key(d))

    def _on_rs_update(self, old: Obj, new: Obj) -> None:
        old_key = self._owner_key(old, KIND)
        if old_key is not None and old_key != self._owner_key(new, KIND):
            self.queue.add(old_key)
        self._on_rs_change(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        """Recreate waits for old pods to disappear: wake the Deployment when one does."""
        rs_key = self._owner_key(pod, "ReplicaSet")
        rs = self.replica_sets.get(rs_key) if rs_key else None
        key = self._owner_key(rs, KIND) if rs is not None else None
        if key is None:
            return
        d = self.deployments.get(key)
        if d is not None and not is_rolling_update(d):
            self.queue.add(key)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        try:
            return await self._sync(key)
        except ApiError as exc:
            if not exc.is_conflict:
                raise
            # a write raced the cache (ours or a user's): try again once it has caught up,
            # backing off further each time it races again
            log.debug("deployment %s: %s; requeued", key, exc)
            return Requeue()

    async def _sync(self, key: str) -> Requeue | None:
        cached = self.deployments.get(key)
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        if (d["spec"].get("selector") or {}) == {}:
            await self.recorder.record(
                d, "Warning", "SelectingAll", "This deployment is selecting all pods."
            )
            return None
        replica_sets = await self._claim_replica_sets(d)
        if podutil.is_terminating(d):
            new_rs = find_new_replica_set(d, replica_sets)
            await write_status(self, d, calculate_status(replica_sets, new_rs, d, self.clock.now()))
            return None
        d = await check_paused_conditions(self, d)
        if d["spec"].get("paused") or is_scaling_event(d, replica_sets):
            await sync_scale(self, d, replica_sets)
            return None
        if is_rolling_update(d):
            return await rollout_rolling(self, d, replica_sets)
        return await rollout_recreate(self, d, replica_sets)

    # ------------------------------------------------------------------ helpers

    async def _claim_replica_sets(self, d: Obj) -> list[Obj]:
        """``getReplicaSetsForDeployment``: the ReplicaSets this Deployment owns, after
        adopting matching orphans and releasing those that stopped matching."""
        candidates = self.replica_sets.by_index("namespace", d["metadata"]["namespace"])
        target = ownerrefs.ClaimTarget(d, DEPLOYMENTS, API_VERSION, KIND, REPLICASETS)
        return await ownerrefs.claim(self.client, target, deployment_selector(d), candidates)
