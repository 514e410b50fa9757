"""Node pressure: whether the host is short of memory, disk or process ids.

A kubelet reports ``MemoryPressure``, ``DiskPressure`` and ``PIDPressure`` on its Node from
its eviction signals compared with the hard eviction thresholds. The scheduler and the node
lifecycle controller read them (a node under pressure is tainted and gets no new pods), so
they must be true to the host rather than constant. The agent measures the host with
:func:`measure_host` and decides with the pure :func:`node_pressure`; the conditions' shape,
reasons and messages (``KubeletHasInsufficientMemory`` ...) live in
:mod:`setpoint.client.nodes`, shared with the hollow nodes, which never feel pressure.

The signals and the kubelet's default thresholds on Linux (``eviction/defaults_linux.go``):

- ``memory.available < 100Mi``. The kubelet computes it from the root cgroup's working set;
  the agent reads ``MemAvailable`` from ``/proc/meminfo``, the kernel's own estimate of what
  can be allocated without swapping, which works on every cgroup version.
- ``nodefs.available < 10%`` and ``nodefs.inodesFree < 5%`` of the filesystem that holds the
  agent's data dir (pod logs and volumes live there). There is no image filesystem: images
  are not pulled.
- ``pid.available``: process ids left, the smaller of ``kernel.pid_max`` and
  ``kernel.threads-max`` less the tasks that exist (``/proc/loadavg``). The kubelet sets no
  default threshold for it; setpoint reports pressure below 10% left, so the condition
  means something out of the box.

Unlike the kubelet, the agent does not evict pods under pressure and does not hold a
condition for ``evictionPressureTransitionPeriod`` after the signal clears; it only
reports.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from setpoint.client.nodes import NodePressure

MEMORY_AVAILABLE_MIN = 100 * 1024 * 1024  # memory.available<100Mi
NODEFS_AVAILABLE_MIN = 0.10  # nodefs.available<10%
NODEFS_INODES_FREE_MIN = 0.05  # nodefs.inodesFree<5%
PID_AVAILABLE_MIN = 0.10  # pid.available<10% (setpoint's choice; the kubelet has none)


@dataclass(frozen=True)
class HostSignals:
    """The host's eviction signals at one moment; a value the host did not give is None."""

    memory_available: int | None = None  # bytes
    nodefs_available: int | None = None  # bytes, for unprivileged users
    nodefs_capacity: int | None = None  # bytes
    nodefs_inodes_free: int | None = None
    nodefs_inodes: int | None = None
    pid_max: int | None = None
    pids_used: int | None = None


def node_pressure(signals: HostSignals) -> NodePressure:
    """Which of the node's pressure conditions hold for ``signals`` (an unknown signal is no
    pressure: the kubelet, too, only acts on what it observed)."""
    memory = signals.memory_available is not None and (
        signals.memory_available < MEMORY_AVAILABLE_MIN
    )
    disk = _below(signals.nodefs_available, signals.nodefs_capacity, NODEFS_AVAILABLE_MIN) or (
        _below(signals.nodefs_inodes_free, signals.nodefs_inodes, NODEFS_INODES_FREE_MIN)
    )
    pids_left = None
    if signals.pid_max is not None and signals.pids_used is not None:
        pids_left = signals.pid_max - signals.pids_used
    pid = _below(pids_left, signals.pid_max, PID_AVAILABLE_MIN)
    return NodePressure(memory=memory, disk=disk, pid=pid)


def _below(available: int | None, capacity: int | None, fraction: float) -> bool:
    if available is None or not capacity:  # a filesystem without inodes reports 0 of 0
        return False
    return available < capacity * fraction


def meminfo_bytes(field: str, *, proc: Path = Path("/proc")) -> int | None:
    """A ``/proc/meminfo`` figure (``MemTotal``, ``MemAvailable``...) in bytes."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return None


def measure_host(data_dir: Path, *, proc: Path = Path("/proc")) -> HostSignals:
    """Read the signals of this host, for the filesystem holding ``data_dir``."""
    memory = meminfo_bytes("MemAvailable", proc=proc)
    disk: os.statvfs_result | None = None
    with contextlib.suppress(OSError):
        disk = os.statvfs(data_dir)
    limits = [_read_int(proc / "sys" / "kernel" / n) for n in ("pid_max", "threads-max")]
    known = [n for n in limits if n is not None]
    used = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        # "0.10 0.20 0.30 2/345 6789": runnable/existing scheduling entities (tasks)
        used = int((proc / "loadavg").read_text().split()[3].split("/")[1])
    return HostSignals(
        memory_available=memory,
        nodefs_available=disk.f_bavail * disk.f_frsize if disk else None,
        nodefs_capacity=disk.f_blocks * disk.f_frsize if disk else None,
        nodefs_inodes_free=disk.f_favail if disk else None,
        nodefs_inodes=disk.f_files if disk else None,
        pid_max=min(known) if known else None,
        pids_used=used,
    )


def _read_int(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None
