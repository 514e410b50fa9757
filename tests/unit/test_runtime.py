"""The process runtime: a real supervisor daemon running real processes.

Every test gets a node (a state dir, a supervisor started through ``ensure_supervisor`` and a
connected ``Runtime``); its finalizer kills every supervisor and every container process
group the test left, whatever state it ended in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from setpoint.agent.runtime import ContainerSpec, ContainerState, Runtime, ensure_supervisor
from setpoint.agent.supervisor import VERSION, proc_start_time

CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) (.*)$")


@dataclass
class Node:
    state_dir: Path
    runtime: Runtime
    runtimes: list[Runtime] = field(default_factory=list)
    supervisors: set[int] = field(default_factory=set)
    processes: set[tuple[int, int]] = field(default_factory=set)  # (pid, start time)

    def spec(self, name: str, script: str, **kw: Any) -> ContainerSpec:
        return ContainerSpec(
            id=f"pod-1/{name}",
            argv=["sh", "-c", script],
            env={"PATH": os.environ["PATH"]},
            log_dir=str(self.state_dir / "logs" / name),
            **kw,
        )

    async def start(self, spec: ContainerSpec) -> ContainerState:
        state = await self.runtime.start_container(spec)
        self.remember(state)
        return state

    def remember(self, state: ContainerState) -> None:
        if state.pid is not None and state.pid_start_time is not None:
            self.processes.add((state.pid, state.pid_start_time))

    async def get(self, container_id: str) -> ContainerState:
        for state in await self.runtime.list():
            self.remember(state)
            if state.id == container_id:
                return state
        raise LookupError(container_id)

    async def wait_for(
        self, container_id: str, check: Callable[[ContainerState], bool], timeout: float = 5.0
    ) -> ContainerState:
        deadline = time.monotonic() + timeout
        while True:
            state = await self.get(container_id)
            if check(state):
                return state
            assert time.monotonic() < deadline, f"timed out; last seen {state}"
            await asyncio.sleep(0.005)

    async def supervisor_pid(self) -> int:
        pid: int = (await self.runtime.info())["pid"]
        self.supervisors.add(pid)
        return pid

    async def kill_supervisor(self) -> None:
        pid = await self.supervisor_pid()
        await self.runtime.close()
        os.kill(pid, signal.SIGKILL)
        await until(lambda: proc_start_time(pid) is None)

    async def restart_supervisor(self) -> None:
        self.runtime = await ensure_supervisor(self.state_dir)
        self.runtimes.append(self.runtime)
        await self.supervisor_pid()


def instance_log(spec: ContainerSpec, instance: int = 0) -> Path:
    """The log file of one instance (restart) of a container."""
    assert spec.log_dir is not None
    return Path(spec.log_dir) / f"{instance}.log"


def logged(path: Path, text: bytes) -> bool:
    return path.exists() and text in path.read_bytes()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def alive(pid: int, start_time: int | None) -> bool:
    return start_time is not None and proc_start_time(pid) == start_time


def cleanup(node: Node) -> None:
    """Kill whatever the test left: supervisors first (so nothing restarts), then every
    container process group we ever saw, checked by start time."""
    with contextlib.suppress(OSError, ValueError):
        node.supervisors.add(int((node.state_dir / "supervisor.pid").read_text()))
    for pid in node.supervisors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for state_file in node.state_dir.glob("containers/*/state.json"):
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(state_file.read_text())
            if saved.get("pid"):
                node.processes.add((saved["pid"], saved["pid_start_time"]))
    for pid, start_time in node.processes:
        if alive(pid, start_time):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    shutil.rmtree(node.state_dir, ignore_errors=True)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    state_dir = Path(tempfile.mkdtemp(prefix="sp-rt-"))
    runtime = await ensure_supervisor(state_dir)
    n = Node(state_dir, runtime, runtimes=[runtime])
    try:
        await n.supervisor_pid()
        yield n
    finally:
        for r in n.runtimes:
            with contextlib.suppress(Exception):
                await r.close()
        cleanup(n)


Check = Callable[[ContainerState], bool]


def running(state: ContainerState) -> bool:
    return state.state == "running"


def exited(state: ContainerState) -> bool:
    return state.state == "exited"


def restarted(times: int) -> Check:
    return lambda s: s.state == "running" and s.restart_count == times


# --------------------------------------------------------------------------- starting


async def test_started_container_runs_with_its_recorded_identity(node: Node) -> None:
    state = await node.start(node.spec("app", "exec sleep 60"))
    assert state.state == "running"
    assert state.pid is not None
    assert proc_start_time(state.pid) == state.pid_start_time
    assert os.getpgid(state.pid) == state.pid  # a process group (and session) of its own
    assert os.getsid(state.pid) == state.pid
    listed = await node.get("pod-1/app")
    assert (listed.state, listed.pid, listed.restart_count) == ("running", state.pid, 0)


async def test_container_output_is_logged_in_cri_format(node: Node) -> None:
    spec = node.spec("app", "echo out; echo err >&2; printf tail; exec sleep 60")
    await node.start(spec)
    log = instance_log(spec)
    await until(lambda: log.exists() and b"tail" in log.read_bytes())
    lines = [CRI_LINE.match(line) for line in log.read_bytes().splitlines()]
    assert all(lines), log.read_bytes()
    got = sorted((m.group(1), m.group(2), m.group(3)) for m in lines if m)
    assert got == [(b"stderr", b"F", b"err"), (b"stdout", b"F", b"out"), (b"stdout", b"P", b"tail")]


async def test_duplicate_container_id_is_refused(node: Node) -> None:
    await node.start(node.spec("app", "exec sleep 60"))
    with pytest.raises(Exception, match="already exists"):
        await node.start(node.spec("app", "exec sleep 60"))


# --------------------------------------------------------------------------- restart policy


async def test_killed_container_is_restarted_at_once_when_policy_is_always(node: Node) -> None:
    first = await node.start(node.spec("app", "exec sleep 60"))
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    state = await node.wait_for("pod-1/app", restarted(1), timeout=1.0)
    assert state.pid != first.pid
    assert state.last_exit is not None
    assert (state.last_exit.exit_code, state.last_exit.signal) == (137, signal.SIGKILL)
    assert state.last_exit.reason == "Error"
    assert state.started_at is not None
    # crash-to-running as the supervisor saw it
    assert state.started_at - state.last_exit.finished_at < 0.1


async def test_container_exiting_zero_is_not_restarted_when_policy_is_on_failure(
    node: Node,
) -> None:
    await node.start(node.spec("job", "exit 0", restart_policy="OnFailure"))
    state = await node.wait_for("pod-1/job", exited)
    await asyncio.sleep(0.2)
    state = await node.get("pod-1/job")
    assert (state.state, state.restart_count) == ("exited", 0)
    assert state.last_exit is not None
    assert (state.last_exit.exit_code, state.last_exit.reason) == (0, "Completed")


async def test_failing_container_backs_off_after_its_first_restart(node: Node) -> None:
    spec = node.spec("job", "exit 3", restart_policy="OnFailure", backoff_base=30.0)
    await node.start(spec)
    state = await node.wait_for("pod-1/job", lambda s: s.state == "waiting")
    assert state.restart_count == 1  # the first restart was immediate
    assert state.reason == "CrashLoopBackOff"
    assert state.next_start_at is not None
    assert state.next_start_at - time.time() > 20  # the second waits backoff_base
    assert state.backoff == 30.0


async def test_backoff_is_reset_by_an_instance_that_ran_long_enough(node: Node) -> None:
    spec = node.spec(
        "job", "sleep 0.3; exit 3", restart_policy="OnFailure", backoff_base=30.0,
        reset_after=0.2,
    )  # fmt: skip
    await node.start(spec)
    # every instance outlives reset_after, so each restart is a first one: immediate
    state = await node.wait_for("pod-1/job", lambda s: s.restart_count >= 3, timeout=10)
    assert state.state == "running"


async def test_exit_is_recorded_when_policy_is_never(node: Node) -> None:
    await node.start(node.spec("job", "exit 3", restart_policy="Never"))
    state = await node.wait_for("pod-1/job", exited)
    assert state.last_exit is not None
    assert (state.last_exit.exit_code, state.last_exit.reason) == (3, "Error")
    exits = node.state_dir / "containers" / quote("pod-1/job", safe="") / "exits.jsonl"
    records = [json.loads(line) for line in exits.read_text().splitlines()]
    assert [(r["exit_code"], r["restart_count"]) for r in records] == [(3, 0)]


async def test_container_that_failed_then_completed_keeps_both_exits(node: Node) -> None:
    marker = node.state_dir / "failed-once"
    script = f"[ -e {marker} ] && exit 0; touch {marker}; exit 1"
    await node.start(node.spec("job", script, restart_policy="OnFailure"))
    state = await node.wait_for("pod-1/job", lambda s: exited(s) and s.restart_count == 1)
    assert state.last_exit is not None and state.previous_exit is not None
    assert (state.last_exit.exit_code, state.last_exit.restart_count) == (0, 1)
    assert (state.previous_exit.exit_code, state.previous_exit.restart_count) == (1, 0)
    await node.kill_supervisor()  # a new supervisor reads both back from exits.jsonl
    await node.restart_supervisor()
    again = await node.get("pod-1/job")
    assert (again.last_exit, again.previous_exit) == (state.last_exit, state.previous_exit)


async def test_agent_learns_exits_that_happened_while_it_was_away(node: Node) -> None:
    first = await node.start(node.spec("app", "exec sleep 60"))
    await node.runtime.close()
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    node.runtime = await ensure_supervisor(node.state_dir)
    node.runtimes.append(node.runtime)
    state = await node.get("pod-1/app")
    assert (state.state, state.restart_count) == ("running", 1)
    assert state.last_exit is not None and state.last_exit.pid == first.pid


async def test_events_report_exits_and_restarts_as_they_happen(node: Node) -> None:
    first = await node.start(node.spec("app", "exec sleep 60"))
    assert first.pid is not None
    events = node.runtime.events()
    initial = await anext(events)
    assert (initial.id, initial.pid) == ("pod-1/app", first.pid)
    os.kill(first.pid, signal.SIGKILL)
    async with asyncio.timeout(5):
        change = await anext(events)
    node.remember(change)
    assert (change.state, change.restart_count) == ("running", 1)
    assert change.last_exit is not None and change.last_exit.signal == signal.SIGKILL
    await events.aclose()


# --------------------------------------------------------------------------- stopping


async def test_stop_terminates_the_whole_process_group(node: Node) -> None:
    spec = node.spec("app", "sleep 60 & echo $!; sleep 60 & echo $!; wait")
    state = await node.start(spec)
    assert state.pid is not None
    log = instance_log(spec)
    await until(lambda: log.exists() and log.read_bytes().count(b"\n") >= 2)
    children = [int(line.rsplit(b" ", 1)[1]) for line in log.read_bytes().splitlines()]
    identities = [(pid, proc_start_time(pid)) for pid in children]
    node.processes.update((p, t) for p, t in identities if t is not None)
    stopped = await node.runtime.stop_container("pod-1/app", grace_seconds=5)
    assert stopped.state == "exited"
    assert stopped.last_exit is not None and stopped.last_exit.signal == signal.SIGTERM
    await until(lambda: not any(alive(p, t) for p, t in identities))
    await asyncio.sleep(0.1)
    assert (await node.get("pod-1/app")).state == "exited"  # and not restarted


async def test_stop_escalates_to_sigkill_after_the_grace_period(node: Node) -> None:
    # An ignored SIGTERM is inherited by the sleeps too: nothing in the group obeys it.
    spec = node.spec("stubborn", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
    await node.start(spec)
    log = instance_log(spec)
    await until(lambda: log.exists() and b"ready" in log.read_bytes())
    started = time.monotonic()
    stopped = await node.runtime.stop_container("pod-1/stubborn", grace_seconds=0.3)
    assert time.monotonic() - started >= 0.3
    assert stopped.state == "exited"
    assert stopped.last_exit is not None
    assert (stopped.last_exit.exit_code, stopped.last_exit.signal) == (137, signal.SIGKILL)


async def test_removed_container_is_killed_and_forgotten(node: Node) -> None:
    state = await node.start(node.spec("app", "exec sleep 60"))
    await node.runtime.remove("pod-1/app")
    assert await node.runtime.list() == []
    await until(lambda: not alive(state.pid or 0, state.pid_start_time))
    assert not (node.state_dir / "containers" / quote("pod-1/app", safe="")).exists()


# --------------------------------------------------------------------------- supervisor restarts


async def test_containers_outlive_the_supervisor_and_are_readopted(node: Node) -> None:
    a = await node.start(node.spec("a", "exec sleep 60"))
    b = await node.start(node.spec("b", "exec sleep 60"))
    old = await node.supervisor_pid()
    await node.kill_supervisor()
    assert alive(a.pid or 0, a.pid_start_time) and alive(b.pid or 0, b.pid_start_time)
    await node.restart_supervisor()
    assert await node.supervisor_pid() != old
    states = {s.id: s for s in await node.runtime.list()}
    assert {(s.state, s.pid, s.restart_count) for s in states.values()} == {
        ("running", a.pid, 0),
        ("running", b.pid, 0),
    }


async def test_readopted_container_can_be_stopped_and_its_exit_is_unknown(node: Node) -> None:
    a = await node.start(node.spec("a", "exec sleep 60"))
    await node.kill_supervisor()
    await node.restart_supervisor()
    stopped = await node.runtime.stop_container("pod-1/a", grace_seconds=5)
    assert not alive(a.pid or 0, a.pid_start_time)
    assert stopped.last_exit is not None
    assert (stopped.last_exit.exit_code, stopped.last_exit.reason) == (255, "Unknown")


async def test_readopted_container_that_crashes_is_restarted(node: Node) -> None:
    a = await node.start(node.spec("a", "exec sleep 60"))
    await node.kill_supervisor()
    await node.restart_supervisor()
    os.kill(a.pid or 0, signal.SIGKILL)
    state = await node.wait_for("pod-1/a", restarted(1))
    assert state.pid != a.pid


async def test_container_killed_while_no_supervisor_runs_is_reported_exited(
    node: Node,
) -> None:
    a = await node.start(node.spec("a", "exec sleep 60", restart_policy="Never"))
    await node.kill_supervisor()
    os.kill(a.pid or 0, signal.SIGKILL)
    await until(lambda: not alive(a.pid or 0, a.pid_start_time))
    await node.restart_supervisor()
    state = await node.get("pod-1/a")
    assert state.state == "exited"
    assert state.last_exit is not None
    assert (state.last_exit.exit_code, state.last_exit.reason) == (255, "Unknown")
    assert state.last_exit.pid == a.pid


async def test_always_container_killed_while_no_supervisor_runs_is_restarted(
    node: Node,
) -> None:
    a = await node.start(node.spec("a", "exec sleep 60"))
    await node.kill_supervisor()
    os.kill(a.pid or 0, signal.SIGKILL)
    await until(lambda: not alive(a.pid or 0, a.pid_start_time))
    await node.restart_supervisor()
    state = await node.wait_for("pod-1/a", restarted(1))
    assert state.pid != a.pid
    assert state.last_exit is not None and state.last_exit.reason == "Unknown"


async def test_writing_container_survives_the_supervisor_and_keeps_its_output(
    node: Node,
) -> None:
    spec = node.spec("chatty", "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done")
    a = await node.start(spec)
    await node.kill_supervisor()
    await asyncio.sleep(0.3)  # it writes on while nobody reads: no SIGPIPE
    assert alive(a.pid or 0, a.pid_start_time)
    await node.restart_supervisor()
    log = instance_log(spec)
    await asyncio.sleep(0.2)
    numbers = [int(line.rsplit(b" ", 1)[1]) for line in log.read_bytes().splitlines()]
    assert numbers == list(range(1, len(numbers) + 1))  # nothing lost while we were away
    assert (await node.get("pod-1/chatty")).restart_count == 0


async def test_forged_pid_is_never_signalled(node: Node) -> None:
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        victim_start = proc_start_time(victim.pid)
        assert victim_start is not None
        await node.kill_supervisor()
        spec = node.spec("forged", "exec sleep 60", restart_policy="Never")
        directory = node.state_dir / "containers" / quote(spec.id, safe="")
        directory.mkdir(parents=True)
        (directory / "spec.json").write_text(json.dumps(spec.to_dict()))
        (directory / "state.json").write_text(
            json.dumps({"pid": victim.pid, "pid_start_time": victim_start - 1, "restart_count": 0})
        )
        await node.restart_supervisor()
        state = await node.get(spec.id)
        assert (state.state, state.pid) == ("exited", None)
        await node.runtime.stop_container(spec.id, grace_seconds=0)
        await node.runtime.remove(spec.id)
        await asyncio.sleep(0.1)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


# --------------------------------------------------------------------------- logs and socket


async def test_logs_rotate_by_size(node: Node) -> None:
    spec = node.spec(
        "noisy",
        "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line $i; done; exec sleep 60",
        max_log_bytes=2048,
        max_log_files=3,
    )
    await node.start(spec)
    log = instance_log(spec)

    def current_log() -> bytes:
        try:
            return log.read_bytes()
        except FileNotFoundError:  # caught between a rotation's rename and the new file
            return b""

    await until(lambda: b"line 200\n" in current_log())
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["0.log", "0.log.1", "0.log.2"]
    for path in log.parent.iterdir():
        data = path.read_bytes()
        assert 0 < len(data) <= 2048
        assert all(CRI_LINE.match(line) for line in data.splitlines())
    kept = b"".join(log.parent.joinpath(n).read_bytes() for n in reversed(files))
    numbers = [int(line.rsplit(b" ", 1)[1]) for line in kept.splitlines()]
    assert numbers == list(range(numbers[0], 201))  # the newest lines, in order


async def test_a_writer_faster_than_its_log_budget_is_slowed_and_loses_nothing(
    node: Node,
) -> None:
    # seq writes ~4 MiB of CRI log; a 1 MiB/s budget cannot have taken it in one second,
    # and the FIFO holds 64 KiB: seq must be blocked writing, not racing ahead
    spec = node.spec("seq", "seq 1 100000", restart_policy="Never", max_log_rate=1 << 20)
    await node.start(spec)
    await asyncio.sleep(1.0)
    assert (await node.get("pod-1/seq")).state == "running"
    await node.wait_for("pod-1/seq", exited, timeout=60)
    await until(lambda: logged(instance_log(spec), b" F 100000\n"), timeout=10)
    pieces = []
    for entry in instance_log(spec).read_bytes().splitlines():  # partial entries joined
        match = CRI_LINE.match(entry)
        assert match is not None
        pieces += [match.group(3), b"\n" if match.group(2) == b"F" else b""]
    numbers = [int(line) for line in b"".join(pieces).splitlines()]
    assert numbers == list(range(1, 100001))


async def test_each_restart_logs_to_a_file_named_by_its_restart_count(node: Node) -> None:
    spec = node.spec("app", "echo started $$; exec sleep 60")
    first = await node.start(spec)
    await until(lambda: logged(instance_log(spec, 0), b"started"))
    os.kill(first.pid or 0, signal.SIGKILL)
    second = await node.wait_for("pod-1/app", restarted(1))
    await until(lambda: logged(instance_log(spec, 1), b"started"))
    assert f"started {first.pid}".encode() in instance_log(spec, 0).read_bytes()
    assert f"started {second.pid}".encode() in instance_log(spec, 1).read_bytes()
    assert f"started {second.pid}".encode() not in instance_log(spec, 0).read_bytes()


async def test_only_the_current_and_previous_instance_logs_are_kept(node: Node) -> None:
    spec = node.spec("app", "echo hello; exec sleep 60")
    state = await node.start(spec)
    for restarts in (1, 2, 3):
        os.kill(state.pid or 0, signal.SIGKILL)
        state = await node.wait_for("pod-1/app", restarted(restarts))
    assert spec.log_dir is not None
    assert sorted(p.name for p in Path(spec.log_dir).iterdir()) == ["2.log", "3.log"]


async def test_readopted_instance_keeps_logging_to_its_own_file(node: Node) -> None:
    spec = node.spec("app", "echo one; sleep 0.5; echo two; exec sleep 60")
    first = await node.start(spec)
    os.kill(first.pid or 0, signal.SIGKILL)
    await node.wait_for("pod-1/app", restarted(1))
    await node.kill_supervisor()
    await node.restart_supervisor()
    await until(lambda: logged(instance_log(spec, 1), b"two"))
    assert b"two" not in instance_log(spec, 0).read_bytes()


async def test_supervisor_socket_is_private(node: Node) -> None:
    mode = (node.state_dir / "supervisor.sock").stat().st_mode
    assert mode & 0o777 == 0o600


def private_paths(node: Node, spec: ContainerSpec) -> tuple[list[Path], list[Path]]:
    """The directories and files the supervisor writes for ``node`` and one container."""
    container_dir = node.state_dir / "containers" / quote(spec.id, safe="")
    log = instance_log(spec)
    directories = [node.state_dir, node.state_dir / "containers", container_dir, log.parent]
    names = ("spec.json", "state.json", "exits.jsonl", "stdout.fifo", "stderr.fifo")
    files = [container_dir / name for name in names]
    files += [node.state_dir / n for n in ("supervisor.log", "supervisor.pid", "supervisor.lock")]
    return directories, [*files, log]


def modes(paths: list[Path]) -> set[int]:
    return {p.stat().st_mode & 0o777 for p in paths}


async def test_supervisor_files_are_private_whatever_the_umask(node: Node) -> None:
    await node.kill_supervisor()
    old_umask = os.umask(0)  # inherited by the supervisor started next
    try:
        os.chmod(node.state_dir, 0o777)
        await node.restart_supervisor()
    finally:
        os.umask(old_umask)
    spec = node.spec("job", "echo done", restart_policy="Never")
    await node.start(spec)
    await node.wait_for("pod-1/job", exited)
    directories, files = private_paths(node, spec)
    assert modes(directories) == {0o700}
    assert modes(files) == {0o600}


async def test_restarted_supervisor_tightens_what_was_left_open(node: Node) -> None:
    spec = node.spec("app", "exec sleep 60")
    await node.start(spec)
    directories, files = private_paths(node, spec)
    await node.kill_supervisor()
    for path in directories:  # as an older supervisor left them
        os.chmod(path, 0o755)
    reopened = [p for p in files if p.suffix in (".log", ".lock", ".pid")]
    for path in reopened:
        os.chmod(path, 0o644)
    await node.restart_supervisor()
    await node.wait_for("pod-1/app", running)  # re-adopted: its log is open again
    assert modes(directories) == {0o700}
    assert modes(reopened) == {0o600}


async def test_second_ensure_supervisor_connects_to_the_running_one(node: Node) -> None:
    first = await node.supervisor_pid()
    other = await ensure_supervisor(node.state_dir)
    node.runtimes.append(other)
    assert (await other.info())["pid"] == first


# --------------------------------------------------------------------------- upgrading


async def upgrade_supervisor(node: Node) -> int:
    """What an agent of another version does on start: ``ensure_supervisor`` finds the
    running supervisor's version differs, asks it to re-exec, and reconnects to the new
    image (same pid, a later image start)."""
    before = await node.runtime.info()
    node.runtime = await ensure_supervisor(node.state_dir, version="an-older-agent's-code")
    node.runtimes.append(node.runtime)
    after = await node.runtime.info()
    assert after["image_started"] > before["image_started"]
    assert "upgrading supervisor" in (node.state_dir / "supervisor.log").read_text()
    return int(before["pid"])


async def test_upgrade_keeps_the_supervisor_pid_and_its_containers(node: Node) -> None:
    a = await node.start(node.spec("a", "exec sleep 60"))
    pid = await upgrade_supervisor(node)
    info = await node.runtime.info()
    assert info["pid"] == pid
    assert info["version"] == VERSION
    state = await node.get("pod-1/a")
    assert (state.state, state.pid, state.pid_start_time) == ("running", a.pid, a.pid_start_time)


async def test_exit_after_an_upgrade_keeps_its_real_status(node: Node) -> None:
    await node.start(node.spec("a", "trap 'exit 7' TERM; while true; do sleep 0.05; done"))
    await upgrade_supervisor(node)
    stopped = await node.runtime.stop_container("pod-1/a", grace_seconds=5)
    assert stopped.last_exit is not None
    assert (stopped.last_exit.exit_code, stopped.last_exit.reason) == (7, "Error")


async def test_crash_after_an_upgrade_is_restarted_with_its_signal(node: Node) -> None:
    a = await node.start(node.spec("a", "exec sleep 60"))
    await upgrade_supervisor(node)
    os.kill(a.pid or 0, signal.SIGKILL)
    state = await node.wait_for("pod-1/a", restarted(1))
    assert state.last_exit is not None
    assert (state.last_exit.exit_code, state.last_exit.signal) == (137, signal.SIGKILL)


def test_an_idle_supervisor_exits_by_itself(tmp_path: Path) -> None:
    import subprocess
    import sys

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "setpoint.agent.supervisor",
            "--state-dir",
            str(tmp_path / "sv"),
            "--idle-exit-seconds",
            "1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
