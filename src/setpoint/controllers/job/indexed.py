"""Indexed Jobs: one completion index per pod, ``0..completions-1``.

In ``completionMode: Indexed`` each pod carries its index (annotation and label
``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX`` read from the
annotation, hostname ``<job>-<index>``, generateName ``<job>-<index>-``), and the Job is done
when every index has succeeded. ``status.completedIndexes`` and ``status.failedIndexes`` list
indexes in a compressed form (``"0-2,4"``). New pods take the lowest indexes that have not
succeeded, failed, nor have a running pod; active pods with an invalid, finished or
duplicated index are removed. With ``backoffLimitPerIndex`` each index has its own failure
budget, counted in the pod annotations ``job-index-failure-count`` and
``job-index-ignored-failure-count``, which each replacement pod carries forward. Follows
``pkg/controller/job/indexed_job_utils.go``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from setpoint.client.api import Obj
from setpoint.controllers.job.backoff import pod_finish_time
from setpoint.controllers.job.failure_policy import match_pod_failure_policy
from setpoint.controllers.job.util import is_pod_failed
from setpoint.controllers.util.pods import active_pods_order

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"


def completion_index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    try:
        index = int(value) if value is not None else -1
    except ValueError:
        return None
    return index if index >= 0 else None


def _annotation_int(pod: Obj, key: str) -> int:
    try:
        return max(0, int((pod["metadata"].get("annotations") or {}).get(key, 0)))
    except (TypeError, ValueError):
        return 0


def parse_indexes(text: str | None, completions: int | None = None) -> set[int]:
    """``"0-2,4"`` -> ``{0, 1, 2, 4}``; malformed pieces and indexes >= completions are
    dropped, as Kubernetes' ``parseIndexesFromString`` does."""
    result: set[int] = set()
    for piece in (text or "").split(","):
        piece = piece.strip()
        if not piece:
            continue
        low_text, _, high_text = piece.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if high_text else low
        except ValueError:
            continue
        if completions is not None:
            high = min(high, completions - 1)
        result.update(range(max(low, 0), high + 1))
    return result


def format_indexes(indexes: Iterable[int]) -> str:
    """The compressed form: sorted, consecutive runs as ``first-last``."""
    ordered = sorted(set(indexes))
    runs: list[str] = []
    start = prev = None
    for index in ordered:
        if start is None:
            start = prev = index
        elif prev is not None and index == prev + 1:
            prev = index
        else:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = index
    if start is not None:
        runs.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(runs)


def first_pending_indexes(
    completions: int, count: int, *, succeeded: set[int], failed: set[int], active: set[int]
) -> list[int]:
    """The ``count`` lowest indexes that have not succeeded, failed, nor a running pod."""
    taken = succeeded | failed | active
    pending: list[int] = []
    for index in range(completions):
        if len(pending) >= count:
            break
        if index not in taken:
            pending.append(index)
    return pending


def is_index_failed(job: Obj, pod: Obj) -> bool:
    """A failed pod fails its index when the failure counts and the index already used up
    ``backoffLimitPerIndex``, or when a ``FailIndex`` rule matches."""
    if not is_pod_failed(pod, job):
        return False
    spec = job.get("spec") or {}
    match = match_pod_failure_policy(spec.get("podFailurePolicy"), pod)
    if match is not None and match.action == "FailIndex":
        return True
    counted = match is None or match.count_failed
    return counted and _annotation_int(pod, INDEX_FAILURE_COUNT) >= int(
        spec.get("backoffLimitPerIndex") or 0
    )


def next_index_failure_counts(job: Obj, pods: Iterable[Obj]) -> dict[int, tuple[int, int]]:
    """For each index, the (failure count, ignored failure count) its next pod carries:
    the latest failed pod's counts, plus one for its own failure."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    latest: dict[int, Obj] = {}
    for pod in pods:
        index = completion_index(pod)
        if index is None or not is_pod_failed(pod, job):
            continue
        if index not in latest or pod_finish_time(pod) >= pod_finish_time(latest[index]):
            latest[index] = pod
    counts: dict[int, tuple[int, int]] = {}
    for index, pod in latest.items():
        failures = _annotation_int(pod, INDEX_FAILURE_COUNT)
        ignored = _annotation_int(pod, INDEX_IGNORED_FAILURE_COUNT)
        match = match_pod_failure_policy(policy, pod)
        if match is not None and not match.count_failed:
            counts[index] = (failures, ignored + 1)
        else:
            counts[index] = (failures + 1, ignored)
    return counts


def pods_to_remove(
    active: list[Obj], completions: int, *, succeeded: set[int], failed: set[int]
) -> list[Obj]:
    """Active pods whose index is invalid, already succeeded or failed, or held by another
    active pod (the one least worth keeping of a pair goes)."""
    seen: set[int] = set()
    remove: list[Obj] = []
    for pod in sorted(active, key=active_pods_order, reverse=True):
        index = completion_index(pod)
        if (
            index is None
            or index >= completions
            or index in seen
            or index in succeeded
            or index in failed
        ):
            remove.append(pod)
        else:
            seen.add(index)
    return remove


def pod_generate_name(job_name: str, index: int) -> str:
    """``podGenerateNameWithIndex``: ``<job>-<index>-``."""
    return f"{job_name}-{index}-"


def add_completion_index(
    job: Obj,
    index: int,
    *,
    labels: dict[str, str],
    annotations: dict[str, str],
    spec: Obj,
    failure_counts: tuple[int, int] | None,
) -> None:
    """Give a new pod (its ``labels``, ``annotations`` and ``spec``, in place) its
    completion index: annotation, label, hostname, the ``JOB_COMPLETION_INDEX`` env var in
    every container, and with ``backoffLimitPerIndex`` the index's failure counts."""
    annotations[COMPLETION_INDEX] = str(index)
    labels[COMPLETION_INDEX] = str(index)
    if not spec.get("hostname"):
        spec["hostname"] = f"{job['metadata']['name']}-{index}"
    env_var = {
        "name": COMPLETION_INDEX_ENV,
        "valueFrom": {
            "fieldRef": {
                "apiVersion": "v1",
                "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']",
            }
        },
    }
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            env = [e for e in container.get("env") or [] if e.get("name") != env_var["name"]]
            container["env"] = [*env, copy.deepcopy(env_var)]
    if (job.get("spec") or {}).get("backoffLimitPerIndex") is not None:
        failures, ignored = failure_counts or (0, 0)
        annotations[INDEX_FAILURE_COUNT] = str(failures)
        if ignored:
            annotations[INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
