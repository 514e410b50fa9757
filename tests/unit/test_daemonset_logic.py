"""Pure decisions of the DaemonSet controller: placement on nodes, the daemon pod's
tolerations and node pinning, per-node clean-up, rolling-update steps, status counts, the
history, and the failed-pod backoff."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from setpoint.controllers.daemonset.manage import (
    node_decision,
    pods_by_node,
    pods_without_node,
    status_counts,
)
from setpoint.controllers.daemonset.update import (
    DAEMON_SET_HISTORY,
    revision_matches,
    revisions_to_clean_up,
    rolling_update_plan,
)
from setpoint.controllers.daemonset.util import (
    HASH_LABEL,
    Placement,
    add_daemon_tolerations,
    create_pod_template,
    node_placement,
    pin_to_node,
    target_node_name,
)
from setpoint.controllers.util.backoff import Backoff
from setpoint.controllers.util.history import compute_hash, new_revision
from setpoint.meta.clock import FakeClock
from setpoint.meta.nodeaffinity import pod_matches_node
from setpoint.meta.timestamps import format_time
from tests import objects

Obj = dict[str, Any]
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
NEW, OLD = "newhash", "oldhash"


def ds(**spec: Any) -> Obj:
    obj = objects.daemon_set("agent", metadata={"uid": "ds-uid", "generation": 1}, **spec)
    obj["metadata"]["namespace"] = "default"
    obj["metadata"]["annotations"] = {"deprecated.daemonset.template.generation": "3"}
    return obj


def surge(max_surge: int | str = 1) -> dict[str, Any]:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": max_surge}}


def unavailable(max_unavailable: int | str) -> dict[str, Any]:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}


def node(
    name: str, *, labels: dict[str, str] | None = None, taints: list[Obj] | None = None
) -> Obj:
    return objects.node(name, labels=labels, **({"taints": taints} if taints else {}))


def pod(
    name: str,
    node_name: str,
    *,
    hash_value: str = NEW,
    phase: str = "Running",
    ready: bool = True,
    age: float = 60,
    deleting: bool = False,
) -> Obj:
    meta: Obj = {
        "uid": f"uid-{name}",
        "creationTimestamp": format_time(NOW - timedelta(seconds=age)),
    }
    if deleting:
        meta["deletionTimestamp"] = format_time(NOW)
    obj = objects.pod(name, labels={"app": "agent", HASH_LABEL: hash_value}, metadata=meta)
    obj["spec"]["nodeName"] = node_name
    since = format_time(NOW - timedelta(seconds=age))
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    obj["status"] = {"phase": phase, "conditions": [{**condition, "lastTransitionTime": since}]}
    return obj


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# -------------------------------------------------------------------------------- placement


def test_node_selector_and_required_affinity_decide_placement() -> None:
    template = ds()["spec"]["template"]
    template["spec"]["nodeSelector"] = {"disk": "ssd"}
    selective = ds(template=template)
    assert node_placement(selective, node("a", labels={"disk": "ssd"})) == Placement(True, True)
    assert node_placement(selective, node("b")) == Placement(False, False)
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}
                ]
            }
        }
    }
    template = ds()["spec"]["template"]
    template["spec"]["affinity"] = affinity
    zoned = ds(template=template)
    assert node_placement(zoned, node("a", labels={"zone": "x"})).should_run
    assert node_placement(zoned, node("a", labels={"zone": "y"})) == Placement(False, False)


def test_untolerated_no_schedule_taint_keeps_existing_pods_no_execute_evicts_them() -> None:
    no_schedule = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    no_execute = [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]
    assert node_placement(ds(), node("a", taints=no_schedule)) == Placement(False, True)
    assert node_placement(ds(), node("a", taints=no_execute)) == Placement(False, False)
    template = ds()["spec"]["template"]
    template["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    assert node_placement(ds(template=template), node("a", taints=no_execute)).should_run


def test_daemon_tolerations_cover_node_problems_and_cordons() -> None:
    for key, effect in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ]:
        assert node_placement(ds(), node("a", taints=[{"key": key, "effect": effect}])) == (
            Placement(True, True)
        ), key
    not_ready = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    assert node_placement(ds(), node("a", taints=[not_ready])) == Placement(False, True)
    network = {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}
    assert not node_placement(ds(), node("a", taints=[network])).should_run
    template = ds()["spec"]["template"]
    template["spec"]["hostNetwork"] = True
    assert node_placement(ds(template=template), node("a", taints=[network])).should_run


def test_daemon_tolerations_replace_equal_ones_and_keep_others() -> None:
    own = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
    limited = {**own, "tolerationSeconds": 30}
    spec: Obj = {"tolerations": [limited, {"key": "x", "operator": "Exists"}]}
    add_daemon_tolerations(spec)
    assert spec["tolerations"][0] == own  # no tolerationSeconds: never evicted
    assert spec["tolerations"][1] == {"key": "x", "operator": "Exists"}
    assert len(spec["tolerations"]) == 7


def test_pod_is_pinned_to_its_node_by_match_fields() -> None:
    template = create_pod_template(ds(), NEW)
    assert template["metadata"]["labels"] == {
        "app": "agent",
        "pod-template-generation": "3",
        HASH_LABEL: NEW,
    }
    spec = copy.deepcopy(template["spec"])
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "z", "operator": "Exists"}]}]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [],
        }
    }
    pin_to_node(spec, "node-b")
    required = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-b"]}]}
    ]
    assert "preferredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["nodeAffinity"]
    unbound = {"metadata": {}, "spec": spec}
    assert target_node_name(unbound) == "node-b"
    assert pod_matches_node(spec, node("node-b"))
    assert not pod_matches_node(spec, node("node-c"))
    assert target_node_name({"metadata": {}, "spec": {"nodeName": "n", **spec}}) == "n"
    assert target_node_name({"metadata": {}, "spec": {}}) is None


# ------------------------------------------------------------------------- per-node decisions


def test_node_without_pod_gets_one_and_excluded_node_loses_all() -> None:
    assert node_decision(ds(), Placement(True, True), None, NEW, NOW).create
    pods = [pod("p1", "a"), pod("p2", "a", deleting=True)]
    decision = node_decision(ds(), Placement(False, False), pods, NEW, NOW)
    assert not decision.create and names(decision.delete) == ["p1"]


def test_terminating_pod_holds_its_node_until_gone_without_surge() -> None:
    decision = node_decision(ds(), Placement(True, True), [pod("p", "a", deleting=True)], NEW, NOW)
    assert not decision.create and decision.delete == []


def test_surplus_pods_go_oldest_stays() -> None:
    pods = [pod("young", "a", age=10), pod("old", "a", age=100), pod("mid", "a", age=50)]
    decision = node_decision(ds(), Placement(True, True), pods, NEW, NOW)
    assert names(decision.delete) == ["mid", "young"]


def test_failed_pods_are_reported_and_succeeded_ones_deleted() -> None:
    pods = [pod("bad", "a", phase="Failed"), pod("done", "a", phase="Succeeded")]
    decision = node_decision(ds(), Placement(True, True), pods, NEW, NOW)
    assert names(decision.failed) == ["bad"] and names(decision.delete) == ["done"]
    assert not decision.create  # the next pass creates one, once these are gone


def test_surge_keeps_old_pod_until_new_one_is_available() -> None:
    surging = ds(updateStrategy=surge())
    pods = [pod("old", "a", hash_value=OLD, age=100), pod("new", "a", ready=False, age=1)]
    assert node_decision(surging, Placement(True, True), pods, NEW, NOW).delete == []
    pods[1] = pod("new", "a", age=1)
    assert names(node_decision(surging, Placement(True, True), pods, NEW, NOW).delete) == ["old"]
    pods = [pod("old", "a", hash_value=OLD, ready=False), pod("new", "a", ready=False)]
    assert names(node_decision(surging, Placement(True, True), pods, NEW, NOW).delete) == ["old"]


def test_pods_of_vanished_nodes_are_deleted() -> None:
    grouped = pods_by_node([pod("here", "a"), pod("gone", "b"), pod("going", "b", deleting=True)])
    assert names(pods_without_node({"a": node("a")}, grouped)) == ["gone"]


def test_finished_terminating_pods_are_not_counted() -> None:
    done = pod("done", "a", phase="Succeeded", deleting=True)
    assert pods_by_node([done]) == {}
    assert pods_by_node([done], include_deleted_terminal=True) == {"a": [done]}


# ----------------------------------------------------------------------------- rolling update


def four_nodes() -> dict[str, Obj]:
    return {n: node(n) for n in "abcd"}


def test_rolling_update_deletes_up_to_max_unavailable_old_pods() -> None:
    grouped = {n: [pod(f"p{n}", n, hash_value=OLD)] for n in "abcd"}
    plan = rolling_update_plan(ds(), four_nodes(), grouped, NEW, NOW)
    assert names(plan.delete) == ["pa"] and plan.create == []
    plan = rolling_update_plan(
        ds(updateStrategy=unavailable("50%")), four_nodes(), grouped, NEW, NOW
    )
    assert names(plan.delete) == ["pa", "pb"]


def test_unavailable_new_pods_and_empty_nodes_use_up_the_budget() -> None:
    grouped = {
        "a": [pod("pa", "a", ready=False)],
        "b": [pod("pb", "b", hash_value=OLD)],
        "c": [pod("pc", "c", hash_value=OLD)],
    }
    assert rolling_update_plan(ds(), four_nodes(), grouped, NEW, NOW).delete == []


def test_old_pods_that_are_not_available_are_replaced_regardless() -> None:
    grouped = {
        "a": [pod("pa", "a", ready=False)],
        "b": [pod("pb", "b", hash_value=OLD, ready=False)],
        "c": [pod("pc", "c", hash_value=OLD)],
        "d": [pod("pd", "d")],
    }
    assert names(rolling_update_plan(ds(), four_nodes(), grouped, NEW, NOW).delete) == ["pb"]


def test_surge_creates_new_pods_on_up_to_max_surge_nodes() -> None:
    grouped = {n: [pod(f"p{n}", n, hash_value=OLD)] for n in "abcd"}
    plan = rolling_update_plan(ds(updateStrategy=surge(2)), four_nodes(), grouped, NEW, NOW)
    assert plan.create == ["a", "b"] and plan.delete == []
    grouped["a"].append(pod("na", "a", ready=False, age=1))
    plan = rolling_update_plan(ds(updateStrategy=surge(2)), four_nodes(), grouped, NEW, NOW)
    assert plan.create == ["b"]
    grouped["a"][1] = pod("na", "a", age=1)
    plan = rolling_update_plan(ds(updateStrategy=surge(2)), four_nodes(), grouped, NEW, NOW)
    assert names(plan.delete) == ["pa"] and plan.create == ["b", "c"]


def test_surge_percentages_round_up() -> None:
    grouped = {n: [pod(f"p{n}", n, hash_value=OLD)] for n in "abcd"}
    plan = rolling_update_plan(ds(updateStrategy=surge("10%")), four_nodes(), grouped, NEW, NOW)
    assert plan.create == ["a"]


# ------------------------------------------------------------------------------------ status


def test_status_counts_nodes_by_their_oldest_pod() -> None:
    nodes = [node("a"), node("b"), node("c"), node("off", labels={"x": "y"})]
    template = ds()["spec"]["template"]
    template["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}
                ]
            }
        }
    }
    grouped = {
        "a": [pod("pa", "a")],
        "b": [pod("pb", "b", hash_value=OLD, ready=False)],
        "off": [pod("poff", "off")],
    }
    counts = status_counts(ds(template=template), nodes, grouped, NEW, NOW)
    assert counts == {
        "currentNumberScheduled": 2,
        "numberMisscheduled": 1,
        "desiredNumberScheduled": 3,
        "numberReady": 1,
        "updatedNumberScheduled": 1,
        "numberAvailable": 1,
        "numberUnavailable": 2,
    }


def test_min_ready_seconds_delays_availability() -> None:
    counts = status_counts(ds(minReadySeconds=120), [node("a")], {"a": [pod("p", "a")]}, NEW, NOW)
    assert counts["numberReady"] == 1 and counts["numberAvailable"] == 0


# ----------------------------------------------------------------------------------- history


def test_revision_holds_a_replace_patch_of_the_template() -> None:
    daemon = ds()
    revision = new_revision(daemon, 4, DAEMON_SET_HISTORY)
    hash_value = compute_hash(daemon["spec"]["template"], None)
    assert revision["metadata"]["name"] == f"agent-{hash_value}"
    assert revision["metadata"]["labels"] == {"app": "agent", HASH_LABEL: hash_value}
    assert revision["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert revision["revision"] == 4
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert revision_matches(daemon, revision)
    changed = copy.deepcopy(daemon)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert not revision_matches(changed, revision)


def test_collision_count_changes_the_revision_name() -> None:
    daemon = ds()
    bumped = {**daemon, "status": {"collisionCount": 1}}
    assert (
        new_revision(daemon, 1, DAEMON_SET_HISTORY)["metadata"]["name"]
        != new_revision(bumped, 1, DAEMON_SET_HISTORY)["metadata"]["name"]
    )


def test_history_keeps_the_limit_and_revisions_pods_still_run() -> None:
    def revision(number: int) -> Obj:
        return {
            "metadata": {"name": f"r{number}", "labels": {HASH_LABEL: f"h{number}"}},
            "revision": number,
        }

    old = [revision(3), revision(1), revision(2), revision(4)]
    victims = revisions_to_clean_up(ds(revisionHistoryLimit=2), old, {"h1"})
    assert [v["metadata"]["name"] for v in victims] == ["r2", "r3"]
    assert revisions_to_clean_up(ds(revisionHistoryLimit=10), old, set()) == []


# ----------------------------------------------------------------------------------- backoff


def test_failed_pod_backoff_doubles_to_its_maximum_and_expires() -> None:
    clock = FakeClock(NOW)
    backoff = Backoff(1.0, 4.0, clock=clock)
    assert not backoff.in_backoff("k")
    backoff.next("k")
    assert backoff.in_backoff("k") and backoff.get("k") == 1.0
    clock.step(1.5)
    assert not backoff.in_backoff("k")
    for expected in (2.0, 4.0, 4.0):
        backoff.next("k")
        assert backoff.get("k") == expected
    clock.step(9)  # untouched for more than twice the maximum: starts over
    assert not backoff.in_backoff("k")
    backoff.next("k")
    assert backoff.get("k") == 1.0
