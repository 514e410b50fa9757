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
"""

from __future__ import annotations

import copy
import logging
import math
import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import orjson

from setpoint.client.api import DEPLOYMENTS, PODS, REPLICASETS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_namespace, by_owner_uid, object_key
from setpoint.client.workqueue import Requeue
from setpoint.controllers.util import conditions, ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.meta.labels import Selector, selector_from_label_selector
from setpoint.meta.timestamps import parse_time

log = logging.getLogger(__name__)

KIND = "Deployment"
API_VERSION = "apps/v1"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
MAX_REV_HISTORY_CHARS = 2000
NO_DEADLINE = 2**31 - 1

# Progressing / Available reasons, as Kubernetes spells them
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"

_SKIP_ANNOTATIONS = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ============================================================== small field accessors


def spec_replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    return int((obj.get("spec") or {}).get("replicas", 1) or 0)


def status_int(obj: Obj | None, name: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(name) or 0)


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def creation_key(rs: Obj) -> tuple[str, str]:
    """``ReplicaSetsByCreationTimestamp``: older first, then by name."""
    meta = rs["metadata"]
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name")))


def revision(obj: Obj) -> int:
    try:
        return int(annotations_of(obj).get(REVISION, "0") or 0)
    except ValueError:
        return 0


def max_revision(replica_sets: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in replica_sets), default=0)


def is_rolling_update(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == (
        "RollingUpdate"
    )


def has_progress_deadline(d: Obj) -> bool:
    deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != NO_DEADLINE


def active_replica_sets(replica_sets: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in replica_sets if rs is not None and spec_replicas(rs) > 0]


# ================================================================ surge / unavailable


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as is, ``"N%"`` of ``total`` rounded."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: {text!r}") from None
    percent = int(text[:-1])
    numerator = percent * total
    return -(-numerator // 100) if round_up else numerator // 100


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """``ResolveFenceposts``: (surge, unavailable) in pods; never both zero."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(
        max_unavailable if max_unavailable is not None else 0, desired, False
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling(d: Obj) -> Obj:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    rolling = _rolling(d)
    return resolve_fenceposts(
        rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), spec_replicas(d)
    )[0]


def max_unavailable(d: Obj) -> int:
    desired = spec_replicas(d)
    if not is_rolling_update(d) or desired == 0:
        return 0
    rolling = _rolling(d)
    unavailable = resolve_fenceposts(
        rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), desired
    )[1]
    return min(unavailable, desired)


# ========================================================== templates and the hash


def _template_without_hash(template: Obj | None) -> Obj:
    result = copy.deepcopy(template or {})
    meta = result.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    if meta:
        result["metadata"] = meta
    else:
        result.pop("metadata", None)
    return result


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """``EqualIgnoreHash``: two pod templates equal except for ``pod-template-hash``."""
    return _template_without_hash(a) == _template_without_hash(b)


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """The pod-template-hash: FNV-1a (32 bit) of the template's canonical JSON, plus the
    collision count when set, spelled in Kubernetes' vowel-free alphabet
    (``controller.ComputeHash`` hashes Go's deep printing instead; the values differ from
    Kubernetes' but are just as stable)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += struct.pack("<Q", collision_count & 0xFFFFFFFF)
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(value))


def find_new_replica_set(d: Obj, replica_sets: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (``FindNewReplicaSet``)."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(replica_sets, key=creation_key):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def find_old_replica_sets(d: Obj, replica_sets: list[Obj], new_rs: Obj | None) -> list[Obj]:
    new_uid = new_rs["metadata"].get("uid") if new_rs else None
    return [rs for rs in replica_sets if rs["metadata"].get("uid") != new_uid or new_uid is None]


# ======================================================================= annotations


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    meta = rs["metadata"]
    current = meta.get("annotations") or {}
    wanted = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(maximum)}
    if all(current.get(k) == v for k, v in wanted.items()):
        return False
    meta["annotations"] = {**current, **wanted}
    return True


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    current = annotations_of(rs)
    return current.get(DESIRED_REPLICAS) != str(desired) or current.get(MAX_REPLICAS) != str(
        maximum
    )


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """``SetNewReplicaSetAnnotations`` on ``rs`` (a copy): copy the Deployment's own
    annotations, raise the revision to ``new_revision`` (remembering the one it replaces
    in revision-history: that is a rollback), and on creation set the replica annotations."""
    meta = rs["metadata"]
    current = dict(meta.get("annotations") or {})
    changed = False
    for key, value in annotations_of(d).items():
        if key in _SKIP_ANNOTATIONS or current.get(key) == value:
            continue
        current[key] = value
        changed = True
    old_text = current.get(REVISION)
    try:
        old_revision = int(old_text) if old_text else 0
    except ValueError:
        meta["annotations"] = current
        return changed
    if old_revision < new_revision:
        current[REVISION] = str(new_revision)
        changed = True
        if old_text:
            history = current.get(REVISION_HISTORY, "")
            entries = [e for e in history.split(",") if e] if history else []
            entries.append(old_text)
            while len(",".join(entries)) > MAX_REV_HISTORY_CHARS and len(entries) > 1:
                entries.pop(0)
            current[REVISION_HISTORY] = ",".join(entries)
    meta["annotations"] = current
    if not exists and set_replicas_annotations(
        rs, spec_replicas(d), spec_replicas(d) + max_surge(d)
    ):
        changed = True
    return changed


# ================================================================ scaling decisions


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """``NewRSNewReplicas``: the size the new ReplicaSet may grow to now."""
    desired = spec_replicas(d)
    if not is_rolling_update(d):
        return desired
    current = sum(spec_replicas(rs) for rs in all_rss)
    max_total = desired + max_surge(d)
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, desired - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


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


def round_half_away(value: float) -> int:
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


def _replica_set_fraction(rs: Obj, d: Obj) -> int:
    desired = spec_replicas(d)
    if desired == 0:
        return -spec_replicas(rs)
    deployment_max = desired + max_surge(d)
    try:
        before = int(annotations_of(rs).get(MAX_REPLICAS, "0"))
    except ValueError:
        before = 0
    if before == 0:
        before = status_int(d, "replicas")
        if before == 0:
            return 0
    return round_half_away(spec_replicas(rs) * deployment_max / before) - spec_replicas(rs)


def replica_set_proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    """``GetReplicaSetProportion``."""
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    try:
        desired = int(annotations_of(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    replicas = spec_replicas(d)
    return (
        spec_replicas(rs) == replicas
        and desired == replicas
        and status_int(rs, "availableReplicas") == replicas
    )


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=creation_key, reverse=True)
    active = active_replica_sets([*newest_first, new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


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


# ============================================================================ status


def new_condition(kind: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    """``NewDeploymentCondition``: a condition with ``lastUpdateTime``."""
    return conditions.new_condition(kind, status, reason, message, now, heartbeat="lastUpdateTime")


def set_condition(status: Obj, condition: Obj) -> None:
    """``SetDeploymentCondition``: no-op when status and reason are unchanged; keeps
    lastTransitionTime when only the reason changes."""
    current = conditions.get_condition(status, condition["type"])
    if (
        current is not None
        and current.get("status") == condition["status"]
        and current.get("reason") == condition["reason"]
    ):
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    others = [c for c in status.get("conditions") or [] if c.get("type") != condition["type"]]
    status["conditions"] = [*others, condition]


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
        cond = new_condition(
            "Available", "True", MIN_AVAILABLE_REASON, "Deployment has minimum availability.", now
        )
    else:
        cond = new_condition(
            "Available",
            "False",
            MIN_UNAVAILABLE_REASON,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    replicas = spec_replicas(d)
    return (
        status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("observedGeneration", 0) >= d["metadata"].get("generation", 1)
    )


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status") or {}
    old_old = int(old.get("replicas", 0)) - int(old.get("updatedReplicas", 0))
    new_old = int(status.get("replicas", 0)) - int(status.get("updatedReplicas", 0))
    return (
        status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
        or new_old < old_old
        or status.get("readyReplicas", 0) > old.get("readyReplicas", 0)
        or status.get("availableReplicas", 0) > old.get("availableReplicas", 0)
    )


def deployment_timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    condition = conditions.get_condition(status, "Progressing")
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if condition.get("reason") == TIMED_OUT_REASON:
        return True
    since = parse_time(condition.get("lastUpdateTime"))
    if since is None:
        return False
    deadline = timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))
    return since + deadline < now


def rollout_status(all_rss: list[Obj], new_rs: Obj | None, d: Obj, now: datetime) -> Obj:
    """``syncRolloutStatus``' new status: counts, Available, Progressing, ReplicaFailure."""
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        conditions.remove_condition(status, "Progressing")
    current = conditions.get_condition(d.get("status") or {}, "Progressing")
    complete_before = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE_REASON
    )
    name = d["metadata"]["name"]
    subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{name}"'
    if has_progress_deadline(d) and not complete_before:
        if deployment_complete(d, status):
            set_condition(
                status,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_AVAILABLE_REASON,
                    f"{subject} has successfully progressed.",
                    now,
                ),
            )
        elif deployment_progressing(d, status):
            condition = new_condition(
                "Progressing", "True", RS_UPDATED_REASON, f"{subject} is progressing.", now
            )
            if current is not None:
                if current.get("status") == "True":
                    condition["lastTransitionTime"] = current.get("lastTransitionTime")
                conditions.remove_condition(status, "Progressing")
            set_condition(status, condition)
        elif deployment_timed_out(d, status, now):
            set_condition(
                status,
                new_condition(
                    "Progressing",
                    "False",
                    TIMED_OUT_REASON,
                    f"{subject} has timed out progressing.",
                    now,
                ),
            )
    failures = replica_failures(all_rss, new_rs)
    if failures:
        set_condition(status, failures[0])
    else:
        conditions.remove_condition(status, "ReplicaFailure")
    return status


def replica_failures(all_rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    def of(rs: Obj) -> list[Obj]:
        return [
            {
                "type": "ReplicaFailure",
                "status": c.get("status"),
                "lastUpdateTime": c.get("lastTransitionTime"),
                "lastTransitionTime": c.get("lastTransitionTime"),
                "reason": c.get("reason"),
                "message": c.get("message"),
            }
            for c in (rs.get("status") or {}).get("conditions") or []
            if c.get("type") == "ReplicaFailure"
        ]

    if new_rs is not None and (found := of(new_rs)):
        return found
    return [c for rs in all_rss for c in of(rs)]


def stuck_requeue_after(d: Obj, status: Obj, now: datetime) -> float | None:
    """``requeueStuckDeployment``: seconds until the progress deadline should be checked
    again (None when there is nothing to wait for)."""
    current = conditions.get_condition(d.get("status") or {}, "Progressing")
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, status) or current.get("reason") == TIMED_OUT_REASON:
        return None
    since = parse_time(current.get("lastUpdateTime"))
    if since is None:
        return None
    deadline = since + timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))
    remaining = (deadline - now).total_seconds()
    return 0.0 if remaining < 1 else remaining + 1


# ======================================================================= controller


def deployment_selector(d: Obj) -> Selector:
    return selector_from_label_selector((d.get("spec") or {}).get("selector"))


class DeploymentController(Controller):
    name = "deployment"

    def __init__(self, informers: SharedInformers, recorder: EventRecorder) -> None:
        super().__init__(informers, recorder)
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
            await self._write_status(d, calculate_status(replica_sets, new_rs, d, _now()))
            return None
        d = await self._check_paused_conditions(d)
        if d["spec"].get("paused") or self._is_scaling_event(d, replica_sets):
            await self._sync_scale(d, replica_sets)
            return None
        if is_rolling_update(d):
            return await self._rollout_rolling(d, replica_sets)
        return await self._rollout_recreate(d, replica_sets)

    # --------------------------------------------------------------- strategies

    async def _sync_scale(self, d: Obj, replica_sets: list[Obj]) -> None:
        """Paused or scaling event: resize, no rollout (``sync``)."""
        d, new_rs, old_rss = await self._new_and_old(d, replica_sets, create=False)
        await self._apply_sizes(d, [*old_rss, new_rs], scale_targets(d, new_rs, old_rss))
        if d["spec"].get("paused"):
            await self._cleanup(d, old_rss)
        all_rss = self._refresh([*old_rss, new_rs])
        await self._write_status(d, calculate_status(all_rss, new_rs, d, _now()))

    async def _rollout_rolling(self, d: Obj, replica_sets: list[Obj]) -> Requeue | None:
        d, new_rs, old_rss = await self._new_and_old(d, replica_sets, create=True)
        assert new_rs is not None
        all_rss = [*old_rss, new_rs]
        target = new_replica_set_target(d, all_rss, new_rs)
        if target != spec_replicas(new_rs):
            await self._scale(d, new_rs, target)
        else:
            targets = old_replica_sets_targets(all_rss, active_replica_sets(old_rss), new_rs, d)
            await self._apply_sizes(d, old_rss, targets)
            if not targets:
                status = calculate_status(all_rss, new_rs, d, _now())
                if deployment_complete(d, status):
                    await self._cleanup(d, old_rss)
        return await self._sync_rollout_status(d, all_rss, new_rs)

    async def _rollout_recreate(self, d: Obj, replica_sets: list[Obj]) -> Requeue | None:
        d, new_rs, old_rss = await self._new_and_old(d, replica_sets, create=False)
        active_old = active_replica_sets(old_rss)
        if active_old:
            await self._apply_sizes(d, active_old, {rs["metadata"]["name"]: 0 for rs in active_old})
            return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
        if self._old_pods_running(new_rs, old_rss):
            return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
        if new_rs is None:
            d, new_rs, old_rss = await self._new_and_old(d, replica_sets, create=True)
        assert new_rs is not None
        if spec_replicas(new_rs) != spec_replicas(d):
            await self._scale(d, new_rs, spec_replicas(d))
        status = calculate_status([*old_rss, new_rs], new_rs, d, _now())
        if deployment_complete(d, status):
            await self._cleanup(d, old_rss)
        return await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)

    # ------------------------------------------------------------------ helpers

    async def _claim_replica_sets(self, d: Obj) -> list[Obj]:
        candidates = self.replica_sets.by_index("namespace", d["metadata"]["namespace"])
        target = ownerrefs.ClaimTarget(d, DEPLOYMENTS, API_VERSION, KIND, REPLICASETS)
        return await ownerrefs.claim(self.client, target, deployment_selector(d), candidates)

    async def _check_paused_conditions(self, d: Obj) -> Obj:
        if not has_progress_deadline(d):
            return d
        status = copy.deepcopy(d.get("status") or {})
        condition = conditions.get_condition(status, "Progressing")
        if condition is not None and condition.get("reason") == TIMED_OUT_REASON:
            return d
        paused_noted = condition is not None and condition.get("reason") == PAUSED_REASON
        paused = bool(d["spec"].get("paused"))
        if paused and not paused_noted:
            cond = new_condition(
                "Progressing", "Unknown", PAUSED_REASON, "Deployment is paused", _now()
            )
        elif not paused and paused_noted:
            cond = new_condition(
                "Progressing", "Unknown", RESUMED_REASON, "Deployment is resumed", _now()
            )
        else:
            return d
        set_condition(status, cond)
        return await self._update_status(d, status)

    def _is_scaling_event(self, d: Obj, replica_sets: list[Obj]) -> bool:
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

    async def _new_and_old(
        self, d: Obj, replica_sets: list[Obj], *, create: bool
    ) -> tuple[Obj, Obj | None, list[Obj]]:
        """``getAllReplicaSetsAndSyncRevision``: find (or create) the new ReplicaSet, keep
        its annotations and revision up to date, and the Deployment's revision with it."""
        existing = find_new_replica_set(d, replica_sets)
        old_rss = find_old_replica_sets(d, replica_sets, existing)
        new_revision = max_revision(old_rss) + 1
        if existing is not None:
            new_rs = await self._sync_existing_new_rs(d, existing, new_revision)
            d = await self._set_deployment_revision(d, annotations_of(new_rs).get(REVISION, ""))
            status = copy.deepcopy(d.get("status") or {})
            if has_progress_deadline(d) and conditions.get_condition(status, "Progressing") is None:
                set_condition(
                    status,
                    new_condition(
                        "Progressing",
                        "True",
                        FOUND_NEW_RS_REASON,
                        f'Found new replica set "{new_rs["metadata"]["name"]}"',
                        _now(),
                    ),
                )
                d = await self._update_status(d, status)
            return d, new_rs, old_rss
        if not create:
            return d, None, old_rss
        d, new_rs = await self._create_new_rs(d, old_rss, new_revision)
        return d, new_rs, old_rss

    async def _sync_existing_new_rs(self, d: Obj, rs: Obj, new_revision: int) -> Obj:
        updated = copy.deepcopy(rs)
        changed = set_new_replica_set_annotations(d, updated, new_revision, exists=True)
        min_ready = d["spec"].get("minReadySeconds", 0) or 0
        if (updated["spec"].get("minReadySeconds", 0) or 0) != min_ready:
            updated["spec"]["minReadySeconds"] = min_ready
            changed = True
        if not changed:
            return rs
        return await self.client.update(REPLICASETS, updated)

    async def _create_new_rs(
        self, d: Obj, old_rss: list[Obj], new_revision: int
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
            created = await self.client.create(REPLICASETS, rs, namespace)
        except ApiError as exc:
            if exc.is_already_exists:
                created = await self._existing_or_collision(d, rs["metadata"]["name"], exc)
                already_exists = True
            else:
                await self._report_create_failure(d, rs["metadata"]["name"], exc)
                raise
        if not already_exists and replicas > 0:
            await self.recorder.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
            )
        d = await self._set_deployment_revision(d, str(new_revision))
        if not already_exists and has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            set_condition(
                status,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_REASON,
                    f'Created new replica set "{created["metadata"]["name"]}"',
                    _now(),
                ),
            )
            d = await self._update_status(d, status)
        return d, created

    async def _existing_or_collision(self, d: Obj, name: str, error: ApiError) -> Obj:
        """The ReplicaSet name is taken: ours (a stale cache) or a hash collision, which
        bumps ``collisionCount`` so the next attempt hashes differently."""
        existing = await self.client.get(REPLICASETS, name, d["metadata"]["namespace"])
        if ownerrefs.is_controlled_by(existing, d) and equal_ignore_hash(
            existing["spec"].get("template"), d["spec"].get("template")
        ):
            return existing
        status = copy.deepcopy(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self._update_status(d, status)
        raise error

    async def _report_create_failure(self, d: Obj, name: str, exc: ApiError) -> None:
        message = f'Failed to create new replica set "{name}": {exc}'
        if has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            set_condition(
                status,
                new_condition("Progressing", "False", FAILED_RS_CREATE_REASON, message, _now()),
            )
            try:
                await self._update_status(d, status)
            except ApiError:
                pass
        await self.recorder.record(d, "Warning", FAILED_RS_CREATE_REASON, message)

    async def _set_deployment_revision(self, d: Obj, rev: str) -> Obj:
        """``SetDeploymentRevision`` and the status update that carries it."""
        if not rev or annotations_of(d).get(REVISION) == rev:
            return d
        updated = copy.deepcopy(d)
        updated["metadata"].setdefault("annotations", {})[REVISION] = rev
        return await self.client.update_status(DEPLOYMENTS, updated)

    async def _scale(self, d: Obj, rs: Obj, size: int) -> Obj:
        """``scaleReplicaSetAndRecordEvent``."""
        old = spec_replicas(rs)
        if old == size:
            return rs
        return await self._resize(d, rs, size, "up" if old < size else "down")

    async def _resize(self, d: Obj, rs: Obj, size: int, direction: str) -> Obj:
        """``scaleReplicaSet``: set the size and the replica annotations together."""
        desired, maximum = spec_replicas(d), spec_replicas(d) + max_surge(d)
        old = spec_replicas(rs)
        if old == size and not replicas_annotations_need_update(rs, desired, maximum):
            return rs
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = size
        set_replicas_annotations(updated, desired, maximum)
        result = await self.client.update(REPLICASETS, updated)
        if old != size:
            await self.recorder.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} from {old} to {size}",
            )
        return result

    async def _apply_sizes(
        self, d: Obj, replica_sets: Sequence[Obj | None], sizes: dict[str, int]
    ) -> None:
        by_name = {rs["metadata"]["name"]: rs for rs in replica_sets if rs is not None}
        for name, size in sizes.items():
            rs = by_name.get(name)
            if rs is None:
                continue
            old = spec_replicas(rs)
            direction = "up" if size > old else "down"
            await self._resize(d, rs, size, direction)

    def _refresh(self, replica_sets: Sequence[Obj | None]) -> list[Obj]:
        """The cache's current view of these ReplicaSets (for status counts)."""
        result = []
        for rs in replica_sets:
            if rs is None:
                continue
            result.append(self.replica_sets.get(object_key(rs)) or rs)
        return result

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        if sum(status_int(rs, "replicas") for rs in old_rss) > 0:
            return True
        for rs in old_rss:
            for pod in self.pods.by_index("owner", rs["metadata"]["uid"]):
                if not ownerrefs.is_controlled_by(pod, rs):
                    continue
                if podutil.pod_phase(pod) not in ("Succeeded", "Failed"):
                    return True
        return False

    async def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        for rs in replica_sets_to_clean_up(old_rss, d):
            try:
                await self.client.delete(
                    REPLICASETS,
                    rs["metadata"]["name"],
                    rs["metadata"]["namespace"],
                    preconditions_uid=rs["metadata"]["uid"],
                )
            except ApiError as exc:
                if not (exc.is_not_found or exc.code == 409):
                    raise

    async def _sync_rollout_status(
        self, d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None
    ) -> Requeue | None:
        """``syncRolloutStatus``: write the new status; when nothing changed, come back
        when the progress deadline passes (``requeueStuckDeployment``)."""
        fresh = self._refresh(all_rss)
        new_fresh = self._refresh([new_rs])[0] if new_rs is not None else None
        now = _now()
        status = rollout_status(fresh, new_fresh, d, now)
        if status == (d.get("status") or {}):
            after = stuck_requeue_after(d, status, now)
            if after is None:
                return None
            return Requeue() if after <= 0 else Requeue(after=after)
        await self._update_status(d, status)
        return None

    async def _write_status(self, d: Obj, status: Obj) -> None:
        if status != (d.get("status") or {}):
            await self._update_status(d, status)

    async def _update_status(self, d: Obj, status: Obj) -> Obj:
        updated = copy.deepcopy(d)
        updated["status"] = status
        return await self.client.update_status(DEPLOYMENTS, updated)


def _now() -> datetime:
    return datetime.now(UTC)
