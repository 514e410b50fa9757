"""The pure logic of probes: defaults, thresholds, startup gating, ports, HTTP status codes,
and the exec action's exit code, output and timeout."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from setpoint.agent.probes import (
    INITIAL_RESULTS,
    MAX_OUTPUT,
    Outcome,
    ProbeConfig,
    ProbeError,
    Result,
    Target,
    Threshold,
    hook_failure_message,
    http_status_result,
    probe_status,
    resolve_port,
    run_exec,
)
from setpoint.agent.runtime import ContainerState

ENV = {"PATH": os.environ["PATH"]}


def state(kind: str = "running") -> ContainerState:
    return ContainerState(
        id="uid/app",
        state=kind,
        pid=1,
        pid_start_time=1,
        restart_count=0,
        started_at=0.0,
        last_exit=None,
    )


def test_probe_defaults_are_the_api_servers() -> None:
    config = ProbeConfig.from_probe("liveness", {"exec": {"command": ["true"]}})
    assert (config.initial_delay, config.period, config.timeout) == (0.0, 10.0, 1.0)
    assert (config.success_threshold, config.failure_threshold) == (1, 3)
    assert config.termination_grace is None


def test_liveness_success_threshold_is_always_one() -> None:
    config = ProbeConfig.from_probe("liveness", {"successThreshold": 5})
    assert config.success_threshold == 1
    assert ProbeConfig.from_probe("readiness", {"successThreshold": 5}).success_threshold == 5


def test_initial_results_follow_the_kubelet() -> None:
    assert INITIAL_RESULTS == {
        "readiness": Result.FAILURE,
        "liveness": Result.SUCCESS,
        "startup": Result.UNKNOWN,
    }


def test_failures_below_the_threshold_publish_nothing() -> None:
    threshold = Threshold(success_threshold=1, failure_threshold=3)
    assert threshold.observe(Result.FAILURE) is None
    assert threshold.observe(Result.FAILURE) is None
    assert threshold.observe(Result.FAILURE) == Result.FAILURE


def test_a_success_breaks_a_run_of_failures() -> None:
    threshold = Threshold(success_threshold=1, failure_threshold=2)
    assert threshold.observe(Result.FAILURE) is None
    assert threshold.observe(Result.SUCCESS) == Result.SUCCESS
    assert threshold.observe(Result.FAILURE) is None


def test_success_threshold_needs_successes_in_a_row() -> None:
    threshold = Threshold(success_threshold=2, failure_threshold=1)
    assert threshold.observe(Result.SUCCESS) is None
    assert threshold.observe(Result.SUCCESS) == Result.SUCCESS


def test_container_without_probes_is_started_and_ready_when_running() -> None:
    assert probe_status({"name": "app"}, state(), None) == (True, True)
    assert probe_status({"name": "app"}, state("waiting"), None) == (False, False)


def test_readiness_starts_as_failure() -> None:
    container = {"name": "app", "readinessProbe": {}}
    assert probe_status(container, state(), {}) == (True, False)
    assert probe_status(container, state(), {"readiness": Result.SUCCESS}) == (True, True)


def test_startup_probe_gates_started_and_ready() -> None:
    container = {"name": "app", "startupProbe": {}}
    assert probe_status(container, state(), {"startup": Result.UNKNOWN}) == (False, False)
    assert probe_status(container, state(), {"startup": Result.SUCCESS}) == (True, True)


def test_ready_needs_started_even_with_a_passing_readiness_result() -> None:
    container = {"name": "app", "startupProbe": {}, "readinessProbe": {}}
    results = {"startup": Result.FAILURE, "readiness": Result.SUCCESS}
    assert probe_status(container, state(), results) == (False, False)


def test_named_port_resolves_to_the_container_port() -> None:
    container = {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(9090, container) == 9090
    assert resolve_port("9091", container) == 9091


def test_unknown_port_name_is_a_probe_error() -> None:
    with pytest.raises(ProbeError, match="couldn't find port"):
        resolve_port("metrics", {"name": "app"})
    with pytest.raises(ProbeError, match="invalid port"):
        resolve_port(70000, {"name": "app"})


@pytest.mark.parametrize(
    ("code", "result"),
    [
        (199, Result.FAILURE),
        (200, Result.SUCCESS),
        (302, Result.SUCCESS),
        (399, Result.SUCCESS),
        (400, Result.FAILURE),
        (500, Result.FAILURE),
    ],
)
def test_http_status_200_to_399_is_success(code: int, result: Result) -> None:
    assert http_status_result(code) == result


def test_hook_failure_message_is_the_kubelets() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}}
    action = {"exec": {"command": ["sh", "-c", "exit 1"]}}
    message = hook_failure_message(pod, {"name": "app"}, action, Outcome(Result.FAILURE, "x"))
    assert message.startswith(
        'Exec lifecycle hook ([sh -c exit 1]) for Container "app" in Pod "p_ns(u1)" failed'
    )


async def test_exec_success_is_exit_zero_with_its_output() -> None:
    assert await run_exec(["sh", "-c", "echo ok"], env=ENV, cwd=None, timeout=5) == Outcome(
        Result.SUCCESS, "ok\n"
    )
    outcome = await run_exec(["sh", "-c", "echo no >&2; exit 3"], env=ENV, cwd=None, timeout=5)
    assert outcome == Outcome(Result.FAILURE, "no\n")


async def test_exec_that_times_out_fails_and_is_killed() -> None:
    began = time.monotonic()
    outcome = await run_exec(["sleep", "30"], env=ENV, cwd=None, timeout=0.2)
    assert outcome.result == Result.FAILURE
    assert "timed out" in outcome.output
    assert time.monotonic() - began < 5


async def test_exec_with_more_output_than_a_pipe_holds_is_kept_to_ten_kib() -> None:
    script = "head -c 300000 /dev/zero | tr '\\0' x"
    outcome = await run_exec(["sh", "-c", script], env=ENV, cwd=None, timeout=5)
    assert outcome.result == Result.SUCCESS
    assert outcome.output == "x" * MAX_OUTPUT


async def test_exec_timeout_kills_the_commands_whole_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 30 & echo $! > {pid_file}; wait"
    outcome = await run_exec(["sh", "-c", script], env=ENV, cwd=None, timeout=0.5)
    assert "timed out" in outcome.output
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, "the command's child survived its timeout"
        await asyncio.sleep(0.01)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"


async def test_exec_of_a_missing_command_fails_with_the_reason() -> None:
    outcome = await run_exec(["no-such-command-xyz"], env=ENV, cwd=None, timeout=5)
    assert outcome.result == Result.FAILURE
    assert "no-such-command-xyz" in outcome.output


async def test_exec_runs_in_the_working_dir_with_the_env(tmp_path: os.PathLike[str]) -> None:
    env = {**ENV, "WHO": "me"}
    outcome = await run_exec(["sh", "-c", "echo $WHO; pwd"], env=env, cwd=str(tmp_path), timeout=5)
    assert outcome.output.split() == ["me", str(tmp_path)]


def test_probe_port_goes_to_the_assigned_node_port() -> None:
    container = {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}
    target = Target(container, "192.168.1.5", ports={"8080/TCP": 34567})
    assert target.port({"port": "http"}) == 34567
    assert target.port({"port": 8080}) == 34567
    assert target.port({"port": 9090}) == 9090
