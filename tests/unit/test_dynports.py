"""Specification of per-pod port assignment for pods in the node's network (Nomad's
dynamic ports): which ports are assigned, how they are kept, and the env that names them."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.agent import dynports
from setpoint.agent import pods as podspec
from setpoint.agent.dynports import DeclaredPort, PortAssignments
from setpoint.client.api import Obj
from setpoint.meta import assignedports


def pod_with(*containers: list[Obj], init: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": "web", "uid": "u1"},
        "spec": {
            "containers": [{"name": f"c{i}", "ports": p} for i, p in enumerate(containers)],
            "initContainers": [{"name": "i", "ports": init}] if init else [],
        },
    }


def counting(start: int = 40000) -> Callable[[str], int]:
    numbers = itertools.count(start)
    return lambda host: next(numbers)


def test_declared_ports_list_app_containers_first_each_once() -> None:
    pod = pod_with(
        [{"containerPort": 8080, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}],
        [{"containerPort": 8080}, {"containerPort": 9090}],
        init=[{"containerPort": 7070}],
    )
    assert dynports.declared_ports(pod) == [
        DeclaredPort(8080, "TCP", "http"),
        DeclaredPort(53, "UDP"),
        DeclaredPort(9090, "TCP"),
        DeclaredPort(7070, "TCP"),
    ]


def test_port_env_names_each_port_its_name_and_the_first_as_port() -> None:
    declared = [DeclaredPort(8080, "TCP", "metrics-http"), DeclaredPort(9090, "TCP")]
    env = dynports.port_env(declared, {"8080/TCP": 34567, "9090/TCP": 34568})
    assert env == {
        "PORT": "34567",
        "PORT_8080": "34567",
        "PORT_METRICS_HTTP": "34567",
        "PORT_9090": "34568",
    }


def test_port_env_skips_unassigned_ports() -> None:
    declared = [DeclaredPort(53, "UDP", "dns"), DeclaredPort(8080, "TCP")]
    assert dynports.port_env(declared, {"8080/TCP": 40000}) == {
        "PORT": "40000",
        "PORT_8080": "40000",
    }


def test_only_tcp_ports_are_assigned_and_recorded_in_the_pod_directory(tmp_path: Path) -> None:
    (tmp_path / "u1").mkdir()
    ports = PortAssignments(tmp_path, host="127.0.0.1", pick=counting())
    declared = [DeclaredPort(8080, "TCP"), DeclaredPort(53, "UDP"), DeclaredPort(9090, "SCTP")]
    assert ports.assign("u1", declared) == {"8080/TCP": 40000}
    assert json.loads((tmp_path / "u1" / dynports.FILE_NAME).read_text()) == {"8080/TCP": 40000}


def test_assignment_is_stable_for_the_pod(tmp_path: Path) -> None:
    (tmp_path / "u1").mkdir()
    ports = PortAssignments(tmp_path, host="127.0.0.1", pick=counting())
    first = ports.assign("u1", [DeclaredPort(8080, "TCP")])
    assert ports.assign("u1", [DeclaredPort(8080, "TCP")]) == first
    assert ports.get("u1") == first


def test_assignment_survives_an_agent_restart_and_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "u1").mkdir()
    (tmp_path / "u2").mkdir()
    PortAssignments(tmp_path, host="127.0.0.1", pick=counting()).assign(
        "u1", [DeclaredPort(8080, "TCP")]
    )
    restarted = PortAssignments(tmp_path, host="127.0.0.1", pick=counting())  # picks 40000 again
    assert restarted.get("u1") == {"8080/TCP": 40000}
    assert restarted.assign("u2", [DeclaredPort(8080, "TCP")]) == {"8080/TCP": 40001}


def test_no_port_is_handed_to_two_pods(tmp_path: Path) -> None:
    for uid in ("u1", "u2"):
        (tmp_path / uid).mkdir()
    ports = PortAssignments(tmp_path, host="127.0.0.1", pick=lambda host: 40000)
    ports.assign("u1", [DeclaredPort(8080, "TCP")])
    with pytest.raises(OSError, match="no free port"):
        ports.assign("u2", [DeclaredPort(8080, "TCP")])


def test_released_ports_may_be_assigned_again(tmp_path: Path) -> None:
    for uid in ("u1", "u2"):
        (tmp_path / uid).mkdir()
    ports = PortAssignments(tmp_path, host="127.0.0.1", pick=lambda host: 40000)
    ports.assign("u1", [DeclaredPort(8080, "TCP")])
    ports.release("u1")
    assert ports.assign("u2", [DeclaredPort(8080, "TCP")]) == {"8080/TCP": 40000}


def test_free_port_is_bindable() -> None:
    number = dynports.free_port("127.0.0.1")
    assert 0 < number < 65536


def test_the_annotation_reads_back_what_was_written_and_ignores_garbage() -> None:
    pod: Obj = {"metadata": {"annotations": {}}}
    pod["metadata"]["annotations"][assignedports.ANNOTATION] = assignedports.encode(
        {"8080/TCP": 34567}
    )
    assert assignedports.assigned_ports(pod) == {"8080/TCP": 34567}
    pod["metadata"]["annotations"][assignedports.ANNOTATION] = "not json"
    assert assignedports.assigned_ports(pod) == {}
    pod["metadata"]["annotations"][assignedports.ANNOTATION] = '{"8080/TCP": 70000}'
    assert assignedports.assigned_ports(pod) == {}


def test_the_containers_own_env_wins_over_the_assigned_port() -> None:
    pod = pod_with([{"containerPort": 8080}])
    container = {"name": "c0", "env": [{"name": "PORT", "value": "9999"}]}
    assigned = dynports.port_env(dynports.declared_ports(pod), {"8080/TCP": 40000})
    env = podspec.container_env(
        pod, container, base_env=assigned, pod_ip="127.0.0.1", host_ip="127.0.0.1"
    )
    assert env["PORT"] == "9999"
    assert env["PORT_8080"] == "40000"
