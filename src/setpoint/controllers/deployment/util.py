"""What the Deployment controller's files share: annotations, revisions, fenceposts, the
pod-template-hash, conditions, and the tests of a rollout's state.

Small accessors (``spec.replicas``, a status count, annotations, creation order); revisions
(``deployment.kubernetes.io/revision`` and ``revision-history``) and the
``desired-replicas``/``max-replicas`` annotations that remember the size a Deployment had when
a ReplicaSet was last scaled; ``maxSurge``/``maxUnavailable`` resolved to pods
(``ResolveFenceposts``); finding the new and old ReplicaSets;
proportional scaling; the Deployment's conditions (``NewDeploymentCondition``,
``SetDeploymentCondition``) and whether a rollout is complete, progressing or timed out.
Follows ``pkg/controller/deployment/util/deployment_util.go``; the template hash is
:func:`setpoint.controllers.util.history.compute_hash`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from setpoint.client.api import Obj
from setpoint.controllers.util import conditions
from setpoint.meta.intstr import scaled_value
from setpoint.meta.timestamps import parse_time

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


def new_deployment_condition(
    kind: str, status: str, reason: str, message: str, now: datetime
) -> Obj:
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
