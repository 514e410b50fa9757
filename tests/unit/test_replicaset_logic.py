"""Pure decisions of the ReplicaSet controller: deletion ranking, expectations, batches,
pods from templates, status, claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from setpoint.client.api import Obj
from setpoint.controllers.replicaset import (
    calculate_status,
    pod_from_template,
    replica_diff,
)
from setpoint.controllers.util import ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.controllers.util.expectations import UIDTrackingControllerExpectations
from setpoint.controllers.util.slowstart import slow_start_batches
from setpoint.meta.labels import selector_from_set
from setpoint.meta.timestamps import format_time
from tests import objects
from tests.objects import container, pod_template, replica_set

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    return format_time(NOW - timedelta(seconds=seconds_ago))


def pod(
    name: str,
    *,
    node: str = "",
    phase: str = "Pending",
    ready: bool = False,
    ready_for: float = 100,
    restarts: int = 0,
    age: float = 100,
    labels: dict[str, str] | None = None,
    owner: str | None = None,
) -> Obj:
    """A pod of the ReplicaSet ``web`` (``app: web`` unless ``labels`` are given) with what
    the deletion ranking reads: its node, phase, readiness (for ``ready_for`` seconds),
    restarts, age and controller (the uid ``owner``)."""
    status: Obj = {"phase": phase, "containerStatuses": [{"restartCount": restarts}]}
    if ready:
        status["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": ts(ready_for)}
        ]
    meta: Obj = {"creationTimestamp": ts(age)}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet"}]
    return objects.pod(
        name,
        namespace="ns",
        labels=labels if labels is not None else {"app": "web"},
        metadata=meta,
        status=status,
        **({"nodeName": node} if node else {}),
    )


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_unassigned_pods_are_deleted_before_assigned() -> None:
    pods = [pod("assigned", node="n1"), pod("unassigned")]
    assert names(podutil.pods_to_delete(pods, pods, 1)) == ["unassigned"]


def test_pending_before_unknown_before_running() -> None:
    pods = [
        pod("running", node="n", phase="Running"),
        pod("unknown", node="n", phase="Unknown"),
        pod("pending", node="n", phase="Pending"),
    ]
    assert names(podutil.pods_to_delete(pods, [], 3 - 1)) == ["pending", "unknown"]


def test_not_ready_before_ready() -> None:
    pods = [
        pod("ready", node="n", phase="Running", ready=True),
        pod("unready", node="n", phase="Running"),
    ]
    assert names(podutil.pods_to_delete(pods, [], 1)) == ["unready"]


def test_doubled_up_pods_go_first() -> None:
    a = pod("alone", node="n1", phase="Running")
    b1 = pod("crowded1", node="n2", phase="Running")
    b2 = pod("crowded2", node="n2", phase="Running")
    assert names(podutil.pods_to_delete([a, b1, b2], [a, b1, b2], 1))[0].startswith("crowded")


def test_more_restarts_then_newer_first() -> None:
    steady = pod("steady", node="n", phase="Running", restarts=0, age=10)
    flappy = pod("flappy", node="n", phase="Running", restarts=5, age=500)
    young = pod("young", node="n", phase="Running", restarts=0, age=1)
    assert names(podutil.pods_to_delete([steady, flappy, young], [], 2)) == ["flappy", "young"]


def test_ready_for_less_time_goes_first() -> None:
    old = pod("old", node="n", phase="Running", ready=True, ready_for=1000)
    fresh = pod("fresh", node="n", phase="Running", ready=True, ready_for=5)
    assert names(podutil.pods_to_delete([old, fresh], [], 1)) == ["fresh"]


def test_deletion_cost_annotation_is_respected() -> None:
    cheap = pod("cheap", node="n", phase="Running", ready=True)
    dear = pod("dear", node="n", phase="Running")
    dear["metadata"]["annotations"] = {podutil.POD_DELETION_COST: "100"}
    cheap["metadata"]["annotations"] = {podutil.POD_DELETION_COST: "-5"}
    # not-ready outranks cost; among equals, cost decides
    assert names(podutil.pods_to_delete([cheap, dear], [], 1)) == ["dear"]
    dear2 = pod("dear2", node="n", phase="Running", ready=True)
    dear2["metadata"]["annotations"] = {podutil.POD_DELETION_COST: "100"}
    assert names(podutil.pods_to_delete([dear2, cheap], [], 1)) == ["cheap"]


def test_creation_expectations_block_until_observed() -> None:
    exp = UIDTrackingControllerExpectations()
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")


def test_deletion_expectations_track_pod_keys() -> None:
    exp = UIDTrackingControllerExpectations()
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/unrelated")
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")
    assert not exp.satisfied("ns/rs")
    exp.deletion_observed("ns/rs", "ns/b")
    assert exp.satisfied("ns/rs")


def test_expectations_expire() -> None:
    clock = [0.0]
    exp = UIDTrackingControllerExpectations(ttl=300, clock=lambda: clock[0])
    exp.expect_creations("ns/rs", 3)
    clock[0] = 299
    assert not exp.satisfied("ns/rs")
    clock[0] = 301
    assert exp.satisfied("ns/rs")


def test_slow_start_batches_double() -> None:
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(0) == []


def test_replica_diff_is_bounded_by_burst() -> None:
    assert replica_diff(0, 1000, 500) == 500
    assert replica_diff(1000, 0, 500) == -500
    assert replica_diff(3, 3, 500) == 0


def rs(replicas: int = 2) -> Obj:
    """The ReplicaSet ``web`` selecting ``app: web``, whose template has more labels."""
    return replica_set(
        "web",
        namespace="ns",
        metadata={"uid": "rs-uid", "generation": 4},
        replicas=replicas,
        minReadySeconds=30,
        selector={"matchLabels": {"app": "web"}},
        template=pod_template(
            {"app": "web", "tier": "fe"}, annotations={"a": "b"}, containers=[container("c", "i")]
        ),
    )


def test_pod_from_template() -> None:
    made = pod_from_template(rs())
    assert made["metadata"]["generateName"] == "web-"
    assert made["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert made["metadata"]["annotations"] == {"a": "b"}
    assert made["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": "rs-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert made["spec"]["containers"][0]["image"] == "i"


def test_status_counts_labeled_ready_and_available_with_min_ready_seconds() -> None:
    pods = [
        pod("a", ready=True, ready_for=60, labels={"app": "web", "tier": "fe"}),
        pod("b", ready=True, ready_for=5, labels={"app": "web"}),
        pod("c"),
    ]
    status = calculate_status(rs(3), pods, None, NOW)
    assert status == {
        "replicas": 3,
        "fullyLabeledReplicas": 1,
        "readyReplicas": 2,
        "availableReplicas": 1,
    }


def test_replica_failure_condition_set_and_cleared() -> None:
    failing = calculate_status(rs(3), [], "403 Forbidden: quota", NOW)
    (cond,) = failing["conditions"]
    assert cond["type"] == "ReplicaFailure"
    assert cond["reason"] == "FailedCreate"
    assert cond["message"] == "403 Forbidden: quota"
    healed_rs = rs(3)
    healed_rs["status"] = failing
    assert "conditions" not in calculate_status(healed_rs, [], None, NOW)


def test_claims_adopt_orphans_release_mismatches_ignore_others() -> None:
    owner = rs()
    selector = selector_from_set({"app": "web"})
    mine = pod("mine", owner="rs-uid")
    drifted = pod("drifted", owner="rs-uid", labels={"app": "other"})
    orphan = pod("orphan")
    foreign = pod("foreign", owner="someone-else")
    stranger = pod("stranger", labels={"app": "other"})
    dying = pod("dying")
    dying["metadata"]["deletionTimestamp"] = ts(0)
    claims = ownerrefs.classify_claims(
        owner, selector, [mine, drifted, orphan, foreign, stranger, dying]
    )
    assert names(claims.owned) == ["mine"]
    assert names(claims.adopt) == ["orphan"]
    assert names(claims.release) == ["drifted"]


def test_adoption_and_release_patches_pin_resource_version() -> None:
    target = pod("p")
    target["metadata"]["resourceVersion"] = "42"
    ref = ownerrefs.new_controller_ref(rs(), "apps/v1", "ReplicaSet")
    patch = ownerrefs.adoption_patch(target, ref)
    assert patch == {"metadata": {"ownerReferences": [ref], "resourceVersion": "42"}}
    target["metadata"]["ownerReferences"] = [ref]
    assert ownerrefs.release_patch(target, "rs-uid")["metadata"]["ownerReferences"] is None


def test_inactive_pods() -> None:
    assert podutil.is_pod_active(pod("p", phase="Running"))
    assert not podutil.is_pod_active(pod("p", phase="Succeeded"))
    assert not podutil.is_pod_active(pod("p", phase="Failed"))
    dying = pod("p", phase="Running")
    dying["metadata"]["deletionTimestamp"] = ts(0)
    assert not podutil.is_pod_active(dying)


def test_availability_needs_min_ready_seconds() -> None:
    p = pod("p", ready=True, ready_for=10)
    assert podutil.is_pod_available(p, 0, NOW)
    assert podutil.is_pod_available(p, 5, NOW)
    assert not podutil.is_pod_available(p, 30, NOW)
    assert not podutil.is_pod_available(pod("q"), 0, NOW)
