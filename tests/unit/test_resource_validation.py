"""Semantic validation of the served kinds, with Kubernetes' field paths and messages
(``pkg/apis/*/validation``), and the cron parser behind CronJob schedules.

Each problem is shown as ``"<field>: <message>"``, the way kubectl prints a 422's causes.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from setpoint.meta import cron
from setpoint.resources.catalog import default_registry
from tests.kinds import UID, problems, stored
from tests.objects import (
    configmap,
    container,
    cron_job,
    daemon_set,
    deployment,
    job,
    lease,
    namespace,
    node,
    pod,
    pod_disruption_budget,
    replica_set,
    secret,
)

Obj = dict[str, Any]


def pod_with(**fields: Any) -> Obj:
    """A Pod whose single container has ``fields``."""
    return pod(containers=[container(**fields)])


def set_in(obj: Obj, path: str, value: Any) -> Obj:
    """A copy of ``obj`` with the dotted ``path`` set to ``value``."""
    obj = copy.deepcopy(obj)
    target = obj
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
    target[last] = value
    return obj


# ------------------------------------------------------------------------------ pod specs


def test_valid_pod_has_no_problems() -> None:
    assert problems("", "Pod", pod()) == []


def test_pod_needs_containers() -> None:
    assert problems("", "Pod", pod(containers=[])) == ["spec.containers: Required value"]


def test_container_names_must_be_unique() -> None:
    assert problems("", "Pod", pod(containers=[container(), container()])) == [
        'spec.containers[1].name: Duplicate value: "app"'
    ]


def test_container_name_must_be_dns_label() -> None:
    assert problems("", "Pod", pod_with(name="Web_1")) == [
        'spec.containers[0].name: Invalid value: "Web_1": a lowercase RFC 1123 label must '
        "consist of lower case alphanumeric characters or '-', and must start and end with an "
        "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    ]


def test_container_needs_an_image() -> None:
    assert problems("", "Pod", pod_with(image="")) == ["spec.containers[0].image: Required value"]


def test_pod_image_may_not_have_surrounding_whitespace() -> None:
    assert problems("", "Pod", pod_with(image=" nginx")) == [
        'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing '
        "whitespace"
    ]


def test_restart_policy_values() -> None:
    assert problems("", "Pod", pod(restartPolicy="Sometimes")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"'
    ]


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_container_port_must_be_in_range(port: int) -> None:
    found = problems("", "Pod", pod_with(ports=[{"containerPort": port}]))
    if port == 0:
        assert found == ["spec.containers[0].ports[0].containerPort: Required value"]
    else:
        assert found == [
            f"spec.containers[0].ports[0].containerPort: Invalid value: {port}: must be between "
            "1 and 65535, inclusive"
        ]


def test_port_names_must_be_unique() -> None:
    ports = [{"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}]
    assert problems("", "Pod", pod_with(ports=ports)) == [
        'spec.containers[0].ports[1].name: Duplicate value: "http"'
    ]


def test_requests_must_not_exceed_limits() -> None:
    resources = {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}
    assert problems("", "Pod", pod_with(resources=resources)) == [
        'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal '
        "to cpu limit of 1500m"
    ]


def test_negative_quantities_are_invalid() -> None:
    assert problems("", "Pod", pod_with(resources={"requests": {"memory": "-1Gi"}})) == [
        'spec.containers[0].resources.requests[memory]: Invalid value: "-1Gi": must be greater '
        "than or equal to 0"
    ]


def test_unknown_resource_names_are_invalid() -> None:
    assert problems("", "Pod", pod_with(resources={"requests": {"gpu": "1"}})) == [
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard '
        "resource type or fully qualified",
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard '
        "resource for containers",
    ]


def test_extended_resources_need_requests_equal_to_limits() -> None:
    resources = {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "2"}}
    assert problems("", "Pod", pod_with(resources=resources)) == [
        'spec.containers[0].resources.requests: Invalid value: "1": must be equal to '
        "example.com/gpu limit of 2"
    ]


def test_probe_needs_a_handler() -> None:
    assert problems("", "Pod", pod_with(livenessProbe={"periodSeconds": 5})) == [
        "spec.containers[0].livenessProbe: Required value: must specify a handler type"
    ]


def test_probe_takes_exactly_one_handler() -> None:
    probe = {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}
    assert problems("", "Pod", pod_with(readinessProbe=probe)) == [
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 "
        "handler type"
    ]


def test_liveness_probe_success_threshold_must_be_one() -> None:
    probe = {"exec": {"command": ["true"]}, "successThreshold": 2}
    assert problems("", "Pod", pod_with(livenessProbe=probe)) == [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
    ]


def test_volume_names_must_be_unique() -> None:
    volumes = [{"name": "data"}, {"name": "data"}]
    assert problems("", "Pod", pod(volumes=volumes)) == [
        'spec.volumes[1].name: Duplicate value: "data"'
    ]


def test_volume_takes_one_source() -> None:
    volumes = [{"name": "data", "emptyDir": {}, "configMap": {"name": "c"}}]
    assert problems("", "Pod", pod(volumes=volumes)) == [
        "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type"
    ]


def test_volume_mount_must_name_a_volume() -> None:
    mounts = [{"name": "data", "mountPath": "/data"}]
    assert problems("", "Pod", pod_with(volumeMounts=mounts)) == [
        'spec.containers[0].volumeMounts[0].name: Not found: "data"'
    ]


def test_volume_mount_of_existing_volume_is_valid() -> None:
    obj = pod(volumes=[{"name": "data"}])
    obj["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    assert problems("", "Pod", obj) == []


def test_env_var_name_may_not_contain_equals() -> None:
    assert problems("", "Pod", pod_with(env=[{"name": "A=B", "value": "1"}])) == [
        'spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable '
        "name must consist only of printable ASCII characters other than '='"
    ]


def test_env_var_field_ref_must_be_supported() -> None:
    env = [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.dnsPolicy"}}}]
    assert problems("", "Pod", pod_with(env=env)) == [
        "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Invalid value: "
        '"spec.dnsPolicy": error converting fieldPath: field label not supported: spec.dnsPolicy'
    ]


def test_active_deadline_seconds_must_be_positive() -> None:
    assert problems("", "Pod", pod(activeDeadlineSeconds=0)) == [
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"
    ]


def test_negative_termination_grace_period_is_accepted_as_kubernetes_does() -> None:
    assert problems("", "Pod", pod(terminationGracePeriodSeconds=-5)) == []


def test_init_container_probes_need_restart_policy_always() -> None:
    init = {"name": "setup", "image": "busybox", "livenessProbe": {"exec": {"command": ["x"]}}}
    assert problems("", "Pod", pod(initContainers=[init])) == [
        "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers "
        "without restartPolicy=Always"
    ]


def test_sidecar_init_container_may_have_probes() -> None:
    init = {
        "name": "proxy",
        "image": "envoy",
        "restartPolicy": "Always",
        "readinessProbe": {"tcpSocket": {"port": 9901}},
    }
    assert problems("", "Pod", pod(initContainers=[init])) == []


def test_tolerations_need_an_operator_for_empty_keys() -> None:
    assert problems("", "Pod", pod(tolerations=[{"effect": "NoSchedule"}])) == [
        'spec.tolerations[0].operator: Invalid value: "": operator must be Exists when `key` is '
        'empty, which means "match all values and all keys"'
    ]


def test_pod_update_may_change_images() -> None:
    old = stored("", "Pod", pod())
    assert problems("", "Pod", set_in(old, "spec.containers.0.image", "nginx:1.26"), old) == []


def test_pod_update_may_not_change_other_fields() -> None:
    old = stored("", "Pod", pod())
    assert problems("", "Pod", set_in(old, "spec.dnsPolicy", "Default"), old) == [
        "spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`,"
        "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
        "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)"
    ]


def test_pod_update_may_not_add_containers() -> None:
    old = stored("", "Pod", pod())
    new = set_in(old, "spec.containers", [*old["spec"]["containers"], container(name="two")])
    assert problems("", "Pod", new, old) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"
    ]


def test_pod_update_may_bind_an_unscheduled_pod() -> None:
    old = stored("", "Pod", pod())
    assert problems("", "Pod", set_in(old, "spec.nodeName", "node-1"), old) == []


def test_pod_update_may_only_shorten_active_deadline() -> None:
    old = stored("", "Pod", pod(activeDeadlineSeconds=100))
    assert problems("", "Pod", set_in(old, "spec.activeDeadlineSeconds", 50), old) == []
    assert problems("", "Pod", set_in(old, "spec.activeDeadlineSeconds", 200), old) == [
        "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous "
        "value"
    ]


def test_core_finalizers_must_be_standard_or_qualified() -> None:
    obj = set_in(pod(), "metadata.finalizers", ["kubernetes", "example.com/x", "mine"])
    assert problems("", "Pod", obj) == [
        'metadata.finalizers[2]: Invalid value: "mine": name is neither a standard finalizer '
        "name nor is it fully qualified"
    ]


# ------------------------------------------------------------------------- Deployment & RS


def test_valid_deployment_has_no_problems() -> None:
    assert problems("apps", "Deployment", deployment()) == []


def test_deployment_needs_a_selector() -> None:
    obj = deployment()
    del obj["spec"]["selector"]
    assert problems("apps", "Deployment", obj) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
    ]


def test_deployment_selector_may_not_be_empty() -> None:
    assert problems("apps", "Deployment", deployment(selector={})) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "deployment"
    ]


def test_deployment_selector_must_match_template_labels() -> None:
    obj = deployment(selector={"matchLabels": {"app": "x"}})
    assert problems("apps", "Deployment", obj) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    ]


def test_deployment_selector_expressions_must_be_valid() -> None:
    selector = {"matchExpressions": [{"key": "app", "operator": "In"}]}
    assert problems("apps", "Deployment", deployment(selector=selector)) == [
        "spec.selector.matchExpressions[0].values: Required value: must be specified when "
        "`operator` is 'In' or 'NotIn'",
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        'MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"app", '
        'Operator:"In", Values:[]string(nil)}}}: invalid label selector',
    ]


def test_deployment_replicas_must_not_be_negative() -> None:
    assert problems("apps", "Deployment", deployment(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    ]


def test_deployment_strategy_type_values() -> None:
    assert problems("apps", "Deployment", deployment(strategy={"type": "BlueGreen"})) == [
        'spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
        'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", '
        '"RollingUpdate"'
    ]


def test_recreate_deployment_may_not_configure_rolling_update() -> None:
    strategy = {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}
    assert problems("apps", "Deployment", deployment(strategy=strategy)) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
        "'Recreate'"
    ]


def test_deployment_max_surge_and_unavailable_not_both_zero() -> None:
    strategy = {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    assert problems("apps", "Deployment", deployment(strategy=strategy)) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, "
        'IntVal:0, StrVal:"0%"}: may not be 0 when `maxSurge` is 0'
    ]


def test_deployment_max_surge_is_int_or_percentage() -> None:
    strategy = {"rollingUpdate": {"maxSurge": "ten"}}
    assert problems("apps", "Deployment", deployment(strategy=strategy)) == [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, "
        'IntVal:0, StrVal:"ten"}: a valid percent string must be a numeric string followed by '
        "an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
    ]


def test_deployment_max_unavailable_at_most_100_percent() -> None:
    strategy = {"rollingUpdate": {"maxUnavailable": "150%"}}
    assert problems("apps", "Deployment", deployment(strategy=strategy)) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, "
        'IntVal:0, StrVal:"150%"}: must not be greater than 100%'
    ]


def test_deployment_revision_history_limit_not_negative() -> None:
    assert problems("apps", "Deployment", deployment(revisionHistoryLimit=-1)) == [
        "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"
    ]


def test_deployment_progress_deadline_exceeds_min_ready_seconds() -> None:
    obj = deployment(minReadySeconds=30, progressDeadlineSeconds=30)
    assert problems("apps", "Deployment", obj) == [
        "spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds"
    ]


def test_deployment_template_must_restart_always() -> None:
    obj = set_in(deployment(), "spec.template.spec.restartPolicy", "Never")
    assert problems("apps", "Deployment", obj) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]


def test_deployment_template_pod_spec_is_validated() -> None:
    obj = set_in(deployment(), "spec.template.spec.containers.0.image", "")
    assert problems("apps", "Deployment", obj) == [
        "spec.template.spec.containers[0].image: Required value"
    ]


def test_deployment_selector_is_immutable() -> None:
    old = stored("apps", "Deployment", deployment())
    new = set_in(old, "spec.selector.matchLabels", {"app": "web", "tier": "fe"})
    new = set_in(new, "spec.template.metadata.labels", {"app": "web", "tier": "fe"})
    assert problems("apps", "Deployment", new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":'
        '"web", "tier":"fe"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is '
        "immutable"
    ]


def test_deployment_update_may_change_template_and_replicas() -> None:
    old = stored("apps", "Deployment", deployment())
    new = set_in(old, "spec.template.spec.containers.0.image", "nginx:1.26")
    assert problems("apps", "Deployment", set_in(new, "spec.replicas", 5), old) == []


def test_replica_set_selector_is_immutable() -> None:
    old = stored("apps", "ReplicaSet", replica_set())
    new = set_in(old, "spec.selector.matchLabels", {})
    new["spec"]["selector"]["matchExpressions"] = [{"key": "app", "operator": "Exists"}]
    found = problems("apps", "ReplicaSet", new, old)
    assert found[-1].startswith("spec.selector: Invalid value: v1.LabelSelector{")
    assert found[-1].endswith("field is immutable")


def replication_controller(**spec: Any) -> Obj:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": pod()["spec"]}
    return {"kind": "ReplicationController", "spec": {"template": template, **spec}}


def test_replication_controller_selector_and_labels_default_to_the_template_labels() -> None:
    rc = stored("", "ReplicationController", replication_controller())
    assert rc["spec"]["selector"] == {"app": "web"}
    assert rc["metadata"]["labels"] == {"app": "web"}
    assert rc["spec"]["replicas"] == 1
    assert problems("", "ReplicationController", replication_controller()) == []


def test_replication_controller_problems_as_kubernetes_words_them() -> None:
    assert problems(
        "", "ReplicationController", replication_controller(selector={"app": "db"}, replicas=-1)
    ) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
    ]
    assert problems("", "ReplicationController", {"spec": {"replicas": 1}}) == [
        "spec.selector: Required value",
        "spec.template: Required value",
    ]


def test_replication_controller_selector_may_change() -> None:
    old = stored("", "ReplicationController", replication_controller())
    new = set_in(old, "spec.selector", {})
    new["spec"]["selector"] = {"app": "web"}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert problems("", "ReplicationController", new, old) == []


# ------------------------------------------------------------------------------------ Jobs


def test_valid_job_has_no_problems() -> None:
    assert problems("batch", "Job", job()) == []


def test_job_template_restart_policy_must_be_on_failure_or_never() -> None:
    obj = set_in(job(), "spec.template.spec.restartPolicy", "Always")
    assert problems("batch", "Job", obj) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]


def test_job_template_without_restart_policy_is_rejected() -> None:
    obj = job()
    del obj["spec"]["template"]["spec"]["restartPolicy"]
    assert problems("batch", "Job", obj) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]


@pytest.mark.parametrize("field", ["parallelism", "completions", "backoffLimit"])
def test_job_counts_must_not_be_negative(field: str) -> None:
    assert problems("batch", "Job", job(**{field: -1})) == [
        f"spec.{field}: Invalid value: -1: must be greater than or equal to 0"
    ]


def test_job_completion_mode_values() -> None:
    assert problems("batch", "Job", job(completionMode="Sometimes")) == [
        'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", '
        '"Indexed"'
    ]


def test_indexed_job_requires_completions() -> None:
    assert problems("batch", "Job", job(completionMode="Indexed", parallelism=2)) == [
        "spec.completions: Required value: when completion mode is Indexed"
    ]


def test_job_with_manual_selector_must_match_template() -> None:
    obj = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    assert problems("batch", "Job", obj) == [
        "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does "
        "not match template `labels`"
    ]


def test_job_template_is_immutable() -> None:
    old = stored("batch", "Job", job())
    new = set_in(old, "spec.template.spec.containers.0.image", "perl:5.36")
    assert problems("batch", "Job", new, old) == [
        "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"
    ]


def test_suspended_job_may_change_scheduling_directives() -> None:
    old = stored("batch", "Job", job(suspend=True))
    new = set_in(old, "spec.template.spec.nodeSelector", {"zone": "a"})
    assert problems("batch", "Job", new, old) == []


def test_started_job_may_not_change_scheduling_directives() -> None:
    old = stored("batch", "Job", job(suspend=True))
    old["status"] = {"startTime": "2026-01-01T00:00:00Z"}
    new = set_in(old, "spec.template.spec.nodeSelector", {"zone": "a"})
    assert problems("batch", "Job", new, old)[-1].startswith("spec.template: Invalid value")


def test_job_update_may_unsuspend() -> None:
    old = stored("batch", "Job", job(suspend=True))
    assert problems("batch", "Job", set_in(old, "spec.suspend", False), old) == []


def test_job_selector_is_immutable() -> None:
    old = stored("batch", "Job", job(manualSelector=True, selector={"matchLabels": {"a": "b"}}))
    old["spec"]["template"]["metadata"] = {"labels": {"a": "b", "c": "d"}}
    new = set_in(old, "spec.selector", {"matchLabels": {"a": "b", "c": "d"}})
    assert problems("batch", "Job", new, old)[-1].endswith("field is immutable")


def test_job_completions_are_immutable() -> None:
    old = stored("batch", "Job", job(completions=3))
    assert problems("batch", "Job", set_in(old, "spec.completions", 4), old) == [
        "spec.completions: Invalid value: 4: field is immutable"
    ]


def test_indexed_job_scales_completions_with_parallelism() -> None:
    old = stored("batch", "Job", job(completionMode="Indexed", completions=3, parallelism=3))
    scaled = set_in(set_in(old, "spec.completions", 5), "spec.parallelism", 5)
    assert problems("batch", "Job", scaled, old) == []
    assert problems("batch", "Job", set_in(old, "spec.completions", 5), old) == [
        "spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"
    ]


def test_job_generated_labels_must_stay() -> None:
    old = stored("batch", "Job", job())
    new = copy.deepcopy(old)
    del new["spec"]["template"]["metadata"]["labels"]["controller-uid"]
    assert problems("batch", "Job", new, old)[0] == (
        f"spec.template.metadata.labels[controller-uid]: Required value: must be '{UID}'"
    )


# -------------------------------------------------------------------------------- CronJobs


def test_valid_cron_job_has_no_problems() -> None:
    assert problems("batch", "CronJob", cron_job()) == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        (
            "* * * * FUNDAY",
            'failed to parse int from FUNDAY: strconv.Atoi: parsing "FUNDAY": invalid syntax',
        ),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ],
)
def test_cron_job_schedule_must_parse(schedule: str, message: str) -> None:
    assert problems("batch", "CronJob", cron_job(schedule=schedule)) == [
        f'spec.schedule: Invalid value: "{schedule}": {message}'
    ]


def test_cron_job_rejects_time_zone_in_schedule() -> None:
    assert problems("batch", "CronJob", cron_job(schedule="CRON_TZ=UTC 0 3 * * *")) == [
        'spec.schedule: Invalid value: "CRON_TZ=UTC 0 3 * * *": cannot use TZ or CRON_TZ in '
        "schedule, use timeZone field instead"
    ]


def test_cron_job_time_zone_must_be_known() -> None:
    assert problems("batch", "CronJob", cron_job(timeZone="Mars/Olympus_Mons")) == [
        'spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone Mars/Olympus_Mons'
    ]


def test_cron_job_time_zone_may_be_iana_zone() -> None:
    assert problems("batch", "CronJob", cron_job(timeZone="America/New_York")) == []


def test_cron_job_time_zone_may_not_be_local() -> None:
    assert problems("batch", "CronJob", cron_job(timeZone="Local")) == [
        'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as '
        "defined in https://www.iana.org/time-zones"
    ]


def test_cron_job_concurrency_policy_values() -> None:
    assert problems("batch", "CronJob", cron_job(concurrencyPolicy="Never")) == [
        'spec.concurrencyPolicy: Unsupported value: "Never": supported values: "Allow", '
        '"Forbid", "Replace"'
    ]


@pytest.mark.parametrize(
    "field", ["successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds"]
)
def test_cron_job_limits_must_not_be_negative(field: str) -> None:
    assert problems("batch", "CronJob", cron_job(**{field: -1})) == [
        f"spec.{field}: Invalid value: -1: must be greater than or equal to 0"
    ]


def test_cron_job_template_may_not_set_a_selector() -> None:
    obj = set_in(cron_job(), "spec.jobTemplate.spec.selector", {"matchLabels": {"a": "b"}})
    assert problems("batch", "CronJob", obj) == [
        "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]"
        'string{"a":"b"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will '
        "be auto-generated"
    ]


def test_cron_job_template_restart_policy_checked_like_a_job() -> None:
    obj = set_in(cron_job(), "spec.jobTemplate.spec.template.spec.restartPolicy", "Always")
    assert problems("batch", "CronJob", obj) == [
        "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "
        '"OnFailure", "Never"'
    ]


def test_cron_job_name_at_most_52_characters() -> None:
    name = "n" * 53
    assert problems("batch", "CronJob", set_in(cron_job(), "metadata.name", name)) == [
        f'metadata.name: Invalid value: "{name}": must be no more than 52 characters'
    ]


# ---------------------------------------------------------- Lease, Namespace, ConfigMap, ...


def test_lease_duration_must_be_positive() -> None:
    obj = lease("leader", leaseDurationSeconds=0)
    assert problems("coordination.k8s.io", "Lease", obj) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    ]


def test_lease_without_duration_is_valid() -> None:
    obj = lease("leader", holderIdentity="me")
    assert problems("coordination.k8s.io", "Lease", obj) == []


def test_namespace_finalizers_must_be_qualified_names() -> None:
    obj = namespace("team-a", finalizers=["custom"])
    assert problems("", "Namespace", obj) == [
        'spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor '
        "is it fully qualified"
    ]


def test_configmap_keys_must_be_config_keys() -> None:
    obj = configmap("c", data={"bad key": "v", "good.key-1_A": "v"})
    assert problems("", "ConfigMap", obj) == [
        'data[bad key]: Invalid value: "bad key": a valid config key must consist of '
        "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    ]


def test_configmap_key_not_in_both_data_and_binary_data() -> None:
    obj = configmap("c", data={"k": "v"}, binaryData={"k": "dg=="})
    assert problems("", "ConfigMap", obj) == [
        'data[k]: Invalid value: "k": duplicate of key present in binaryData'
    ]


def test_configmap_total_size_at_most_one_mebibyte() -> None:
    obj = configmap("c", data={"a": "x" * (1024 * 1024), "b": "y"})
    assert problems("", "ConfigMap", obj) == [": Too long: may not be more than 1048576 bytes"]


def test_immutable_configmap_data_is_frozen() -> None:
    old = stored("", "ConfigMap", configmap("c", data={"k": "v"}, immutable=True))
    assert problems("", "ConfigMap", set_in(old, "data", {"k": "w"}), old) == [
        "data: Forbidden: field is immutable when `immutable` is set"
    ]


@pytest.mark.parametrize(
    ("value", "offset"), [("abc", 0), ("ab!d", 2), ("YQ=", 3), ("YQ==YQ==", 4)]
)
def test_secret_data_must_be_base64(value: str, offset: int) -> None:
    obj = secret("s", data={"k": value})
    assert problems("", "Secret", obj) == [
        f'data[k]: Invalid value: "<secret contents redacted>": illegal base64 data at input '
        f"byte {offset}"
    ]


def test_secret_base64_may_contain_newlines() -> None:
    obj = secret("s", data={"k": "aHVu\ndGVy\nMg=="})
    assert problems("", "Secret", obj) == []


def test_secret_total_size_at_most_one_mebibyte() -> None:
    big = "A" * (4 * 350_000)  # decodes to 1,050,000 bytes
    assert problems("", "Secret", secret("s", data={"k": big})) == [
        "data: Too long: may not be more than 1048576 bytes"
    ]


def test_secret_type_is_immutable() -> None:
    old = stored("", "Secret", secret("s"))
    assert problems("", "Secret", set_in(old, "type", "example.com/token"), old) == [
        'type: Invalid value: "example.com/token": field is immutable'
    ]


def test_tls_secret_needs_certificate_and_key() -> None:
    obj = secret("s", type="kubernetes.io/tls", data={"tls.crt": "Yw=="})
    assert problems("", "Secret", obj) == ["data[tls.key]: Required value"]


def test_node_taint_effect_values() -> None:
    obj = node("n1", taints=[{"key": "k", "effect": "Maybe"}])
    assert problems("", "Node", obj) == [
        'metadata.taints[0].effect: Unsupported value: "Maybe": supported values: '
        '"NoSchedule", "PreferNoSchedule", "NoExecute"'
    ]


def test_event_namespace_must_match_involved_object() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"},
    }
    assert problems("", "Event", event) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace'
    ]


def test_new_style_core_event_needs_reporting_fields() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reportingComponent": "example.com/ctrl",
        "reportingInstance": "ctrl-1",
        "action": "Scale",
    }
    assert problems("", "Event", event) == ["reason: Required value"]


def test_events_k8s_io_event_is_checked_strictly() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reportingController": "example.com/ctrl",
        "reportingInstance": "ctrl-1",
        "action": "Scale",
        "reason": "Scaled",
        "type": "Info",
        "deprecatedCount": 2,
    }
    assert problems("events.k8s.io", "Event", event) == [
        'type: Invalid value: "": has invalid value: Info',
        'count: Invalid value: "": needs to be unset',
    ]


def test_events_k8s_io_event_note_is_immutable() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reportingController": "example.com/ctrl",
        "reportingInstance": "ctrl-1",
        "action": "Scale",
        "reason": "Scaled",
        "type": "Normal",
        "note": "first",
    }
    old = stored("events.k8s.io", "Event", event)
    assert problems("events.k8s.io", "Event", set_in(old, "note", "second"), old) == [
        'message: Invalid value: "second": field is immutable'
    ]


# ------------------------------------------------------------------------------------ cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_cron_every_fifteen_minutes_next_run() -> None:
    assert cron.parse("*/15 * * * *").next_after(at("2026-05-04 10:07:12")) == at(
        "2026-05-04 10:15:00"
    )


def test_cron_next_run_is_strictly_after_a_matching_time() -> None:
    assert cron.parse("*/15 * * * *").next_after(at("2026-05-04 10:15:00")) == at(
        "2026-05-04 10:30:00"
    )


def test_cron_weekday_names_and_ranges() -> None:
    # 2026-05-08 is a Friday
    assert cron.parse("30 9 * * MON-FRI").next_after(at("2026-05-08 10:00:00")) == at(
        "2026-05-11 09:30:00"
    )


def test_cron_month_names_are_case_insensitive() -> None:
    assert cron.parse("0 0 1 jan,Jul *").next_after(at("2026-02-10 00:00:00")) == at(
        "2026-07-01 00:00:00"
    )


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", "2027-01-01 00:00:00"),
        ("@annually", "2027-01-01 00:00:00"),
        ("@monthly", "2026-06-01 00:00:00"),
        ("@weekly", "2026-05-10 00:00:00"),
        ("@daily", "2026-05-05 00:00:00"),
        ("@midnight", "2026-05-05 00:00:00"),
        ("@hourly", "2026-05-04 11:00:00"),
    ],
)
def test_cron_macros(macro: str, expected: str) -> None:
    assert cron.parse(macro).next_after(at("2026-05-04 10:07:00")) == at(expected)


def test_cron_every_duration_counts_from_the_given_second() -> None:
    assert cron.parse("@every 1h30m").next_after(at("2026-05-04 10:07:12.5")) == at(
        "2026-05-04 11:37:12"
    )


def test_cron_restricted_day_of_month_or_week_fires_on_either() -> None:
    schedule = cron.parse("0 0 13 * FRI")  # the 13th, or any Friday
    assert schedule.next_after(at("2026-05-09 00:00:00")) == at("2026-05-13 00:00:00")
    assert schedule.next_after(at("2026-05-13 00:00:00")) == at("2026-05-15 00:00:00")


def test_cron_star_day_of_month_requires_weekday_match() -> None:
    assert cron.parse("0 0 * * SUN").next_after(at("2026-05-04 00:00:00")) == at(
        "2026-05-10 00:00:00"
    )


def test_cron_impossible_date_never_fires() -> None:
    assert cron.parse("0 0 30 2 *").next_after(at("2026-01-01 00:00:00")) is None


def test_cron_time_zone_prefix_runs_on_local_wall_clock() -> None:
    # 09:00 in New York is 13:00 UTC in May (EDT)
    assert cron.parse("TZ=America/New_York 0 9 * * *").next_after(at("2026-05-04 12:00:00")) == at(
        "2026-05-04 13:00:00"
    )


def test_cron_skips_wall_clock_times_lost_to_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 28, 12, 0, tzinfo=berlin)  # clocks jump 02:00 -> 03:00 on the 29th
    assert cron.parse("30 2 * * *").next_after(start) == datetime(2026, 3, 30, 2, 30, tzinfo=berlin)


def test_cron_result_keeps_the_callers_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    result = cron.parse("TZ=UTC 0 12 * * *").next_after(datetime(2026, 5, 4, 9, 0, tzinfo=berlin))
    assert result == datetime(2026, 5, 4, 14, 0, tzinfo=berlin)
    assert result is not None and result.tzinfo is berlin


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("", "empty spec string"),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("*/5/2 * * * *", "too many slashes: */5/2"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("* * * * 7", "end of range (7) above maximum (6): 7"),
        (
            "@every 5x",
            'failed to parse duration @every 5x: time: unknown unit "x" in duration "5x"',
        ),
        (
            "TZ=Nowhere/Land * * * * *",
            "provided bad location Nowhere/Land: unknown time zone Nowhere/Land",
        ),
    ],
)
def test_cron_errors_are_worded_like_robfig_cron(schedule: str, message: str) -> None:
    with pytest.raises(cron.CronError) as error:
        cron.parse(schedule)
    assert str(error.value) == message


def _cron_field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    span = st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}")
    step = st.integers(1, high - low + 1)
    stepped = st.tuples(st.sampled_from(["*", f"{low}"]), step).map(lambda p: f"{p[0]}/{p[1]}")
    part = st.one_of(st.just("*"), single, span, stepped)
    return st.lists(part, min_size=1, max_size=3).map(",".join)


SCHEDULES = st.tuples(
    _cron_field(0, 59),
    _cron_field(0, 23),
    _cron_field(1, 31),
    _cron_field(1, 12),
    _cron_field(0, 6),
).map(" ".join)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(SCHEDULES, MOMENTS)
def test_cron_next_run_is_strictly_later_and_matches_every_field(
    schedule: str, moment: datetime
) -> None:
    parsed = cron.parse(schedule)
    result = parsed.next_after(moment)
    if result is None:  # e.g. only February 30th: robfig/cron gives up after five years too
        return
    assert result > moment
    assert (result.second, result.microsecond) == (0, 0)
    assert parsed.matches(result)


@settings(max_examples=100, deadline=None)
@given(SCHEDULES, MOMENTS)
def test_cron_next_run_is_the_earliest_match(schedule: str, moment: datetime) -> None:
    parsed = cron.parse(schedule)
    result = parsed.next_after(moment)
    horizon = moment + timedelta(days=2)
    end = horizon if result is None else min(result, horizon)
    minute = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < end:
        assert not parsed.matches(minute), f"{minute} matches before {result}"
        minute += timedelta(minutes=1)


def test_the_registry_grows_and_shrinks_and_refuses_a_taken_name() -> None:
    from dataclasses import replace

    from setpoint.resources.registry import Registry, RegistryConflict

    registry = default_registry()
    lease = registry.lookup("coordination.k8s.io", "v1", "leases")
    assert lease is not None
    before = registry.generation
    widget = replace(lease, group="example.com", kind="Widget", plural="widgets", singular="widget")
    registry.register(widget)
    assert registry.lookup("example.com", "v1", "widgets") is widget
    assert registry.group_versions()["example.com"] == ["v1"]
    with pytest.raises(RegistryConflict):
        registry.register(replace(widget, kind="Gadget"))  # the plural is taken
    registry.remove(widget)
    assert registry.lookup("example.com", "v1", "widgets") is None
    assert "example.com" not in registry.group_versions()
    assert registry.generation == before + 2
    assert isinstance(registry, Registry)


# ------------------------------------------------------------ DaemonSet & ControllerRevision


def test_valid_daemon_set_has_no_problems() -> None:
    assert problems("apps", "DaemonSet", daemon_set()) == []


def test_daemon_set_selector_may_not_be_empty() -> None:
    assert problems("apps", "DaemonSet", daemon_set(selector={})) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for "
        "daemonset"
    ]


def test_daemon_set_update_strategy_type_values() -> None:
    assert problems("apps", "DaemonSet", daemon_set(updateStrategy={"type": "Sometimes"})) == [
        'spec.updateStrategy: Unsupported value: "Sometimes": supported values: '
        '"RollingUpdate", "OnDelete"'
    ]


def test_daemon_set_surge_and_unavailable_exclude_each_other() -> None:
    both = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}}
    assert problems("apps", "DaemonSet", daemon_set(updateStrategy=both)) == [
        "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, "
        'IntVal:0, StrVal:"10%"}: may not be set when maxUnavailable is non-zero'
    ]
    neither = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}
    assert problems("apps", "DaemonSet", daemon_set(updateStrategy=neither)) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when "
        "maxSurge is 0"
    ]


def test_daemon_set_percentages_stop_at_100() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}
    assert problems("apps", "DaemonSet", daemon_set(updateStrategy=strategy)) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "
        'intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%'
    ]


def test_daemon_set_pods_restart_always_without_deadline() -> None:
    template = daemon_set()["spec"]["template"]
    template["spec"].update(restartPolicy="Never", activeDeadlineSeconds=5)
    assert problems("apps", "DaemonSet", daemon_set(template=template)) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"',
        "spec.template.spec.activeDeadlineSeconds: Invalid value: 5: activeDeadlineSeconds in "
        "DaemonSet is not Supported",
    ]


def test_daemon_set_selector_is_immutable() -> None:
    old = stored("apps", "DaemonSet", daemon_set())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "agent", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert [p for p in problems("apps", "DaemonSet", new, old) if "immutable" in p] == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string"
        '{"app":"agent", "tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "field is immutable"
    ]


def controller_revision(data: Obj | None, revision: int = 1) -> Obj:
    body: Obj = {"revision": revision}
    if data is not None:
        body["data"] = data
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {}, **body}


def test_controller_revision_needs_data_and_a_nonnegative_revision() -> None:
    assert problems("apps", "ControllerRevision", controller_revision({"a": 1})) == []
    assert problems("apps", "ControllerRevision", controller_revision(None, -1)) == [
        "data: Required value: data is mandatory",
        "revision: Invalid value: -1: must be greater than or equal to 0",
    ]


def test_controller_revision_data_is_immutable() -> None:
    old = stored("apps", "ControllerRevision", controller_revision({"a": 1}))
    new = {**copy.deepcopy(old), "data": {"a": 2}, "revision": 5}
    assert problems("apps", "ControllerRevision", new, old) == [
        'data: Invalid value: {"a":2}: field is immutable'
    ]


# --- PodDisruptionBudgets -------------------------------------------------------------------


def pdb_problems(**spec: Any) -> list[str]:
    return problems("policy", "PodDisruptionBudget", pod_disruption_budget(**spec))


def test_pdb_with_min_available_or_max_unavailable_is_valid() -> None:
    assert pdb_problems(match_labels={"app": "web"}, minAvailable=2) == []
    assert pdb_problems(match_labels={"app": "web"}, maxUnavailable="25%") == []


def test_pdb_may_not_set_both_min_available_and_max_unavailable() -> None:
    assert pdb_problems(minAvailable=1, maxUnavailable=1) == [
        "spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:"
        "(*intstr.IntOrString)(0xc000000000), Selector:(*v1.LabelSelector)(nil), "
        "MaxUnavailable:(*intstr.IntOrString)(0xc000000000), UnhealthyPodEvictionPolicy:"
        "(*policy.UnhealthyPodEvictionPolicyType)(nil)}: minAvailable and maxUnavailable "
        "cannot be both set"
    ]


def test_pdb_counts_are_non_negative_numbers_or_percentages_up_to_100() -> None:
    assert pdb_problems(minAvailable=-1) == [
        "spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"
    ]
    assert pdb_problems(maxUnavailable="101%") == [
        'spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"101%"}: '
        "must not be greater than 100%"
    ]
    (problem,) = pdb_problems(minAvailable="half")
    assert problem.startswith("spec.minAvailable: Invalid value: ")
    assert "a valid percent string must be a numeric string followed by an ending '%'" in problem


def test_pdb_unhealthy_pod_eviction_policy_values() -> None:
    assert pdb_problems(minAvailable=1, unhealthyPodEvictionPolicy="AlwaysAllow") == []
    assert pdb_problems(minAvailable=1, unhealthyPodEvictionPolicy="Sometimes") == [
        'spec.unhealthyPodEvictionPolicy: Unsupported value: "Sometimes": supported values: '
        '"AlwaysAllow", "IfHealthyBudget"'
    ]


def test_pdb_selector_must_be_valid() -> None:
    selector = {"matchExpressions": [{"key": "app", "operator": "Maybe"}]}
    assert pdb_problems(selector=selector, minAvailable=1) != []


def test_pdb_status_counts_are_non_negative() -> None:
    old = stored("policy", "PodDisruptionBudget", pod_disruption_budget(minAvailable=1))
    new = {**old, "status": {"disruptionsAllowed": -1}}
    assert problems("policy", "PodDisruptionBudget", new, old) == [
        "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0"
    ]
