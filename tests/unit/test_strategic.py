"""Tests for setpoint.api.merge.strategic: Kubernetes' strategic merge patch.

Besides hand-written expectations, two oracles keep the implementation honest: kubectl's
own Go implementation (``kubectl patch --local --type strategic`` applies a patch without a
server), and patches captured from real kubectl runs (``kubectl edit`` computes two-way
patches, ``kubectl apply`` three-way ones).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.api.merge.jsonpatch import PatchError
from setpoint.api.merge.strategic import StrategicPatchError, apply_strategic_merge_patch
from tests import objects
from tests.merge_oracle import create_three_way_merge_patch, create_two_way_merge_patch

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _deployment() -> dict[str, Any]:
    c1 = objects.container(
        "c1",
        "nginx:1",
        args=["a", "b"],
        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        ports=[{"containerPort": 80, "protocol": "TCP"}],
    )
    return objects.deployment(
        "web",
        labels={"app": "web", "tier": "fe"},
        metadata={
            "finalizers": ["example.com/a", "example.com/b"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "o1", "uid": "u1"},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "o2", "uid": "u2"},
            ],
        },
        replicas=2,
        selector={"matchLabels": {"app": "web"}},
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        template=objects.pod_template(
            {"app": "web"},
            containers=[c1, objects.container("c2", "busybox")],
            volumes=[{"name": "v1", "emptyDir": {}}, {"name": "v2", "configMap": {"name": "cm"}}],
            tolerations=[{"key": "k", "operator": "Exists"}],
        ),
    )


def _pod_spec(result: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = result["spec"]["template"]["spec"]
    return spec


def _names(items: list[dict[str, Any]]) -> list[Any]:
    return [item["name"] for item in items]


def _patch_containers(containers: list[Any], **extra: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": containers, **extra}}}}


def _apply(patch: dict[str, Any], original: dict[str, Any] | None = None) -> dict[str, Any]:
    return apply_strategic_merge_patch(original or _deployment(), patch, DEPLOYMENT)


def _rejected(patch: dict[str, Any], original: dict[str, Any] | None = None) -> StrategicPatchError:
    with pytest.raises(StrategicPatchError) as info:
        _apply(patch, original)
    return info.value


# --------------------------------------------------------------------------- merge lists


def test_container_image_changes_by_merge_key() -> None:
    result = _apply(_patch_containers([{"name": "c2", "image": "busybox:2"}]))
    containers = _pod_spec(result)["containers"]
    assert _names(containers) == ["c1", "c2"]
    assert containers[1] == {"name": "c2", "image": "busybox:2"}
    assert containers[0] == _pod_spec(_deployment())["containers"][0]


def test_new_container_is_added_with_set_element_order() -> None:
    patch = _patch_containers(
        [{"name": "c3", "image": "redis"}],
        **{"$setElementOrder/containers": [{"name": "c1"}, {"name": "c2"}, {"name": "c3"}]},
    )
    containers = _pod_spec(_apply(patch))["containers"]
    assert _names(containers) == ["c1", "c2", "c3"]
    assert containers[2] == {"name": "c3", "image": "redis"}


def test_new_container_without_order_goes_before_untouched_ones() -> None:
    # patch.go's mergeSortedSlice: an item the object lacks is placed before the server's
    # items unless the patch names an existing item ahead of it.
    alone = _pod_spec(_apply(_patch_containers([{"name": "c3", "image": "redis"}])))
    assert _names(alone["containers"]) == ["c3", "c1", "c2"]
    after = _pod_spec(
        _apply(_patch_containers([{"name": "c2", "image": "x"}, {"name": "c3", "image": "y"}]))
    )
    assert _names(after["containers"]) == ["c1", "c2", "c3"]


def test_patch_delete_removes_container_by_name() -> None:
    result = _apply(_patch_containers([{"name": "c1", "$patch": "delete"}]))
    assert _pod_spec(result)["containers"] == [{"name": "c2", "image": "busybox"}]


def test_patch_delete_of_absent_container_changes_nothing() -> None:
    result = _apply(_patch_containers([{"name": "zz", "$patch": "delete"}]))
    assert result == _deployment()


def test_env_merges_by_name() -> None:
    patch = _patch_containers(
        [{"name": "c1", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]
    )
    env = _pod_spec(_apply(patch))["containers"][0]["env"]
    assert env == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "20"},
        {"name": "C", "value": "3"},
    ]


def test_ports_merge_by_container_port() -> None:
    patch = _patch_containers(
        [{"name": "c1", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 8080}]}]
    )
    ports = _pod_spec(_apply(patch))["containers"][0]["ports"]
    assert ports == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
        {"containerPort": 8080},
    ]


def test_integer_and_float_merge_keys_do_not_match() -> None:
    # Kubernetes decodes 80 as int64 and 80.0 as float64, which never compare equal.
    patch = _patch_containers([{"name": "c1", "ports": [{"containerPort": 80.0, "name": "x"}]}])
    ports = _pod_spec(_apply(patch))["containers"][0]["ports"]
    assert ports == [{"containerPort": 80.0, "name": "x"}, {"containerPort": 80, "protocol": "TCP"}]


def test_owner_references_merge_by_uid() -> None:
    patch = {"metadata": {"ownerReferences": [{"uid": "u2", "name": "renamed"}]}}
    refs = _apply(patch)["metadata"]["ownerReferences"]
    assert [(ref["uid"], ref["name"]) for ref in refs] == [("u1", "o1"), ("u2", "renamed")]


def test_conditions_merge_by_type() -> None:
    original = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    result = apply_strategic_merge_patch(original, patch, POD)
    assert result == {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}


def test_set_element_order_reorders_containers() -> None:
    patch = {
        "spec": {
            "template": {"spec": {"$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}]}}
        }
    }
    assert _names(_pod_spec(_apply(patch))["containers"]) == ["c2", "c1"]


def test_set_element_order_contradicting_the_patch_is_rejected() -> None:
    patch = _patch_containers(
        [{"name": "c2", "image": "x"}], **{"$setElementOrder/containers": [{"name": "c1"}]}
    )
    error = _rejected(patch)
    assert error.code == 400
    assert error.message.startswith("The order in patch list:")


def test_atomic_list_is_replaced() -> None:
    patch = {"spec": {"template": {"spec": {"tolerations": [{"key": "z", "operator": "Exists"}]}}}}
    assert _pod_spec(_apply(patch))["tolerations"] == [{"key": "z", "operator": "Exists"}]


def test_list_of_primitives_without_strategy_is_replaced() -> None:
    patch = _patch_containers([{"name": "c1", "args": ["z"]}])
    assert _pod_spec(_apply(patch))["containers"][0]["args"] == ["z"]


# --------------------------------------------------------------------------- primitive lists


def test_finalizers_merge_as_a_set() -> None:
    patch = {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}}
    finalizers = _apply(patch)["metadata"]["finalizers"]
    assert sorted(finalizers) == ["example.com/a", "example.com/b", "example.com/c"]


def test_delete_from_primitive_list_removes_finalizers() -> None:
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}
    assert _apply(patch)["metadata"]["finalizers"] == ["example.com/b"]


def test_deletion_list_runs_after_additions_to_the_same_list() -> None:
    # Go visits the patch in random order here; this module always deletes last.
    patch = {
        "metadata": {
            "finalizers": ["example.com/a", "example.com/c"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
        }
    }
    assert sorted(_apply(patch)["metadata"]["finalizers"]) == ["example.com/b", "example.com/c"]


def test_delete_from_primitive_list_needs_a_field_name() -> None:
    error = _rejected({"metadata": {"$deleteFromPrimitiveList": ["example.com/a"]}})
    assert (error.code, error.message) == (400, "invalid patch format of primitive list")


def test_set_element_order_orders_primitive_list() -> None:
    patch = {
        "metadata": {
            "finalizers": ["example.com/c"],
            "$setElementOrder/finalizers": ["example.com/c", "example.com/b", "example.com/a"],
        }
    }
    finalizers = _apply(patch)["metadata"]["finalizers"]
    assert finalizers == ["example.com/c", "example.com/b", "example.com/a"]


# --------------------------------------------------------------------------- retainKeys


def test_retain_keys_switches_rolling_update_to_recreate() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert _apply(patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_without_retain_keys_the_old_strategy_fields_stay() -> None:
    patch = {"spec": {"strategy": {"type": "Recreate"}}}
    strategy = _apply(patch)["spec"]["strategy"]
    assert strategy == {"type": "Recreate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_retain_keys_switches_volume_source() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {
                            "name": "v2",
                            "$retainKeys": ["name", "secret"],
                            "secret": {"secretName": "s"},
                        }
                    ]
                }
            }
        }
    }
    volumes = _pod_spec(_apply(patch))["volumes"]
    assert volumes[1] == {"name": "v2", "secret": {"secretName": "s"}}


def test_retain_keys_rejects_a_patch_setting_unlisted_keys() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}
    error = _rejected(patch)
    assert (error.code, error.message) == (400, "invalid patch format of retainKeys")


def test_retain_keys_must_be_a_list() -> None:
    error = _rejected({"spec": {"strategy": {"$retainKeys": "type"}}})
    assert error.message == "invalid patch format of retainKeys"


# --------------------------------------------------------------------------- maps and $patch


def test_null_deletes_a_key() -> None:
    result = _apply({"metadata": {"labels": {"tier": None}}, "spec": {"replicas": None}})
    assert result["metadata"]["labels"] == {"app": "web"}
    assert "replicas" not in result["spec"]


def test_null_for_an_absent_key_is_dropped() -> None:
    result = _apply({"spec": {"paused": None, "minReadySeconds": 5}})
    assert "paused" not in result["spec"]
    assert result["spec"]["minReadySeconds"] == 5


def test_maps_merge_recursively() -> None:
    result = _apply({"metadata": {"labels": {"stage": "prod"}}})
    assert result["metadata"]["labels"] == {"app": "web", "tier": "fe", "stage": "prod"}


def test_patch_replace_on_a_map_replaces_it() -> None:
    result = _apply({"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert result["metadata"]["labels"] == {"only": "this"}


def test_patch_replace_on_a_list_replaces_it() -> None:
    patch = _patch_containers([{"$patch": "replace"}, {"name": "solo", "image": "x"}])
    assert _pod_spec(_apply(patch))["containers"] == [{"name": "solo", "image": "x"}]


def test_patch_delete_on_a_map_leaves_it_empty() -> None:
    assert _apply({"spec": {"strategy": {"$patch": "delete"}}})["spec"]["strategy"] == {}


def test_patch_merge_is_rejected_like_kubernetes_does() -> None:
    on_map = _rejected({"metadata": {"labels": {"$patch": "merge", "a": "b"}}})
    assert on_map.message == "unknown patch type: merge in map: map[$patch:merge a:b]"
    on_list = _rejected(_patch_containers([{"$patch": "merge", "name": "c1"}]))
    assert on_list.message == "merging lists cannot yet be specified in the patch"


def test_unknown_patch_directive_is_rejected() -> None:
    error = _rejected({"metadata": {"$patch": "explode"}})
    assert error.code == 400
    assert error.message == "unknown patch type: explode in map: map[$patch:explode]"


def test_new_value_loses_its_nulls_and_directive_objects() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"runAsUser": 1, "fsGroup": None, "x": {"$patch": "delete"}},
                    "initContainers": [
                        {"name": "i", "image": "i"},
                        {"name": "j", "$patch": "delete"},
                    ],
                }
            }
        }
    }
    spec = _pod_spec(_apply(patch))
    assert spec["securityContext"] == {"runAsUser": 1}
    assert spec["initContainers"] == [{"name": "i", "image": "i"}]


def test_type_change_replaces_the_value() -> None:
    assert _apply({"spec": {"selector": "app=web"}})["spec"]["selector"] == "app=web"


def test_unknown_field_maps_merge_and_lists_replace() -> None:
    original = _deployment()
    original["spec"]["extra"] = {"keep": 1, "drop": 2, "items": [{"name": "a"}, {"name": "b"}]}
    patch = {"spec": {"extra": {"drop": None, "add": 3, "items": [{"name": "c"}]}}}
    extra = _apply(patch, original)["spec"]["extra"]
    assert extra == {"keep": 1, "add": 3, "items": [{"name": "c"}]}


def test_map_values_of_known_maps_merge() -> None:
    original = {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}]}}
    patch = {"spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "1Gi"}}}]}}
    result = apply_strategic_merge_patch(original, patch, POD)
    assert result["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}}


# --------------------------------------------------------------------------- errors


def test_merge_list_item_without_merge_key_is_rejected() -> None:
    error = _rejected(_patch_containers([{"image": "x"}]))
    assert error.code == 400
    assert error.message == "map: map[image:x] does not contain declared merge key: name"


def test_list_element_type_mismatch_is_unprocessable() -> None:
    error = _rejected(_patch_containers(["c1"]))
    assert error.code == 422
    assert error.message.startswith("list element types are not identical")


def test_lists_of_lists_are_unprocessable() -> None:
    original = _deployment()
    original["metadata"]["finalizers"] = []
    error = _rejected({"metadata": {"finalizers": [["x"]]}}, original)
    assert (error.code, error.message) == (422, "lists of lists are not supported")


def test_error_is_a_patch_error_with_status_fields() -> None:
    error = _rejected(_patch_containers(["c1"]))
    assert isinstance(error, PatchError)
    assert isinstance(error, ValueError)
    assert error.reason == "Invalid"
    assert error.status_message == "the server rejected our request due to an error in our request"


def test_patch_must_be_an_object() -> None:
    with pytest.raises(StrategicPatchError) as info:
        apply_strategic_merge_patch(_deployment(), [], DEPLOYMENT)  # type: ignore[arg-type]
    assert info.value.code == 400


def test_unknown_definition_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        apply_strategic_merge_patch({}, {}, "io.k8s.api.nope.v1.Nothing")


def test_inputs_are_not_mutated() -> None:
    original = _deployment()
    patch = {
        "metadata": {
            "labels": {"tier": None},
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
        },
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}],
                    "containers": [
                        {"name": "c1", "$patch": "delete"},
                        {"name": "c2", "image": "z"},
                    ],
                }
            },
        },
    }
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    result = _apply(patch, original)
    assert (original, patch) == (before_original, before_patch)
    _pod_spec(result)["containers"][0]["image"] = "mutated"
    assert (original, patch) == (before_original, before_patch)


# --------------------------------------------------------------------------- patch creation


def test_two_way_patch_of_equal_objects_is_empty() -> None:
    assert create_two_way_merge_patch(_deployment(), _deployment(), DEPLOYMENT) == {}


def test_two_way_patch_matches_kubectl_edit() -> None:
    # The body `kubectl edit` (CreateTwoWayMergePatch) sent for the same edit.
    live = _deployment()
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["metadata"].pop("ownerReferences")
    edited = copy.deepcopy(live)
    spec = _pod_spec(edited)
    spec["containers"].insert(0, {"name": "c0", "image": "x"})
    spec["containers"][1]["image"] = "nginx:3"
    spec["containers"][1]["env"] = [{"name": "B", "value": "9"}, {"name": "A", "value": "1"}]
    del spec["containers"][2]
    edited["metadata"]["labels"] = {"app": "web", "new": "1"}
    edited["metadata"]["finalizers"] = ["example.com/b", "example.com/z"]
    edited["spec"]["strategy"] = {"type": "Recreate"}
    spec["volumes"][0] = {"name": "v1", "configMap": {"name": "cm"}}
    expected = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "$setElementOrder/finalizers": ["example.com/b", "example.com/z"],
            "finalizers": ["example.com/z"],
            "labels": {"new": "1", "tier": None},
        },
        "spec": {
            "strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "c0"}, {"name": "c1"}],
                    "$setElementOrder/volumes": [{"name": "v1"}, {"name": "v2"}],
                    "containers": [
                        {"image": "x", "name": "c0"},
                        {
                            "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
                            "env": [{"name": "B", "value": "9"}],
                            "image": "nginx:3",
                            "name": "c1",
                        },
                        {"$patch": "delete", "name": "c2"},
                    ],
                    "volumes": [
                        {
                            "$retainKeys": ["configMap", "name"],
                            "configMap": {"name": "cm"},
                            "emptyDir": None,
                            "name": "v1",
                        }
                    ],
                }
            },
        },
    }
    patch = create_two_way_merge_patch(live, edited, DEPLOYMENT)
    assert patch == expected
    assert apply_strategic_merge_patch(live, patch, DEPLOYMENT) == edited


def _applied(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the annotation ``kubectl apply`` records it in."""
    recorded = copy.deepcopy(config)
    recorded["metadata"]["annotations"] = {}
    text = json.dumps(recorded, sort_keys=True, separators=(",", ":")) + "\n"
    result = copy.deepcopy(config)
    result["metadata"]["annotations"] = {LAST_APPLIED: text}
    return result


def test_three_way_patch_matches_kubectl_apply() -> None:
    # The body `kubectl apply` (CreateThreeWayMergePatch) sent to go from the first
    # configuration to the second; the live object has server defaults the patch keeps.
    first: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "fe"},
            "finalizers": ["example.com/a", "example.com/b"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "c1",
                            "image": "nginx:1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80}],
                        },
                        {"name": "c2", "image": "busybox", "args": ["sleep", "10"]},
                    ],
                    "volumes": [{"name": "v1", "emptyDir": {}}],
                },
            },
        },
    }
    second = copy.deepcopy(first)
    second["metadata"]["labels"] = {"app": "web", "stage": "prod"}
    second["metadata"]["finalizers"] = ["example.com/b", "example.com/c"]
    second["spec"]["replicas"] = 3
    second["spec"]["strategy"] = {"type": "Recreate"}
    second["spec"]["template"]["spec"] = {
        "containers": [
            {"name": "c3", "image": "redis"},
            {
                "name": "c1",
                "image": "nginx:2",
                "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                "ports": [{"containerPort": 8080}, {"containerPort": 80, "name": "http"}],
            },
        ],
        "volumes": [{"name": "v1", "configMap": {"name": "cm"}}],
    }
    live = _applied(first)
    live["metadata"]["uid"] = "0b5c"
    live["spec"]["progressDeadlineSeconds"] = 600
    live["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = "25%"
    pod = _pod_spec(live)
    pod["dnsPolicy"] = "ClusterFirst"
    pod["containers"][0]["ports"][0]["protocol"] = "TCP"
    for container in pod["containers"]:
        container["terminationMessagePath"] = "/dev/termination-log"
    modified = _applied(second)
    expected = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "$setElementOrder/finalizers": ["example.com/b", "example.com/c"],
            "annotations": modified["metadata"]["annotations"],
            "finalizers": ["example.com/c"],
            "labels": {"stage": "prod", "tier": None},
        },
        "spec": {
            "replicas": 3,
            "strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "c3"}, {"name": "c1"}],
                    "$setElementOrder/volumes": [{"name": "v1"}],
                    "containers": [
                        {"image": "redis", "name": "c3"},
                        {
                            "$setElementOrder/env": [{"name": "B"}, {"name": "C"}],
                            "$setElementOrder/ports": [
                                {"containerPort": 8080},
                                {"containerPort": 80},
                            ],
                            "env": [
                                {"name": "B", "value": "3"},
                                {"name": "C", "value": "4"},
                                {"$patch": "delete", "name": "A"},
                            ],
                            "image": "nginx:2",
                            "name": "c1",
                            "ports": [
                                {"containerPort": 8080},
                                {"containerPort": 80, "name": "http"},
                            ],
                        },
                        {"$patch": "delete", "name": "c2"},
                    ],
                    "volumes": [
                        {
                            "$retainKeys": ["configMap", "name"],
                            "configMap": {"name": "cm"},
                            "emptyDir": None,
                            "name": "v1",
                        }
                    ],
                }
            },
        },
    }
    original = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    patch = create_three_way_merge_patch(original, modified, live, DEPLOYMENT)
    assert patch == expected
    result = apply_strategic_merge_patch(live, patch, DEPLOYMENT)
    assert result["spec"]["progressDeadlineSeconds"] == 600
    assert _pod_spec(result)["containers"][1]["ports"] == [
        {"containerPort": 8080},
        {"containerPort": 80, "protocol": "TCP", "name": "http"},
    ]


# --------------------------------------------------------------------------- kubectl oracle


def _kubectl() -> str | None:
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


KUBECTL = _kubectl()

# (name, patch) applied to _deployment(); each is compared with kubectl's Go result.
ORACLE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("change image", _patch_containers([{"name": "c2", "image": "new"}])),
    ("add container", _patch_containers([{"name": "c3", "image": "i3"}])),
    (
        "add container in order",
        _patch_containers(
            [{"name": "c3", "image": "i3"}],
            **{"$setElementOrder/containers": [{"name": "c3"}, {"name": "c1"}, {"name": "c2"}]},
        ),
    ),
    (
        "interleave new and existing",
        _patch_containers(
            [{"name": "c2", "image": "z"}, {"name": "n", "image": "n"}, {"name": "c1"}]
        ),
    ),
    (
        "reorder",
        {
            "spec": {
                "template": {
                    "spec": {"$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}]}
                }
            }
        },
    ),
    ("delete container", _patch_containers([{"name": "c1", "$patch": "delete"}])),
    ("replace containers", _patch_containers([{"$patch": "replace"}, {"name": "o", "image": "o"}])),
    (
        "replace containers with order",
        _patch_containers(
            [{"$patch": "replace"}, {"name": "n1", "image": "o"}],
            **{"$setElementOrder/containers": [{"name": "n1"}]},
        ),
    ),
    (
        "env merge",
        _patch_containers(
            [{"name": "c1", "env": [{"name": "B", "value": "9"}, {"name": "C", "value": "3"}]}]
        ),
    ),
    ("env value null", _patch_containers([{"name": "c1", "env": [{"name": "A", "value": None}]}])),
    (
        "ports merge and order",
        _patch_containers(
            [
                {
                    "name": "c1",
                    "$setElementOrder/ports": [{"containerPort": 8080}, {"containerPort": 80}],
                    "ports": [{"containerPort": 8080}],
                }
            ]
        ),
    ),
    ("port float key", _patch_containers([{"name": "c1", "ports": [{"containerPort": 80.0}]}])),
    ("atomic args", _patch_containers([{"name": "c1", "args": ["z"]}])),
    (
        "delete from atomic args",
        _patch_containers([{"name": "c1", "$deleteFromPrimitiveList/args": ["a"]}]),
    ),
    ("retainKeys recreate", {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    (
        "retainKeys with null",
        {
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}
            }
        },
    ),
    ("retainKeys violated", {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    (
        "volume source switch",
        {
            "spec": {
                "template": {
                    "spec": {
                        "volumes": [
                            {
                                "name": "v1",
                                "$retainKeys": ["name", "hostPath"],
                                "hostPath": {"path": "/x"},
                            }
                        ]
                    }
                }
            }
        },
    ),
    (
        "new volume with retainKeys",
        {
            "spec": {
                "template": {
                    "spec": {
                        "volumes": [
                            {"name": "v9", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}
                        ]
                    }
                }
            }
        },
    ),
    ("finalizers add", {"metadata": {"finalizers": ["z", "example.com/a"]}}),
    ("finalizers delete", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}),
    (
        "finalizers order",
        {"metadata": {"$setElementOrder/finalizers": ["example.com/b", "example.com/a"]}},
    ),
    (
        "finalizers add in order",
        {
            "metadata": {
                "finalizers": ["z"],
                "$setElementOrder/finalizers": ["example.com/b", "z", "example.com/a"],
            }
        },
    ),
    ("finalizers delete null", {"metadata": {"$deleteFromPrimitiveList/finalizers": None}}),
    (
        "owner references",
        {
            "metadata": {
                "ownerReferences": [
                    {"uid": "u2", "name": "x"},
                    {"uid": "u3", "apiVersion": "v1", "kind": "K", "name": "n"},
                ]
            }
        },
    ),
    ("labels null and add", {"metadata": {"labels": {"tier": None, "b": "2"}}}),
    ("labels replace", {"metadata": {"labels": {"$patch": "replace", "b": "2"}}}),
    ("strategy delete", {"spec": {"strategy": {"$patch": "delete"}}}),
    (
        "absent nulls",
        {"spec": {"paused": None, "revisionHistoryLimit": None, "minReadySeconds": 3}},
    ),
    (
        "new value with directives",
        {
            "spec": {
                "template": {
                    "spec": {
                        "hostAliases": [{"ip": "1.1.1.1", "hostnames": None}],
                        "securityContext": {"runAsUser": 1, "x": {"$patch": "delete"}},
                    }
                }
            }
        },
    ),
    (
        "new list with delete item",
        {
            "spec": {
                "template": {
                    "spec": {"initContainers": [{"name": "i"}, {"name": "j", "$patch": "delete"}]}
                }
            }
        },
    ),
    ("new container with null", _patch_containers([{"name": "c9", "image": None}])),
    ("tolerations atomic", {"spec": {"template": {"spec": {"tolerations": [{"key": "z"}]}}}}),
    ("null list", {"spec": {"template": {"spec": {"volumes": None}}}}),
    ("empty list merge", _patch_containers([])),
    ("type change", {"spec": {"replicas": "three"}}),
    ("list to map", _patch_containers({"name": "x"})),  # type: ignore[arg-type]
    (
        "duplicate items in patch",
        _patch_containers([{"name": "c1", "image": "a"}, {"name": "c1", "image": "b"}]),
    ),
    (
        "setElementOrder on absent list",
        {"spec": {"template": {"spec": {"$setElementOrder/initContainers": [{"name": "a"}]}}}},
    ),
    # errors
    ("patch merge on map", {"metadata": {"$patch": "merge"}}),
    ("patch merge in list", _patch_containers([{"$patch": "merge"}])),
    ("unknown directive", {"metadata": {"labels": {"$patch": "bogus"}}}),
    ("missing merge key", _patch_containers([{"image": "x"}])),
    ("delete item without merge key", _patch_containers([{"$patch": "delete"}])),
    (
        "order contradicts patch",
        _patch_containers([{"name": "c2"}], **{"$setElementOrder/containers": [{"name": "c1"}]}),
    ),
    ("order not a list", {"spec": {"template": {"spec": {"$setElementOrder/containers": "x"}}}}),
    ("bad primitive list key", {"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
    ("retainKeys not a list", {"spec": {"strategy": {"$retainKeys": "type"}}}),
    ("element type mismatch", _patch_containers(["c1"])),
    ("boolean finalizer", {"metadata": {"finalizers": [True]}}),
    ("list of lists", {"metadata": {"finalizers": [["x"]]}}),
]


def _kubectl_patch(
    original: dict[str, Any], patch: dict[str, Any], tmp: Path
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    source = tmp / "object.json"
    source.write_text(json.dumps(original))
    env = {**os.environ, "HOME": str(tmp), "KUBECONFIG": str(tmp / "kubeconfig")}
    args = ["patch", "--local", "-f", str(source), "--type", "strategic", "-o", "json"]
    return subprocess.run(
        [KUBECTL, *args, "-p", json.dumps(patch)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize(("name", "patch"), ORACLE_CASES, ids=[name for name, _ in ORACLE_CASES])
def test_agrees_with_kubectl_patch_local(name: str, patch: dict[str, Any], tmp_path: Path) -> None:
    original = _deployment()
    proc = _kubectl_patch(original, patch, tmp_path)
    try:
        ours: dict[str, Any] | StrategicPatchError = apply_strategic_merge_patch(
            original, patch, DEPLOYMENT
        )
    except StrategicPatchError as error:
        ours = error
    if proc.returncode != 0:
        assert isinstance(ours, StrategicPatchError), f"kubectl failed: {proc.stderr}"
        assert ours.message in proc.stderr
    else:
        assert not isinstance(ours, StrategicPatchError), f"kubectl applied it: {proc.stdout}"
        assert ours == json.loads(proc.stdout)


# --------------------------------------------------------------------------- properties

_PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150)

_words = st.sampled_from(["a", "b", "c", "d", "e"])
_values = st.sampled_from(["1", "2", "x", "y", ""])


def _unique_by(
    key: str, item: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(item, max_size=4, unique_by=lambda entry: entry[key])


_env = _unique_by("name", st.fixed_dictionaries({"name": _words, "value": _values}))
_ports = _unique_by(
    "containerPort",
    st.fixed_dictionaries(
        {"containerPort": st.sampled_from([80, 443, 8080])},
        optional={"name": st.sampled_from(["http", "https"]), "protocol": st.just("TCP")},
    ),
)
_containers = _unique_by(
    "name",
    st.fixed_dictionaries(
        {"name": _words, "image": st.sampled_from(["nginx", "redis", "busybox"])},
        optional={
            "env": _env,
            "ports": _ports,
            "args": st.lists(_values, max_size=3),
            "resources": st.fixed_dictionaries(
                {},
                optional={"limits": st.dictionaries(st.sampled_from(["cpu", "memory"]), _values)},
            ),
        },
    ),
)
_volumes = _unique_by(
    "name",
    st.one_of(
        st.fixed_dictionaries({"name": _words, "emptyDir": st.just({})}),
        st.fixed_dictionaries(
            {"name": _words, "configMap": st.fixed_dictionaries({"name": _words})}
        ),
        st.fixed_dictionaries(
            {"name": _words, "secret": st.fixed_dictionaries({"secretName": _words})}
        ),
    ),
)
_pod_specs = st.fixed_dictionaries(
    {"containers": _containers},
    optional={
        "volumes": _volumes,
        "nodeSelector": st.dictionaries(_words, _values, max_size=3),
        "tolerations": st.lists(st.fixed_dictionaries({"key": _words}), max_size=2),
    },
)
_metadata = st.fixed_dictionaries(
    {"name": st.just("web")},
    optional={
        "labels": st.dictionaries(_words, _values, max_size=3),
        "annotations": st.dictionaries(_words, _values, max_size=3),
        "finalizers": st.lists(_words, max_size=3, unique=True),
    },
)
_strategies = st.one_of(
    st.just({"type": "Recreate"}),
    st.fixed_dictionaries(
        {"type": st.just("RollingUpdate")},
        optional={
            "rollingUpdate": st.fixed_dictionaries({}, optional={"maxSurge": st.integers(0, 2)})
        },
    ),
)
_deployments = st.fixed_dictionaries(
    {
        "apiVersion": st.just("apps/v1"),
        "kind": st.just("Deployment"),
        "metadata": _metadata,
        "spec": st.fixed_dictionaries(
            {"template": st.fixed_dictionaries({"spec": _pod_specs})},
            optional={"replicas": st.integers(0, 3), "strategy": _strategies},
        ),
    }
)
_pods = st.fixed_dictionaries(
    {"apiVersion": st.just("v1"), "kind": st.just("Pod"), "metadata": _metadata, "spec": _pod_specs}
)


@_PROPERTY
@given(_deployments, _deployments)
def test_two_way_patch_turns_deployment_into_modified(
    original: dict[str, Any], modified: dict[str, Any]
) -> None:
    patch = create_two_way_merge_patch(original, modified, DEPLOYMENT)
    assert apply_strategic_merge_patch(original, patch, DEPLOYMENT) == modified


@_PROPERTY
@given(_pods, _pods)
def test_two_way_patch_turns_pod_into_modified(
    original: dict[str, Any], modified: dict[str, Any]
) -> None:
    patch = create_two_way_merge_patch(original, modified, POD)
    assert apply_strategic_merge_patch(original, patch, POD) == modified


@_PROPERTY
@given(_deployments, _deployments)
def test_three_way_patch_from_unchanged_live_object_yields_modified(
    original: dict[str, Any], modified: dict[str, Any]
) -> None:
    patch = create_three_way_merge_patch(original, modified, original, DEPLOYMENT)
    assert apply_strategic_merge_patch(original, patch, DEPLOYMENT) == modified


_keys = st.sampled_from(
    [
        "metadata", "spec", "template", "containers", "name", "image", "env", "value",
        "ports", "containerPort", "finalizers", "labels", "strategy", "type", "volumes",
        "emptyDir", "args", "x", "$patch", "$retainKeys", "$setElementOrder/containers",
        "$setElementOrder/env", "$setElementOrder/finalizers", "$setElementOrder/args",
        "$deleteFromPrimitiveList/finalizers", "$deleteFromPrimitiveList/args",
        "$deleteFromPrimitiveList/containers", "$setElementOrder", "$deleteFromPrimitiveList",
    ]
)  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["replace", "delete", "merge", "c1", "c2", "A", "name", "type", ""]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=25,
)
_documents = st.dictionaries(_keys, _json, max_size=5)
# Random content at the places where strategic merge does its work.
_shaped = st.one_of(
    _documents,
    _documents.map(lambda doc: {"spec": {"template": {"spec": doc}}}),
    st.lists(_json, max_size=4).map(_patch_containers),
    st.lists(_documents, max_size=4).map(
        lambda items: _patch_containers([{"name": "c1", "env": items}])
    ),
    _documents.map(lambda doc: {"metadata": doc}),
    _documents.map(lambda doc: {"spec": {"strategy": doc}}),
)


@settings(_PROPERTY, max_examples=400)
@given(_shaped, st.one_of(st.just(None), _shaped))
def test_arbitrary_patches_apply_or_raise_strategic_patch_error(
    patch: dict[str, Any], other: dict[str, Any] | None
) -> None:
    original = _deployment() if other is None else other
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    try:
        result = apply_strategic_merge_patch(original, patch, DEPLOYMENT)
    except StrategicPatchError as error:
        assert error.code in (400, 422)
    else:
        assert isinstance(result, dict)
        json.dumps(result)
    assert (original, patch) == (before_original, before_patch)


@settings(_PROPERTY, max_examples=200)
@given(_shaped, _shaped)
def test_arbitrary_objects_diff_or_raise_strategic_patch_error(
    original: dict[str, Any], modified: dict[str, Any]
) -> None:
    for create in (
        lambda: create_two_way_merge_patch(original, modified, DEPLOYMENT),
        lambda: create_three_way_merge_patch(original, modified, _deployment(), DEPLOYMENT),
    ):
        try:
            json.dumps(create())
        except StrategicPatchError as error:
            assert error.code in (400, 422)
