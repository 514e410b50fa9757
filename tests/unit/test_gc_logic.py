"""The garbage collector's and namespace controller's pure decisions."""

from __future__ import annotations

from typing import Any

from setpoint.client.api import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, REPLICASETS
from setpoint.controllers.garbagecollector import (
    Delete,
    Keep,
    OwnerState,
    RemoveOwnerReferences,
    api_group,
    blocking_dependents,
    can_reference,
    classify_owners,
    decide_dependent,
    deletion_policy_for,
    owner_state_of,
    without_finalizer,
    without_owner_references,
)
from setpoint.controllers.namespace import (
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
    ContentTotals,
    count_remaining,
    deletion_conditions,
    deletion_order,
    finalized_spec_finalizers,
    merge_conditions,
)

Obj = dict[str, Any]


def ref(uid: str, *, block: bool | None = None, kind: str = "ConfigMap") -> Obj:
    out: Obj = {"apiVersion": "v1", "kind": kind, "name": f"owner-{uid}", "uid": uid}
    if block is not None:
        out["blockOwnerDeletion"] = block
    return out


def obj(*refs: Obj, finalizers: list[str] | None = None, deleting: bool = False) -> Obj:
    meta: Obj = {"name": "dep", "namespace": "ns", "uid": "dep-uid"}
    if refs:
        meta["ownerReferences"] = list(refs)
    if finalizers:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta}


def decide(dependent: Obj, states: dict[str, OwnerState], *, has_dependents: bool = False) -> Any:
    owners = classify_owners(dependent["metadata"].get("ownerReferences") or [], states)
    return decide_dependent(dependent, owners, has_dependents=has_dependents)


# ------------------------------------------------------------------ owners


def test_owner_found_with_another_uid_is_absent() -> None:
    recreated = {"metadata": {"name": "owner-a", "uid": "new"}}
    assert owner_state_of(recreated, "old") is OwnerState.ABSENT
    assert owner_state_of(None, "old") is OwnerState.ABSENT


def test_owner_deleting_in_foreground_is_waiting_for_dependents() -> None:
    owner = obj(finalizers=["foregroundDeletion"], deleting=True)
    assert owner_state_of(owner, "dep-uid") is OwnerState.DELETING_DEPENDENTS


def test_owner_deleting_with_orphan_or_other_finalizer_still_counts_as_present() -> None:
    for held in (["orphan"], ["example.com/hold"]):
        owner = obj(finalizers=held, deleting=True)
        assert owner_state_of(owner, "dep-uid") is OwnerState.PRESENT


def test_owner_of_unfollowed_kind_is_solid() -> None:
    owners = classify_owners([ref("x", kind="Widget")], {"x": OwnerState.UNKNOWN})
    assert owners.solid and not owners.dangling


def test_owner_apigroup_is_matched_without_version() -> None:
    assert api_group("apps/v1") == "apps"
    assert api_group("v1") == ""


def test_cluster_scoped_object_cannot_have_namespaced_owner() -> None:
    node_like = {"metadata": {"name": "n"}}
    assert not can_reference(node_like, CONFIGMAPS)
    assert can_reference(node_like, NAMESPACES)
    assert can_reference(obj(), PODS)


# ------------------------------------------------------------------ dependents


def test_object_without_owners_is_kept() -> None:
    assert decide(obj(), {}) == Keep()


def test_dependent_with_present_owner_is_kept() -> None:
    assert decide(obj(ref("a")), {"a": OwnerState.PRESENT}) == Keep()


def test_dependent_of_absent_owner_is_deleted_in_background() -> None:
    assert decide(obj(ref("a")), {"a": OwnerState.ABSENT}) == Delete("Background")


def test_dependent_with_dangling_reference_and_solid_owner_only_loses_the_reference() -> None:
    decision = decide(obj(ref("a"), ref("b")), {"a": OwnerState.ABSENT, "b": OwnerState.PRESENT})
    assert decision == RemoveOwnerReferences(frozenset({"a"}))


def test_dependent_is_deleted_only_when_all_owners_are_gone() -> None:
    states = {"a": OwnerState.ABSENT, "b": OwnerState.ABSENT}
    assert decide(obj(ref("a"), ref("b")), states) == Delete("Background")


def test_dependent_of_foreground_owner_is_deleted() -> None:
    assert decide(obj(ref("a")), {"a": OwnerState.DELETING_DEPENDENTS}) == Delete("Background")


def test_dependent_with_dependents_of_foreground_owner_is_deleted_in_foreground() -> None:
    decision = decide(obj(ref("a")), {"a": OwnerState.DELETING_DEPENDENTS}, has_dependents=True)
    assert decision == Delete("Foreground")


def test_dependent_with_solid_owner_drops_reference_to_foreground_owner() -> None:
    states = {"a": OwnerState.DELETING_DEPENDENTS, "b": OwnerState.PRESENT}
    decision = decide(obj(ref("a"), ref("b")), states)
    assert decision == RemoveOwnerReferences(frozenset({"a"}))


def test_dependent_is_deleted_with_the_policy_its_own_finalizers_ask_for() -> None:
    assert deletion_policy_for(obj(finalizers=["orphan"])) == "Orphan"
    assert deletion_policy_for(obj(finalizers=["foregroundDeletion"])) == "Foreground"
    assert deletion_policy_for(obj(finalizers=["example.com/x"])) == "Background"


def test_blocking_dependents_are_those_with_block_owner_deletion_true() -> None:
    blocking = obj(ref("a", block=True))
    not_blocking = obj(ref("a", block=False))
    unset = obj(ref("a"))
    other_owner = obj(ref("b", block=True))
    found = blocking_dependents("a", [blocking, not_blocking, unset, other_owner])
    assert found == [blocking]


def test_removing_references_and_finalizers_keeps_the_rest() -> None:
    refs = [ref("a"), ref("b"), ref("c")]
    assert [r["uid"] for r in without_owner_references(refs, {"a", "c"})] == ["b"]
    held = ["example.com/x", "orphan", "foregroundDeletion"]
    assert without_finalizer(held, "orphan") == ["example.com/x", "foregroundDeletion"]


# ------------------------------------------------------------------ namespace deletion


def test_pods_are_deleted_before_everything_else() -> None:
    order = deletion_order([CONFIGMAPS, DEPLOYMENTS, PODS, REPLICASETS, NAMESPACES])
    assert order == [[PODS], [CONFIGMAPS, DEPLOYMENTS, REPLICASETS]]


def test_remaining_content_is_reported_like_kubernetes() -> None:
    totals = ContentTotals()
    pod = {"metadata": {"name": "p", "deletionGracePeriodSeconds": 30}}
    count_remaining(PODS, [pod, pod], totals)
    held = {"metadata": {"name": "d", "finalizers": ["example.com/hold"]}}
    count_remaining(DEPLOYMENTS, [held], totals)
    count_remaining(CONFIGMAPS, [], totals)
    conditions = deletion_conditions(totals)
    assert conditions[CONTENT_REMAINING] == (
        "True",
        "SomeResourcesRemain",
        "Some resources are remaining: deployments.apps has 1 resource instances, "
        "pods. has 2 resource instances",
    )
    assert conditions[FINALIZERS_REMAINING] == (
        "True",
        "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: "
        "example.com/hold in 1 resource instances",
    )
    assert conditions[CONTENT_FAILURE][0] == "False"
    assert totals.estimate == 30
    assert not totals.empty


def test_empty_namespace_reports_every_condition_false() -> None:
    conditions = deletion_conditions(ContentTotals())
    assert len(conditions) == 5
    assert all(status == "False" for status, _, _ in conditions.values())
    assert conditions[CONTENT_REMAINING][1:] == (
        "ContentRemoved",
        "All content successfully removed",
    )


def test_delete_errors_become_content_failure() -> None:
    totals = ContentTotals(errors=["pods.: 500 boom"])
    status, reason, message = deletion_conditions(totals)[CONTENT_FAILURE]
    assert (status, reason) == ("True", "ContentDeletionFailed")
    assert message == "Failed to delete all resource types, 1 remaining: pods.: 500 boom"
    assert not totals.empty


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    first, changed = merge_conditions([], deletion_conditions(ContentTotals()), "t1")
    assert changed and len(first) == 5
    same, changed = merge_conditions(first, deletion_conditions(ContentTotals()), "t2")
    assert not changed and same == first
    totals = ContentTotals(remaining={"pods.": 1})
    flipped, changed = merge_conditions(first, deletion_conditions(totals), "t3")
    assert changed
    by_type = {c["type"]: c for c in flipped}
    assert by_type[CONTENT_REMAINING]["lastTransitionTime"] == "t3"
    assert by_type[CONTENT_FAILURE]["lastTransitionTime"] == "t1"


def test_finalize_removes_only_the_kubernetes_finalizer() -> None:
    ns = {"spec": {"finalizers": ["kubernetes", "example.com/other"]}}
    assert finalized_spec_finalizers(ns) == ["example.com/other"]
    assert finalized_spec_finalizers({"spec": {"finalizers": ["kubernetes"]}}) == []
