"""Pure decisions of the Deployment controller: fenceposts, hashing, revisions, new/old
ReplicaSet scaling, proportional scaling, status and progress."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from setpoint.client.api import ApiClient, ApiError, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.workqueue import Requeue, run_worker
from setpoint.controllers.deployment import DeploymentController
from setpoint.controllers.deployment.progress import rollout_status, stuck_requeue_after
from setpoint.controllers.deployment.rolling import (
    new_replica_set_target,
    old_replica_sets_targets,
)
from setpoint.controllers.deployment.sync import (
    calculate_status,
    replica_sets_to_clean_up,
    scale_targets,
)
from setpoint.controllers.deployment.util import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    equal_ignore_hash,
    find_new_replica_set,
    max_surge,
    max_unavailable,
    resolve_fenceposts,
    set_new_replica_set_annotations,
)
from setpoint.controllers.util.conditions import get_condition
from setpoint.controllers.util.history import compute_hash
from setpoint.meta.intstr import scaled_value
from setpoint.meta.timestamps import format_time
from tests.objects import container, deployment, pod_template, replica_set

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
TEMPLATE: Obj = pod_template({"app": "web"}, containers=[container("c", "v1")])


def deploy(replicas: int = 10, surge: int | str = "25%", unavailable: int | str = "25%") -> Obj:
    """The Deployment ``web`` of ``TEMPLATE``, rolling with ``surge`` and ``unavailable``."""
    return deployment(
        "web",
        namespace="ns",
        metadata={"uid": "d-uid", "generation": 2},
        status={"observedGeneration": 2},
        replicas=replicas,
        selector={"matchLabels": {"app": "web"}},
        template=copy.deepcopy(TEMPLATE),
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
        },
        revisionHistoryLimit=2,
        progressDeadlineSeconds=600,
    )


def rset(
    name: str, replicas: int, available: int | None = None, *, age: int = 0, rev: int = 1
) -> Obj:
    """A ReplicaSet of ``TEMPLATE`` at revision ``rev``, ``age`` seconds old, with
    ``available`` of its ``replicas`` (all unless given) ready and available."""
    available = replicas if available is None else available
    return replica_set(
        name,
        namespace="ns",
        annotations={REVISION: str(rev)},
        metadata={
            "uid": f"uid-{name}",
            "creationTimestamp": format_time(NOW - timedelta(seconds=age)),
            "generation": 1,
        },
        status={
            "replicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "observedGeneration": 1,
        },
        replicas=replicas,
        pod_labels={"app": "web"},
        template=copy.deepcopy(TEMPLATE),
    )


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable rounds down
        ("25%", "25%", 1, (1, 0)),
        (0, "10%", 5, (0, 1)),  # both zero -> unavailable 1
        (0, 0, 3, (0, 1)),
        (2, 1, 3, (2, 1)),
        ("50%", "50%", 3, (2, 1)),
    ],
)
def test_fenceposts(
    surge: int | str, unavailable: int | str, desired: int, expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(surge, unavailable, desired) == expected


def test_scaled_value_int_and_percent() -> None:
    assert scaled_value(3, 10, True) == 3
    assert scaled_value("33%", 10, True) == 4
    assert scaled_value("33%", 10, False) == 3
    with pytest.raises(ValueError):
        scaled_value("abc", 10, True)


def test_max_unavailable_is_capped_and_zero_for_recreate() -> None:
    assert max_unavailable(deploy(2, 0, 5)) == 2
    assert max_unavailable(deploy(0)) == 0
    recreate = deploy(4)
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    assert max_unavailable(recreate) == 0
    assert max_surge(recreate) == 0


def test_hash_is_stable_and_depends_on_template_and_collisions() -> None:
    first = compute_hash(TEMPLATE, None)
    assert first == compute_hash(copy.deepcopy(TEMPLATE), None)
    reordered = {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}
    assert compute_hash(reordered, None) == first
    assert compute_hash(TEMPLATE, 1) != first
    changed = copy.deepcopy(TEMPLATE)
    changed["spec"]["containers"][0]["image"] = "v2"
    assert compute_hash(changed, None) != first
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_equal_ignore_hash_and_find_new() -> None:
    hashed = copy.deepcopy(TEMPLATE)
    hashed["metadata"]["labels"]["pod-template-hash"] = "abc"
    assert equal_ignore_hash(hashed, TEMPLATE)
    d = deploy()
    old = rset("web-old", 3, age=100)
    old["spec"]["template"]["spec"]["containers"][0]["image"] = "v0"
    new = rset("web-new", 0, age=10)
    new["spec"]["template"] = hashed
    assert find_new_replica_set(d, [old, new]) is new
    assert find_new_replica_set(d, [old]) is None


def test_new_replica_set_gets_revision_and_replica_annotations() -> None:
    d = deploy(4, 1, 0)
    d["metadata"]["annotations"] = {"team": "a", REVISION: "7"}
    rs = replica_set("x", replicas=0)
    assert set_new_replica_set_annotations(d, rs, 3, exists=False)
    assert rs["metadata"]["annotations"] == {
        "team": "a",
        REVISION: "3",
        DESIRED_REPLICAS: "4",
        MAX_REPLICAS: "5",
    }


def test_rollback_bumps_revision_and_records_history() -> None:
    rs = rset("web-a", 0, rev=1)
    rs["metadata"]["annotations"][REVISION_HISTORY] = "0"
    assert set_new_replica_set_annotations(deploy(), rs, 3, exists=True)
    assert rs["metadata"]["annotations"][REVISION] == "3"
    assert rs["metadata"]["annotations"][REVISION_HISTORY] == "0,1"
    # already the newest: nothing to do
    assert not set_new_replica_set_annotations(deploy(), rs, 3, exists=True)


def test_new_replica_set_scales_up_within_surge() -> None:
    d = deploy(10, 3, 2)
    old = rset("old", 10)
    new = rset("new", 0)
    assert new_replica_set_target(d, [old, new], new) == 3
    new["spec"]["replicas"] = 3
    assert new_replica_set_target(d, [old, new], new) == 3  # at 13 = 10 + surge
    new["spec"]["replicas"] = 12
    assert new_replica_set_target(d, [old, new], new) == 10  # never above desired


def test_old_replica_sets_scale_down_respecting_unavailable() -> None:
    d = deploy(10, 3, 2)
    old = rset("old", 10)
    new = rset("new", 3, available=0)
    # 13 pods, min available 8, 3 new unavailable: may drop 2
    assert old_replica_sets_targets([old, new], [old], new, d) == {"old": 8}
    new["status"]["availableReplicas"] = 3
    old["spec"]["replicas"] = 7
    old["status"]["availableReplicas"] = 7
    # 10 pods, all available: may drop 2 more
    assert old_replica_sets_targets([old, new], [old], new, d) == {"old": 5}


def test_unhealthy_old_replicas_are_cleaned_up_first() -> None:
    d = deploy(4, 1, 0)
    stuck = rset("stuck", 4, available=1, age=100)
    new = rset("new", 1, available=1)
    # 5 pods, min available 4, new unavailable 0 -> may drop 1: the unhealthy one
    assert old_replica_sets_targets([stuck, new], [stuck], new, d) == {"stuck": 3}


def test_nothing_scales_down_when_availability_would_suffer() -> None:
    d = deploy(3, 1, 0)
    old = rset("old", 3)
    new = rset("new", 1, available=0)
    assert old_replica_sets_targets([old, new], [old], new, d) == {}


def test_scaling_single_active_replica_set() -> None:
    d = deploy(5)
    only = rset("only", 3)
    assert scale_targets(d, only, [rset("old", 0, age=50)]) == {"only": 5}


def test_proportional_scaling_during_rollout() -> None:
    d = deploy(20, 3, 2)
    d["status"]["replicas"] = 13
    old = rset("old", 8, age=100)
    new = rset("new", 5, age=1)
    for rs in (old, new):
        rs["metadata"]["annotations"][MAX_REPLICAS] = "13"  # 10 + surge 3 before the change
    sizes = scale_targets(d, new, [old])
    assert sum(sizes.values()) == 20 + 3  # new total = replicas + surge
    assert sizes["old"] > 8 and sizes["new"] > 5


def test_saturated_new_replica_set_zeroes_old_ones() -> None:
    d = deploy(3)
    new = rset("new", 3)
    new["metadata"]["annotations"][DESIRED_REPLICAS] = "3"
    old = rset("old", 1, age=100)
    assert scale_targets(d, new, [old]) == {"old": 0}


def test_history_limit_cleanup_deletes_oldest_revisions_at_zero() -> None:
    d = deploy()  # limit 2
    olds = [rset(f"r{i}", 0, rev=i, age=100 - i) for i in range(1, 5)]
    olds[0]["spec"]["replicas"] = 1  # still running: kept even though oldest
    doomed = replica_sets_to_clean_up(olds, d)
    assert [rs["metadata"]["name"] for rs in doomed] == ["r2"]


def test_status_and_available_condition() -> None:
    d = deploy(4, 1, 1)
    old = rset("old", 1, available=1)
    new = rset("new", 3, available=2)
    status = calculate_status([old, new], new, d, NOW)
    assert status["replicas"] == 4
    assert status["updatedReplicas"] == 3
    assert status["availableReplicas"] == 3
    assert status["unavailableReplicas"] == 1
    assert status["observedGeneration"] == 2
    (available,) = status["conditions"]
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    new["status"]["availableReplicas"] = 0
    status = calculate_status([old, new], new, d, NOW)
    assert status["conditions"][0]["reason"] == "MinimumReplicasUnavailable"


def progressing(d: Obj, reason: str, seconds_ago: float) -> None:
    stamp = format_time(NOW - timedelta(seconds=seconds_ago))
    d["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "True",
            "reason": reason,
            "lastUpdateTime": stamp,
            "lastTransitionTime": stamp,
        }
    ]


def reason(status: Obj) -> str:
    return str(get_condition(status, "Progressing")["reason"])  # type: ignore[index]


def test_complete_rollout_reports_new_replica_set_available() -> None:
    d = deploy(2)
    progressing(d, "ReplicaSetUpdated", 10)
    new = rset("new", 2)
    assert reason(rollout_status([new], new, d, NOW)) == "NewReplicaSetAvailable"


def test_progress_refreshes_and_stall_times_out() -> None:
    d = deploy(2)
    d["status"].update(replicas=2, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    progressing(d, "NewReplicaSetCreated", 700)
    old = rset("old", 1)
    new = rset("new", 1, available=0)
    timed_out = rollout_status([old, new], new, d, NOW)
    assert reason(timed_out) == "ProgressDeadlineExceeded"
    assert get_condition(timed_out, "Progressing")["status"] == "False"  # type: ignore[index]
    new["status"]["availableReplicas"] = 1
    new["status"]["readyReplicas"] = 1
    d["status"]["readyReplicas"] = 1
    d["status"]["updatedReplicas"] = 0
    assert reason(rollout_status([old, new], new, d, NOW)) == "ReplicaSetUpdated"


def test_stuck_deployment_requeued_for_remaining_deadline() -> None:
    d = deploy(2)
    progressing(d, "ReplicaSetUpdated", 100)
    status = {"replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}
    assert stuck_requeue_after(d, status, NOW) == pytest.approx(501)
    progressing(d, "ProgressDeadlineExceeded", 100)
    assert stuck_requeue_after(d, status, NOW) is None


# ------------------------------------------------- what a reconcile asks of the queue


class ConflictingApi:
    """An API where every write loses to a newer resourceVersion (a stale cache)."""

    def __init__(self) -> None:
        self.writes = 0

    async def create(self, *args: object, **kwargs: object) -> Obj:
        self.writes += 1
        raise ApiError(409, {"reason": "Conflict", "message": "the object has been modified"})

    update = update_status = patch = create


class SilentRecorder:
    async def record(self, *args: object) -> None:
        return None


async def test_repeated_conflicts_back_off_further_each_time() -> None:
    """A Deployment whose writes keep conflicting is requeued rate-limited, and its backoff
    grows with each conflict instead of starting again from the base delay."""
    api = ConflictingApi()
    informers = SharedInformers(cast(ApiClient, api))
    controller = DeploymentController(informers, cast(EventRecorder, SilentRecorder()))
    controller.deployments.cache["ns/web"] = deploy(3)  # no ReplicaSet yet: it creates one
    retries: list[int] = []

    async def reconcile(key: str) -> Requeue | None:
        retries.append(controller.queue.retries(key))
        if len(retries) == 5:
            controller.queue.shut_down()
        return await controller.reconcile(key)

    controller.queue.add("ns/web")
    await asyncio.wait_for(run_worker(controller.queue, reconcile), 5)
    assert retries == [0, 1, 2, 3, 4]
    assert api.writes >= 5
