"""Recreate: stop every old pod first, then start the new ReplicaSet.

Old ReplicaSets are scaled to zero; the new one is created or scaled up only once no pod of
an old ReplicaSet is left running (:func:`old_pods_running`; the controller is woken when such
a pod is deleted), so two versions never run at once. Follows
``pkg/controller/deployment/recreate.go``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from setpoint.client.api import Obj
from setpoint.client.workqueue import Requeue
from setpoint.controllers.deployment.progress import sync_rollout_status
from setpoint.controllers.deployment.sync import (
    apply_sizes,
    calculate_status,
    cleanup,
    new_and_old,
    scale,
)
from setpoint.controllers.deployment.util import (
    active_replica_sets,
    deployment_complete,
    spec_replicas,
    status_int,
)
from setpoint.controllers.util import ownerrefs
from setpoint.controllers.util import pods as podutil

if TYPE_CHECKING:
    from setpoint.controllers.deployment.controller import DeploymentController


async def rollout_recreate(
    dc: DeploymentController, d: Obj, replica_sets: list[Obj]
) -> Requeue | None:
    """``rolloutRecreate``: old ReplicaSets to zero, wait for their pods, then the new one."""
    d, new_rs, old_rss = await new_and_old(dc, d, replica_sets, create=False)
    active_old = active_replica_sets(old_rss)
    if active_old:
        await apply_sizes(dc, d, active_old, {rs["metadata"]["name"]: 0 for rs in active_old})
        return await sync_rollout_status(dc, d, [*old_rss, new_rs], new_rs)
    if old_pods_running(dc, new_rs, old_rss):
        return await sync_rollout_status(dc, d, [*old_rss, new_rs], new_rs)
    if new_rs is None:
        d, new_rs, old_rss = await new_and_old(dc, d, replica_sets, create=True)
    assert new_rs is not None
    if spec_replicas(new_rs) != spec_replicas(d):
        await scale(dc, d, new_rs, spec_replicas(d))
    status = calculate_status([*old_rss, new_rs], new_rs, d, dc.clock.now())
    if deployment_complete(d, status):
        await cleanup(dc, d, old_rss)
    return await sync_rollout_status(dc, d, [*old_rss, new_rs], new_rs)


def old_pods_running(dc: DeploymentController, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
    """``oldPodsRunning``: an old ReplicaSet still has replicas, or a pod of one has not
    finished."""
    if sum(status_int(rs, "replicas") for rs in old_rss) > 0:
        return True
    for rs in old_rss:
        for pod in dc.pods.by_index("owner", rs["metadata"]["uid"]):
            if not ownerrefs.is_controlled_by(pod, rs):
                continue
            if podutil.pod_phase(pod) not in ("Succeeded", "Failed"):
                return True
    return False
