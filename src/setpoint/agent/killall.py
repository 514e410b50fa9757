"""Wiping a node: what ``setpoint killall`` does (k3s ships the same as ``k3s-killall.sh``).

Workloads outlive the agent and the server on purpose, so stopping setpoint leaves them
running. To really clear a node — before uninstalling, at the end of a test or a benchmark —
:func:`kill_node` stops everything an agent data dir accounts for:

1. the per-node supervisor, first and with SIGKILL, so that it restarts nothing;
2. every process in the cgroup of each container it recorded (a container is its cgroup:
   this reaches what left the process group, e.g. with ``setsid``), and the process group
   of every container instance it recorded (and any the caller names: all a container
   without a cgroup has), each only if its pid still has the recorded start time, so a
   recycled pid is never signalled;
3. once those processes are gone, every pod sandbox: the tmpfs and mount-namespace mounts
   under ``<data dir>/pods`` and the pods' cgroups (which the kernel keeps until removed);
4. the pod network: each pod's network namespace and veth, the routes to other nodes' pods
   and the node bridge (:func:`setpoint.agent.network.remove_all`);
5. the node proxy's nftables table and cluster IP interface
   (:func:`setpoint.agent.proxy.proxier.remove_all`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from setpoint.agent.network import remove_all as remove_pod_network
from setpoint.agent.proxy.proxier import remove_all as remove_node_proxy
from setpoint.agent.sandbox import remove_all_sandboxes
from setpoint.agent.supervisor import (
    PID_NAME,
    cgroup_dirs,
    cgroup_empty,
    cgroup_pids,
    kill_cgroup,
    proc_start_time,
)

Process = tuple[int, int]  # (pid, start time)
EXIT_WAIT_SECONDS = 5.0


def recorded_processes(state_dir: Path) -> set[Process]:
    """The current instance of every container in a supervisor's state dir."""
    found: set[Process] = set()
    for state_file in state_dir.glob("containers/*/state.json"):
        with contextlib.suppress(OSError, ValueError, TypeError):
            saved = json.loads(state_file.read_text())
            if saved.get("pid") and saved.get("pid_start_time") is not None:
                found.add((int(saved["pid"]), int(saved["pid_start_time"])))
    return found


def recorded_cgroups(state_dir: Path) -> list[list[Path]]:
    """The cgroup directories of every container in a supervisor's state dir."""
    found = []
    for spec_file in state_dir.glob("containers/*/spec.json"):
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            spec = json.loads(spec_file.read_text())
            if spec.get("cgroup_parent"):
                found.append(cgroup_dirs(spec["cgroup_parent"], spec["id"]))
    return found


def kill_node(agent_dir: Path, processes: Iterable[Process] = ()) -> list[int]:
    """Kill the supervisor and the containers of the agent data dir ``agent_dir``, then
    remove its pod sandboxes; returns the pids that were signalled (the processes found in
    the containers' cgroups and the process groups' leaders)."""
    state_dir = agent_dir / "supervisor"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((state_dir / PID_NAME).read_text()), signal.SIGKILL)
    cgroups = recorded_cgroups(state_dir)
    killed: set[int] = set()
    for dirs in cgroups:
        existing = [d for d in dirs if d.is_dir()]
        if existing:
            killed.update(cgroup_pids(existing[0]))
        kill_cgroup(dirs)
    for pid, start_time in {*processes, *recorded_processes(state_dir)}:
        if proc_start_time(pid) == start_time:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
                killed.add(pid)
    # a cgroup cannot be removed while a dying process is still in it
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while time.monotonic() < deadline and (
        any(Path(f"/proc/{pid}").exists() for pid in killed)
        or not all(cgroup_empty(dirs) for dirs in cgroups)
    ):
        time.sleep(0.01)
    remove_all_sandboxes(agent_dir)
    remove_pod_network(agent_dir)
    remove_node_proxy(agent_dir)
    return sorted(killed)
