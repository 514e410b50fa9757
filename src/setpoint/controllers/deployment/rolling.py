"""RollingUpdate: move replicas from old ReplicaSets to the new one within two bounds.

The new ReplicaSet grows while all pods together stay within ``replicas + maxSurge``
(:func:`new_replica_set_target`, ``reconcileNewReplicaSet``); old ReplicaSets shrink while at
least ``replicas - maxUnavailable`` pods stay available (:func:`old_replica_sets_targets`,
``reconcileOldReplicaSets``), first dropping old replicas that are not available anyway
(``cleanupUnhealthyReplicas``), then scaling down oldest first
(``scaleDownOldReplicaSetsForRollingUpdate``). Once the rollout is complete, old ReplicaSets
beyond the history limit go. Follows ``pkg/controller/deployment/rolling.go``.
"""

from __future__ import annotations

import copy
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
    creation_key,
    deployment_complete,
    max_unavailable,
    new_rs_new_replicas,
    spec_replicas,
    status_int,
)

if TYPE_CHECKING:
    from setpoint.controllers.deployment.controller import DeploymentController


def new_replica_set_target(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """``reconcileNewReplicaSet``'s decision: the new ReplicaSet's next size."""
    desired = spec_replicas(d)
    if spec_replicas(new_rs) >= desired:
        return desired
    return new_rs_new_replicas(d, all_rss, new_rs)


def old_replica_sets_targets(
    all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj, d: Obj
) -> dict[str, int]:
    """``reconcileOldReplicaSets``' decision: new sizes for old ReplicaSets (by name).

    First unhealthy replicas (spec - available) of old ReplicaSets are dropped, up to
    ``maxScaledDown`` (they cost no availability); then old ReplicaSets are scaled down,
    oldest first, by as many pods as are available beyond ``replicas - maxUnavailable``."""
    old_rss = sorted((copy.deepcopy(rs) for rs in old_rss), key=creation_key)
    old_count = sum(spec_replicas(rs) for rs in old_rss)
    if old_count == 0:
        return {}
    all_count = sum(spec_replicas(rs) for rs in all_rss)
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas")
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    targets: dict[str, int] = {}
    cleaned = 0
    for rs in old_rss:
        if cleaned >= max_scaled_down:
            break
        size, available = spec_replicas(rs), status_int(rs, "availableReplicas")
        if size == 0 or size <= available:
            continue
        count = min(max_scaled_down - cleaned, size - available)
        rs["spec"]["replicas"] = size - count
        targets[rs["metadata"]["name"]] = size - count
        cleaned += count
    available_total = sum(status_int(rs, "availableReplicas") for rs in [*old_rss, new_rs])
    if available_total <= min_available:
        return targets
    to_scale_down = available_total - min_available
    scaled = 0
    for rs in old_rss:
        if scaled >= to_scale_down:
            break
        size = spec_replicas(rs)
        if size == 0:
            continue
        count = min(size, to_scale_down - scaled)
        rs["spec"]["replicas"] = size - count
        targets[rs["metadata"]["name"]] = size - count
        scaled += count
    return targets


async def rollout_rolling(
    dc: DeploymentController, d: Obj, replica_sets: list[Obj]
) -> Requeue | None:
    """``rolloutRolling``: grow the new ReplicaSet if it may, else shrink old ones; clean up
    once complete; then sync the rollout status."""
    d, new_rs, old_rss = await new_and_old(dc, d, replica_sets, create=True)
    assert new_rs is not None
    all_rss = [*old_rss, new_rs]
    target = new_replica_set_target(d, all_rss, new_rs)
    if target != spec_replicas(new_rs):
        await scale(dc, d, new_rs, target)
    else:
        targets = old_replica_sets_targets(all_rss, active_replica_sets(old_rss), new_rs, d)
        await apply_sizes(dc, d, old_rss, targets)
        if not targets:
            status = calculate_status(all_rss, new_rs, d, dc.clock.now())
            if deployment_complete(d, status):
                await cleanup(dc, d, old_rss)
    return await sync_rollout_status(dc, d, all_rss, new_rs)
