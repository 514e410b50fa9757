"""Rolling updates and the DaemonSet's history. Follows ``pkg/controller/daemon/update.go``.

*Rolling update* (:func:`rolling_update_plan`, pure). Per node there is at most one pod of the
current revision (*new*) and one older (*old*); nodes with more are left to the per-node
clean-up and counted as unavailable (or surging). Resolved against the number of nodes that
should run a pod, both ``maxUnavailable`` and ``maxSurge`` round up; if both come to 0,
``maxUnavailable`` is 1.

- Without surge, old pods are deleted (and the per-node pass then creates new ones) while
  fewer than ``maxUnavailable`` nodes are unavailable; an old pod that is not available
  anyway is always replaced. A node whose new pod is not yet available counts as
  unavailable, so the update moves on as new pods become available.
- With surge, a new pod is created next to an available old one on up to ``maxSurge``
  nodes at a time (at once next to an old pod that is not available); the old pod is
  deleted when the new one is available. Old pods on nodes that should no longer run one
  are deleted only while enough others are available.

``OnDelete`` does none of this: new pods appear only where old ones were deleted by hand.

*History.* Each distinct pod template the DaemonSet has had is a ControllerRevision
``<daemonset>-<hash>``, kept as :mod:`setpoint.controllers.util.history` describes (shared
with the StatefulSet controller). The revision whose data equals the DaemonSet's current patch is
*current* and gets the highest revision number (a rollback to an old template renumbers its
revision rather than adding one); duplicates are merged into the newest, their pods
relabelled. Old revisions beyond ``revisionHistoryLimit`` are deleted, oldest first, unless a
pod still carries their hash. A hash that names a revision with other data is a collision:
``status.collisionCount`` goes up and the next attempt hashes anew. That is what ``kubectl
rollout history`` lists and ``kubectl rollout undo`` patches back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from setpoint.client.api import DAEMONSETS, PODS, Obj
from setpoint.controllers.daemonset.util import (
    API_VERSION,
    HASH_LABEL,
    KIND,
    is_pod_updated,
    node_placement,
    surge_count,
    unavailable_count,
)
from setpoint.controllers.util import pods as podutil
from setpoint.controllers.util.history import (
    HistoryOwner,
    create_revision,
    delete_revision,
    label_unhashed,
    max_revision,
    renumber_revision,
    revision_matches,
    revision_number,
    revisions_to_clean_up,
)

if TYPE_CHECKING:
    from setpoint.controllers.daemonset.controller import DaemonSetController


# ------------------------------------------------------------------------ rolling update


@dataclass
class RollingPlan:
    """Pods to delete and nodes to create a pod on, this round."""

    delete: list[Obj] = field(default_factory=list)
    create: list[str] = field(default_factory=list)


def _new_and_old(pods: list[Obj], hash_value: str) -> tuple[Obj | None, Obj | None, bool]:
    """``findUpdatedPodsOnNode``: the node's live new and old pod; False if it has more
    than one of either."""
    new: Obj | None = None
    old: Obj | None = None
    for pod in pods:
        if podutil.is_terminating(pod):
            continue
        if is_pod_updated(pod, hash_value):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update_plan(
    ds: Obj,
    nodes: Mapping[str, Obj],
    by_node: Mapping[str, list[Obj]],
    hash_value: str,
    now: datetime,
) -> RollingPlan:
    """``rollingUpdate``'s choice of pods to delete and nodes to surge onto."""
    min_ready = int(ds["spec"].get("minReadySeconds") or 0)
    per_node = {name: list(pods) for name, pods in by_node.items()}
    desired = 0
    for name, node in nodes.items():
        if node_placement(ds, node).should_run:
            desired += 1
            per_node.setdefault(name, [])
    max_unavailable = unavailable_count(ds, desired)
    max_surge = surge_count(ds, desired)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1

    def available(pod: Obj) -> bool:
        return podutil.is_pod_available(pod, min_ready, now)

    plan = RollingPlan()
    if max_surge == 0:
        unavailable = 0
        replacements: list[Obj] = []
        candidates: list[Obj] = []
        for name in sorted(per_node):
            new, old, ok = _new_and_old(per_node[name], hash_value)
            if not ok or (new is None) == (old is None):
                unavailable += 1
            elif new is not None:
                unavailable += not available(new)
            elif old is not None and not available(old):
                replacements.append(old)
                unavailable += 1
            elif old is not None and unavailable < max_unavailable:
                candidates.append(old)
        room = max(0, min(max_unavailable - unavailable, len(candidates)))
        plan.delete = replacements + candidates[:room]
        return plan

    surging = available_count = 0
    allowed: list[str] = []
    candidate_nodes: list[str] = []
    leaving: list[Obj] = []
    for name in sorted(per_node):
        new, old, ok = _new_and_old(per_node[name], hash_value)
        if not ok:
            surging += 1
            continue
        if (old is not None and available(old)) or (
            old is None and new is not None and available(new)
        ):
            available_count += 1
        if old is None:
            continue
        if new is None:
            node_obj = nodes.get(name)
            should_run = node_obj is not None and node_placement(ds, node_obj).should_run
            if not available(old):
                if should_run:
                    allowed.append(name)
                else:
                    plan.delete.append(old)
            elif not should_run:
                leaving.append(old)
            elif surging < max_surge:
                candidate_nodes.append(name)
            continue
        if not available(new):
            surging += 1
        else:
            plan.delete.append(old)
    deletable = min(available_count - desired, len(leaving))
    if deletable > 0:
        plan.delete += leaving[:deletable]
    room = max(0, min(max_surge - surging, len(candidate_nodes)))
    plan.create = allowed + candidate_nodes[:room]
    return plan


# ------------------------------------------------------------------------------ history

DAEMON_SET_HISTORY = HistoryOwner(DAEMONSETS, API_VERSION, KIND)


async def construct_history(dc: DaemonSetController, ds: Obj) -> tuple[Obj, list[Obj]]:
    """``constructHistory``: the current revision (created or renumbered as needed) and the
    old ones."""
    current: list[Obj] = []
    old: list[Obj] = []
    for revision in await dc.claim_revisions(ds):
        revision = await label_unhashed(dc.client, revision)
        (current if revision_matches(ds, revision) else old).append(revision)
    number = max_revision(old) + 1
    if not current:
        return await create_revision(dc.client, DAEMON_SET_HISTORY, ds, number), old
    cur = await _dedup_current(dc, ds, current)
    if revision_number(cur) < number:
        cur = await renumber_revision(dc.client, cur, number)
    return cur, old


async def _dedup_current(dc: DaemonSetController, ds: Obj, current: list[Obj]) -> Obj:
    """``dedupCurHistories``: keep the highest-numbered current revision, relabel pods
    that carry another's hash, delete the others."""
    if len(current) == 1:
        return current[0]
    keep = max(current, key=revision_number)
    keep_hash = (keep["metadata"].get("labels") or {}).get(HASH_LABEL)
    for pod in dc.daemon_pods(ds):
        if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) != keep_hash:
            patch = {"metadata": {"labels": {HASH_LABEL: keep_hash}}}
            await dc.client.patch(PODS, pod["metadata"]["name"], patch, ds["metadata"]["namespace"])
    for revision in current:
        if revision["metadata"]["name"] != keep["metadata"]["name"]:
            await delete_revision(dc.client, revision)
    return keep


async def cleanup_history(dc: DaemonSetController, ds: Obj, old: list[Obj]) -> None:
    """``cleanupHistory``: delete old revisions beyond the limit that no pod still runs."""
    live = {
        hash_value
        for pod in dc.daemon_pods(ds)
        if (hash_value := (pod["metadata"].get("labels") or {}).get(HASH_LABEL))
    }
    for revision in revisions_to_clean_up(ds, old, live):
        await delete_revision(dc.client, revision)
