"""Specification of server-side printing: the columns and cells of ``kubectl get`` per kind.

Expected values follow Kubernetes' ``pkg/printers/internalversion/printers.go`` (and its
tests): the cells of a row always include the ``-o wide`` ones, which kubectl drops unless
asked. Every object here is a small JSON document; times are relative to a fixed ``NOW``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from setpoint.api.tables import to_table
from setpoint.resources.catalog import KINDS
from setpoint.resources.printers.base import DEFAULT_PRINTER, Printer, human_duration
from tests import objects
from tests.objects import (
    configmap,
    container,
    cron_job,
    daemon_set,
    deployment,
    job_template,
    lease,
    namespace,
    pod_disruption_budget,
    pod_template,
    replica_set,
    secret,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
# each built-in kind's printer, as its declaration names it
PRINTERS: dict[tuple[str, str], Printer] = {
    (t.group, t.kind): t.printer for t in KINDS if t.printer is not None
}


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(group: str, kind: str, obj: dict[str, Any]) -> list[Any]:
    return PRINTERS[(group, kind)].cells(obj, NOW)


def column_names(group: str, kind: str, priority: int) -> list[str]:
    return [c["name"] for c in PRINTERS[(group, kind)].columns if c["priority"] == priority]


CREATED = {"creationTimestamp": ago(hours=5)}
"""The metadata of every object here besides its name: made five hours before ``NOW``."""


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, **CREATED, **extra}


# --- every kind -----------------------------------------------------------------------------


def test_every_built_in_kind_declares_its_printer() -> None:
    """A kind either has a printer or says it uses the default (NAME and AGE); today every
    built-in kind has its own, as in Kubernetes (but the create-only access reviews, which
    are never listed)."""
    for rtype in KINDS:
        if "list" not in rtype.verbs:
            continue
        assert rtype.printer is not None, f"{rtype.kind} declares no printer"
        if rtype.stored:  # a review (TokenReview) is never listed: no table of its own
            assert rtype.printer is not DEFAULT_PRINTER, rtype.kind


@pytest.mark.parametrize("key", sorted(PRINTERS))
def test_every_printer_gives_one_cell_per_column(key: tuple[str, str]) -> None:
    printer = PRINTERS[key]
    assert len(printer.cells({"metadata": meta()}, NOW)) == len(printer.columns)


@pytest.mark.parametrize("key", sorted(PRINTERS))
def test_the_name_column_has_the_name_format(key: tuple[str, str]) -> None:
    names = [c for c in PRINTERS[key].columns if c["name"] == "Name"]
    assert len(names) == 1
    assert names[0]["format"] == "name"


@pytest.mark.parametrize("key", sorted(PRINTERS))
def test_every_column_is_described(key: tuple[str, str]) -> None:
    for definition in PRINTERS[key].columns:
        assert definition["description"], definition["name"]
        assert set(definition) == {"name", "type", "format", "description", "priority"}


def test_age_is_unknown_without_a_creation_timestamp() -> None:
    assert cells("", "ConfigMap", {"metadata": {"name": "c"}})[-1] == "<unknown>"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (119, "119s"),
        (150, "2m30s"),
        (180, "3m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600 + 4 * 60, "3h4m"),
        (8 * 3600, "8h"),
        (50 * 3600, "2d2h"),
        (9 * 86400, "9d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_kubernetes(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# --- pods -----------------------------------------------------------------------------------


def pod(
    containers: list[dict[str, Any]] | None = None,
    *,
    phase: str = "Running",
    init: list[dict[str, Any]] | None = None,
    spec: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    """A pod whose containers are named after their statuses (``c0``, ``c1``, ...; init
    containers ``i0``, ``i1``, ...) with more of its ``spec`` and its ``status``."""
    containers = containers or []
    init = init or []
    pod_spec: dict[str, Any] = dict(spec or {})
    if init:
        pod_spec.setdefault("initContainers", [container(f"i{i}") for i in range(len(init))])
    return objects.pod(
        "p",
        metadata=CREATED,
        containers=[container(f"c{i}") for i in range(len(containers))],
        status={
            "phase": phase,
            "containerStatuses": [{"name": f"c{i}", **c} for i, c in enumerate(containers)],
            "initContainerStatuses": [{"name": f"i{i}", **c} for i, c in enumerate(init)],
            **status,
        },
        **pod_spec,
    )


RUNNING = {"ready": True, "restartCount": 0, "state": {"running": {"startedAt": ago(hours=1)}}}


def waiting(reason: str) -> dict[str, Any]:
    return {"ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}


def terminated(**fields: Any) -> dict[str, Any]:
    return {"ready": False, "restartCount": 0, "state": {"terminated": fields}}


def pod_status(obj: dict[str, Any]) -> str:
    status: str = cells("", "Pod", obj)[2]
    return status


def test_pod_columns() -> None:
    assert column_names("", "Pod", 0) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert column_names("", "Pod", 1) == ["IP", "Node", "Nominated Node", "Readiness Gates"]


def test_pod_restarts_column_is_a_string() -> None:
    types = {c["name"]: c["type"] for c in PRINTERS[("", "Pod")].columns}
    assert types["Restarts"] == "string"


def test_pod_row_of_a_running_pod() -> None:
    row = cells("", "Pod", pod([RUNNING]))
    assert row[:5] == ["p", "1/1", "Running", "0", "5h"]


def test_pod_status_is_the_phase() -> None:
    assert pod_status(pod([waiting("")], phase="Pending")) == "Pending"


def test_pod_status_reason_overrides_the_phase() -> None:
    assert pod_status(pod([], phase="Failed", reason="Evicted")) == "Evicted"


def test_pod_status_scheduling_gated() -> None:
    gated = {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
    assert pod_status(pod([], phase="Pending", conditions=[gated])) == "SchedulingGated"


def test_pod_ready_counts_ready_running_containers() -> None:
    not_ready = {**RUNNING, "ready": False}
    assert cells("", "Pod", pod([RUNNING, not_ready, RUNNING]))[1] == "2/3"


def test_pod_ready_counts_started_sidecars() -> None:
    sidecar_spec = [{"name": "i0", "image": "envoy", "restartPolicy": "Always"}]
    sidecar = {**RUNNING, "started": True}
    obj = pod([RUNNING], init=[sidecar], spec={"initContainers": sidecar_spec})
    assert cells("", "Pod", obj)[1:3] == ["2/2", "Running"]


def test_pod_status_init_progress() -> None:
    obj = pod([waiting("PodInitializing")], phase="Pending", init=[terminated(exitCode=0), {}])
    assert pod_status(obj) == "Init:1/2"


def test_pod_status_init_waiting_for_pod_initializing_shows_progress() -> None:
    obj = pod([], phase="Pending", init=[waiting("PodInitializing")])
    assert pod_status(obj) == "Init:0/1"


def test_pod_status_init_crash_loop_back_off() -> None:
    obj = pod([], phase="Pending", init=[waiting("CrashLoopBackOff")])
    assert pod_status(obj) == "Init:CrashLoopBackOff"


def test_pod_status_init_error() -> None:
    obj = pod([], phase="Pending", init=[terminated(exitCode=1, reason="Error")])
    assert pod_status(obj) == "Init:Error"


def test_pod_status_init_exit_code() -> None:
    obj = pod([], phase="Pending", init=[terminated(exitCode=1)])
    assert pod_status(obj) == "Init:ExitCode:1"


def test_pod_status_init_signal() -> None:
    obj = pod([], phase="Pending", init=[terminated(exitCode=137, signal=9)])
    assert pod_status(obj) == "Init:Signal:9"


def test_pod_status_first_unfinished_init_container_decides() -> None:
    obj = pod([], phase="Pending", init=[waiting("ImagePullBackOff"), terminated(exitCode=2)])
    assert pod_status(obj) == "Init:ImagePullBackOff"


def test_pod_status_crash_loop_back_off() -> None:
    assert pod_status(pod([waiting("CrashLoopBackOff")])) == "CrashLoopBackOff"


def test_pod_status_container_creating() -> None:
    assert pod_status(pod([waiting("ContainerCreating")], phase="Pending")) == "ContainerCreating"


def test_pod_status_completed() -> None:
    obj = pod([terminated(exitCode=0, reason="Completed")], phase="Succeeded")
    assert pod_status(obj) == "Completed"


def test_pod_status_error() -> None:
    assert pod_status(pod([terminated(exitCode=1, reason="Error")], phase="Failed")) == "Error"


def test_pod_status_oom_killed() -> None:
    obj = pod([terminated(exitCode=137, reason="OOMKilled")], phase="Failed")
    assert pod_status(obj) == "OOMKilled"


def test_pod_status_exit_code() -> None:
    assert pod_status(pod([terminated(exitCode=2)], phase="Failed")) == "ExitCode:2"


def test_pod_status_signal() -> None:
    assert pod_status(pod([terminated(exitCode=137, signal=9)], phase="Failed")) == "Signal:9"


def test_pod_status_first_container_with_a_reason_wins() -> None:
    obj = pod([waiting("CrashLoopBackOff"), waiting("ImagePullBackOff")])
    assert pod_status(obj) == "CrashLoopBackOff"


def test_pod_status_completed_with_a_running_container_is_running() -> None:
    ready = {"type": "Ready", "status": "True"}
    obj = pod([RUNNING, terminated(exitCode=0, reason="Completed")], conditions=[ready])
    assert pod_status(obj) == "Running"


def test_pod_status_completed_with_a_running_container_is_not_ready() -> None:
    not_ready = {"type": "Ready", "status": "False"}
    obj = pod([RUNNING, terminated(exitCode=0, reason="Completed")], conditions=[not_ready])
    assert pod_status(obj) == "NotReady"


def test_pod_status_terminating() -> None:
    obj = pod([RUNNING])
    obj["metadata"]["deletionTimestamp"] = ago(seconds=5)
    assert pod_status(obj) == "Terminating"


def test_pod_status_unknown_when_the_node_was_lost() -> None:
    obj = pod([RUNNING], reason="NodeLost")
    obj["metadata"]["deletionTimestamp"] = ago(seconds=5)
    assert pod_status(obj) == "Unknown"


def test_pod_status_of_a_finished_pod_being_deleted_is_not_terminating() -> None:
    obj = pod([terminated(exitCode=0, reason="Completed")], phase="Succeeded")
    obj["metadata"]["deletionTimestamp"] = ago(seconds=5)
    assert pod_status(obj) == "Completed"


def test_pod_restarts_show_time_since_last_restart() -> None:
    restarted = {
        **RUNNING,
        "restartCount": 3,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=5)}},
    }
    older = {
        **RUNNING,
        "restartCount": 1,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(hours=1)}},
    }
    assert cells("", "Pod", pod([restarted, older]))[3] == "4 (5m ago)"


def test_pod_restarts_without_a_finish_time_are_a_plain_count() -> None:
    assert cells("", "Pod", pod([{**RUNNING, "restartCount": 2}]))[3] == "2"


def test_pod_restarts_count_init_containers_while_initializing() -> None:
    crashing = {**waiting("CrashLoopBackOff"), "restartCount": 4}
    assert cells("", "Pod", pod([waiting("PodInitializing")], init=[crashing]))[3] == "4"


def test_pod_restarts_drop_finished_init_containers_once_initialized() -> None:
    done = {**terminated(exitCode=0), "restartCount": 4}
    assert cells("", "Pod", pod([RUNNING], init=[done]))[3] == "0"


def test_pod_wide_cells() -> None:
    obj = pod(
        [RUNNING],
        spec={"nodeName": "node-a"},
        podIP="10.0.0.7",
        podIPs=[{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
        nominatedNodeName="node-b",
    )
    assert cells("", "Pod", obj)[5:] == ["10.0.0.7", "node-a", "node-b", "<none>"]


def test_pod_wide_cells_are_none_when_unscheduled() -> None:
    assert cells("", "Pod", pod([], phase="Pending"))[5:] == ["<none>"] * 4


def test_pod_ip_falls_back_to_pod_ips() -> None:
    assert cells("", "Pod", pod([RUNNING], podIPs=[{"ip": "fd00::7"}]))[5] == "fd00::7"


def test_pod_readiness_gates_count_true_conditions() -> None:
    gates = [{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]
    conditions = [
        {"type": "example.com/a", "status": "True"},
        {"type": "example.com/b", "status": "False"},
    ]
    obj = pod([RUNNING], spec={"readinessGates": gates}, conditions=conditions)
    assert cells("", "Pod", obj)[8] == "1/2"


def test_pod_row_is_completed_when_succeeded() -> None:
    obj = pod([terminated(exitCode=0, reason="Completed")], phase="Succeeded")
    assert PRINTERS[("", "Pod")].conditions(obj) == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_pod_row_is_completed_when_failed() -> None:
    obj = pod([terminated(exitCode=1, reason="Error")], phase="Failed")
    conditions = PRINTERS[("", "Pod")].conditions(obj)
    assert [(c["type"], c["status"], c["reason"]) for c in conditions] == [
        ("Completed", "True", "Failed")
    ]


def test_pod_row_of_a_running_pod_has_no_conditions() -> None:
    assert PRINTERS[("", "Pod")].conditions(pod([RUNNING])) == []


def test_table_rows_carry_pod_conditions() -> None:
    rtype = next(t for t in KINDS if t.kind == "Pod")
    table = to_table(rtype, [pod([], phase="Succeeded"), pod([RUNNING])])
    assert table["rows"][0]["conditions"][0]["type"] == "Completed"
    assert "conditions" not in table["rows"][1]


# --- nodes ----------------------------------------------------------------------------------


def node(*conditions: dict[str, Any], labels: dict[str, str] | None = None, **spec: Any) -> Any:
    """The node ``node-a`` with ``conditions``, its versions and addresses."""
    return objects.node(
        "node-a",
        labels=labels,
        metadata=CREATED,
        conditions=list(conditions),
        status={
            "nodeInfo": {
                "kubeletVersion": "v1.37.1",
                "osImage": "Debian GNU/Linux 13",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "containerd://2.0.0",
            },
            "addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalIP", "address": "10.0.0.5"},
            ],
        },
        **spec,
    )


READY = {"type": "Ready", "status": "True"}


def test_node_columns() -> None:
    assert column_names("", "Node", 0) == ["Name", "Status", "Roles", "Age", "Version"]
    assert column_names("", "Node", 1) == [
        "Internal-IP",
        "External-IP",
        "OS-Image",
        "Kernel-Version",
        "Container-Runtime",
    ]


def test_node_status_ready() -> None:
    assert cells("", "Node", node(READY))[:5] == ["node-a", "Ready", "<none>", "5h", "v1.37.1"]


def test_node_status_not_ready() -> None:
    assert cells("", "Node", node({"type": "Ready", "status": "Unknown"}))[1] == "NotReady"


def test_node_status_unknown_without_a_ready_condition() -> None:
    assert cells("", "Node", node({"type": "MemoryPressure", "status": "False"}))[1] == "Unknown"


def test_node_status_uses_the_last_ready_condition() -> None:
    assert cells("", "Node", node(READY, {"type": "Ready", "status": "False"}))[1] == "NotReady"


def test_node_status_scheduling_disabled() -> None:
    status = cells("", "Node", node(READY, unschedulable=True))[1]
    assert status == "Ready,SchedulingDisabled"


def test_node_roles_from_labels() -> None:
    labels = {
        "node-role.kubernetes.io/worker": "",
        "node-role.kubernetes.io/control-plane": "",
        "node-role.kubernetes.io/": "",
        "kubernetes.io/role": "edge",
    }
    assert cells("", "Node", node(READY, labels=labels))[2] == "control-plane,edge,worker"


def test_node_wide_cells() -> None:
    assert cells("", "Node", node(READY))[5:] == [
        "10.0.0.5",
        "<none>",
        "Debian GNU/Linux 13",
        "6.1.0",
        "containerd://2.0.0",
    ]


def test_node_wide_cells_are_unknown_without_node_info() -> None:
    bare = {"metadata": meta("n"), "status": {}}
    assert cells("", "Node", bare)[4:] == [
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]


# --- namespaces, config maps, secrets, service accounts, leases -----------------------------


def test_namespace_row() -> None:
    obj = namespace("team", metadata=CREATED, status={"phase": "Terminating"})
    assert column_names("", "Namespace", 0) == ["Name", "Status", "Age"]
    assert cells("", "Namespace", obj) == ["team", "Terminating", "5h"]


def test_configmap_data_counts_data_and_binary_data() -> None:
    obj = configmap("cfg", metadata=CREATED, data={"a": "1", "b": "2"}, binaryData={"c": "AA=="})
    assert column_names("", "ConfigMap", 0) == ["Name", "Data", "Age"]
    assert cells("", "ConfigMap", obj) == ["cfg", 3, "5h"]


def test_secret_row() -> None:
    obj = secret("s", metadata=CREATED, type="Opaque", data={"user": "bWU="})
    assert column_names("", "Secret", 0) == ["Name", "Type", "Data", "Age"]
    assert cells("", "Secret", obj) == ["s", "Opaque", 1, "5h"]


def test_service_account_row_counts_secrets() -> None:
    obj = {"metadata": meta("robot"), "secrets": [{"name": "a"}, {"name": "b"}]}
    assert column_names("", "ServiceAccount", 0) == ["Name", "Secrets", "Age"]
    assert cells("", "ServiceAccount", obj) == ["robot", 2, "5h"]


def test_lease_row_shows_the_holder() -> None:
    obj = lease("leader", metadata=CREATED, holderIdentity="node-a")
    assert column_names("coordination.k8s.io", "Lease", 0) == ["Name", "Holder", "Age"]
    assert cells("coordination.k8s.io", "Lease", obj) == ["leader", "node-a", "5h"]


def test_lease_holder_is_blank_when_unheld() -> None:
    assert cells("coordination.k8s.io", "Lease", lease("l", metadata=CREATED))[1] == ""


# --- events ---------------------------------------------------------------------------------


def event(**fields: Any) -> dict[str, Any]:
    return {
        "metadata": meta("web.1"),
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled",
        "message": "  Pulled image\n",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(minutes=30),
        "lastTimestamp": ago(minutes=5),
        "count": 4,
        **fields,
    }


def test_event_columns() -> None:
    assert column_names("", "Event", 0) == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert column_names("", "Event", 1) == ["Subobject", "Source", "First Seen", "Count", "Name"]


def test_event_cells() -> None:
    assert cells("", "Event", event()) == [
        "5m",
        "Normal",
        "Pulled",
        "pod/web",
        "spec.containers{app}",
        "kubelet, node-a",
        "Pulled image",
        "30m",
        4,
        "web.1",
    ]


def test_event_object_is_the_kind_alone_without_a_name() -> None:
    assert cells("", "Event", event(involvedObject={"kind": "Node"}))[3] == "node"


def test_event_last_seen_falls_back_to_first_seen() -> None:
    assert cells("", "Event", event(lastTimestamp=None))[0] == "30m"


def test_event_first_seen_falls_back_to_event_time() -> None:
    row = cells("", "Event", event(firstTimestamp=None, lastTimestamp=None, eventTime=ago(hours=3)))
    assert (row[0], row[7]) == ("3h", "3h")


def test_event_series_gives_count_and_last_seen() -> None:
    series = {"count": 7, "lastObservedTime": ago(seconds=40)}
    row = cells("", "Event", event(series=series))
    assert (row[0], row[8]) == ("40s", 7)


def test_event_count_defaults_to_one() -> None:
    assert cells("", "Event", event(count=None))[8] == 1


def test_event_source_falls_back_to_the_reporting_controller() -> None:
    row = cells("", "Event", event(source={}, reportingComponent="sched", reportingInstance="s-1"))
    assert row[5] == "sched, s-1"


def test_event_source_without_a_host_is_the_component() -> None:
    assert cells("", "Event", event(source={"component": "kubelet"}))[5] == "kubelet"


def test_events_v1_event_prints_like_its_core_event() -> None:
    obj = {
        "metadata": meta("web.2"),
        "regarding": {"kind": "Pod", "name": "web"},
        "reason": "Scheduled",
        "note": "Assigned to node-a",
        "type": "Normal",
        "action": "Binding",
        "reportingController": "default-scheduler",
        "reportingInstance": "sched-1",
        "eventTime": ago(minutes=10),
        "series": {"count": 2, "lastObservedTime": ago(minutes=1)},
    }
    assert PRINTERS[("events.k8s.io", "Event")].columns == PRINTERS[("", "Event")].columns
    assert cells("events.k8s.io", "Event", obj) == [
        "60s",
        "Normal",
        "Scheduled",
        "pod/web",
        "",
        "default-scheduler, sched-1",
        "Assigned to node-a",
        "10m",
        2,
        "web.2",
    ]


def test_events_v1_deprecated_fields_are_the_core_times_and_count() -> None:
    obj = {
        "metadata": meta("old"),
        "regarding": {"kind": "Pod", "name": "web"},
        "deprecatedFirstTimestamp": ago(hours=1),
        "deprecatedLastTimestamp": ago(minutes=2),
        "deprecatedCount": 9,
        "deprecatedSource": {"component": "kubelet"},
    }
    row = cells("events.k8s.io", "Event", obj)
    assert (row[0], row[5], row[7], row[8]) == ("2m", "kubelet", "60m", 9)


# --- deployments and replica sets -----------------------------------------------------------

TEMPLATE = pod_template(
    {"app": "web"}, containers=[container("web", "nginx:1.27"), container("log", "busybox")]
)


def test_deployment_columns() -> None:
    assert column_names("apps", "Deployment", 0) == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert column_names("apps", "Deployment", 1) == ["Containers", "Images", "Selector"]


def test_deployment_cells() -> None:
    obj = deployment(
        "web",
        metadata=CREATED,
        status={"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 1},
        replicas=3,
        selector={"matchLabels": {"app": "web"}},
        template=TEMPLATE,
    )
    assert cells("apps", "Deployment", obj) == [
        "web",
        "2/3",
        3,
        1,
        "5h",
        "web,log",
        "nginx:1.27,busybox",
        "app=web",
    ]


def test_deployment_empty_selector_is_blank() -> None:
    obj = deployment("web", metadata=CREATED, replicas=1, selector={})
    assert cells("apps", "Deployment", obj)[-1] == ""


def test_deployment_invalid_selector() -> None:
    bad = {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]}
    obj = deployment("web", metadata=CREATED, replicas=1, selector=bad)
    assert cells("apps", "Deployment", obj)[-1] == "<invalid>"


def test_replicaset_columns() -> None:
    assert column_names("apps", "ReplicaSet", 0) == ["Name", "Desired", "Current", "Ready", "Age"]
    assert column_names("apps", "ReplicaSet", 1) == ["Containers", "Images", "Selector"]


def test_replicaset_cells_render_the_selector_canonically() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}],
    }
    obj = replica_set(
        "web-1",
        metadata=CREATED,
        status={"replicas": 3, "readyReplicas": 2},
        replicas=3,
        selector=selector,
        template=TEMPLATE,
    )
    assert cells("apps", "ReplicaSet", obj) == [
        "web-1",
        3,
        3,
        2,
        "5h",
        "web,log",
        "nginx:1.27,busybox",
        "app=web,tier in (be,fe)",
    ]


def test_replicaset_empty_selector_is_none() -> None:
    obj = replica_set("rs", metadata=CREATED, replicas=1, selector={})
    assert cells("apps", "ReplicaSet", obj)[-1] == "<none>"


def test_replicaset_invalid_selector_is_an_error() -> None:
    bad = {"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]}
    obj = replica_set("rs", metadata=CREATED, replicas=1, selector=bad)
    assert cells("apps", "ReplicaSet", obj)[-1] == "<error>"


# --- jobs -----------------------------------------------------------------------------------


def job(*conditions: str, spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    """The Job ``pi`` with its ``conditions`` true, more of its ``spec`` and its ``status``."""
    job_spec = {
        "parallelism": 1,
        "completions": 1,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
        **(spec or {}),
    }
    return objects.job(
        "pi",
        metadata=CREATED,
        containers=[container("pi", "perl")],
        status={
            "conditions": [{"type": kind, "status": "True"} for kind in conditions],
            **status,
        },
        **job_spec,
    )


def job_status(obj: dict[str, Any]) -> str:
    status: str = cells("batch", "Job", obj)[1]
    return status


def test_job_columns() -> None:
    assert column_names("batch", "Job", 0) == ["Name", "Status", "Completions", "Duration", "Age"]
    assert column_names("batch", "Job", 1) == ["Containers", "Images", "Selector"]


def test_job_cells() -> None:
    obj = job(
        "SuccessCriteriaMet",
        "Complete",
        succeeded=1,
        startTime=ago(minutes=10),
        completionTime=ago(minutes=7),
    )
    assert cells("batch", "Job", obj) == [
        "pi",
        "Complete",
        "1/1",
        "3m",
        "5h",
        "pi",
        "perl",
        "batch.kubernetes.io/controller-uid=u1",
    ]


def test_job_status_running() -> None:
    assert job_status(job()) == "Running"


def test_job_status_failed() -> None:
    assert job_status(job("FailureTarget", "Failed")) == "Failed"


def test_job_status_suspended() -> None:
    assert job_status(job("Suspended")) == "Suspended"


def test_job_status_failure_target() -> None:
    assert job_status(job("FailureTarget")) == "FailureTarget"


def test_job_status_success_criteria_met() -> None:
    assert job_status(job("SuccessCriteriaMet")) == "SuccessCriteriaMet"


def test_job_status_ignores_false_conditions() -> None:
    obj = job()
    obj["status"]["conditions"] = [{"type": "Complete", "status": "False"}]
    assert job_status(obj) == "Running"


def test_job_status_terminating() -> None:
    obj = job("Suspended")
    obj["metadata"]["deletionTimestamp"] = ago(seconds=3)
    assert job_status(obj) == "Terminating"


def test_job_status_complete_wins_over_terminating() -> None:
    obj = job("Complete")
    obj["metadata"]["deletionTimestamp"] = ago(seconds=3)
    assert job_status(obj) == "Complete"


def test_job_completions_with_completions() -> None:
    assert cells("batch", "Job", job(spec={"completions": 5}, succeeded=2))[2] == "2/5"


def test_job_completions_with_parallelism_only() -> None:
    obj = job(spec={"completions": None, "parallelism": 3})
    assert cells("batch", "Job", obj)[2] == "0/1 of 3"


def test_job_completions_without_completions_or_parallelism() -> None:
    obj = job(spec={"completions": None, "parallelism": None}, succeeded=1)
    assert cells("batch", "Job", obj)[2] == "1/1"


def test_job_duration_is_blank_before_it_starts() -> None:
    assert cells("batch", "Job", job())[3] == ""


def test_job_duration_runs_until_now() -> None:
    assert cells("batch", "Job", job(startTime=ago(seconds=90)))[3] == "90s"


def test_job_empty_selector_is_none() -> None:
    assert cells("batch", "Job", job(spec={"selector": None}))[-1] == "<none>"


# --- cron jobs ------------------------------------------------------------------------------


def cronjob(**spec: Any) -> dict[str, Any]:
    """The CronJob ``tick`` of ``TEMPLATE``'s pods, every five minutes, not suspended."""
    spec = {
        "schedule": "*/5 * * * *",
        "suspend": False,
        "jobTemplate": job_template(template=TEMPLATE),
        **spec,
    }
    return cron_job("tick", metadata=CREATED, status={}, **spec)


def test_cronjob_columns() -> None:
    assert column_names("batch", "CronJob", 0) == [
        "Name",
        "Schedule",
        "Timezone",
        "Suspend",
        "Active",
        "Last Schedule",
        "Age",
    ]
    assert column_names("batch", "CronJob", 1) == ["Containers", "Images", "Selector"]


def test_cronjob_cells() -> None:
    obj = cronjob(timeZone="Etc/UTC")
    obj["status"] = {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(minutes=4)}
    assert cells("batch", "CronJob", obj) == [
        "tick",
        "*/5 * * * *",
        "Etc/UTC",
        "False",
        1,
        "4m",
        "5h",
        "web,log",
        "nginx:1.27,busybox",
        "<none>",
    ]


def test_cronjob_without_time_zone_or_schedule_history() -> None:
    row = cells("batch", "CronJob", cronjob(suspend=True))
    assert (row[2], row[3], row[4], row[5]) == ("<none>", "True", 0, "<none>")


def test_cronjob_suspend_unset() -> None:
    assert cells("batch", "CronJob", cronjob(suspend=None))[3] == "<unset>"


# --- daemon sets and controller revisions ---------------------------------------------------


def test_daemonset_columns() -> None:
    assert column_names("apps", "DaemonSet", 0) == [
        "Name",
        "Desired",
        "Current",
        "Ready",
        "Up-to-date",
        "Available",
        "Node Selector",
        "Age",
    ]
    assert column_names("apps", "DaemonSet", 1) == ["Containers", "Images", "Selector"]


def test_daemonset_cells_show_the_counts_and_the_node_selector() -> None:
    template = pod_template({"app": "web"}, containers=[container("web", "nginx:1.27")])
    template["spec"]["nodeSelector"] = {"zone": "b", "disk": "ssd"}
    status = {
        "desiredNumberScheduled": 4,
        "currentNumberScheduled": 3,
        "numberReady": 2,
        "updatedNumberScheduled": 1,
        "numberAvailable": 2,
    }
    obj = daemon_set("web", metadata=CREATED, status=status, template=template)
    assert cells("apps", "DaemonSet", obj) == [
        "web",
        4,
        3,
        2,
        1,
        2,
        "disk=ssd,zone=b",
        "5h",
        "web",
        "nginx:1.27",
        "app=web",
    ]


def test_daemonset_without_node_selector_shows_none() -> None:
    assert cells("apps", "DaemonSet", daemon_set("web", metadata=CREATED))[6] == "<none>"


def test_controllerrevision_cells_name_the_controller_with_its_group() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "web", "controller": True}
    obj = {"metadata": meta("web-abc", ownerReferences=[owner]), "revision": 3}
    assert column_names("apps", "ControllerRevision", 0) == [
        "Name",
        "Controller",
        "Revision",
        "Age",
    ]
    assert cells("apps", "ControllerRevision", obj) == ["web-abc", "daemonset.apps/web", 3, "5h"]
    orphan = {"metadata": meta("old"), "revision": 1}
    assert cells("apps", "ControllerRevision", orphan)[1] == "<none>"


# --- pod disruption budgets -----------------------------------------------------------------


def test_pdb_columns_are_kubectls() -> None:
    assert column_names("policy", "PodDisruptionBudget", 0) == [
        "Name",
        "Min Available",
        "Max Unavailable",
        "Allowed Disruptions",
        "Age",
    ]


def test_pdb_row_shows_the_budget_and_na_for_the_unset_one() -> None:
    obj = pod_disruption_budget(
        "web", metadata=CREATED, minAvailable="50%", status={"disruptionsAllowed": 2}
    )
    assert cells("policy", "PodDisruptionBudget", obj) == ["web", "50%", "N/A", 2, "5h"]
    obj = pod_disruption_budget("db", metadata=CREATED, maxUnavailable=1)
    assert cells("policy", "PodDisruptionBudget", obj) == ["db", "N/A", "1", 0, "5h"]


def test_bindings_show_their_role_and_subjects_by_kind() -> None:
    binding = {
        "metadata": meta("b"),
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs"},
            {"kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
        ],
    }
    printer = PRINTERS[("rbac.authorization.k8s.io", "RoleBinding")]
    assert printer.cells(binding, NOW) == [
        "b",
        "ClusterRole/view",
        "5h",
        "alice, bob",
        "devs",
        "ci/robot",
    ]
    role_printer = PRINTERS[("rbac.authorization.k8s.io", "ClusterRole")]
    assert [c["name"] for c in role_printer.columns] == ["Name", "Created At"]
