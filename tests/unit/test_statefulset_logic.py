"""Pure decisions of the StatefulSet controller: which pod is created, deleted or updated
next under OrderedReady and Parallel, the partition, OnDelete, identity and claims, and the
status counts (``pkg/controller/statefulset``'s ``updateStatefulSet`` and utilities)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from setpoint.controllers.statefulset.control import Create, plan_sync, split_pods
from setpoint.controllers.statefulset.utils import (
    claims_for,
    compute_status,
    identity_matches,
    new_pod,
    parent_and_ordinal,
    storage_matches,
)
from setpoint.controllers.util.history import HASH_LABEL
from setpoint.meta.timestamps import format_time
from tests import objects

Obj = dict[str, Any]
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
OLD, NEW = "web-old", "web-new"


def sts(replicas: int = 3, **spec: Any) -> Obj:
    obj = objects.stateful_set("web", replicas=replicas, serviceName="web", **spec)
    obj["metadata"].update(namespace="default", uid="sts-uid", generation=1)
    obj["spec"].setdefault("podManagementPolicy", "OrderedReady")
    obj["spec"].setdefault(
        "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    )
    return obj


def pod(
    index: int,
    *,
    revision: str = NEW,
    phase: str = "Running",
    ready: bool = True,
    terminating: bool = False,
    ready_for: float = 60.0,
) -> Obj:
    set_obj = sts()
    obj = new_pod(set_obj, set_obj["spec"]["template"], index, revision)
    obj["metadata"]["uid"] = f"uid-{index}"
    conditions = [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastTransitionTime": format_time(NOW - timedelta(seconds=ready_for)),
        }
    ]
    obj["status"] = {"phase": phase, "conditions": conditions}
    if terminating:
        obj["metadata"]["deletionTimestamp"] = format_time(NOW)
    return obj


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# ------------------------------------------------------------------------ identity


def test_a_pod_is_named_after_its_set_and_ordinal() -> None:
    made = new_pod(sts(), sts()["spec"]["template"], 4, NEW)
    assert made["metadata"]["name"] == "web-4" and "generateName" not in made["metadata"]
    assert made["metadata"]["labels"] == {
        "app": "web",
        "statefulset.kubernetes.io/pod-name": "web-4",
        "apps.kubernetes.io/pod-index": "4",
        HASH_LABEL: NEW,
    }
    assert made["spec"]["hostname"] == "web-4" and made["spec"]["subdomain"] == "web"
    assert made["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert identity_matches(sts(), made)


def test_a_name_without_an_ordinal_has_none() -> None:
    assert parent_and_ordinal({"metadata": {"name": "web-x"}}) == ("", -1)
    assert parent_and_ordinal({"metadata": {"name": "my-web-12"}}) == ("my-web", 12)


def test_claim_templates_become_the_pods_volumes() -> None:
    template = {"metadata": {"name": "data", "labels": {"tier": "db"}}, "spec": {"x": 1}}
    set_obj = sts(volumeClaimTemplates=[template])
    set_obj["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    made = new_pod(set_obj, set_obj["spec"]["template"], 1, NEW)
    assert made["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}
    ]
    assert storage_matches(set_obj, made)
    claim = claims_for(set_obj, 1)["data"]
    assert claim["metadata"]["name"] == "data-web-1"
    assert claim["metadata"]["labels"] == {"tier": "db", "app": "web"}


def test_pods_beyond_the_replicas_are_condemned_highest_first() -> None:
    slots, condemned = split_pods(sts(2), [pod(3), pod(0), pod(2), pod(5)])
    assert [s and s["metadata"]["name"] for s in slots] == ["web-0", None]
    assert names(condemned) == ["web-5", "web-3", "web-2"]


# ------------------------------------------------------------------ OrderedReady


def test_ordered_ready_creates_only_the_lowest_missing_ordinal() -> None:
    plan = plan_sync(sts(3), [], NEW, NOW)
    assert plan.create == [Create(0, updated=True)] and plan.blocked_on == "web-0"


def test_ordered_ready_waits_for_a_predecessor_to_be_ready() -> None:
    plan = plan_sync(sts(3), [pod(0, ready=False)], NEW, NOW)
    assert plan.create == [] and plan.blocked_on == "web-0"
    plan = plan_sync(sts(3), [pod(0)], NEW, NOW)
    assert plan.create == [Create(1, updated=True)]


def test_ordered_ready_waits_for_min_ready_seconds() -> None:
    plan = plan_sync(sts(3, minReadySeconds=30), [pod(0, ready_for=10)], NEW, NOW)
    assert plan.create == []
    plan = plan_sync(sts(3, minReadySeconds=30), [pod(0, ready_for=40)], NEW, NOW)
    assert plan.create == [Create(1, updated=True)]


def test_a_failed_pod_is_deleted_to_be_recreated_with_its_name() -> None:
    plan = plan_sync(sts(2), [pod(0, phase="Failed"), pod(1)], NEW, NOW)
    assert [(d.pod["metadata"]["name"], d.why) for d in plan.delete] == [("web-0", "finished")]
    assert plan.create == []


def test_scale_down_deletes_the_highest_ordinal_one_at_a_time() -> None:
    plan = plan_sync(sts(1), [pod(0), pod(1), pod(2)], NEW, NOW)
    assert [(d.pod["metadata"]["name"], d.why) for d in plan.delete] == [("web-2", "scale")]


def test_scale_down_waits_for_a_terminating_pod() -> None:
    plan = plan_sync(sts(1), [pod(0), pod(1), pod(2, terminating=True)], NEW, NOW)
    assert plan.delete == [] and plan.blocked_on == "web-2"


def test_scale_down_waits_for_unhealthy_replicas() -> None:
    plan = plan_sync(sts(2), [pod(0), pod(1, ready=False), pod(2)], NEW, NOW)
    assert plan.delete == [] and plan.blocked_on == "web-1"


def test_the_first_unhealthy_condemned_pod_may_go_at_once() -> None:
    plan = plan_sync(sts(1), [pod(0), pod(1, ready=False), pod(2, ready=False)], NEW, NOW)
    assert plan.delete == [] and plan.blocked_on == "web-2"
    plan = plan_sync(sts(1), [pod(0), pod(1, ready=False)], NEW, NOW)
    assert names([d.pod for d in plan.delete]) == ["web-1"]


# ---------------------------------------------------------------------- Parallel


def test_parallel_creates_every_missing_pod_at_once() -> None:
    plan = plan_sync(sts(3, podManagementPolicy="Parallel"), [pod(1, ready=False)], NEW, NOW)
    assert [c.ordinal for c in plan.create] == [0, 2]


def test_parallel_deletes_every_condemned_pod_at_once() -> None:
    pods = [pod(0), pod(1, ready=False), pod(2)]
    plan = plan_sync(sts(0, podManagementPolicy="Parallel"), pods, NEW, NOW)
    assert names([d.pod for d in plan.delete]) == ["web-2", "web-1", "web-0"]


# ---------------------------------------------------------------- rolling update


def test_rolling_update_replaces_the_highest_old_pod_first() -> None:
    pods = [pod(0, revision=OLD), pod(1, revision=OLD), pod(2, revision=OLD)]
    plan = plan_sync(sts(3), pods, NEW, NOW)
    assert [(d.pod["metadata"]["name"], d.why) for d in plan.delete] == [("web-2", "update")]


def test_rolling_update_waits_for_the_updated_pod_to_be_healthy() -> None:
    pods = [pod(0, revision=OLD), pod(1, revision=OLD), pod(2, ready=False)]
    plan = plan_sync(sts(3), pods, NEW, NOW)
    assert plan.delete == [] and plan.blocked_on == "web-2"
    pods[2] = pod(2)
    plan = plan_sync(sts(3), pods, NEW, NOW)
    assert names([d.pod for d in plan.delete]) == ["web-1"]


def test_rolling_update_stops_at_the_partition() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    pods = [pod(0, revision=OLD), pod(1, revision=OLD), pod(2)]
    assert plan_sync(sts(3, updateStrategy=strategy), pods, NEW, NOW).delete == []


def test_pods_below_the_partition_are_recreated_from_the_current_revision() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    plan = plan_sync(sts(3, updateStrategy=strategy), [], NEW, NOW)
    assert plan.create == [Create(0, updated=False)]
    plan = plan_sync(sts(3, updateStrategy=strategy), [pod(0), pod(1)], NEW, NOW)
    assert plan.create == [Create(2, updated=True)]


def test_on_delete_never_deletes_old_pods() -> None:
    pods = [pod(0, revision=OLD), pod(1, revision=OLD)]
    assert plan_sync(sts(2, updateStrategy={"type": "OnDelete"}), pods, NEW, NOW).delete == []


def test_drifted_identity_labels_are_mended() -> None:
    drifted = pod(1)
    del drifted["metadata"]["labels"]["apps.kubernetes.io/pod-index"]
    plan = plan_sync(sts(2), [pod(0), drifted], NEW, NOW)
    assert names(plan.mend) == ["web-1"]


# ------------------------------------------------------------------------ status


def test_status_counts_ready_current_and_updated_pods() -> None:
    pods = [pod(0, revision=OLD), pod(1, revision=OLD, ready=False), pod(2)]
    status = compute_status(sts(3), pods, OLD, NEW, NOW)
    assert status == {
        "replicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "currentReplicas": 2,
        "updatedReplicas": 1,
        "currentRevision": OLD,
        "updateRevision": NEW,
    }


def test_a_completed_rolling_update_makes_the_update_revision_current() -> None:
    status = compute_status(sts(2), [pod(0), pod(1)], OLD, NEW, NOW)
    assert status["currentRevision"] == NEW and status["currentReplicas"] == 2


def test_terminating_pods_count_as_replicas_but_not_revisions() -> None:
    status = compute_status(sts(1), [pod(0, terminating=True, ready=False)], OLD, NEW, NOW)
    assert status["replicas"] == 1 and status["updatedReplicas"] == 0


def test_available_needs_min_ready_seconds() -> None:
    status = compute_status(sts(1, minReadySeconds=30), [pod(0, ready_for=5)], NEW, NEW, NOW)
    assert status["readyReplicas"] == 1 and status["availableReplicas"] == 0


def test_plan_does_not_mutate_its_inputs() -> None:
    pods = [pod(0, revision=OLD), pod(1)]
    before = copy.deepcopy(pods)
    plan_sync(sts(1), pods, NEW, NOW)
    assert pods == before
