"""The StatefulSet kind: ``SetDefaults_StatefulSet``, ``ValidateStatefulSetSpec`` and
``ValidateStatefulSetUpdate`` (Kubernetes' paths and messages), and its table."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from tests import kinds
from tests.objects import stateful_set

RTYPE = kinds.REGISTRY.by_kind("apps", "v1", "StatefulSet")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CLAIM = {
    "metadata": {"name": "data"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}

Obj = dict[str, Any]


def stored(obj: Obj) -> Obj:
    return kinds.stored("apps", "StatefulSet", obj)


def problems(obj: Obj, old: Obj | None = None) -> list[str]:
    return kinds.problems("apps", "StatefulSet", obj, old)


def test_defaults_are_upstreams() -> None:
    spec = stored(stateful_set(volumeClaimTemplates=[copy.deepcopy(CLAIM)]))["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}


def test_on_delete_gets_no_rolling_update() -> None:
    spec = stored(stateful_set(updateStrategy={"type": "OnDelete"}))["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}


def test_a_valid_stateful_set_without_a_service_name_has_no_problems() -> None:
    assert problems(stateful_set(volumeClaimTemplates=[CLAIM])) == []


def test_the_selector_must_match_the_template_labels() -> None:
    obj = stateful_set(selector={"matchLabels": {"app": "other"}})
    assert problems(obj) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    ]


def test_replicas_may_not_be_negative() -> None:
    assert problems(stateful_set(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    ]


def test_an_unknown_pod_management_policy_is_invalid() -> None:
    assert problems(stateful_set(podManagementPolicy="Sometimes")) == [
        "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or "
        "'Parallel'"
    ]


def test_a_negative_partition_is_invalid() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}
    assert problems(stateful_set(updateStrategy=strategy)) == [
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: "
        "must be greater than or equal to 0"
    ]


def test_on_delete_may_not_have_a_rolling_update() -> None:
    strategy = {"type": "OnDelete", "rollingUpdate": {"partition": 1}}
    assert problems(stateful_set(updateStrategy=strategy)) == [
        "spec.updateStrategy.rollingUpdate: Invalid value: "
        "&apps.RollingUpdateStatefulSetStrategy{Partition:1}: "
        "only allowed for updateStrategy 'RollingUpdate'"
    ]


def test_an_unknown_retention_policy_is_not_supported() -> None:
    policy = {"whenDeleted": "Shred", "whenScaled": "Retain"}
    assert problems(stateful_set(persistentVolumeClaimRetentionPolicy=policy)) == [
        'spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Shred": '
        'supported values: "Retain", "Delete"'
    ]


def test_claim_templates_are_checked_as_claims() -> None:
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    assert problems(stateful_set(volumeClaimTemplates=[claim])) == [
        "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value"
    ]


def test_active_deadline_is_not_supported() -> None:
    obj = stateful_set()
    obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    assert problems(obj) == [
        "spec.template.spec.activeDeadlineSeconds: Forbidden: "
        "activeDeadlineSeconds in StatefulSet is not Supported"
    ]


FORBIDDEN_UPDATE = (
    "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
    "'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


def test_replicas_template_and_strategy_may_change() -> None:
    old = stored(stateful_set())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "v2"
    new["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert problems(new, old) == []


def test_service_name_claim_templates_and_selector_are_fixed() -> None:
    old = stored(stateful_set(volumeClaimTemplates=[CLAIM]))
    for path, value in (
        ("serviceName", "other"),
        ("volumeClaimTemplates", []),
        ("podManagementPolicy", "Parallel"),
    ):
        new = copy.deepcopy(old)
        new["spec"][path] = value
        assert problems(new, old) == [FORBIDDEN_UPDATE], path


def test_the_table_shows_ready_of_desired() -> None:
    assert RTYPE is not None and RTYPE.printer is not None
    obj = stored(stateful_set(replicas=3))
    obj["status"] = {"readyReplicas": 2}
    obj["metadata"]["creationTimestamp"] = "2025-12-31T23:00:00Z"
    assert RTYPE.printer.cells(obj, NOW) == ["web", "2/3", "60m", "app", "busybox"]
    assert [c["name"] for c in RTYPE.printer.columns] == [
        "Name",
        "Ready",
        "Age",
        "Containers",
        "Images",
    ]


def test_containers_may_mount_the_claim_templates() -> None:
    obj = stateful_set(volumeClaimTemplates=[CLAIM])
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    assert problems(obj) == []
    container["volumeMounts"] = [{"name": "other", "mountPath": "/data"}]
    assert problems(obj) == [
        'spec.template.spec.containers[0].volumeMounts[0].name: Not found: "other"'
    ]
