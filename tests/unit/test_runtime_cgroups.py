"""A container is its cgroup: a real supervisor placing real processes in real cgroups.

The process joins its cgroups before it execs, so what it forks at once is inside too; the
SIGKILL that ends a container (a stop after its grace period, its main process exiting, a
re-adopted instance exiting) reaches every process in the cgroup, whatever session it made
for itself. Needs root and a cgroup filesystem; each test uses a parent of its own and
removes it."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.agent.supervisor import (
    cgroup_dirs,
    cgroup_empty,
    cgroup_pids,
    kill_cgroup,
    proc_start_time,
)
from tests.support import wait_for
from tests.unit import test_runtime
from tests.unit.test_runtime import Node, exited, instance_log, restarted, until

node = test_runtime.node  # the supervisor fixture of the runtime tests


@pytest.fixture
def parent() -> Iterator[str]:
    """A cgroup parent of the test's own; everything left in it is killed and removed."""
    name = f"setpoint-test/{uuid.uuid4().hex[:8]}"
    if os.geteuid() != 0 or not cgroup_dirs(name, "x"):
        pytest.skip("needs root and a cgroup filesystem")
    yield name
    bases = [top.parent for top in cgroup_dirs(name, "x")]
    leaves = [d for base in bases if base.is_dir() for d in base.iterdir() if d.is_dir()]
    for leaf in leaves:
        kill_cgroup([leaf])
    with contextlib.suppress(AssertionError):
        wait_for(lambda: cgroup_empty(leaves), timeout=10, what="the test's cgroups empty")
    for d in [*leaves, *bases, *(base.parent for base in bases)]:
        with contextlib.suppress(OSError):  # (the shared top stays while another test uses it)
            d.rmdir()


def pids_logged(path: Path, count: int) -> list[int]:
    """The pids a container printed, one per line, once it printed ``count`` of them."""
    lines = path.read_bytes().splitlines() if path.exists() else []
    return [int(line.rsplit(b" ", 1)[1]) for line in lines][:count]


def running_in(pid: int, directory: Path) -> bool:
    return pid in cgroup_pids(directory)


async def test_children_forked_at_start_are_all_inside_the_cgroup(node: Node, parent: str) -> None:
    spec = node.spec(
        "forker", "for i in $(seq 200); do sleep 60 & done; wait", cgroup_parent=parent
    )
    await node.start(spec)
    (leaf, *_) = cgroup_dirs(parent, spec.id)
    await until(lambda: len(cgroup_pids(leaf)) == 201, timeout=20)
    main = (await node.get(spec.id)).pid
    assert main is not None
    children = [int(p) for p in Path(f"/proc/{main}/task/{main}/children").read_text().split()]
    assert len(children) == 200
    assert set(children) <= set(cgroup_pids(leaf))
    await node.runtime.stop_container(spec.id, grace_seconds=0)
    await until(lambda: cgroup_empty([leaf]))


async def test_every_hierarchy_holds_the_process(node: Node, parent: str) -> None:
    state = await node.start(node.spec("app", "exec sleep 60", cgroup_parent=parent))
    assert state.pid is not None
    dirs = cgroup_dirs(parent, state.id)
    assert dirs
    assert all(running_in(state.pid, d) for d in dirs)


async def test_setsid_child_does_not_outlive_its_stopped_container(node: Node, parent: str) -> None:
    spec = node.spec("daemon", "setsid sleep 60 & echo $!; exec sleep 60", cgroup_parent=parent)
    await node.start(spec)
    log = instance_log(spec)
    await until(lambda: len(pids_logged(log, 1)) == 1)
    (escaped,) = pids_logged(log, 1)
    # a session of its own, once setsid ran: no process group signal reaches it
    await until(lambda: os.getsid(escaped) == escaped)
    started = proc_start_time(escaped)
    await node.runtime.stop_container(spec.id, grace_seconds=5)
    await until(lambda: proc_start_time(escaped) != started)


async def test_main_process_exit_takes_the_rest_of_the_container_along(
    node: Node, parent: str
) -> None:
    spec = node.spec(
        "leaver",
        "setsid sleep 60 & echo $!; sleep 0.2",
        cgroup_parent=parent,
        restart_policy="Never",
    )
    await node.start(spec)
    log = instance_log(spec)
    await until(lambda: len(pids_logged(log, 1)) == 1)
    (escaped,) = pids_logged(log, 1)
    started = proc_start_time(escaped)
    await node.wait_for(spec.id, exited)
    await until(lambda: proc_start_time(escaped) != started)


async def test_readopted_instance_exit_kills_its_whole_cgroup(node: Node, parent: str) -> None:
    spec = node.spec("twice", "sleep 60 & echo $!; exec sleep 60", cgroup_parent=parent)
    first = await node.start(spec)
    log = instance_log(spec)
    await until(lambda: len(pids_logged(log, 1)) == 1)
    (child,) = pids_logged(log, 1)
    started = proc_start_time(child)
    await node.kill_supervisor()
    await node.restart_supervisor()  # re-adopts it: no longer its child
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    await node.wait_for(spec.id, restarted(1))
    # the old instance's other process went with it: the container does not run twice
    await until(lambda: proc_start_time(child) != started)


async def test_fork_bomb_is_stopped_whole(node: Node, parent: str) -> None:
    spec = node.spec(
        "bomb",
        "trap '' TERM; while :; do sleep 60 & sh -c 'setsid sleep 60 &'; sleep 0.01; done",
        cgroup_parent=parent,
    )
    await node.start(spec)
    (leaf, *_) = cgroup_dirs(parent, spec.id)
    await until(lambda: len(cgroup_pids(leaf)) > 20)
    await node.runtime.stop_container(spec.id, grace_seconds=0.2)
    await until(lambda: cgroup_empty([leaf]))
