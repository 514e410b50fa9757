"""Resource limits of pods and containers, enforced with cgroups (v1 or v2).

Like the kubelet's ``kubepods/pod<uid>/<container>`` tree, each pod gets a cgroup
``setpoint/pods/<uid>`` and each container a leaf below it (the leaf the supervisor moves the
container's process into, see ``cgroup_dirs`` in :mod:`setpoint.agent.supervisor`). The
values are the kubelet's (``pkg/kubelet/cm/helpers_linux.go``):

- memory limit: v1 ``memory.limit_in_bytes`` / v2 ``memory.max``;
- cpu limit: a CFS quota of ``milliCPU * 100000 / 1000`` µs (at least 1000) per 100 ms
  period, v1 ``cpu.cfs_quota_us`` + ``cpu.cfs_period_us`` / v2 ``cpu.max``;
- cpu request: v1 ``cpu.shares`` = ``milliCPU * 1024 / 1000`` (2 .. 262144; 2 without a
  request, which makes a BestEffort container yield to everyone) / v2 ``cpu.weight``
  = ``1 + (shares - 2) * 9999 / 262142``.

The pod's cgroup carries the pod's totals (``ResourceConfigForPod``): cpu shares from the
sum of requests, and a cpu quota or memory limit only when every container has one; and the
node's per-pod process limit, the kubelet's ``--pod-max-pids`` (``podPidsLimit``), as v1/v2
``pids.max``, so a fork bomb in one pod stops at that many tasks.

The limits are written into the leaf when the container is created, before the supervisor
spawns the process, which joins its cgroups before it execs: nothing it runs or forks is
ever unconstrained. A container the
kernel OOM-kills in its memory cgroup is reported ``OOMKilled`` by the supervisor, which
compares the cgroup's ``oom_kill`` counter (v1 ``memory.oom_control``, kernel 4.13+; v2
``memory.events``) before and after the instance ran.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.agent.supervisor import CGROUP_ROOT, cgroup_path
from setpoint.meta.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

ROOT = CGROUP_ROOT
PODS_PARENT = "setpoint/pods"
CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000
MIN_SHARES = 2
MAX_SHARES = 262_144
V1_CONTROLLERS = ("memory", "cpu", "pids")
CONTROLLERS = V1_CONTROLLERS  # the ones limits are written to (v2 names them alike)
# What a new cgroup starts with (v1 and v2 files): writing these into a cgroup just created
# changes nothing, and each cgroup file write costs ~0.1 ms of kernel time per pod start.
KERNEL_DEFAULTS = {
    "memory.limit_in_bytes": "-1",
    "cpu.cfs_period_us": str(CPU_PERIOD_US),
    "cpu.cfs_quota_us": "-1",
    "memory.max": "max",
    "cpu.max": f"max {CPU_PERIOD_US}",
    "pids.max": "max",
}


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = None
    cpu_quota_us: int | None = None  # per CPU_PERIOD_US
    cpu_shares: int = MIN_SHARES
    pids_max: int | None = None  # tasks (processes and threads); None: unlimited


def pod_parent(uid: str) -> str:
    return f"{PODS_PARENT}/{uid}"


def milli_cpu(text: object) -> int:
    """A cpu quantity in millicores, rounded up; 0 if absent or not a quantity."""
    if text is None:
        return 0
    try:
        return math.ceil(parse_quantity(str(text)).value * 1000)
    except QuantityError:
        return 0


def memory_bytes(text: object) -> int | None:
    if text is None:
        return None
    try:
        return math.ceil(parse_quantity(str(text)).value)
    except QuantityError:
        return None


def shares(milli: int) -> int:
    """``MilliCPUToShares``."""
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * 1024 // 1000))


def quota(milli: int) -> int | None:
    """``MilliCPUToQuota`` for the default 100 ms period; None: no quota."""
    if milli == 0:
        return None
    return max(MIN_QUOTA_US, milli * CPU_PERIOD_US // 1000)


def weight(cpu_shares: int) -> int:
    """``CpuSharesToCpuWeight`` (cgroup v2)."""
    return 1 + ((cpu_shares - 2) * 9999) // 262142


def container_limits(container: Obj) -> Limits:
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    # An unset request with a set limit is the limit (API defaulting; kubelet does the same).
    cpu_request = requests.get("cpu", limits.get("cpu"))
    return Limits(
        memory_bytes=memory_bytes(limits.get("memory")),
        cpu_quota_us=quota(milli_cpu(limits.get("cpu"))),
        cpu_shares=shares(milli_cpu(cpu_request)),
    )


def pod_limits(pod: Obj, *, pids_max: int | None = None) -> Limits:
    """The pod's totals: app containers summed, init containers (run alone) as a floor;
    ``pids_max`` is the node's per-pod process limit (None or below 1: none)."""
    spec = pod.get("spec") or {}
    apps, inits = spec.get("containers") or [], spec.get("initContainers") or []

    def total(containers: Iterable[Obj], kind: str, name: str) -> tuple[int, bool]:
        values = [((c.get("resources") or {}).get(kind) or {}).get(name) for c in containers]
        if kind == "requests":  # defaulted from the limit, as above
            values = [
                v if v is not None else ((c.get("resources") or {}).get("limits") or {}).get(name)
                for v, c in zip(values, containers, strict=True)
            ]
        parse = milli_cpu if name == "cpu" else (lambda t: memory_bytes(t) or 0)
        return sum(parse(v) for v in values), all(v is not None for v in values)

    def pod_value(kind: str, name: str) -> tuple[int, bool]:
        app_total, app_all = total(apps, kind, name)
        init_max, init_all = 0, True
        for c in inits:
            value, has = total([c], kind, name)
            init_max, init_all = max(init_max, value), init_all and has
        return max(app_total, init_max), app_all and init_all

    cpu_request, _ = pod_value("requests", "cpu")
    cpu_limit, all_cpu = pod_value("limits", "cpu")
    memory_limit, all_memory = pod_value("limits", "memory")
    return Limits(
        memory_bytes=memory_limit if all_memory and memory_limit else None,
        cpu_quota_us=quota(cpu_limit) if all_cpu else None,
        cpu_shares=shares(cpu_request),
        pids_max=pids_max if pids_max is not None and pids_max > 0 else None,
    )


def wanted(container: Obj) -> list[str]:
    """The limits the user asked for, in words, for an event when they cannot be enforced."""
    resources = container.get("resources") or {}
    out = []
    for kind in ("limits", "requests"):
        for name, value in sorted((resources.get(kind) or {}).items()):
            if name in ("cpu", "memory") and not (kind == "requests" and name == "memory"):
                out.append(f"{name} {kind[:-1]} {value} of container {container.get('name')!r}")
    return out


# ------------------------------------------------------------------ the host


@dataclass(frozen=True)
class Host:
    """What this host lets us enforce: ``version`` 1, 2 or 0 (no cgroups we can write), and
    the reason for each controller we cannot use."""

    version: int
    missing: dict[str, str]
    root: Path = ROOT

    @classmethod
    def detect(cls, root: Path = ROOT) -> Host:
        if os.geteuid() != 0:
            reason = "the setpoint agent is not running as root"
            return cls(0, dict.fromkeys(CONTROLLERS, reason), root)
        if (root / "cgroup.controllers").exists():
            try:
                available = set((root / "cgroup.controllers").read_text().split())
            except OSError:
                available = set()
            reason = "the cgroup v2 controller {} is not available"
            return cls(2, {c: reason.format(c) for c in CONTROLLERS if c not in available}, root)
        missing = {
            c: f"no cgroup v1 {c} hierarchy at {root / c}"
            for c in CONTROLLERS
            if not (root / c / "cgroup.procs").exists()
        }
        if len(missing) == len(CONTROLLERS):
            return cls(0, missing, root)
        return cls(1, missing, root)

    def dirs(self, parent: str, leaf: str | None = None) -> dict[str, Path]:
        """The cgroup directory per controller (v2: one directory for all)."""
        rel = cgroup_path(parent, leaf)
        if self.version == 2:
            return {"memory": self.root / rel, "cpu": self.root / rel, "pids": self.root / rel}
        return {
            c: self.root / c / rel
            for c in V1_CONTROLLERS
            if c not in self.missing and (self.root / c / "cgroup.procs").exists()
        }

    def apply(self, parent: str, limits: Limits, leaf: str | None = None) -> list[str]:
        """Create the cgroup (pod: ``leaf`` None; container: ``leaf`` = its id) and write
        ``limits``; returns what failed, in words."""
        if self.version == 0:
            return []
        problems: list[str] = []
        dirs = self.dirs(parent, leaf)
        if self.version == 2:
            self._enable_controllers(Path(parent.strip("/")), leaf is not None, problems)
        created: set[Path] = set()
        for d in set(dirs.values()):
            try:
                d.mkdir(parents=True)
                created.add(d)
            except FileExistsError:
                pass
            except OSError as exc:
                problems.append(f"{d}: {exc.strerror}")
        for path, value in self._files(dirs, limits):
            if path.parent in created and KERNEL_DEFAULTS.get(path.name) == value:
                continue
            try:
                path.write_text(value)
            except OSError as exc:
                problems.append(f"writing {value} to {path}: {exc.strerror}")
        return problems

    def _files(self, dirs: dict[str, Path], limits: Limits) -> list[tuple[Path, str]]:
        files: list[tuple[Path, str]] = []
        if self.version == 2:
            if "memory" not in self.missing:
                memory = str(limits.memory_bytes) if limits.memory_bytes else "max"
                files.append((dirs["memory"] / "memory.max", memory))
            if "cpu" not in self.missing:
                cpu_max = str(limits.cpu_quota_us) if limits.cpu_quota_us else "max"
                files.append((dirs["cpu"] / "cpu.max", f"{cpu_max} {CPU_PERIOD_US}"))
                files.append((dirs["cpu"] / "cpu.weight", str(weight(limits.cpu_shares))))
            if "pids" not in self.missing:
                files.append((dirs["pids"] / "pids.max", str(limits.pids_max or "max")))
            return files
        if "memory" in dirs:
            memory = str(limits.memory_bytes) if limits.memory_bytes else "-1"
            files.append((dirs["memory"] / "memory.limit_in_bytes", memory))
        if "cpu" in dirs:
            files.append((dirs["cpu"] / "cpu.shares", str(limits.cpu_shares)))
            files.append((dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US)))
            files.append((dirs["cpu"] / "cpu.cfs_quota_us", str(limits.cpu_quota_us or -1)))
        if "pids" in dirs:
            files.append((dirs["pids"] / "pids.max", str(limits.pids_max or "max")))
        return files

    def _enable_controllers(self, parent: Path, with_leaf: bool, problems: list[str]) -> None:
        """v2 hands a controller to a child only through each ancestor's subtree_control."""
        wanted = " ".join(f"+{c}" for c in CONTROLLERS if c not in self.missing)
        d = self.root
        for part in (None, *parent.parts) if with_leaf else (None, *parent.parts[:-1]):
            if part is not None:
                d = d / part
                d.mkdir(exist_ok=True)
            try:
                (d / "cgroup.subtree_control").write_text(wanted)
            except OSError as exc:
                problems.append(f"enabling {wanted} in {d}: {exc.strerror}")

    def remove(self, parent: str, leaf: str | None = None) -> None:
        """Remove a (now empty) cgroup; a busy one stays."""
        if self.version == 0:
            return
        for d in set(self.dirs(parent, leaf).values()):
            if leaf is None and d.is_dir():
                for child in d.iterdir():  # leaves the supervisor could not remove
                    if child.is_dir():
                        _rmdir(child)
            _rmdir(d)


def _rmdir(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass
