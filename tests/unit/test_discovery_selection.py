"""Which resources the namespace controller empties and the garbage collector follows, chosen
from what discovery reports (no hand lists)."""

from __future__ import annotations

from typing import Any

from setpoint.client.api import CONFIGMAPS, NODES, PODS, Resource
from setpoint.client.discovery import (
    APIResource,
    Discovered,
    GroupVersions,
    group_versions,
    preferred_resources,
)
from setpoint.controllers.garbagecollector import followed_resources, resources_to_follow
from setpoint.controllers.namespace import (
    DISCOVERY_FAILURE,
    ContentTotals,
    deletion_conditions,
    discovery_failure,
    namespace_content,
)

Obj = dict[str, Any]
ALL_VERBS = frozenset(
    {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)
WIDGETS = Resource("example.com", "v1", "widgets", True, "Widget")
BINDINGS = Resource("", "v1", "bindings", True, "Binding")
CORE_EVENTS = Resource("", "v1", "events", True, "Event")
NEW_EVENTS = Resource("events.k8s.io", "v1", "events", True, "Event")


def served(resource: Resource, *verbs: str) -> APIResource:
    return APIResource(resource, frozenset(verbs) if verbs else ALL_VERBS)


def entry(name: str, kind: str, *, namespaced: bool = True, verbs: tuple[str, ...] = ()) -> Obj:
    return {"name": name, "kind": kind, "namespaced": namespaced, "verbs": list(verbs)}


# ---------------------------------------------------------------- reading discovery


def test_group_versions_come_from_api_and_apis() -> None:
    found = group_versions(
        {"kind": "APIVersions", "versions": ["v1"]},
        {
            "groups": [
                {
                    "name": "example.com",
                    "versions": [{"version": "v2"}, {"version": "v1"}],
                    "preferredVersion": {"version": "v2"},
                }
            ]
        },
    )
    assert found == [
        GroupVersions("", ["v1"], "v1"),
        GroupVersions("example.com", ["v2", "v1"], "v2"),
    ]


def test_each_resource_is_reported_once_in_its_groups_preferred_version() -> None:
    groups = [GroupVersions("example.com", ["v1", "v2"], "v2")]
    lists = {
        ("example.com", "v1"): {
            "resources": [entry("widgets", "Widget"), entry("gadgets", "Gadget")]
        },
        ("example.com", "v2"): {"resources": [entry("widgets", "Widget")]},
    }
    found = {r.resource.plural: r.resource.version for r in preferred_resources(groups, lists)}
    # widgets: the preferred v2; gadgets: only v1 serves it
    assert found == {"widgets": "v2", "gadgets": "v1"}


def test_subresources_are_not_resources() -> None:
    groups = [GroupVersions("", ["v1"], "v1")]
    lists = {
        ("", "v1"): {
            "resources": [
                entry("pods", "Pod", verbs=("list",)),
                entry("pods/status", "Pod", verbs=("get",)),
                entry("nodes", "Node", namespaced=False, verbs=("list",)),
            ]
        }
    }
    found = preferred_resources(groups, lists)
    assert [r.resource for r in found] == [PODS, NODES]
    assert found[0].verbs == frozenset({"list"})


def test_a_group_version_that_could_not_be_read_is_named_in_the_failure() -> None:
    partial = Discovered((served(PODS),), {"example.com/v1": "503 ServiceUnavailable: down"})
    assert partial.failure_message() == (
        "unable to retrieve the complete list of server APIs: "
        "example.com/v1: 503 ServiceUnavailable: down"
    )


# ------------------------------------------------------------ the namespace controller


def test_namespace_controller_empties_every_listable_deletable_namespaced_resource() -> None:
    discovered = [
        served(PODS),
        served(NODES),  # cluster-scoped: not in a namespace
        served(WIDGETS, "list", "deletecollection"),  # a collection delete is enough
        served(CONFIGMAPS, "list", "delete"),  # so is deleting one by one
        served(BINDINGS, "create"),  # nothing to list or delete
        served(Resource("", "v1", "readonly", True, "R"), "get", "list", "watch"),
    ]
    chosen = [r.resource for r in namespace_content(discovered)]
    assert chosen == [PODS, WIDGETS, CONFIGMAPS]


def test_partial_discovery_is_reported_and_blocks_finalizing() -> None:
    partial = Discovered((served(PODS),), {"example.com/v1": "boom"})
    message = discovery_failure(partial)
    assert message == (
        "Discovery failed for some groups, 1 failing: unable to retrieve the complete list "
        "of server APIs: example.com/v1: boom"
    )
    assert discovery_failure(Discovered((served(PODS),))) is None
    totals = ContentTotals(discovery_error=message)
    assert not totals.empty
    assert deletion_conditions(totals)[DISCOVERY_FAILURE] == ("True", "DiscoveryFailed", message)
    assert deletion_conditions(ContentTotals())[DISCOVERY_FAILURE][0] == "False"


# -------------------------------------------------------------- the garbage collector


def test_collector_follows_what_it_can_list_watch_and_delete_except_events() -> None:
    discovered = [
        served(PODS),
        served(NODES),  # cluster-scoped owners count too
        served(WIDGETS),  # a kind the server started serving later
        served(CORE_EVENTS),
        served(NEW_EVENTS),
        served(CONFIGMAPS, "list", "delete"),  # cannot be watched
        served(BINDINGS, "create"),
    ]
    assert followed_resources(discovered) == [PODS, NODES, WIDGETS]


def test_collector_keeps_following_a_group_it_could_not_read_and_drops_a_removed_one() -> None:
    following = [PODS, WIDGETS, CONFIGMAPS]
    # example.com could not be read: widgets stay; configmaps are no longer served
    discovered = Discovered((served(PODS),), {"example.com/v1": "timeout"})
    assert resources_to_follow(discovered, following) == [PODS, WIDGETS]
