"""Required node affinity as the scheduler and the DaemonSet controller read it, including
``matchFields`` on ``metadata.name`` (how a daemon pod is pinned to its node)."""

from __future__ import annotations

from typing import Any

from setpoint.meta.nodeaffinity import node_selector_term_matches, pod_matches_node
from tests import objects

Obj = dict[str, Any]


def required(*terms: Obj) -> Obj:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def by_name(operator: str, *names: str) -> Obj:
    return {"matchFields": [{"key": "metadata.name", "operator": operator, "values": list(names)}]}


def test_match_fields_select_the_node_by_name() -> None:
    assert pod_matches_node(required(by_name("In", "a")), objects.node("a"))
    assert not pod_matches_node(required(by_name("In", "a")), objects.node("b"))
    assert pod_matches_node(required(by_name("NotIn", "a")), objects.node("b"))


def test_only_metadata_name_is_a_field() -> None:
    term = {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["a"]}]}
    assert not node_selector_term_matches(term, {}, "a")


def test_terms_are_ored_and_their_requirements_anded() -> None:
    zone = {"key": "zone", "operator": "In", "values": ["x"]}
    both = {**by_name("In", "a"), "matchExpressions": [zone]}
    spec = required(both, by_name("In", "c"))
    assert pod_matches_node(spec, objects.node("a", labels={"zone": "x"}))
    assert not pod_matches_node(spec, objects.node("a", labels={"zone": "y"}))
    assert pod_matches_node(spec, objects.node("c"))


def test_empty_terms_match_nothing_and_no_affinity_matches_all() -> None:
    assert not pod_matches_node(required({}), objects.node("a"))
    assert not pod_matches_node(required(), objects.node("a"))
    assert pod_matches_node({}, objects.node("a"))


def test_node_selector_must_hold_as_well() -> None:
    spec = {**required(by_name("In", "a")), "nodeSelector": {"disk": "ssd"}}
    assert not pod_matches_node(spec, objects.node("a"))
    assert pod_matches_node(spec, objects.node("a", labels={"disk": "ssd"}))
