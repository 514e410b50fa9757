"""Tests for server-side apply and managedFields tracking (setpoint.api.merge)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.api.merge.conflicts import ApplyConflict, conflict_status_message
from setpoint.api.merge.fieldpath import (
    FieldSet,
    FieldsV1Error,
    field,
    index_element,
    key_element,
    path_string,
    serialize_path_element,
    value_element,
)
from setpoint.api.merge.goview import go_message_for, go_view
from setpoint.api.merge.merge import LAST_APPLIED_ANNOTATION, ApplyInvalid, apply, track_update
from setpoint.api.merge.typed import compare, root_type
from tests import objects
from tests.merge_oracle import decode_managed_fields, fieldset_of
from tests.objects import configmap, container

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
CONFIGMAP = "io.k8s.api.core.v1.ConfigMap"
POD = "io.k8s.api.core.v1.Pod"
T0, T1, T2, T3 = (f"2024-05-0{day}T10:00:00Z" for day in (1, 2, 3, 4))


def f(*names: str) -> tuple[Any, ...]:
    return tuple(field(n) for n in names)


def deployment(**spec: Any) -> dict[str, Any]:
    """The Deployment ``web`` (labelled ``app: web``) of two ``nginx:1.25`` pods."""
    return objects.deployment(
        "web",
        labels={"app": "web"},
        containers=[container("web", "nginx:1.25")],
        **{"replicas": 2, **spec},
    )


def do_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str = "kubectl",
    *,
    force: bool = False,
    now: str = T1,
    definition: str = DEPLOYMENT,
    api_version: str = "apps/v1",
    **kwargs: Any,
) -> dict[str, Any]:
    return apply(
        live,
        applied,
        manager=manager,
        force=force,
        definition=definition,
        api_version=api_version,
        now=now,
        **kwargs,
    )


def update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    now: str = T2,
    definition: str = DEPLOYMENT,
    api_version: str = "apps/v1",
    **kwargs: Any,
) -> dict[str, Any]:
    return track_update(
        old,
        new,
        manager=manager,
        definition=definition,
        api_version=api_version,
        now=now,
        **kwargs,
    )


def store(obj: dict[str, Any], uid: str = "3f1c", rv: str = "1") -> dict[str, Any]:
    """What the storage layer adds after a write (server metadata and a few defaults)."""
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    meta.setdefault("namespace", "default")
    meta.setdefault("uid", uid)
    meta.setdefault("creationTimestamp", T0)
    meta["resourceVersion"] = rv
    if out.get("kind") == "Deployment":
        spec = out["spec"]
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        )
        for c in spec["template"]["spec"]["containers"]:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("imagePullPolicy", "IfNotPresent")
        out.setdefault("status", {})
    return out


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (e["manager"], e["operation"] + ("/" + e["subresource"] if "subresource" in e else "")): e
        for e in obj["metadata"].get("managedFields", [])
    }


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> FieldSet:
    return FieldSet.from_fieldsv1(entries(obj)[(manager, operation)]["fieldsV1"])


# =========================================================================== FieldSet / FieldsV1

BRIEF_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}}}},
}


def test_fieldsv1_decodes_members_children_and_dot() -> None:
    s = FieldSet.from_fieldsv1(BRIEF_FIELDS)
    web = (*f("spec", "containers"), key_element({"name": "web"}))
    assert sorted(map(path_string, s)) == sorted(
        [
            ".metadata.labels.app",
            '.spec.containers[name="web"]',
            '.spec.containers[name="web"].image',
        ]
    )
    assert s.has(web)
    assert s.has((*web, field("image")))
    assert not s.has(f("spec", "containers"))
    assert not s.has(f("metadata"))
    assert s.to_fieldsv1() == BRIEF_FIELDS
    assert json.dumps(s.to_fieldsv1()) == json.dumps(BRIEF_FIELDS)


def test_fieldsv1_orders_fields_keys_values_indices() -> None:
    s = FieldSet(
        [
            (field("z"),),
            (field("a"), index_element(2)),
            (field("a"), value_element("x")),
            (field("a"), value_element(5)),
            (field("a"), key_element({"port": 80, "protocol": "TCP"})),
            (field("a"), field("b")),
            (field("a"),),
        ]
    )
    doc = s.to_fieldsv1()
    assert list(doc) == ["f:a", "f:z"]
    assert list(doc["f:a"]) == [
        ".",
        "f:b",
        'k:{"port":80,"protocol":"TCP"}',
        "v:5",
        'v:"x"',
        "i:2",
    ]
    assert FieldSet.from_fieldsv1(json.dumps(doc)) == s


def test_path_elements_serialize_like_go() -> None:
    assert serialize_path_element(key_element({"b": 1, "a": "x<y"})) == 'k:{"a":"x\\u003cy","b":1}'
    assert serialize_path_element(value_element(True)) == "v:true"
    assert serialize_path_element(value_element(1.0)) == "v:1"
    assert serialize_path_element(value_element(1.5e-7)) == "v:1.5e-7"
    assert value_element(1) == value_element(1.0)
    assert value_element(1) != value_element(True)


def test_path_strings_match_kubernetes_conflict_output() -> None:
    path = (
        *f("spec", "template", "spec", "containers"),
        key_element({"name": "nginx"}),
        *f("ports"),
        key_element({"containerPort": 80, "protocol": "TCP"}),
        field("hostPort"),
    )
    assert path_string(path) == (
        '.spec.template.spec.containers[name="nginx"].ports'
        '[containerPort=80,protocol="TCP"].hostPort'
    )
    assert path_string((*f("metadata", "finalizers"), value_element("a/b"))) == (
        '.metadata.finalizers[="a/b"]'
    )


def test_set_algebra() -> None:
    a = FieldSet([f("a", "b"), f("a", "c"), f("a"), f("d")])
    b = FieldSet([f("a", "c"), f("d"), f("e")])
    assert a.union(b) == FieldSet([f("a", "b"), f("a", "c"), f("a"), f("d"), f("e")])
    assert a.intersection(b) == FieldSet([f("a", "c"), f("d")])
    assert a.difference(b) == FieldSet([f("a", "b"), f("a")])
    # plain difference: a member does not remove paths below it; recursive difference does
    assert FieldSet([f("x", "y")]).difference(FieldSet([f("x")])) == FieldSet([f("x", "y")])
    assert FieldSet([f("x", "y"), f("z")]).recursive_difference(FieldSet([f("x")])) == FieldSet(
        [f("z")]
    )
    assert a.difference(a).empty()
    assert FieldSet([f("a", "b")]).is_subset(a)
    assert not a.is_subset(b)
    assert len(a) == 4
    assert f("a", "b") in a


def test_fieldsv1_errors_and_unknown_prefixes() -> None:
    assert FieldSet.from_fieldsv1({"x:future": {}, "f:a": {}}) == FieldSet([f("a")])
    assert FieldSet.from_fieldsv1({"f:a": {"q:only-unknown": {}}}) == FieldSet([f("a")])
    assert FieldSet.from_fieldsv1(None).empty()
    with pytest.raises(FieldsV1Error):
        FieldSet.from_fieldsv1({"fa": {}})
    with pytest.raises(FieldsV1Error):
        FieldSet.from_fieldsv1({"k:[1]": {}})
    with pytest.raises(FieldsV1Error):
        FieldSet.from_fieldsv1("[]")


_names = st.text(alphabet="abcdefgh-./", min_size=1, max_size=6)
_scalars = st.one_of(
    st.integers(-5, 5), st.text(alphabet="xyz<&", max_size=3), st.booleans(), st.none()
)
_elements = st.one_of(
    _names.map(field),
    st.dictionaries(_names, st.one_of(st.integers(0, 99), _names), min_size=1, max_size=2).map(
        key_element
    ),
    _scalars.map(value_element),
    st.integers(0, 20).map(index_element),
)
_paths = st.lists(_elements, min_size=1, max_size=4).map(tuple)
_sets = st.lists(_paths, max_size=12).map(FieldSet)


@given(_sets)
def test_fieldsets_round_trip_through_fieldsv1(s: FieldSet) -> None:
    doc = s.to_fieldsv1()
    assert FieldSet.from_fieldsv1(doc) == s
    assert FieldSet.from_fieldsv1(json.dumps(doc).encode()) == s
    assert FieldSet.from_fieldsv1(doc).to_fieldsv1() == doc
    assert FieldSet(list(s)) == s


@given(_sets, _sets)
def test_set_algebra_laws(a: FieldSet, b: FieldSet) -> None:
    union = a.union(b)
    assert a.is_subset(union) and b.is_subset(union)
    assert a.intersection(b).is_subset(a)
    assert a.difference(b).union(a.intersection(b)) == a
    assert a.difference(b).intersection(b).empty()
    assert set(union) == set(a) | set(b)
    assert set(a.difference(b)) == set(a) - set(b)
    assert set(a.intersection(b)) == set(a) & set(b)


# =========================================================================== merge order

# structured-merge-diff's own merge cases (typed/merge_test.go): items of associative lists keep
# the live order unless the applied configuration reorders the items it shares with it
_SET_MERGES = [
    (["a", "b", "c"], ["a", "b"], ["a", "b", "c"]),
    (["a", "b", "c"], [], ["a", "b", "c"]),
    (["a", "b"], ["b", "a"], ["b", "a"]),
    (["a", "b", "c"], ["c", "d", "e", "f"], ["a", "b", "c", "d", "e", "f"]),
    (["a", "b", "c", "g", "f"], ["c", "d", "e", "f"], ["a", "b", "c", "g", "d", "e", "f"]),
    (["c", "d", "e", "f"], ["a", "c", "e"], ["a", "c", "d", "e", "f"]),
    (["c", "a", "g", "f"], ["c", "f", "a", "g"], ["c", "f", "a", "g"]),
    (["a", "b", "c", "d"], ["d", "e", "f", "a"], ["b", "c", "d", "e", "f", "a"]),
    (
        list("abcdefghij"),
        ["1", "b", "2", "h", "3", "e", "4", "k", "l"],
        ["a", "1", "b", "c", "d", "f", "g", "2", "h", "i", "j", "3", "e", "4", "k", "l"],
    ),
    ([True], [False], [True, False]),
    ([1, 2, 3.14159], [1, 2, 3], [1, 2, 3.14159, 3]),
]


@pytest.mark.parametrize(("live", "applied", "merged"), _SET_MERGES)
def test_set_merge_order_matches_structured_merge_diff(
    live: list[Any], applied: list[Any], merged: list[Any]
) -> None:
    kw: dict[str, Any] = {"definition": CONFIGMAP, "api_version": "v1"}
    base = configmap("c")
    first = do_apply(None, {**base, "metadata": {"name": "c", "finalizers": live}}, "one", **kw)
    second = {**base, "metadata": {"name": "c", "finalizers": applied}}
    assert do_apply(first, second, "two", **kw)["metadata"]["finalizers"] == merged


def test_map_list_merge_order_matches_structured_merge_diff() -> None:
    def pod(*names: str) -> dict[str, Any]:
        return objects.pod("p", containers=[container(n, "i") for n in names])

    kw: dict[str, Any] = {"definition": POD, "api_version": "v1"}
    for live, applied, merged in [
        (["b"], ["a", "b", "c"], ["a", "b", "c"]),
        (["a", "b", "c"], ["c", "b"], ["a", "c", "b"]),
        (["a", "b", "c"], ["c", "a"], ["b", "c", "a"]),
    ]:
        first = do_apply(None, pod(*live), "one", **kw)
        out = do_apply(first, pod(*applied), "two", **kw)
        assert [c["name"] for c in out["spec"]["containers"]] == merged


# =========================================================================== fieldset_of


def test_fieldset_of_follows_the_schema() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    obj["spec"]["template"]["spec"]["containers"][0]["args"] = ["a", "b"]
    obj["metadata"]["finalizers"] = ["x/y"]
    assert fieldset_of(obj, DEPLOYMENT).to_fieldsv1() == {
        "f:apiVersion": {},
        "f:kind": {},
        "f:metadata": {"f:finalizers": {'v:"x/y"': {}}, "f:labels": {"f:app": {}}, "f:name": {}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},  # LabelSelector is an atomic struct
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {
                            ".": {},
                            "f:args": {},  # atomic list
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                # protocol is part of the key through its default
                                'k:{"containerPort":80,"protocol":"TCP"}': {
                                    ".": {},
                                    "f:containerPort": {},
                                }
                            },
                            "f:resources": {},  # empty structs are owned themselves
                        }
                    }
                },
            },
        },
    }


# =========================================================================== apply


def test_apply_creates_with_an_apply_entry() -> None:
    cfg = deployment()
    obj = do_apply(None, cfg, now=T0)
    mf = obj["metadata"].pop("managedFields")
    assert obj == cfg
    assert mf == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}
                            }
                        },
                    },
                },
            },
        }
    ]


def test_apply_does_not_mutate_or_alias_its_inputs() -> None:
    cfg = deployment()
    before = copy.deepcopy(cfg)
    live = store(do_apply(None, cfg, now=T0))
    live_before = copy.deepcopy(live)
    out = do_apply(live, deployment(replicas=5))
    out["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    out["metadata"]["labels"]["x"] = "y"
    assert cfg == before
    assert live == live_before


def test_reapply_is_a_no_op() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    again = do_apply(live, deployment(), now=T3)
    assert again == live  # same object, same managedFields, the time included
    # still a no-op with the configuration's keys in another order
    shuffled = json.loads(json.dumps(deployment(), sort_keys=True))
    assert do_apply(live, shuffled, now=T3) == live


def test_reapply_with_a_change_updates_the_time_only_for_the_applier() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    out = do_apply(live, deployment(replicas=3), now=T2)
    assert out["spec"]["replicas"] == 3
    (entry,) = out["metadata"]["managedFields"]
    assert entry["time"] == T2
    assert entry["fieldsV1"] == live["metadata"]["managedFields"][0]["fieldsV1"]


def test_removing_a_field_from_the_config_removes_it() -> None:
    cfg = deployment()
    cfg["metadata"]["labels"]["tier"] = "front"
    cfg["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    cfg["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox"})
    live = store(do_apply(None, cfg, now=T0))

    smaller = deployment()
    smaller["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "B", "value": "2"}]
    out = do_apply(live, smaller, now=T1)
    assert out["metadata"]["labels"] == {"app": "web"}
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web"]
    assert containers[0]["env"] == [{"name": "B", "value": "2"}]
    # fields nobody applied (defaults, server metadata) stay
    assert containers[0]["imagePullPolicy"] == "IfNotPresent"
    assert out["spec"]["strategy"] == live["spec"]["strategy"]
    assert out["metadata"]["uid"] == live["metadata"]["uid"]
    assert out["status"] == {}
    assert owned(out, "kubectl") == fieldset_of(smaller, DEPLOYMENT).difference(
        FieldSet([f("apiVersion"), f("kind"), f("metadata", "name")])
    )

    # dropping the whole labels map removes it
    nolabels = deployment()
    del nolabels["metadata"]["labels"]
    assert "labels" not in do_apply(out, nolabels)["metadata"]


def test_pruning_leaves_unowned_neighbours_alone() -> None:
    cfg = deployment()
    cfg["metadata"]["labels"] = {"mine": "1", "keep": "2"}
    live = store(do_apply(None, cfg, now=T0))
    live["metadata"]["labels"]["defaulted"] = "x"  # set by the server, owned by nobody
    fewer = deployment()
    fewer["metadata"]["labels"] = {"keep": "2"}
    out = do_apply(live, fewer, now=T1)
    assert out["metadata"]["labels"] == {"keep": "2", "defaulted": "x"}
    # withdrawing the whole map removes it, unowned keys included: the applier applied the
    # labels field itself and nobody else owns anything in it (structured-merge-diff's
    # EnsureNamedFieldsAreMembers)
    none = deployment()
    del none["metadata"]["labels"]
    assert "labels" not in do_apply(store(out, rv="2"), none, now=T2)["metadata"]


def test_port_keys_use_the_protocol_default() -> None:
    cfg = deployment()
    cfg["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    live = store(do_apply(None, cfg, now=T0))
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    cfg2 = copy.deepcopy(cfg)
    cfg2["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = "http"
    out = do_apply(live, cfg2, now=T1)
    assert out["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}
    ]


def test_removed_field_stays_when_another_manager_owns_it() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    shared = do_apply(
        live,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
        },
        "other",
        now=T1,
    )
    without = deployment()
    del without["metadata"]["labels"]
    out = do_apply(shared, without, now=T2)
    assert out["metadata"]["labels"] == {"app": "web"}
    assert owned(out, "other") == FieldSet([f("metadata", "labels", "app")])
    assert not owned(out, "kubectl").has(f("metadata", "labels", "app"))


def test_two_managers_share_a_field_set_to_the_same_value() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    scale = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2},
    }
    out = do_apply(live, scale, "hpa", now=T1)
    assert out["spec"] == live["spec"]
    assert owned(out, "hpa") == FieldSet([f("spec", "replicas")])
    assert owned(out, "kubectl").has(f("spec", "replicas"))
    # the object did not change, so the new entry carries no time (as in Kubernetes)
    assert "time" not in entries(out)[("hpa", "Apply")]
    # now either may change it only by force
    with pytest.raises(ApplyConflict):
        do_apply(out, {**scale, "spec": {"replicas": 4}}, "hpa")


def test_conflict_with_another_applier() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    with pytest.raises(ApplyConflict) as info:
        do_apply(
            live,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": 5},
            },
            "other",
        )
    err = info.value
    assert err.conflicts == [('"kubectl"', ".spec.replicas")]
    assert str(err) == 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas'
    assert err.causes == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl"',
            "field": ".spec.replicas",
        }
    ]
    assert err.details[0].manager == "kubectl"
    assert err.details[0].operation == "Apply"


def test_conflict_with_an_updater_names_its_version() -> None:
    created = update(None, deployment(), "kubectl-client-side-apply", now=T0)
    live = store(created)
    with pytest.raises(ApplyConflict) as info:
        do_apply(
            live,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": 3},
            },
            "other",
        )
    assert str(info.value) == (
        "Apply failed with 1 conflict: conflict with "
        '"kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )
    assert (
        info.value.causes[0]["message"] == 'conflict with "kubectl-client-side-apply" using apps/v1'
    )


def test_several_conflicts_are_grouped_by_manager() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    live = store(
        update(
            live,
            {**copy.deepcopy(live), "metadata": {**live["metadata"], "annotations": {"a": "1"}}},
            "editor",
        ),
        rv="2",
    )
    cfg = deployment(replicas=7)
    cfg["metadata"]["labels"]["app"] = "other"
    cfg["metadata"]["annotations"] = {"a": "2"}
    with pytest.raises(ApplyConflict) as info:
        do_apply(live, cfg, "other")
    assert str(info.value) == (
        "Apply failed with 3 conflicts: "
        'conflicts with "editor" using apps/v1:\n'
        "- .metadata.annotations.a\n"
        'conflicts with "kubectl":\n'
        "- .metadata.labels.app\n"
        "- .spec.replicas"
    )
    assert conflict_status_message(info.value.conflicts) == str(info.value)


def test_force_moves_ownership() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    cfg = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 5},
    }
    out = do_apply(live, cfg, "other", force=True, now=T2)
    assert out["spec"]["replicas"] == 5
    assert owned(out, "other") == FieldSet([f("spec", "replicas")])
    assert not owned(out, "kubectl").has(f("spec", "replicas"))
    assert entries(out)[("other", "Apply")]["time"] == T2
    assert entries(out)[("kubectl", "Apply")]["time"] == T0
    # the former owner now conflicts when it re-applies its old value
    with pytest.raises(ApplyConflict) as info:
        do_apply(store(out, rv="2"), deployment())
    assert info.value.conflicts == [('"other"', ".spec.replicas")]
    # ...and re-applying without the field keeps the forced value
    without = deployment()
    del without["spec"]["replicas"]
    assert do_apply(store(out, rv="2"), without)["spec"]["replicas"] == 5


def test_update_after_apply_takes_the_changed_fields() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 4
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    out = update(live, edited, "kubectl-edit", now=T2)
    assert out["spec"] == edited["spec"]
    assert owned(out, "kubectl-edit", "Update") == FieldSet(
        [
            f("spec", "replicas"),
            (
                *f("spec", "template", "spec", "containers"),
                key_element({"name": "web"}),
                field("image"),
            ),
        ]
    )
    kubectl = owned(out, "kubectl")
    assert not kubectl.has(f("spec", "replicas"))
    assert kubectl.has(f("metadata", "labels", "app"))
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["kubectl", "kubectl-edit"]
    edit = entries(out)[("kubectl-edit", "Update")]
    assert (edit["apiVersion"], edit["time"], edit["fieldsType"]) == ("apps/v1", T2, "FieldsV1")

    # re-applying the old configuration now conflicts with the editor
    with pytest.raises(ApplyConflict) as info:
        do_apply(store(out, rv="2"), deployment())
    assert {m for m, _ in info.value.conflicts} == {'"kubectl-edit" using apps/v1'}


def test_update_that_changes_nothing_keeps_entries_and_times() -> None:
    live = store(update(None, deployment(), "kubectl-create", now=T0))
    same = copy.deepcopy(live)
    same["status"] = {"replicas": 2}  # status is not tracked for main-resource writes
    out = update(live, same, "kubectl-edit", now=T3)
    assert out["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_create_records_what_kubectl_create_sets() -> None:
    obj = store(deployment())
    del obj["metadata"]["resourceVersion"]
    out = update(None, obj, "kubectl-create", now=T0)
    (entry,) = out["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl-create" and entry["operation"] == "Update"
    # as Kubernetes writes it: maps and list items added own themselves (".") while structs that
    # always exist in Go (spec, template, strategy, a container's resources) do not
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:progressDeadlineSeconds": {},
            "f:replicas": {},
            "f:revisionHistoryLimit": {},
            "f:selector": {},
            "f:strategy": {
                "f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                "f:type": {},
            },
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"web"}': {
                            ".": {},
                            "f:image": {},
                            "f:imagePullPolicy": {},
                            "f:name": {},
                            "f:resources": {},
                            "f:terminationMessagePath": {},
                        }
                    }
                },
            },
        },
    }


def test_list_map_items_merge_by_key_across_appliers() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    sidecar: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluentbit"}]}}},
    }
    out = do_apply(live, sidecar, "injector", now=T1)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "log"]
    assert containers[0]["image"] == "nginx:1.25"
    web = (*f("spec", "template", "spec", "containers"), key_element({"name": "web"}))
    log = (*f("spec", "template", "spec", "containers"), key_element({"name": "log"}))
    assert owned(out, "injector") == FieldSet([log, (*log, field("name")), (*log, field("image"))])
    assert owned(out, "kubectl").has(web) and not owned(out, "kubectl").has(log)

    # kubectl re-applies its single container: the sidecar survives, it is not kubectl's
    again = do_apply(store(out, rv="2"), deployment(), now=T2)
    assert [c["name"] for c in again["spec"]["template"]["spec"]["containers"]] == ["web", "log"]
    # the injector withdraws its container: it goes
    gone = copy.deepcopy(sidecar)
    gone["spec"]["template"]["spec"]["containers"] = []
    final = do_apply(store(again, rv="3"), gone, "injector", now=T3)
    assert [c["name"] for c in final["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert ("injector", "Apply") not in entries(final)


def test_both_appliers_own_a_shared_container_field() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}},
    }
    out = do_apply(live, other, "other", now=T1)
    image = (
        *f("spec", "template", "spec", "containers"),
        key_element({"name": "web"}),
        field("image"),
    )
    assert owned(out, "other").has(image) and owned(out, "kubectl").has(image)
    with pytest.raises(ApplyConflict) as info:
        do_apply(
            out, deployment(template={"spec": {"containers": [{"name": "web", "image": "x"}]}})
        )
    assert info.value.conflicts == [('"other"', '.spec.template.spec.containers[name="web"].image')]


def test_set_lists_merge_by_value() -> None:
    cm = configmap("c", metadata={"finalizers": ["a/one"]})
    kw: dict[str, Any] = {"definition": CONFIGMAP, "api_version": "v1"}
    live = store(do_apply(None, cm, "a", now=T0, **kw))
    other = configmap("c", metadata={"finalizers": ["b/two", "a/one"]})
    out = do_apply(live, other, "b", now=T1, **kw)
    assert out["metadata"]["finalizers"] == ["b/two", "a/one"]
    fin = f("metadata", "finalizers")
    assert owned(out, "b") == FieldSet(
        [(*fin, value_element("b/two")), (*fin, value_element("a/one"))]
    )
    # a drops its finalizer: b still has it, so it stays
    out2 = do_apply(store(out, rv="2"), {**cm, "metadata": {"name": "c"}}, "a", now=T2, **kw)
    assert out2["metadata"]["finalizers"] == ["b/two", "a/one"]
    # b drops both: they go
    out3 = do_apply(store(out2, rv="3"), {**cm, "metadata": {"name": "c"}}, "b", now=T3, **kw)
    assert "finalizers" not in out3["metadata"]
    assert "managedFields" not in out3["metadata"]  # no entry owns anything any more


def test_atomic_fields_are_replaced_whole() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    cfg = deployment(selector={"matchLabels": {"app": "web", "v": "2"}})
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["a", "b"]
    out = do_apply(live, cfg, now=T1)
    out = do_apply(store(out, rv="2"), deployment(selector={"matchExpressions": []}), now=T2)
    assert out["spec"]["selector"] == {"matchExpressions": []}
    assert "args" not in out["spec"]["template"]["spec"]["containers"][0]


def test_configmap_data_keys_are_granular() -> None:
    kw: dict[str, Any] = {"definition": CONFIGMAP, "api_version": "v1"}
    base = configmap("c")
    live = store(do_apply(None, {**base, "data": {"a": "1"}}, "one", now=T0, **kw))
    out = do_apply(live, {**base, "data": {"b": "2"}}, "two", now=T1, **kw)
    assert out["data"] == {"a": "1", "b": "2"}
    assert owned(out, "two") == FieldSet([f("data", "b")])
    assert owned(out, "one") == FieldSet([f("data", "a")])


def test_status_is_neither_owned_nor_conflicting_for_main_resource_writes() -> None:
    cfg = deployment()
    cfg["status"] = {"replicas": 9}
    out = do_apply(None, cfg, now=T0)
    assert not owned(out, "kubectl").has(f("status", "replicas"))


def test_status_subresource_entries_are_kept_apart() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    with_status = copy.deepcopy(live)
    with_status["status"] = {"replicas": 2, "readyReplicas": 2}
    with_status["spec"]["replicas"] = 99  # spec changes through status are not tracked
    out = update(live, with_status, "kube-controller-manager", subresource="status", now=T1)
    e = entries(out)[("kube-controller-manager", "Update/status")]
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}
    assert owned(out, "kubectl").has(f("spec", "replicas"))
    # a main-resource update by the same manager is a separate entry
    later = copy.deepcopy(out)
    later["metadata"]["annotations"] = {"note": "x"}
    out2 = update(store(out, rv="2"), later, "kube-controller-manager", now=T2)
    assert set(entries(out2)) == {
        ("kubectl", "Apply"),
        ("kube-controller-manager", "Update/status"),
        ("kube-controller-manager", "Update"),
    }


def test_untracked_objects_stay_untracked_until_applied() -> None:
    live = store(deployment())
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 3
    out = update(live, edited, "kubectl-edit")
    assert "managedFields" not in out["metadata"]
    # the first apply hands what exists to "before-first-apply"
    applied = do_apply(
        out,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3},
        },
        "m",
        now=T3,
    )
    assert set(entries(applied)) == {("m", "Apply"), ("before-first-apply", "Update")}
    before = entries(applied)[("before-first-apply", "Update")]
    assert before["time"] == T3
    assert FieldSet.from_fieldsv1(before["fieldsV1"]).has(f("spec", "replicas"))
    with pytest.raises(ApplyConflict) as info:
        do_apply(
            out,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": 4},
            },
            "m",
        )
    assert str(info.value) == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: '
        ".spec.replicas"
    )


def test_request_managed_fields_are_honoured_and_can_be_reset() -> None:
    live = store(do_apply(None, deployment(), now=T0))
    # a PUT without managedFields keeps the stored ones
    new = copy.deepcopy(live)
    del new["metadata"]["managedFields"]
    assert update(live, new, "x")["metadata"]["managedFields"] == live["metadata"]["managedFields"]
    # garbage falls back to the stored ones
    bad = copy.deepcopy(live)
    bad["metadata"]["managedFields"] = [{"manager": "x", "operation": "Delete"}]
    assert update(live, bad, "x")["metadata"]["managedFields"] == live["metadata"]["managedFields"]
    # [] and [{}] clear them (and, on an update, tracking stops)
    resets: list[list[Any]] = [[], [{}]]
    for reset in resets:
        cleared = copy.deepcopy(live)
        cleared["metadata"]["managedFields"] = reset
        assert "managedFields" not in update(live, cleared, "x")["metadata"]
    # a client may rewrite them
    custom = copy.deepcopy(live)
    custom["metadata"]["managedFields"] = [
        {
            "manager": "me",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]
    out = update(live, custom, "x")
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["me"]


def test_decode_managed_fields() -> None:
    live = do_apply(None, deployment(), now=T0)
    decoded = decode_managed_fields(live["metadata"]["managedFields"])
    assert list(decoded) == [("kubectl", "Apply", "apps/v1", "")]
    with pytest.raises(ValueError, match="operation must be `Apply` or `Update`"):
        decode_managed_fields([{"manager": "x", "operation": "Patch", "apiVersion": "v1"}])
    with pytest.raises(ValueError, match="missing fieldsType"):
        decode_managed_fields([{"manager": "x", "operation": "Update", "apiVersion": "v1"}])


def test_entries_sort_by_operation_then_time_then_manager() -> None:
    live = store(update(None, deployment(), "zeta-create", now=T0))
    edited = copy.deepcopy(live)
    edited["metadata"]["annotations"] = {"a": "1"}
    live = store(update(live, edited, "alpha", now=T2), rv="2")
    live = do_apply(
        live,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"extra": "1"}},
        },
        "zz-apply",
        now=T3,
    )
    assert [(e["operation"], e["manager"]) for e in live["metadata"]["managedFields"]] == [
        ("Apply", "zz-apply"),
        ("Update", "zeta-create"),
        ("Update", "alpha"),
    ]
    assert list(live["metadata"]["managedFields"][0]) == [
        "manager",
        "operation",
        "apiVersion",
        "time",
        "fieldsType",
        "fieldsV1",
    ]


def test_update_managers_are_capped_into_ancient_changes() -> None:
    obj = store(update(None, deployment(), "creator", now="2024-05-01T00:00:00Z"))
    for i in range(11):
        new = copy.deepcopy(obj)
        new["metadata"].setdefault("annotations", {})[f"k{i}"] = "v"
        obj = store(
            update(obj, new, f"writer-{i:02d}", now=f"2024-05-02T00:00:{i:02d}Z"), rv=str(i + 2)
        )
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers
    assert "creator" not in managers and "writer-00" not in managers and "writer-01" not in managers
    ancient = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == "ancient-changes")
    s = FieldSet.from_fieldsv1(ancient["fieldsV1"])
    assert s.has(f("spec", "replicas")) and s.has(f("metadata", "annotations", "k0"))


def test_kubectl_upgrades_from_client_side_apply() -> None:
    cfg = deployment()
    live = copy.deepcopy(cfg)
    live["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: json.dumps(cfg) + "\n"}
    live = store(update(None, live, "kubectl-client-side-apply", now=T0))
    # a different manager conflicts with the client-side applier...
    changed = deployment(replicas=3)
    with pytest.raises(ApplyConflict) as info:
        do_apply(live, changed, "other")
    assert info.value.conflicts == [('"kubectl-client-side-apply" using apps/v1', ".spec.replicas")]
    # ...but kubectl itself takes over what its last-applied annotation accounts for
    out = do_apply(live, changed, "kubectl", now=T1)
    assert out["spec"]["replicas"] == 3
    assert owned(out, "kubectl").has(f("spec", "replicas"))
    assert not owned(out, "kubectl-client-side-apply", "Update").has(f("spec", "replicas"))
    assert entries(out)[("kubectl", "Apply")]["time"] == T1
    # and keeps the annotation in step with the applied configuration
    annotation = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
    assert annotation.endswith("}\n")
    assert json.loads(annotation) == changed
    # fields whose live value differs from last-applied are still conflicts
    drifted = copy.deepcopy(live)
    drifted["spec"]["replicas"] = 7
    drifted = store(update(live, drifted, "kubectl-client-side-apply", now=T2), rv="2")
    with pytest.raises(ApplyConflict):
        do_apply(drifted, deployment(replicas=4), "kubectl")


def test_invalid_apply_requests() -> None:
    with pytest.raises(ApplyInvalid, match=r"metadata\.managedFields must be nil") as info:
        cfg = deployment()
        cfg["metadata"]["managedFields"] = []
        do_apply(None, cfg)
    assert info.value.code == 400
    with pytest.raises(ApplyInvalid, match=r"invalid object type: apps/v1, Kind=ReplicaSet"):
        do_apply(None, {**deployment(), "kind": "ReplicaSet"})
    with pytest.raises(ApplyInvalid, match=r"invalid object type: /v1, Kind=Deployment"):
        do_apply(None, {**deployment(), "apiVersion": "v1"})
    dup = deployment()
    dup["spec"]["template"]["spec"]["containers"].append({"name": "web", "image": "x"})
    with pytest.raises(ApplyInvalid, match=r'duplicate entries for key \[name="web"\]') as info:
        do_apply(None, dup)
    assert info.value.code == 500


def test_duplicate_live_items_survive_tracking() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    pod = objects.pod("p", containers=[container("c", "i", env=env)])
    kw: dict[str, Any] = {"definition": POD, "api_version": "v1"}
    out = update(None, pod, "kubectl-create", **kw)
    env = FieldSet.from_fieldsv1(out["metadata"]["managedFields"][0]["fieldsV1"])
    c = (*f("spec", "containers"), key_element({"name": "c"}))
    assert env.has((*c, field("env"), key_element({"name": "A"})))
    live = store(out)
    applied = do_apply(
        live,
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}},
        "labeller",
        **kw,
    )
    assert applied["spec"]["containers"][0]["env"] == pod["spec"]["containers"][0]["env"]


# =========================================================================== properties

_label_keys = st.text(alphabet="abcxyz", min_size=1, max_size=4)
_label_values = st.text(alphabet="abc123", max_size=4)
_maps = st.dictionaries(_label_keys, _label_values, max_size=4)


@st.composite
def configmaps(draw: st.DrawFn) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in ("labels", "annotations"):
        value = draw(st.none() | _maps)
        if value is not None:
            meta[key] = value
    finalizers = draw(st.lists(_label_keys, unique=True, max_size=3))
    if finalizers:
        meta["finalizers"] = finalizers
    obj = configmap("c", metadata=meta)
    data = draw(st.none() | _maps)
    if data is not None:
        obj["data"] = data
    return obj


@st.composite
def deployments(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(_label_keys, min_size=1, max_size=3, unique=True))
    containers = []
    for name in names:
        c: dict[str, Any] = {"name": name, "image": draw(_label_values)}
        ports = draw(st.lists(st.integers(1, 5), unique=True, max_size=2))
        if ports:
            c["ports"] = [{"containerPort": p} for p in ports]
        env = draw(st.lists(_label_keys, unique=True, max_size=2))
        if env:
            c["env"] = [{"name": e, "value": draw(_label_values)} for e in env]
        if draw(st.booleans()):
            c["args"] = draw(st.lists(_label_values, max_size=2))
        containers.append(c)
    obj = deployment(
        template={"metadata": {"labels": draw(_maps)}, "spec": {"containers": containers}}
    )
    if draw(st.booleans()):
        obj["spec"]["replicas"] = draw(st.integers(0, 5))
    obj["metadata"]["labels"] = draw(_maps)
    return obj


_objects = st.one_of(
    configmaps().map(lambda o: (o, CONFIGMAP, "v1")),
    deployments().map(lambda o: (o, DEPLOYMENT, "apps/v1")),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(_objects)
def test_applied_object_contains_the_configuration(case: tuple[dict[str, Any], str, str]) -> None:
    cfg, definition, version = case
    out = apply(
        None, cfg, manager="m", force=False, definition=definition, api_version=version, now=T0
    )
    assert fieldset_of(cfg, definition).is_subset(fieldset_of(out, definition))
    live = store(out)
    assert (
        apply(
            live, cfg, manager="m", force=False, definition=definition, api_version=version, now=T1
        )
        == live
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    _objects.flatmap(
        lambda c: st.tuples(st.just(c), configmaps() if c[1] == CONFIGMAP else deployments())
    )
)
def test_reapplying_a_new_configuration_leaves_exactly_it(
    cases: tuple[tuple[dict[str, Any], str, str], dict[str, Any]],
) -> None:
    (first, definition, version), second = cases
    kw: dict[str, Any] = {
        "manager": "m",
        "force": False,
        "definition": definition,
        "api_version": version,
    }
    live = apply(None, first, now=T0, **kw)
    out = apply(live, second, now=T1, **kw)
    # with a single manager, the result is exactly the new configuration (up to empty maps,
    # which pruning turns into nulls, as the apiserver's does)
    out["metadata"].pop("managedFields", None)
    assert fieldset_of(_without_empty_maps(out), definition) == fieldset_of(
        _without_empty_maps(second), definition
    )


def _without_empty_maps(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _without_empty_maps(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v != {} and v is not None}
    if isinstance(value, list):
        return [_without_empty_maps(v) for v in value]
    return value


# ----------------------------------------------------------- Go views, lazily

_POD_VARIANTS: dict[str, list[Any]] = {
    "metadata": [
        {"name": "p", "labels": {"a": "1"}},
        {"name": "p", "labels": {"a": "2"}, "ownerReferences": [{"uid": "u", "name": "o"}]},
        {"name": "p", "annotations": None},
    ],
    "spec": [
        {"containers": [{"name": "c", "image": "i"}]},
        {"containers": [{"name": "c", "image": "j", "resources": {}}], "nodeName": "n"},
        {
            "containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 80}], "env": None},
                {"name": "d", "image": "i", "securityContext": {"privileged": True}},
            ],
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "securityContext": {},
        },
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        None,
    ],
    "status": [
        {"phase": "Pending"},
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None}],
            "containerStatuses": [{"name": "c", "state": {"running": {}}, "lastState": {}}],
        },
        {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled"}]},
        {},
    ],
}
_pods = st.fixed_dictionaries(
    {},
    optional={key: st.sampled_from(values) for key, values in _POD_VARIANTS.items()},
)


_DEPLOYMENT_VARIANTS: dict[str, list[Any]] = {
    "metadata": [{"name": "d"}, {"name": "d", "labels": {"app": "x"}}],
    "spec": [
        {},  # its Go view is not empty: template, strategy and selector structs appear
        {"replicas": 2, "template": {}},
        {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
            "strategy": {"rollingUpdate": {"maxSurge": 1}},
        },
        None,
    ],
    "status": [{}, {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}],
}
_deployments = st.fixed_dictionaries(
    {},
    optional={key: st.sampled_from(values) for key, values in _DEPLOYMENT_VARIANTS.items()},
)


_JOB_VARIANTS: dict[str, list[Any]] = {
    "spec": [
        {},
        # empty pointers whose Go views are not empty ({"rules": null})
        {"podFailurePolicy": {}},
        {"successPolicy": {}, "backoffLimit": 3},
        {"podFailurePolicy": {"rules": [{"action": "Ignore", "onExitCodes": {}}]}},
    ],
}
_jobs = st.fixed_dictionaries(
    {}, optional={key: st.sampled_from(values) for key, values in _JOB_VARIANTS.items()}
)


def _diff_both_ways(definition: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    t = root_type(definition)
    message = go_message_for(definition)
    assert message
    eager = compare(t, go_view(definition, old), go_view(definition, new))
    lazy = compare(t, old, new, message=message)
    assert lazy == eager


@given(_pods, _pods)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_lazy_go_views_diff_like_whole_go_views(old: dict[str, Any], new: dict[str, Any]) -> None:
    _diff_both_ways(POD, old, new)


@given(_deployments, _deployments)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_lazy_go_views_of_deployments(old: dict[str, Any], new: dict[str, Any]) -> None:
    _diff_both_ways(DEPLOYMENT, old, new)


def test_fieldsv1_documents_are_never_shared() -> None:
    fields = FieldSet([f("spec", "replicas"), f("metadata", "labels", "app")])
    first = fields.to_fieldsv1()
    first["f:spec"]["f:changed"] = {}
    assert fields.to_fieldsv1() == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:replicas": {}},
    }
    assert FieldSet([f("spec", "replicas"), f("metadata", "labels", "app")]) == fields


@given(_jobs, _jobs)
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_lazy_go_views_of_jobs(old: dict[str, Any], new: dict[str, Any]) -> None:
    _diff_both_ways("io.k8s.api.batch.v1.Job", old, new)
