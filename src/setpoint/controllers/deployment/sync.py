"""Sizing, status and the new ReplicaSet: what every way of syncing a Deployment shares.

A scaling event (``spec.replicas`` changed) or a paused Deployment is synced by resizing, not
rolling (:func:`sync_scale`): replicas are spread proportionally over the active ReplicaSets
(:func:`scale_targets`). Every rollout starts from :func:`new_and_old`, which finds the new
ReplicaSet (the one whose template equals the Deployment's, ignoring ``pod-template-hash``),
creates it when asked, keeps its annotations and revision current and the Deployment's
revision with it (upstream's ``getAllReplicaSetsAndSyncRevision`` / ``getNewReplicaSet``,
including hash collisions and ``collisionCount``). Resizing a ReplicaSet writes its size and
its replica annotations together and records ``ScalingReplicaSet``; old ReplicaSets beyond
``revisionHistoryLimit`` are deleted once settled (``cleanupDeployment``); status is computed
from the ReplicaSets (``calculateStatus``) and written only when it changed. Follows
``pkg/controller/deployment/sync.go``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from setpoint.client.api import DEPLOYMENTS, REPLICASETS, ApiError, Obj
from setpoint.client.informer import object_key
from setpoint.controllers.deployment.util import (
    API_VERSION,
    DESIRED_REPLICAS,
    FAILED_RS_CREATE_REASON,
    FOUND_NEW_RS_REASON,
    HASH_LABEL,
    KIND,
    MIN_AVAILABLE_REASON,
    MIN_UNAVAILABLE_REASON,
    NEW_RS_REASON,
    PAUSED_REASON,
    RESUMED_REASON,
    REVISION,
    TIMED_OUT_REASON,
    active_replica_sets,
    annotations_of,
    creation_key,
    equal_ignore_hash,
    find_active_or_latest,
    find_new_replica_set,
    find_old_replica_sets,
    has_progress_deadline,
    is_rolling_update,
    is_saturated,
    max_revision,
    max_surge,
    max_unavailable,
    new_deployment_condition,
    new_rs_new_replicas,
    replica_set_proportion,
    replicas_annotations_need_update,
    revision,
    set_condition,
    set_new_replica_set_annotations,
    set_replicas_annotations,
    spec_replicas,
    status_int,
)
from setpoint.controllers.util import conditions, ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.controllers.util.history import compute_hash

if TYPE_CHECKING:
    from setpoint.controllers.deployment.controller import DeploymentController


def scale_targets(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, int]:
    """``scale``'s decision for a scaling event (or a paused Deployment): new sizes by
    ReplicaSet name; proportional over active ReplicaSets during a rolling update."""
    desired = spec_replicas(d)
    only = find_active_or_latest(new_rs, old_rss)
    if only is not None:
        # always named: resizing also refreshes its desired/max-replicas annotations
        return {only["metadata"]["name"]: desired}
    if is_saturated(d, new_rs):
        return {rs["metadata"]["name"]: 0 for rs in active_replica_sets(old_rss)}
    if not is_rolling_update(d):
        return {}
    active = active_replica_sets([*old_rss, new_rs])
    current = sum(spec_replicas(rs) for rs in active)
    allowed = desired + max_surge(d) if desired > 0 else 0
    to_add = allowed - current
    if to_add > 0:  # bigger first; newer first among equals
        active.sort(key=lambda rs: creation_key(rs), reverse=True)
        active.sort(key=spec_replicas, reverse=True)
    elif to_add < 0:  # bigger first; older first among equals
        active.sort(key=creation_key)
        active.sort(key=spec_replicas, reverse=True)
    sizes: dict[str, int] = {}
    added = 0
    for rs in active:
        name = rs["metadata"]["name"]
        if to_add != 0:
            proportion = replica_set_proportion(rs, d, to_add, added)
            sizes[name] = spec_replicas(rs) + proportion
            added += proportion
        else:
            sizes[name] = spec_replicas(rs)
    if active and to_add != 0:
        first = active[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def replica_sets_to_clean_up(old_rss: list[Obj], d: Obj) -> list[Obj]:
    """``cleanupDeployment``: the oldest ReplicaSets beyond ``revisionHistoryLimit`` that
    are fully scaled down and settled."""
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not podutil.is_terminating(rs)]
    diff = len(alive) - int(limit)
    if diff <= 0:
        return []
    alive.sort(key=lambda rs: (revision(rs), creation_key(rs)))
    doomed = []
    for rs in alive[:diff]:
        if (
            status_int(rs, "replicas") != 0
            or spec_replicas(rs) != 0
            or rs["metadata"].get("generation", 1) > status_int(rs, "observedGeneration")
        ):
            continue
        doomed.append(rs)
    return doomed


def calculate_status(all_rss: list[Obj], new_rs: Obj | None, d: Obj, now: datetime) -> Obj:
    """``calculateStatus``: counts from the ReplicaSets, and the Available condition."""
    available = sum(status_int(rs, "availableReplicas") for rs in all_rss)
    total = sum(spec_replicas(rs) for rs in all_rss)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": sum(status_int(rs, "replicas") for rs in all_rss),
        "updatedReplicas": status_int(new_rs, "replicas"),
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= spec_replicas(d) - max_unavailable(d):
        cond = new_deployment_condition(
            "Available", "True", MIN_AVAILABLE_REASON, "Deployment has minimum availability.", now
        )
    else:
        cond = new_deployment_condition(
            "Available",
            "False",
            MIN_UNAVAILABLE_REASON,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


def is_scaling_event(d: Obj, replica_sets: list[Obj]) -> bool:
    """``isScalingEvent``: an active ReplicaSet was last sized for a different
    ``spec.replicas`` than the Deployment has now."""
    for rs in active_replica_sets(replica_sets):
        desired = annotations_of(rs).get(DESIRED_REPLICAS)
        if desired is None:
            continue
        try:
            if int(desired) != spec_replicas(d):
                return True
        except ValueError:
            continue
    return False


async def sync_scale(dc: DeploymentController, d: Obj, replica_sets: list[Obj]) -> None:
    """Paused or scaling event: resize, no rollout (``sync``)."""
    d, new_rs, old_rss = await new_and_old(dc, d, replica_sets, create=False)
    await apply_sizes(dc, d, [*old_rss, new_rs], scale_targets(d, new_rs, old_rss))
    if d["spec"].get("paused"):
        await cleanup(dc, d, old_rss)
    all_rss = refresh(dc, [*old_rss, new_rs])
    await write_status(dc, d, calculate_status(all_rss, new_rs, d, dc.clock.now()))


async def check_paused_conditions(dc: DeploymentController, d: Obj) -> Obj:
    """``checkPausedConditions``: note a pause or resume in ``Progressing`` (Unknown)."""
    if not has_progress_deadline(d):
        return d
    status = copy.deepcopy(d.get("status") or {})
    condition = conditions.get_condition(status, "Progressing")
    if condition is not None and condition.get("reason") == TIMED_OUT_REASON:
        return d
    paused_noted = condition is not None and condition.get("reason") == PAUSED_REASON
    paused = bool(d["spec"].get("paused"))
    if paused and not paused_noted:
        cond = new_deployment_condition(
            "Progressing", "Unknown", PAUSED_REASON, "Deployment is paused", dc.clock.now()
        )
    elif not paused and paused_noted:
        cond = new_deployment_condition(
            "Progressing", "Unknown", RESUMED_REASON, "Deployment is resumed", dc.clock.now()
        )
    else:
        return d
    set_condition(status, cond)
    return await update_status(dc, d, status)


async def new_and_old(
    dc: DeploymentController, d: Obj, replica_sets: list[Obj], *, create: bool
) -> tuple[Obj, Obj | None, list[Obj]]:
    """``getAllReplicaSetsAndSyncRevision``: find (or create) the new ReplicaSet, keep
    its annotations and revision up to date, and the Deployment's revision with it."""
    existing = find_new_replica_set(d, replica_sets)
    old_rss = find_old_replica_sets(d, replica_sets, existing)
    new_revision = max_revision(old_rss) + 1
    if existing is not None:
        new_rs = await _sync_existing_new_rs(dc, d, existing, new_revision)
        d = await _set_deployment_revision(dc, d, annotations_of(new_rs).get(REVISION, ""))
        status = copy.deepcopy(d.get("status") or {})
        if has_progress_deadline(d) and conditions.get_condition(status, "Progressing") is None:
            set_condition(
                status,
                new_deployment_condition(
                    "Progressing",
                    "True",
                    FOUND_NEW_RS_REASON,
                    f'Found new replica set "{new_rs["metadata"]["name"]}"',
                    dc.clock.now(),
                ),
            )
            d = await update_status(dc, d, status)
        return d, new_rs, old_rss
    if not create:
        return d, None, old_rss
    d, new_rs = await _create_new_rs(dc, d, old_rss, new_revision)
    return d, new_rs, old_rss


async def _sync_existing_new_rs(
    dc: DeploymentController, d: Obj, rs: Obj, new_revision: int
) -> Obj:
    updated = copy.deepcopy(rs)
    changed = set_new_replica_set_annotations(d, updated, new_revision, exists=True)
    min_ready = d["spec"].get("minReadySeconds", 0) or 0
    if (updated["spec"].get("minReadySeconds", 0) or 0) != min_ready:
        updated["spec"]["minReadySeconds"] = min_ready
        changed = True
    if not changed:
        return rs
    return await dc.client.update(REPLICASETS, updated)


async def _create_new_rs(
    dc: DeploymentController, d: Obj, old_rss: list[Obj], new_revision: int
) -> tuple[Obj, Obj]:
    template = copy.deepcopy(d["spec"]["template"])
    collision_count = (d.get("status") or {}).get("collisionCount")
    pod_hash = compute_hash(template, collision_count)
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
    selector = copy.deepcopy(d["spec"]["selector"])
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
    namespace = d["metadata"]["namespace"]
    rs: Obj = {
        "apiVersion": API_VERSION,
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{d['metadata']['name']}-{pod_hash}",
            "namespace": namespace,
            "ownerReferences": [ownerrefs.new_controller_ref(d, API_VERSION, KIND)],
            "labels": dict(tmeta["labels"]),
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": d["spec"].get("minReadySeconds", 0) or 0,
            "selector": selector,
            "template": template,
        },
    }
    replicas = new_rs_new_replicas(d, [*old_rss, rs], rs)
    rs["spec"]["replicas"] = replicas
    set_new_replica_set_annotations(d, rs, new_revision, exists=False)
    already_exists = False
    try:
        created = await dc.client.create(REPLICASETS, rs, namespace)
    except ApiError as exc:
        if exc.is_already_exists:
            created = await _existing_or_collision(dc, d, rs["metadata"]["name"], exc)
            already_exists = True
        else:
            await _report_create_failure(dc, d, rs["metadata"]["name"], exc)
            raise
    if not already_exists and replicas > 0:
        await dc.recorder.record(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
        )
    d = await _set_deployment_revision(dc, d, str(new_revision))
    if not already_exists and has_progress_deadline(d):
        status = copy.deepcopy(d.get("status") or {})
        set_condition(
            status,
            new_deployment_condition(
                "Progressing",
                "True",
                NEW_RS_REASON,
                f'Created new replica set "{created["metadata"]["name"]}"',
                dc.clock.now(),
            ),
        )
        d = await update_status(dc, d, status)
    return d, created


async def _existing_or_collision(
    dc: DeploymentController, d: Obj, name: str, error: ApiError
) -> Obj:
    """The ReplicaSet name is taken: ours (a stale cache) or a hash collision, which
    bumps ``collisionCount`` so the next attempt hashes differently."""
    existing = await dc.client.get(REPLICASETS, name, d["metadata"]["namespace"])
    if ownerrefs.is_controlled_by(existing, d) and equal_ignore_hash(
        existing["spec"].get("template"), d["spec"].get("template")
    ):
        return existing
    status = copy.deepcopy(d.get("status") or {})
    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
    await update_status(dc, d, status)
    raise error


async def _report_create_failure(
    dc: DeploymentController, d: Obj, name: str, exc: ApiError
) -> None:
    message = f'Failed to create new replica set "{name}": {exc}'
    if has_progress_deadline(d):
        status = copy.deepcopy(d.get("status") or {})
        set_condition(
            status,
            new_deployment_condition(
                "Progressing", "False", FAILED_RS_CREATE_REASON, message, dc.clock.now()
            ),
        )
        try:
            await update_status(dc, d, status)
        except ApiError:
            pass
    await dc.recorder.record(d, "Warning", FAILED_RS_CREATE_REASON, message)


async def _set_deployment_revision(dc: DeploymentController, d: Obj, rev: str) -> Obj:
    """``SetDeploymentRevision`` and the status update that carries it."""
    if not rev or annotations_of(d).get(REVISION) == rev:
        return d
    updated = copy.deepcopy(d)
    updated["metadata"].setdefault("annotations", {})[REVISION] = rev
    return await dc.client.update_status(DEPLOYMENTS, updated)


async def scale(dc: DeploymentController, d: Obj, rs: Obj, size: int) -> Obj:
    """``scaleReplicaSetAndRecordEvent``."""
    old = spec_replicas(rs)
    if old == size:
        return rs
    return await _resize(dc, d, rs, size, "up" if old < size else "down")


async def _resize(dc: DeploymentController, d: Obj, rs: Obj, size: int, direction: str) -> Obj:
    """``scaleReplicaSet``: set the size and the replica annotations together."""
    desired, maximum = spec_replicas(d), spec_replicas(d) + max_surge(d)
    old = spec_replicas(rs)
    if old == size and not replicas_annotations_need_update(rs, desired, maximum):
        return rs
    updated = copy.deepcopy(rs)
    updated["spec"]["replicas"] = size
    set_replicas_annotations(updated, desired, maximum)
    result = await dc.client.update(REPLICASETS, updated)
    if old != size:
        await dc.recorder.record(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {old} to {size}",
        )
    return result


async def apply_sizes(
    dc: DeploymentController, d: Obj, replica_sets: Sequence[Obj | None], sizes: dict[str, int]
) -> None:
    by_name = {rs["metadata"]["name"]: rs for rs in replica_sets if rs is not None}
    for name, size in sizes.items():
        rs = by_name.get(name)
        if rs is None:
            continue
        old = spec_replicas(rs)
        direction = "up" if size > old else "down"
        await _resize(dc, d, rs, size, direction)


def refresh(dc: DeploymentController, replica_sets: Sequence[Obj | None]) -> list[Obj]:
    """The cache's current view of these ReplicaSets (for status counts)."""
    result = []
    for rs in replica_sets:
        if rs is None:
            continue
        result.append(dc.replica_sets.get(object_key(rs)) or rs)
    return result


async def cleanup(dc: DeploymentController, d: Obj, old_rss: list[Obj]) -> None:
    """``cleanupDeployment``: delete old ReplicaSets beyond ``revisionHistoryLimit``."""
    for rs in replica_sets_to_clean_up(old_rss, d):
        try:
            await dc.client.delete(
                REPLICASETS,
                rs["metadata"]["name"],
                rs["metadata"]["namespace"],
                preconditions_uid=rs["metadata"]["uid"],
            )
        except ApiError as exc:
            if not (exc.is_not_found or exc.code == 409):
                raise


async def write_status(dc: DeploymentController, d: Obj, status: Obj) -> None:
    """``syncDeploymentStatus``: write ``status`` if it differs from the Deployment's."""
    if status != (d.get("status") or {}):
        await update_status(dc, d, status)


async def update_status(dc: DeploymentController, d: Obj, status: Obj) -> Obj:
    updated = copy.deepcopy(d)
    updated["status"] = status
    return await dc.client.update_status(DEPLOYMENTS, updated)
