"""The pure pod translation of the node agent: specs down to the runtime, statuses up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.pods import (
    ContainerConfigError,
    args_as_command_message,
    container_spec,
    container_status,
    env_sources,
    expand,
    pod_phase,
    pod_status,
    reported_instance,
    runs_args_as_command,
)
from setpoint.agent.runtime import ContainerState, ExitRecord
from tests import objects
from tests.objects import container

T0 = 1_800_000_000.0
UID = "uid-1"


def pod(containers: list[dict[str, Any]], restart_policy: str = "Always") -> dict[str, Any]:
    """The pod ``web``, bound to this node ``n1`` and not started yet, of ``containers``."""
    return objects.pod(
        "web",
        namespace="ns",
        labels={"app": "a"},
        metadata={"uid": UID},
        containers=containers,
        status={"phase": "Pending"},
        nodeName="n1",
        serviceAccountName="sa",
        restartPolicy=restart_policy,
    )


def spec_of(container: dict[str, Any], restart_policy: str = "Always") -> Any:
    return container_spec(
        pod([container], restart_policy),
        container,
        log_dir=Path("/logs"),
        base_env={"PATH": "/bin"},
        pod_ip="10.0.0.1",
        host_ip="10.0.0.2",
    )


def exit_record(code: int, reason: str, *, signal: int | None = None, **kw: Any) -> ExitRecord:
    values: dict[str, Any] = dict(
        exit_code=code,
        signal=signal,
        reason=reason,
        pid=123,
        pid_start_time=1,
        started_at=T0,
        finished_at=T0 + 5,
        restart_count=0,
    )
    values.update(kw)
    return ExitRecord(**values)


def state(
    kind: str,
    *,
    restarts: int = 0,
    last: ExitRecord | None = None,
    previous: ExitRecord | None = None,
) -> ContainerState:
    return ContainerState(
        id=f"{UID}/app",
        state=kind,
        pid=42 if kind == "running" else None,
        pid_start_time=7 if kind == "running" else None,
        restart_count=restarts,
        started_at=T0 + 10 if kind == "running" else None,
        last_exit=last,
        next_start_at=T0 + 20 if kind == "waiting" else None,
        previous_exit=previous,
    )


# ------------------------------------------------------------------ $(VAR) expansion


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "alpha"),
        ("x-$(A)-$(B)", "x-alpha-beta"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("a$b", "a$b"),
        ("$(A", "$(A"),
        ("end$", "end$"),
        ("$()", "$()"),
        ("$$$(A)", "$alpha"),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "alpha", "B": "beta"}) == expected


def test_argv_is_command_plus_args_expanded_against_env() -> None:
    spec = spec_of(
        {
            "name": "app",
            "command": ["sh", "-c"],
            "args": ["echo $(GREETING) $(POD) $$(POD)"],
            "env": [
                {"name": "WHO", "value": "world"},
                {"name": "GREETING", "value": "hello-$(WHO)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        }
    )
    assert spec.argv == ["sh", "-c", "echo hello-world web $(POD)"]
    assert spec.id == f"{UID}/app"
    assert spec.log_dir == "/logs/app"


def test_env_from_field_refs() -> None:
    fields = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "NODE": "spec.nodeName",
        "POD_IP": "status.podIP",
        "HOST_IP": "status.hostIP",
        "SA": "spec.serviceAccountName",
        "APP": "metadata.labels['app']",
    }
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()]
    spec = spec_of({"name": "app", "command": ["true"], "env": env})
    assert {k: spec.env[k] for k in fields} == {
        "NAME": "web",
        "NS": "ns",
        "UID": UID,
        "NODE": "n1",
        "POD_IP": "10.0.0.1",
        "HOST_IP": "10.0.0.2",
        "SA": "sa",
        "APP": "a",
    }
    assert spec.env["PATH"] == "/bin"


def test_env_from_resource_field_refs_of_this_or_another_container() -> None:
    env = [
        {
            "name": "MEM_MI",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
        },
        {
            "name": "CPU_M",
            "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
        },
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
        {"name": "NODE_CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ]
    resources = {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}
    spec = spec_of({"name": "app", "command": ["true"], "env": env, "resources": resources})
    assert (spec.env["MEM_MI"], spec.env["CPU_M"], spec.env["CPU"]) == ("64", "250", "1")
    assert spec.env["NODE_CPU"] == str(os.cpu_count())  # no limit: the node's allocatable


def test_resource_field_ref_to_an_unknown_resource_is_a_config_error() -> None:
    env = [{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu.x"}}}]
    with pytest.raises(ContainerConfigError, match="env 'X'"):
        spec_of({"name": "app", "command": ["true"], "env": env, "resources": {}})


def test_working_dir_and_restart_policy_are_passed_on() -> None:
    spec = spec_of({"name": "app", "command": ["true"], "workingDir": "/tmp"}, "OnFailure")
    assert spec.cwd == "/tmp"
    assert spec.restart_policy == "OnFailure"


def test_container_with_neither_command_nor_args_is_a_config_error() -> None:
    with pytest.raises(ContainerConfigError, match="'app' has neither command nor args"):
        spec_of({"name": "app", "image": "nginx"})
    with pytest.raises(ContainerConfigError, match="neither command nor args"):
        spec_of({"name": "app", "image": "nginx", "command": [], "args": []})


def test_args_without_command_are_the_argv_expanded_against_env() -> None:
    container = {
        "name": "app",
        "image": "busybox",
        "args": ["sh", "-c", "echo $(WHO)"],
        "env": [{"name": "WHO", "value": "world"}],
    }
    assert spec_of(container).argv == ["sh", "-c", "echo world"]
    assert runs_args_as_command(container)
    message = args_as_command_message(container)
    assert "entrypoint of image 'busybox' is not known" in message
    assert "container app runs its args as the command" in message


def test_command_without_args_and_command_with_args_are_not_args_as_command() -> None:
    assert spec_of({"name": "app", "command": ["sleep", "1"]}).argv == ["sleep", "1"]
    both = {"name": "app", "command": ["sleep"], "args": ["1"]}
    assert spec_of(both).argv == ["sleep", "1"]
    assert not runs_args_as_command(both)
    assert not runs_args_as_command({"name": "app", "command": ["sleep", "1"]})


def test_env_from_config_map_and_secret_references() -> None:
    container = {
        "name": "app",
        "command": ["echo", "$(COLOR)"],
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "color"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
        ],
    }
    assert env_sources(container) == {("configMap", "cm"), ("secret", "s"), ("secret", "gone")}
    sources = {("configMap", "cm"): {"color": "blue"}, ("secret", "s"): {"password": "pw"}}
    spec = container_spec(
        pod([container]),
        container,
        log_dir=Path("/logs"),
        base_env={},
        pod_ip="",
        host_ip="",
        sources=sources,
    )
    assert spec.argv == ["echo", "blue"]
    assert spec.env["CM_color"] == "blue" and spec.env["PASS"] == "pw"
    assert "OPT" not in spec.env


def test_missing_config_map_is_a_config_error() -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]
    with pytest.raises(ContainerConfigError, match="configMap 'cm' not found"):
        spec_of({"name": "app", "command": ["true"], "env": env})


def test_unsupported_value_from_is_a_config_error() -> None:
    env = [{"name": "X", "valueFrom": {"fileKeyRef": {"path": "x", "key": "k"}}}]
    with pytest.raises(ContainerConfigError, match="fileKeyRef"):
        spec_of({"name": "app", "command": ["true"], "env": env})


# ------------------------------------------------------------------ container statuses

APP = container("app", "busybox", command=["sleep", "1"])


def test_not_yet_started_container_is_creating() -> None:
    status = container_status(pod([APP]), APP, None)
    assert status["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert status["ready"] is False and status["restartCount"] == 0


def test_config_error_is_reported_as_waiting_reason() -> None:
    status = container_status(pod([APP]), APP, None, "needs a command")
    assert status["state"]["waiting"] == {
        "reason": "CreateContainerConfigError",
        "message": "needs a command",
    }


def test_running_container_is_ready_without_readiness_probe() -> None:
    status = container_status(pod([APP]), APP, state("running"))
    assert status["ready"] is True and status["started"] is True
    assert status["state"] == {"running": {"startedAt": "2027-01-15T08:00:10Z"}}
    assert status["containerID"] == f"setpoint://{UID}/app"
    probed = {**APP, "readinessProbe": {"exec": {"command": ["true"]}}}
    assert container_status(pod([probed]), probed, state("running"))["ready"] is False


def test_restarted_container_reports_last_state_and_restart_count() -> None:
    last = exit_record(137, "Error", signal=9)
    status = container_status(pod([APP]), APP, state("running", restarts=1, last=last))
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["lastState"]["terminated"]["signal"] == 9
    assert status["lastState"]["terminated"]["reason"] == "Error"


def test_backoff_is_crash_loop_back_off() -> None:
    status = container_status(
        pod([APP]), APP, state("waiting", restarts=2, last=exit_record(1, "Error"))
    )
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1


def test_start_error_message_surfaces_in_back_off() -> None:
    last = exit_record(128, "StartError", pid=None, message="No such file: 'nope'")
    status = container_status(pod([APP]), APP, state("waiting", last=last))
    assert "No such file" in status["state"]["waiting"]["message"]


def test_exited_container_is_terminated_with_times() -> None:
    status = container_status(pod([APP]), APP, state("exited", last=exit_record(3, "Error")))
    term = status["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert term["startedAt"] == "2027-01-15T08:00:00Z"
    assert term["finishedAt"] == "2027-01-15T08:00:05Z"
    assert status["lastState"] == {}


def test_exited_container_that_failed_before_reports_that_failure_as_last_state() -> None:
    failed = exit_record(1, "Error", restart_count=0)
    completed = exit_record(0, "Completed", restart_count=1, started_at=T0 + 6, finished_at=T0 + 7)
    exited = state("exited", restarts=1, last=completed, previous=failed)
    status = container_status(pod([APP], "OnFailure"), APP, exited)
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["state"]["terminated"]["reason"] == "Completed"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["lastState"]["terminated"]["finishedAt"] == "2027-01-15T08:00:05Z"
    assert pod_phase(pod([APP], "OnFailure"), [status]) == "Succeeded"


def test_running_container_reports_its_newest_exit_not_the_one_before() -> None:
    older, newer = exit_record(2, "Error"), exit_record(137, "Error", signal=9, restart_count=1)
    status = container_status(
        pod([APP]), APP, state("running", restarts=2, last=newer, previous=older)
    )
    assert status["lastState"]["terminated"]["exitCode"] == 137


@pytest.mark.parametrize(
    ("shown", "instance"),
    [
        (state("running", restarts=2, last=exit_record(1, "Error")), ("running", 2)),
        (state("waiting", restarts=3, last=exit_record(1, "Error")), ("waiting", 3)),
        (state("exited", restarts=1, last=exit_record(0, "Completed")), ("exited", 1)),
        (None, None),  # ContainerCreating: no runtime container shown
    ],
)
def test_reported_instance_reads_back_what_a_status_shows(
    shown: ContainerState | None, instance: tuple[str, int] | None
) -> None:
    assert reported_instance(container_status(pod([APP]), APP, shown)) == instance


def test_status_without_a_runtime_container_reports_no_instance() -> None:
    config_error = container_status(pod([APP]), APP, None, "has neither command nor args")
    assert reported_instance(config_error) is None
    assert reported_instance(None) is None


# ------------------------------------------------------------------ pod phase and conditions


def statuses(*states: ContainerState | None) -> list[dict[str, Any]]:
    return [container_status(pod([APP]), APP, s) for s in states]


@pytest.mark.parametrize(
    ("policy", "states", "phase"),
    [
        ("Always", [None], "Pending"),
        ("Always", [state("running")], "Running"),
        ("Never", [state("exited", last=exit_record(0, "Completed"))], "Succeeded"),
        ("Never", [state("exited", last=exit_record(3, "Error"))], "Failed"),
        ("OnFailure", [state("exited", last=exit_record(0, "Completed"))], "Succeeded"),
        ("Always", [state("waiting", last=exit_record(1, "Error"))], "Running"),
        ("OnFailure", [state("waiting", last=exit_record(1, "Error"))], "Running"),
        ("Never", [state("running"), state("exited", last=exit_record(3, "Error"))], "Running"),
    ],
)
def test_pod_phase_as_kubelet_computes_it(
    policy: str, states: list[ContainerState | None], phase: str
) -> None:
    assert pod_phase(pod([APP], policy), statuses(*states)) == phase


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_running_pod_is_ready() -> None:
    status = pod_status(pod([APP]), {"app": state("running")}, {}, now=T0, host_ip="127.0.0.1")
    assert status["phase"] == "Running"
    assert conditions(status) == {
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
        "PodScheduled": "True",
    }
    assert status["podIP"] == "127.0.0.1"


def test_pending_pod_lists_unready_containers() -> None:
    status = pod_status(pod([APP]), {}, {}, now=T0, host_ip="127.0.0.1")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [app]"
    assert status["phase"] == "Pending"


def test_condition_transition_time_kept_while_status_unchanged() -> None:
    p = pod([APP])
    first = pod_status(p, {"app": state("running")}, {}, now=T0, host_ip="127.0.0.1")
    again = pod_status(
        p, {"app": state("running")}, {}, now=T0 + 100, host_ip="127.0.0.1", previous=first
    )
    assert first["conditions"] == again["conditions"]
    assert again["startTime"] == first["startTime"]


def test_an_evicted_pods_disruption_target_survives_its_last_status() -> None:
    """A Job's podFailurePolicy matches on DisruptionTarget: the agent's final status of a pod
    the taint manager evicted from a live node must still carry it."""
    p = pod([APP], "Never")
    running = pod_status(p, {"app": state("running")}, {}, now=T0, host_ip="127.0.0.1")
    evicted = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}
    running["conditions"].append(evicted)
    done = pod_status(
        p, {"app": state("exited")}, {}, now=T0 + 1, host_ip="127.0.0.1", previous=running
    )
    assert evicted in done["conditions"]
    assert [c["type"] for c in done["conditions"]].count("DisruptionTarget") == 1


# ------------------------------------------------------------------ init containers

INIT = container("init", command=["true"])


def init_pod(policy: str = "Always") -> dict[str, Any]:
    p = pod([APP], policy)
    p["spec"]["initContainers"] = [INIT]
    return p


def init_state(kind: str, last: ExitRecord | None = None) -> ContainerState:
    return ContainerState(
        id=f"{UID}/init",
        state=kind,
        pid=None,
        pid_start_time=None,
        restart_count=0,
        started_at=None,
        last_exit=last,
    )


def test_running_init_container_keeps_pod_pending_and_app_initializing() -> None:
    running = ContainerState(f"{UID}/init", "running", 5, 1, 0, T0, None)
    status = pod_status(init_pod(), {"init": running}, {}, now=T0, host_ip="h")
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"
    assert initialized["reason"] == "ContainersNotInitialized"
    assert initialized["message"] == "containers with incomplete status: [init]"


def test_succeeded_init_container_is_ready_and_pod_initialized() -> None:
    done = init_state("exited", exit_record(0, "Completed"))
    status = pod_status(
        init_pod(), {"init": done, "app": state("running")}, {}, now=T0, host_ip="h"
    )
    assert status["phase"] == "Running"
    assert status["initContainerStatuses"][0]["ready"] is True
    assert conditions(status)["Initialized"] == "True"


def test_failed_init_container_fails_pod_with_restart_policy_never() -> None:
    failed = init_state("exited", exit_record(1, "Error"))
    status = pod_status(init_pod("Never"), {"init": failed}, {}, now=T0, host_ip="h")
    assert status["phase"] == "Failed"


def test_failed_init_container_in_back_off_keeps_pod_pending() -> None:
    backoff = init_state("waiting", exit_record(1, "Error"))
    status = pod_status(init_pod("Always"), {"init": backoff}, {}, now=T0, host_ip="h")
    assert status["phase"] == "Pending"


def init_spec_of(p: dict[str, Any], container: dict[str, Any]) -> Any:
    return container_spec(
        p, container, log_dir=Path("/logs"), base_env={}, pod_ip="", host_ip="", init=True
    )


def test_init_containers_run_to_success() -> None:
    assert init_spec_of(init_pod("Always"), INIT).restart_policy == "OnFailure"


# ------------------------------------------------------------------ sidecars (restartable init)

SIDECAR = container("proxy", command=["sleep", "1000"], restartPolicy="Always")


def sidecar_pod(policy: str = "Always") -> dict[str, Any]:
    p = pod([APP], policy)
    p["spec"]["initContainers"] = [SIDECAR]
    return p


def sidecar_state(kind: str, last: ExitRecord | None = None) -> ContainerState:
    return ContainerState(f"{UID}/proxy", kind, 7 if kind == "running" else None, 1, 0, T0, last)


def test_sidecar_runs_with_restart_policy_always_whatever_the_pods() -> None:
    assert init_spec_of(sidecar_pod("Never"), SIDECAR).restart_policy == "Always"


def test_started_sidecar_initializes_the_pod_and_counts_for_readiness() -> None:
    states = {"proxy": sidecar_state("running"), "app": state("running")}
    status = pod_status(sidecar_pod(), states, {}, now=T0, host_ip="h")
    assert status["phase"] == "Running"
    assert conditions(status)["Initialized"] == "True"
    proxy = status["initContainerStatuses"][0]
    assert (proxy["ready"], proxy["started"], "running" in proxy["state"]) == (True, True, True)
    assert conditions(status)["Ready"] == "True"
    unready = pod_status(
        sidecar_pod(), states, {}, now=T0, host_ip="h", probes={"proxy": (True, False)}
    )
    assert conditions(unready)["Ready"] == "False"


def test_sidecar_not_yet_started_keeps_the_pod_initializing() -> None:
    states = {"proxy": sidecar_state("running")}
    status = pod_status(
        sidecar_pod(), states, {}, now=T0, host_ip="h", probes={"proxy": (False, False)}
    )
    assert status["phase"] == "Pending"
    assert conditions(status)["Initialized"] == "False"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_pod_with_a_stopped_sidecar_completes_by_its_app_containers() -> None:
    states = {
        "proxy": sidecar_state("exited", exit_record(137, "Error")),
        "app": ContainerState(
            f"{UID}/app", "exited", None, None, 0, T0, exit_record(0, "Completed")
        ),
    }
    status = pod_status(sidecar_pod("Never"), states, {}, now=T0, host_ip="h")
    assert status["phase"] == "Succeeded"
