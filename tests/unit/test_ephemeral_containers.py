"""Ephemeral containers: what ``pods/ephemeralcontainers`` accepts
(``ValidatePodEphemeralContainersUpdate``), and how the agent runs and reports them.

Validation problems are shown as ``"<field>: <message>"``, as kubectl prints a 422's causes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.pods import (
    INTERACTIVE_SHELL,
    ContainerConfigError,
    args_as_command_message,
    container_spec,
    pod_status,
    runs_args_as_command,
)
from setpoint.agent.runtime import ContainerState, ExitRecord
from setpoint.resources.catalog import default_registry
from setpoint.resources.core import EPHEMERAL_CONTAINERS
from tests import objects
from tests.objects import container

Obj = dict[str, Any]
T0 = 1_800_000_000.0
UID = "5b9a8c1e-0000-4000-8000-000000000001"
FORBIDDEN = "Forbidden: cannot be set for an Ephemeral Container"


def stored_pod(**spec: Any) -> Obj:
    """The pod ``web`` (app container ``app``, an emptyDir ``scratch``) as it is stored."""
    rtype = default_registry().by_kind("", "v1", "Pod")
    assert rtype is not None
    pod = objects.pod(
        "web",
        namespace="default",
        metadata={"uid": UID},
        containers=[container("app", command=["sleep", "1000"])],
        volumes=[{"name": "scratch", "emptyDir": {}}],
        **spec,
    )
    rtype.prepare_for_create(pod)
    rtype.defaulter(pod)
    return pod


def with_ephemeral(pod: Obj, *ephemeral: Obj) -> Obj:
    """``pod`` with ``ephemeral`` containers (defaulted, as the API server stores them)."""
    rtype = default_registry().by_kind("", "v1", "Pod")
    assert rtype is not None
    new = copy.deepcopy(pod)
    new["spec"]["ephemeralContainers"] = [copy.deepcopy(c) for c in ephemeral]
    rtype.defaulter(new)
    return new


def problems(new: Obj, old: Obj) -> list[str]:
    return [f"{e.field}: {e.message}" for e in EPHEMERAL_CONTAINERS.validator(new, old)]


DEBUGGER = container("debugger", command=["sh"], stdin=True, tty=True)


# ------------------------------------------------------------------ validation


def test_adding_an_ephemeral_container_is_valid() -> None:
    pod = stored_pod()
    assert problems(with_ephemeral(pod, DEBUGGER), pod) == []


def test_an_ephemeral_container_may_target_a_container_of_the_pod() -> None:
    pod = stored_pod()
    targeting = {**DEBUGGER, "targetContainerName": "app"}
    assert problems(with_ephemeral(pod, targeting), pod) == []
    elsewhere = {**DEBUGGER, "targetContainerName": "nope"}
    assert problems(with_ephemeral(pod, elsewhere), pod) == [
        'spec.ephemeralContainers[0].targetContainerName: Not found: "nope"'
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ports", [{"containerPort": 80}]),
        ("resources", {"limits": {"cpu": "1"}}),
        ("livenessProbe", {"exec": {"command": ["true"]}}),
        ("readinessProbe", {"exec": {"command": ["true"]}}),
        ("startupProbe", {"exec": {"command": ["true"]}}),
        ("lifecycle", {"preStop": {"exec": {"command": ["true"]}}}),
        ("restartPolicy", "Always"),
    ],
)
def test_fields_that_serve_the_workload_are_forbidden(field: str, value: Any) -> None:
    pod = stored_pod()
    new = with_ephemeral(pod, {**DEBUGGER, field: value})
    assert f"spec.ephemeralContainers[0].{field}: {FORBIDDEN}" in problems(new, pod)


def test_empty_resources_are_allowed_as_kubectl_sends_them() -> None:
    pod = stored_pod()
    assert problems(with_ephemeral(pod, {**DEBUGGER, "resources": {}}), pod) == []


def test_volume_mounts_may_not_use_sub_paths() -> None:
    pod = stored_pod()
    mounts = [
        {"name": "scratch", "mountPath": "/a"},
        {"name": "scratch", "mountPath": "/b", "subPath": "x"},
    ]
    new = with_ephemeral(pod, {**DEBUGGER, "volumeMounts": mounts})
    assert problems(new, pod) == [
        f"spec.ephemeralContainers[0].volumeMounts[1].subPath: {FORBIDDEN}"
    ]


def test_a_mount_of_a_volume_the_pod_lacks_is_not_found() -> None:
    pod = stored_pod()
    new = with_ephemeral(pod, {**DEBUGGER, "volumeMounts": [{"name": "x", "mountPath": "/x"}]})
    assert problems(new, pod) == [
        'spec.ephemeralContainers[0].volumeMounts[0].name: Not found: "x"'
    ]


def test_names_are_unique_across_all_containers_and_required() -> None:
    pod = stored_pod()
    new = with_ephemeral(pod, {**DEBUGGER, "name": "app"}, {"image": "busybox"})
    assert problems(new, pod) == [
        'spec.ephemeralContainers[0].name: Duplicate value: "app"',
        "spec.ephemeralContainers[1].name: Required value",
    ]


def test_an_image_is_required_without_surrounding_whitespace() -> None:
    pod = stored_pod()
    assert problems(with_ephemeral(pod, {**DEBUGGER, "image": ""}), pod) == [
        "spec.ephemeralContainers[0].image: Required value"
    ]
    assert problems(with_ephemeral(pod, {**DEBUGGER, "image": " busybox"}), pod) == [
        'spec.ephemeralContainers[0].image: Invalid value: " busybox": must not have leading '
        "or trailing whitespace"
    ]


def test_existing_ephemeral_containers_may_not_be_removed() -> None:
    old = with_ephemeral(stored_pod(), DEBUGGER)
    assert problems(with_ephemeral(old), old) == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not '
        "be removed\n"
    ]


def test_existing_ephemeral_containers_may_not_be_changed() -> None:
    old = with_ephemeral(stored_pod(), DEBUGGER)
    changed = with_ephemeral(old, {**DEBUGGER, "command": ["bash"]})
    [problem] = problems(changed, old)
    assert problem.startswith(
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not '
        'be changed\n-\tcommand: ["sh"]\n+\tcommand: ["bash"]'
    )


def test_existing_ones_are_matched_by_name_whatever_their_order() -> None:
    second = container("second", command=["true"])
    old = with_ephemeral(stored_pod(), DEBUGGER, second)
    assert problems(with_ephemeral(old, second, DEBUGGER), old) == []


def test_a_pod_update_may_not_change_ephemeral_containers() -> None:
    rtype = default_registry().by_kind("", "v1", "Pod")
    assert rtype is not None
    old = stored_pod()
    found = [f"{e.field}: {e.message}" for e in rtype.validator(with_ephemeral(old, DEBUGGER), old)]
    assert len(found) == 1 and found[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than"
    )


def test_a_pod_may_not_be_created_with_ephemeral_containers() -> None:
    rtype = default_registry().by_kind("", "v1", "Pod")
    assert rtype is not None
    found = [
        f"{e.field}: {e.message}"
        for e in rtype.validator(with_ephemeral(stored_pod(), DEBUGGER), None)
    ]
    assert found == ["spec.ephemeralContainers: Forbidden: cannot be set on create"]


def test_templates_may_not_have_ephemeral_containers() -> None:
    rtype = default_registry().by_kind("apps", "v1", "Deployment")
    assert rtype is not None
    template = objects.pod_template({"app": "a"}, ephemeralContainers=[DEBUGGER])
    deploy = objects.deployment("web", namespace="default", pod_labels={"app": "a"})
    deploy["spec"]["template"] = template
    rtype.defaulter(deploy)
    found = [f"{e.field}: {e.message}" for e in rtype.validator(deploy, None)]
    assert (
        "spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed "
        "in pod template"
    ) in found


# ------------------------------------------------------------------ the agent


def spec_for(pod: Obj, c: Obj, **kind: bool) -> Any:
    return container_spec(
        pod, c, log_dir=Path("/logs"), base_env={}, pod_ip="10.0.0.1", host_ip="10.0.0.1", **kind
    )


def test_an_ephemeral_container_is_never_restarted() -> None:
    pod = with_ephemeral(stored_pod(), DEBUGGER)
    assert spec_for(pod, DEBUGGER, ephemeral=True).restart_policy == "Never"
    assert spec_for(pod, pod["spec"]["containers"][0]).restart_policy == "Always"


def test_an_interactive_container_without_command_runs_a_shell() -> None:
    shell = container("debugger", image="busybox", stdin=True, tty=True)
    assert spec_for(stored_pod(), shell).argv == [INTERACTIVE_SHELL]
    assert runs_args_as_command(shell)
    assert args_as_command_message(shell) == (
        "setpoint does not read images, so the command of image 'busybox' is not known: "
        "interactive container debugger runs /bin/sh"
    )


def test_a_container_that_is_not_interactive_still_needs_a_command() -> None:
    with pytest.raises(ContainerConfigError, match="neither command nor args"):
        spec_for(stored_pod(), container("debugger", image="busybox", tty=True))


def running(name: str) -> ContainerState:
    return ContainerState(f"{UID}/{name}", "running", 42, 7, 0, T0, None)


def exited(name: str, code: int) -> ContainerState:
    record = ExitRecord(code, None, "Error" if code else "Completed", 42, 7, T0, T0 + 1, 0)
    return ContainerState(f"{UID}/{name}", "exited", None, None, 0, None, record)


def test_ephemeral_statuses_are_reported_apart_and_count_for_neither_phase_nor_readiness() -> None:
    pod = with_ephemeral(stored_pod(), DEBUGGER)
    status = pod_status(
        pod, {"app": running("app"), "debugger": exited("debugger", 1)}, {}, now=T0, host_ip="h"
    )
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert [c["name"] for c in status["containerStatuses"]] == ["app"]
    [debugger] = status["ephemeralContainerStatuses"]
    assert debugger["name"] == "debugger" and debugger["ready"] is False
    assert "started" not in debugger
    assert debugger["state"]["terminated"]["exitCode"] == 1


def test_a_running_ephemeral_container_is_running_but_never_ready() -> None:
    pod = with_ephemeral(stored_pod(), DEBUGGER)
    status = pod_status(
        pod, {"app": running("app"), "debugger": running("debugger")}, {}, now=T0, host_ip="h"
    )
    [debugger] = status["ephemeralContainerStatuses"]
    assert "running" in debugger["state"] and debugger["ready"] is False


def test_a_pod_without_ephemeral_containers_reports_no_such_statuses() -> None:
    status = pod_status(stored_pod(), {"app": running("app")}, {}, now=T0, host_ip="h")
    assert "ephemeralContainerStatuses" not in status
