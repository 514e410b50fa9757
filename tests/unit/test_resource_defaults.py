"""What the API server fills in on its own: defaults, create-time preparation and field
selectors, as Kubernetes does them (``pkg/apis/*/v1/defaults.go``, the registry strategies'
``PrepareForCreate`` and ``ToSelectableFields``).

Objects go through the hooks in the order the storage layer calls them on create:
``prepare_for_create``, then ``defaulter``, then ``validator``.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from setpoint.meta.quantity import canonical, parse_quantity, round_to_milli
from tests.kinds import REGISTRY, UID, Obj, stored
from tests.objects import (
    container,
    cron_job,
    daemon_set,
    deployment,
    job,
    namespace,
    pod,
    replica_set,
    secret,
)


def create(group: str, kind: str, obj: Obj) -> Obj:
    """The object as stored after a valid create (asserts it validates)."""
    made = stored(group, kind, obj)
    rtype = REGISTRY.by_kind(group, "v1", kind)
    assert rtype is not None
    assert rtype.validator(made, None) == []
    return made


def selector(group: str, kind: str, field: str, obj: Obj) -> str:
    rtype = REGISTRY.by_kind(group, "v1", kind)
    assert rtype is not None
    return rtype.field_selectors[field](obj)


def pod_with(**fields: Any) -> Obj:
    """A Pod whose single container has ``fields``."""
    return pod(containers=[container(**fields)])


# ----------------------------------------------------------------------------------- pods


def test_pod_spec_defaults_restart_dns_scheduler_grace_period() -> None:
    spec = create("", "Pod", pod())["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}


def test_pod_enables_service_links() -> None:
    assert create("", "Pod", pod())["spec"]["enableServiceLinks"] is True


def test_pod_keeps_explicit_spec_values() -> None:
    spec = create("", "Pod", pod(restartPolicy="Never", terminationGracePeriodSeconds=0))["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 0


def test_deprecated_service_account_mirrors_service_account_name() -> None:
    spec = create("", "Pod", pod(serviceAccount="robot"))["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("robot", "robot")
    spec = create("", "Pod", pod(serviceAccountName="builder", serviceAccount="robot"))["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("builder", "builder")


def test_container_termination_message_defaults() -> None:
    c = create("", "Pod", pod())["spec"]["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "registry.local:5000/team/app"])
def test_image_pull_policy_always_for_latest_or_untagged(image: str) -> None:
    c = create("", "Pod", pod_with(image=image))["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "Always"


@pytest.mark.parametrize(
    "image", ["nginx:1.25", "registry.local:5000/app:v2", "nginx@sha256:" + "a" * 64]
)
def test_image_pull_policy_if_not_present_for_tag_or_digest(image: str) -> None:
    c = create("", "Pod", pod_with(image=image))["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_explicit_image_pull_policy_is_kept() -> None:
    c = create("", "Pod", pod_with(image="nginx", imagePullPolicy="Never"))["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "Never"


def test_container_port_protocol_defaults_to_tcp() -> None:
    c = create("", "Pod", pod_with(ports=[{"containerPort": 80}]))["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


def test_probe_defaults_timeout_period_thresholds() -> None:
    probe = {"exec": {"command": ["true"]}}
    c = create("", "Pod", pod_with(livenessProbe=probe))["spec"]["containers"][0]
    assert c["livenessProbe"] == {
        "exec": {"command": ["true"]},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def test_http_get_probe_defaults_path_and_scheme() -> None:
    probe = {"httpGet": {"port": 8080}}
    c = create("", "Pod", pod_with(readinessProbe=probe))["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"] == {"port": 8080, "path": "/", "scheme": "HTTP"}


def test_env_field_ref_api_version_defaults_to_v1() -> None:
    env = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    c = create("", "Pod", pod_with(env=env))["spec"]["containers"][0]
    assert c["env"][0]["valueFrom"]["fieldRef"] == {
        "fieldPath": "spec.nodeName",
        "apiVersion": "v1",
    }


def test_volume_without_source_becomes_empty_dir() -> None:
    spec = create("", "Pod", pod(volumes=[{"name": "scratch"}]))["spec"]
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {}}]


def test_configmap_and_secret_volumes_default_mode_420() -> None:
    volumes = [
        {"name": "config", "configMap": {"name": "settings"}},
        {"name": "creds", "secret": {"secretName": "creds"}},
    ]
    spec = create("", "Pod", pod(volumes=volumes))["spec"]
    assert [v.get("configMap", v.get("secret"))["defaultMode"] for v in spec["volumes"]] == [
        420,
        420,
    ]


def test_pod_requests_default_to_limits() -> None:
    resources = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    c = create("", "Pod", pod_with(resources=resources))["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_template_requests_do_not_default_to_limits() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    spec = create("apps", "Deployment", obj)["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    assert "enableServiceLinks" not in spec


def test_container_quantities_are_stored_canonically() -> None:
    resources = {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": "2000m"}}
    c = create("", "Pod", pod_with(resources=resources))["spec"]["containers"][0]
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2"},
    }


def test_host_network_pod_host_ports_follow_container_ports() -> None:
    spec = create(
        "", "Pod", pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 80}])])
    )
    assert spec["spec"]["containers"][0]["ports"][0]["hostPort"] == 80


def test_pod_starts_pending() -> None:
    assert create("", "Pod", pod())["status"]["phase"] == "Pending"


def test_pod_without_resources_is_best_effort() -> None:
    assert create("", "Pod", pod())["status"]["qosClass"] == "BestEffort"


def test_pod_with_equal_requests_and_limits_is_guaranteed() -> None:
    resources = {"limits": {"cpu": "250m", "memory": "64Mi"}}
    assert create("", "Pod", pod_with(resources=resources))["status"]["qosClass"] == "Guaranteed"


def test_pod_with_requests_below_limits_is_burstable() -> None:
    resources = {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "100m"}}
    assert create("", "Pod", pod_with(resources=resources))["status"]["qosClass"] == "Burstable"


def test_pod_with_only_cpu_limit_is_burstable() -> None:
    resources = {"limits": {"cpu": "1"}}
    assert create("", "Pod", pod_with(resources=resources))["status"]["qosClass"] == "Burstable"


def test_guaranteed_needs_every_container_limited() -> None:
    limited = container(resources={"limits": {"cpu": "1", "memory": "1Gi"}})
    free = {"name": "sidecar", "image": "busybox"}
    assert create("", "Pod", pod(containers=[limited, free]))["status"]["qosClass"] == "Burstable"


def test_scheduling_gated_pod_gets_pod_scheduled_condition() -> None:
    status = create("", "Pod", pod(schedulingGates=[{"name": "example.com/wait"}]))["status"]
    assert status["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
        }
    ]


# ------------------------------------------------------------------ namespaces, secrets, nodes


def test_namespace_starts_active_with_kubernetes_finalizer() -> None:
    ns = create("", "Namespace", namespace("team-a"))
    assert ns["status"] == {"phase": "Active"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}


def test_namespace_keeps_own_finalizers_and_adds_kubernetes() -> None:
    obj = namespace("team-a", finalizers=["example.com/cleanup"])
    assert create("", "Namespace", obj)["spec"]["finalizers"] == [
        "example.com/cleanup",
        "kubernetes",
    ]


def test_namespace_is_labelled_with_its_name() -> None:
    labels = create("", "Namespace", namespace("team-a"))["metadata"]["labels"]
    assert labels == {"kubernetes.io/metadata.name": "team-a"}


def test_secret_type_defaults_to_opaque() -> None:
    assert create("", "Secret", secret("s"))["type"] == "Opaque"


def test_secret_string_data_is_folded_into_data() -> None:
    obj = create("", "Secret", secret("s", data={"a": "YQ=="}, stringData={"b": "hunter2"}))
    assert obj["data"] == {"a": "YQ==", "b": "aHVudGVyMg=="}
    assert "stringData" not in obj


def test_node_allocatable_defaults_to_capacity() -> None:
    obj = {"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}
    assert create("", "Node", obj)["status"]["allocatable"] == {"cpu": "4", "memory": "8Gi"}


# ------------------------------------------------------------------------------------ apps


def test_deployment_defaults_rolling_update_25_percent() -> None:
    strategy = create("apps", "Deployment", deployment())["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }


def test_deployment_defaults_replicas_history_and_progress_deadline() -> None:
    spec = create("apps", "Deployment", deployment())["spec"]
    assert (spec["replicas"], spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (
        1,
        10,
        600,
    )


def test_deployment_keeps_zero_replicas() -> None:
    assert create("apps", "Deployment", deployment(replicas=0))["spec"]["replicas"] == 0


def test_deployment_fills_in_missing_max_surge_only() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    spec = create("apps", "Deployment", deployment(strategy=strategy))["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": "25%"}


def test_recreate_deployment_gets_no_rolling_update() -> None:
    spec = create("apps", "Deployment", deployment(strategy={"type": "Recreate"}))["spec"]
    assert spec["strategy"] == {"type": "Recreate"}


def test_deployment_template_gets_pod_spec_defaults() -> None:
    tagged = deployment(containers=[container(image="nginx:1.25")])
    template = create("apps", "Deployment", tagged)["spec"]["template"]["spec"]
    assert template["restartPolicy"] == "Always"
    assert template["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_replica_set_defaults_one_replica() -> None:
    assert create("apps", "ReplicaSet", replica_set())["spec"]["replicas"] == 1


# ----------------------------------------------------------------------------------- batch


def test_job_defaults_completions_parallelism_and_backoff_limit() -> None:
    spec = create("batch", "Job", job())["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)


def test_job_with_parallelism_only_keeps_completions_unset() -> None:
    spec = create("batch", "Job", job(parallelism=5))["spec"]
    assert spec["parallelism"] == 5
    assert "completions" not in spec


def test_job_with_completions_only_runs_one_pod_at_a_time() -> None:
    spec = create("batch", "Job", job(completions=3))["spec"]
    assert (spec["completions"], spec["parallelism"]) == (3, 1)


def test_job_defaults_mode_suspend_replacement_and_manual_selector() -> None:
    spec = create("batch", "Job", job())["spec"]
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["manualSelector"] is False


def test_job_backoff_limit_per_index_lifts_backoff_limit() -> None:
    obj = job(completionMode="Indexed", completions=2, backoffLimitPerIndex=1)
    assert create("batch", "Job", obj)["spec"]["backoffLimit"] == 2**31 - 1


def test_job_with_pod_failure_policy_replaces_only_failed_pods() -> None:
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    spec = create("batch", "Job", job(podFailurePolicy=policy))["spec"]
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_job_selector_is_generated_from_uid() -> None:
    spec = create("batch", "Job", job())["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}


def test_job_template_gets_controller_labels() -> None:
    labels = create("batch", "Job", job())["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "batch.kubernetes.io/controller-uid": UID,
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": UID,
        "job-name": "pi",
    }


def test_job_is_labelled_like_its_template() -> None:
    obj = create("batch", "Job", job())
    assert obj["metadata"]["labels"] == obj["spec"]["template"]["metadata"]["labels"]


def test_job_with_manual_selector_keeps_its_selector_and_labels() -> None:
    obj = job(manualSelector=True, selector={"matchLabels": {"app": "pi"}})
    obj["spec"]["template"]["metadata"] = {"labels": {"app": "pi"}}
    spec = create("batch", "Job", obj)["spec"]
    assert spec["selector"] == {"matchLabels": {"app": "pi"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "pi"}


def test_cron_job_defaults() -> None:
    spec = create("batch", "CronJob", cron_job("hourly", schedule="@hourly"))["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)


def test_cron_job_template_gets_pod_defaults_but_no_job_defaults() -> None:
    obj = cron_job("hourly", schedule="@hourly")
    job_spec = create("batch", "CronJob", obj)["spec"]["jobTemplate"]["spec"]
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert "backoffLimit" not in job_spec


# ------------------------------------------------------------------------------ quantities


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("0.5", "500m"),
        ("1000m", "1"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Ki", "512"),
        ("1e3", "1e3"),
        ("1.5", "1500m"),
        ("0.0001", "1m"),
    ],
)
def test_container_quantity_canonical_form(text: str, stored: str) -> None:
    assert canonical(round_to_milli(parse_quantity(text))) == stored


@given(
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "e3", "e-3"]),
)
def test_canonical_quantity_reads_back_as_same_value(number: int, suffix: str) -> None:
    quantity = parse_quantity(f"{number}{suffix}")
    again = parse_quantity(canonical(quantity))
    assert again.value == quantity.value
    assert canonical(again) == canonical(quantity)


def test_quantity_rounds_up_to_nano_units() -> None:
    assert parse_quantity("0.0000000001").value == Fraction(1, 10**9)


# -------------------------------------------------------------------------- field selectors


def test_pod_field_selectors_read_spec_and_status() -> None:
    obj = create("", "Pod", pod(nodeName="n1", serviceAccountName="robot"))
    values = {
        f: selector("", "Pod", f, obj) for f in REGISTRY.by_kind("", "v1", "Pod").field_selectors
    }
    assert values == {
        "spec.nodeName": "n1",
        "spec.restartPolicy": "Always",
        "spec.schedulerName": "default-scheduler",
        "spec.serviceAccountName": "robot",
        "spec.hostNetwork": "false",
        "status.phase": "Pending",
        "status.podIP": "",
        "status.nominatedNodeName": "",
    }


def test_pod_host_network_selector_is_true_or_false() -> None:
    obj = {"spec": {"hostNetwork": True}}
    assert selector("", "Pod", "spec.hostNetwork", obj) == "true"


def test_pod_ip_selector_reads_first_pod_ip() -> None:
    obj = {"status": {"podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}]}}
    assert selector("", "Pod", "status.podIP", obj) == "10.0.0.9"


def test_node_unschedulable_selector() -> None:
    assert selector("", "Node", "spec.unschedulable", {"spec": {"unschedulable": True}}) == "true"
    assert selector("", "Node", "spec.unschedulable", {"spec": {}}) == "false"


def test_secret_type_selector() -> None:
    assert selector("", "Secret", "type", create("", "Secret", secret("s"))) == "Opaque"


def test_namespace_selectors() -> None:
    ns = create("", "Namespace", namespace("team-a"))
    assert selector("", "Namespace", "status.phase", ns) == "Active"
    assert selector("", "Namespace", "name", ns) == "team-a"


def test_job_successful_selector_counts_succeeded_pods() -> None:
    assert selector("batch", "Job", "status.successful", {"status": {"succeeded": 3}}) == "3"
    assert selector("batch", "Job", "status.successful", {}) == "0"


def test_event_field_selectors() -> None:
    event = {
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
        "reason": "Pulled",
        "reportingComponent": "kubelet",
        "type": "Normal",
    }
    assert selector("", "Event", "involvedObject.kind", event) == "Pod"
    assert selector("", "Event", "involvedObject.uid", event) == "u1"
    assert selector("", "Event", "involvedObject.fieldPath", event) == ""
    assert selector("", "Event", "reason", event) == "Pulled"
    assert selector("", "Event", "reportingComponent", event) == "kubelet"
    assert selector("", "Event", "source", event) == "kubelet"
    assert selector("", "Event", "source", {**event, "source": {"component": "sched"}}) == "sched"
    assert selector("", "Event", "type", event) == "Normal"


def test_events_k8s_io_field_selectors_use_v1_names() -> None:
    event = {
        "regarding": {"kind": "Pod", "name": "web"},
        "reportingController": "example.com/ctrl",
        "deprecatedSource": {"component": "old"},
    }
    group = "events.k8s.io"
    assert selector(group, "Event", "regarding.name", event) == "web"
    assert selector(group, "Event", "reportingController", event) == "example.com/ctrl"
    assert selector(group, "Event", "source", event) == "old"


# ----------------------------------------------------------------------------- DaemonSets


def test_daemon_set_defaults_rolling_update_one_unavailable_no_surge() -> None:
    spec = create("apps", "DaemonSet", daemon_set())["spec"]
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_on_delete_daemon_set_gets_no_rolling_update() -> None:
    obj = daemon_set(updateStrategy={"type": "OnDelete"})
    assert create("apps", "DaemonSet", obj)["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_daemon_set_starts_at_template_generation_one() -> None:
    annotations = create("apps", "DaemonSet", daemon_set())["metadata"]["annotations"]
    assert annotations == {"deprecated.daemonset.template.generation": "1"}


def test_template_change_raises_the_template_generation_and_nothing_else_does() -> None:
    rtype = REGISTRY.by_kind("apps", "v1", "DaemonSet")
    assert rtype is not None
    old = create("apps", "DaemonSet", daemon_set())
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["annotations"] = {"deprecated.daemonset.template.generation": "7"}
    relabelled["spec"]["minReadySeconds"] = 5
    rtype.prepare_for_update(relabelled, old)
    assert relabelled["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    rtype.prepare_for_update(changed, old)
    assert changed["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
