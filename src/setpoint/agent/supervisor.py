"""The per-node supervisor: the one process that owns a node's container processes.

A workload must outlive its agent, so the agent never forks workloads itself. It asks this
daemon (``python -m setpoint.agent.supervisor --state-dir DIR``) over a Unix socket
(``DIR/supervisor.sock``, mode 0600, one JSON object per line each way) to start, stop and
remove containers, to list them and to stream their changes. The supervisor

- starts each container as a plain host process in a session and process group of its own,
  with its stdout and stderr on two FIFOs which it turns into one CRI-format log file
  (``<RFC3339Nano> stdout|stderr F|P <text>``), rotated by size, and, for a container with
  ``stdin``, its stdin on a third FIFO that ``kubectl attach -i`` writes to;
- confines it, when the agent gives it a cgroup parent, to the container's cgroups (one
  leaf per hierarchy: v1 memory, cpu, pids and freezer, or the v2 unified one), joined in
  the child between fork and exec so nothing it forks ever runs outside them, and treats
  that cgroup as the container: SIGTERM goes to the main process, as a runtime sends it,
  but SIGKILL (at the end of a grace period, and whenever an instance ends) goes to every
  process in the cgroup, whatever session it made for itself (:func:`kill_cgroup`);
- restarts a container that exits, by its restart policy (``Always``, ``OnFailure``,
  ``Never``) and with Kubernetes' backoff shape (first restart after ``initial_backoff``,
  then ``backoff_base`` doubling up to ``backoff_max``, reset after ``reset_after`` seconds
  of clean running; the defaults are the kubelet's front-loaded curve of KEP-4603, 1 s
  doubling to 60 s), itself, so crash-to-running takes milliseconds and needs no agent;
- records every exit durably (one fsynced JSON line per exit in
  ``DIR/containers/<id>/exits.jsonl``) and keeps the current instance in ``state.json``, so an
  agent that was down learns every exit it missed, and a supervisor that was killed
  re-attaches on start.

Everything it writes is private to its user, whatever the umask: directories 0700 (made or,
when they exist, tightened), files 0600. A container's ``spec.json`` holds its env, secrets
included, and its log whatever it printed (see :mod:`setpoint.meta.privatefiles`, whose rule this
follows with a few lines of its own).

Process identity is pid plus start time (field 22 of ``/proc/<pid>/stat``): a pid whose start
time does not match what was recorded is never signalled, because it is a recycled pid (or a
forged state file). Exits of our own children come from pidfds (``os.pidfd_open``) made
readable by the kernel and are reaped with their status. A restarted supervisor re-adopts the
instances whose pid and start time still match; they are no longer its children, so their exit
status cannot be read: such an exit (and one that happened while no supervisor ran) is
recorded as exit code 255 with reason ``Unknown``, which is what containerd's CRI plugin
reports when a container's exit status is lost (``unknownExitCode``). An *upgrade* loses
nothing: asked by an agent of a newer version, the supervisor ``execve``s the installed code
in its own process, so its containers stay its children and their exits are reaped exactly.
Kubelet's own "lost container" status (137, ``ContainerStatusUnknown``) is for a container
the runtime no longer knows at all, which is not the case here.

Why FIFOs rather than pipes: a container keeps its stdout/stderr open *read-write* on its FIFO,
so the FIFO always has a reader and a workload that writes while no supervisor runs is never
killed by SIGPIPE; its output waits in the FIFO (64 KiB) until the next supervisor opens the
FIFO again by path and drains it. Output still buffered when such a container exits is lost.

The daemon imports nothing but the standard library (asyncio, json, subprocess), because it
is one process per node whose memory counts against every node's footprint. It is also
single-threaded, and must stay so: a container's process joins its cgroups in a
``preexec_fn``, Python code run in a forked child, which is safe only without threads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

SOCKET_NAME = "supervisor.sock"
# What this supervisor's code is: an agent that finds a supervisor of another version asks it
# to upgrade, i.e. to execve the code now installed (see Server.upgrade).
VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
IMAGE_STARTED = time.time()  # changes with each execve, unlike the pid
LOCK_NAME = "supervisor.lock"
PID_NAME = "supervisor.pid"
LOG_NAME = "supervisor.log"
CONTAINERS = "containers"

UNKNOWN_EXIT_CODE = 255  # containerd CRI: unknownExitCode
START_ERROR_EXIT_CODE = 128  # containerd CRI: a process that could not be started
RESTART_POLICIES = ("Always", "OnFailure", "Never")
SUBSCRIBER_BACKLOG = 10_000  # a watcher further behind than this is cut off and must re-list
SIGKILL_WAIT = 10.0  # bound on waiting for a SIGKILLed process group leader to go away
# One read of a log FIFO: at most ~0.5 ms of work, however short its lines, so a flood
# delays the restarts queued behind it by no more (a FIFO holds 64 KiB).
LOG_READ_BYTES = 16384


# --------------------------------------------------------------------------- wire types


@dataclass(frozen=True)
class ContainerSpec:
    """What to run and how to keep it running; ``id`` is ``<pod-uid>/<container-name>``."""

    id: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    # stdout and stderr, CRI format, one file per instance: <log_dir>/<restart count>.log
    # (kubelet's layout); None: discarded
    log_dir: str | None = None
    max_log_bytes: int = 10 * 1024 * 1024  # kubelet containerLogMaxSize
    max_log_files: int = 5  # kubelet containerLogMaxFiles, the current file included
    max_log_rate: int = 0  # bytes of log a second, on average (see LogRate); 0: no limit
    restart_policy: str = "Always"
    initial_backoff: float = 0.0  # before the first restart; 0: immediately
    backoff_base: float = 1.0  # before the second, doubling for each further one
    backoff_max: float = 60.0
    reset_after: float = 600.0  # an instance that ran this long resets the backoff
    cgroup_parent: str | None = None  # relative to each hierarchy root; best effort
    netns: str | None = None  # the pod's network namespace (a file), joined before exec
    uid: int | None = None
    gid: int | None = None
    stdin: bool = False  # stdin is a FIFO that `kubectl attach` writes (see stdin_fifo)

    def __post_init__(self) -> None:
        if not self.id or not self.argv:
            raise ValueError("a container needs an id and a non-empty argv")
        if self.restart_policy not in RESTART_POLICIES:
            raise ValueError(f"restart_policy must be one of {', '.join(RESTART_POLICIES)}")
        if self.max_log_files < 1 or self.max_log_bytes < 1:
            raise ValueError("max_log_files and max_log_bytes must be positive")
        if self.max_log_rate < 0:
            raise ValueError("max_log_rate must not be negative")

    def backoff(self, failures: int) -> float:
        """Delay before restart number ``failures`` since the backoff was last reset."""
        if failures <= 1:
            return self.initial_backoff
        return min(self.backoff_base * 2 ** (failures - 2), self.backoff_max)

    def restarts_after(self, exit_code: int) -> bool:
        if self.restart_policy == "Always":
            return True
        return self.restart_policy == "OnFailure" and exit_code != 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        if "log_path" in data:  # written by an older supervisor: one file, <dir>/0.log
            data = dict(data)
            path = data.pop("log_path")
            data["log_dir"] = str(Path(path).parent) if path else None
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ContainerSpec fields: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class ExitRecord:
    """One finished instance of a container, as appended to ``exits.jsonl``.

    ``exit_code`` is the process's status, or 128 + the signal that killed it (as containerd
    reports it); ``reason`` is ``Completed``, ``Error``, ``OOMKilled``, ``StartError`` or
    ``Unknown`` (exit code 255, the instance ended while it was not our child)."""

    exit_code: int
    signal: int | None
    reason: str
    pid: int | None
    pid_start_time: int | None
    started_at: float | None  # epoch seconds
    finished_at: float  # epoch seconds; for ``Unknown`` when the exit was noticed
    restart_count: int
    message: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExitRecord:
        return cls(**data)


@dataclass(frozen=True)
class ContainerState:
    """A container as the supervisor sees it now.

    ``state`` is ``running`` (``pid``/``pid_start_time``/``started_at`` describe the current
    instance), ``waiting`` (in restart backoff until ``next_start_at``, a wait of
    ``backoff`` seconds; reason ``CrashLoopBackOff``) or ``exited`` (stopped, or not
    restarted by its policy).
    ``last_exit`` is the newest exit record and ``previous_exit`` the one before it: an
    exited container that ran more than once reports the last instance as its state and
    the one before as its last state, as the kubelet does from the runtime's two newest
    containers."""

    id: str
    state: str
    pid: int | None
    pid_start_time: int | None
    restart_count: int
    started_at: float | None
    last_exit: ExitRecord | None
    reason: str = ""
    message: str = ""
    next_start_at: float | None = None
    previous_exit: ExitRecord | None = None
    backoff: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerState:
        exits = {
            key: ExitRecord.from_dict(data[key]) if data.get(key) else None
            for key in ("last_exit", "previous_exit")
        }
        return cls(**{**data, **exits})


# --------------------------------------------------------------------------- process identity


def proc_start_time(pid: int) -> int | None:
    """The start time of live process ``pid`` in clock ticks since boot; None if it is gone
    (or a zombie, which is as good as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # fields[0] is field 3 (state)
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_same_process(pid: int | None, start_time: int | None) -> bool:
    return pid is not None and start_time is not None and proc_start_time(pid) == start_time


def signal_group(pid: int, start_time: int | None, signum: int) -> bool:
    """Signal the process group led by ``pid``, only if ``pid`` is still the process we
    started (its start time matches): a recycled pid is never signalled."""
    return _signal(os.killpg, pid, start_time, signum)


def signal_process(pid: int, start_time: int | None, signum: int) -> bool:
    """Signal process ``pid`` alone, only if it is still the process we started."""
    return _signal(os.kill, pid, start_time, signum)


def _signal(send: Callable[[int, int], None], pid: int, start_time: int | None, sig: int) -> bool:
    if not is_same_process(pid, start_time):
        return False
    try:
        send(pid, sig)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- durable files


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) mode 0700, or tighten it to 0700 if it exists:
    ``mkdir``'s mode passes through the umask. ``setpoint.meta.privatefiles`` has the agent's
    twin; this module keeps to the standard library."""
    missing = []
    parent = path
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(0o700)
        os.chmod(directory, 0o700)
    os.chmod(path, 0o700)


def open_private(path: Path | str, flags: int) -> int:
    """Open (creating) a file mode 0600, tightening one that existed with a looser mode."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` whole (write a temp file, rename it over), without fsync.

    A container's spec and state must survive the supervisor's own crash or upgrade, which
    the page cache guarantees; they need not survive the machine's, since no workload does
    either (recovery skips what it cannot read and never trusts a pid whose start time
    differs). Leaving fsync out keeps a container start at ~0.3 ms instead of four disk
    flushes, which under the API server's own fsyncs took ~14 ms each start. Exit records,
    the one thing a restart count is rebuilt from, are still flushed
    (:func:`append_json_line`)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def append_json_line(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, json.dumps(data).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def last_json_lines(path: Path, count: int) -> list[dict[str, Any]]:
    """The last ``count`` readable JSON lines of ``path``, oldest first (a torn last line,
    from a crash mid-append, is skipped)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    values: list[dict[str, Any]] = []
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            values.insert(0, json.loads(line))
            if len(values) == count:
                break
    return values


# --------------------------------------------------------------------------- logs


def cri_timestamp(ns: int) -> bytes:
    seconds, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z").encode()


class LogFile:
    """A size-rotated CRI log: ``path`` is current, ``path.1`` the newest rotated file, and at
    most ``max_files`` files exist in all (kubelet compresses rotated files; we do not)."""

    def __init__(self, path: Path, *, max_bytes: int, max_files: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        private_dir(path.parent)
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size

    def _open(self) -> int:
        return open_private(self.path, os.O_WRONLY | os.O_APPEND)

    def write(self, entries: bytes) -> None:
        """Append whole CRI entries (lines), rotating first where the next entry would not
        fit; an entry larger than ``max_bytes`` fills a file of its own."""
        start, end = 0, len(entries)
        while start < end and end - start > self.max_bytes - self.size:
            cut = entries.rfind(b"\n", start, start + max(0, self.max_bytes - self.size)) + 1
            if cut <= start and self.size == 0:
                cut = entries.index(b"\n", start) + 1
            if cut > start:
                self._write(entries, start, cut)
                start = cut
            if start < end:
                self._rotate()
        self._write(entries, start, end)

    def _write(self, entries: bytes, start: int, end: int) -> None:
        view = memoryview(entries)
        while start < end:  # a regular file takes it all at once, unless the disk is full
            written = os.write(self.fd, view[start:end])
            self.size += written
            start += written

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for n in range(self.max_files - 1, 1, -1):
                older = self.path.with_name(f"{self.path.name}.{n - 1}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{n}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self.fd = self._open()
        self.size = 0

    def close(self) -> None:
        os.close(self.fd)


class LogRate:
    """A container's log budget, shared by its stdout and stderr pumps: on average ``rate``
    bytes of log a second (CRI entries as written, timestamps included), up to a second's
    worth at once (a token bucket).

    A pump that has spent it stops reading its FIFO until the budget has refilled. The
    container's writes then block on the full FIFO, as they would on a slow terminal: no
    line is dropped, the writer is slowed down. Kubernetes sets no such limit (a container
    runtime's log copy goes as fast as it can); without one, a single container writing
    flat out keeps the supervisor busy on a whole core and delays every other container's
    restart behind its output."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.stamp: float | None = None

    def spend(self, n: int, now: float) -> float:
        """Take ``n`` bytes at monotonic time ``now``; the seconds to wait before reading on
        (0: at once)."""
        if self.stamp is not None:
            self.tokens = min(float(self.rate), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


STDIN_FIFO = "stdin.fifo"


def stdin_fifo(state_dir: Path, container_id: str) -> Path:
    """The FIFO a container with ``stdin`` reads as its stdin; a writer (the agent, for
    ``kubectl attach -i``) opens it by path while the container runs."""
    return state_dir / CONTAINERS / quote(container_id, safe="") / STDIN_FIFO


def open_stdin_fifo(fifo: Path) -> int:
    """A new instance's stdin: the FIFO opened read-write, so the container keeps a writer
    itself and never reads EOF between two attach sessions (Kubernetes' ``stdin`` without
    ``stdinOnce``), and a writer can always open it."""
    if not fifo.exists():
        os.mkfifo(fifo, 0o600)
    return os.open(fifo, os.O_RDWR)


class StreamPump:
    """Reads one FIFO (a container's stdout or stderr) and writes CRI lines to a LogFile.

    Each read (up to ``LOG_READ_BYTES``) becomes CRI entries sharing one timestamp, built
    with a few bytes operations rather than line by line in Python, and written with one
    ``write``: a flood of one-character lines costs ~2.5 ms of supervisor time per MiB of
    log, a quarter of what per-line formatting cost (``bench/logflood.py``)."""

    def __init__(
        self, fifo: Path, stream: bytes, log: LogFile | None, rate: LogRate | None = None
    ) -> None:
        self.stream = stream
        self.log = log
        self.rate = rate
        self.watching = False
        self.resume: asyncio.TimerHandle | None = None  # set while the log budget refills
        if not fifo.exists():
            os.mkfifo(fifo, 0o600)
        # Our end only reads, so the FIFO reaches EOF once every instance writing it is gone.
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.fifo = fifo

    def child_end(self) -> int:
        """A read-write descriptor for a new instance's stdout/stderr (see module docstring)."""
        return os.open(self.fifo, os.O_RDWR)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.watching and self.resume is None:
            loop.add_reader(self.fd, self.on_readable, loop)
            self.watching = True

    def on_readable(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            data = os.read(self.fd, LOG_READ_BYTES)
        except BlockingIOError:
            return
        if not data:  # no writer left: stop watching (a FIFO would report EOF forever)
            self._unwatch(loop)
            return
        written = self._emit(data)
        pause = self.rate.spend(written, loop.time()) if self.rate is not None else 0.0
        if pause > 0 and self.resume is None:
            self._unwatch(loop)
            self.resume = loop.call_later(pause, self._resume, loop)

    def _resume(self, loop: asyncio.AbstractEventLoop) -> None:
        self.resume = None
        self.watch(loop)

    def _unwatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.watching:
            loop.remove_reader(self.fd)
            self.watching = False

    def _emit(self, data: bytes) -> int:
        """Log ``data`` as CRI entries; returns the bytes written. Like conmon, a read that
        does not end a line is logged at once as a P(artial) entry, so a prompt without
        newline is not held back until the next one."""
        if self.log is None:
            return 0
        prefix = b"%s %s " % (cri_timestamp(time.time_ns()), self.stream)
        complete, newline, rest = data.rpartition(b"\n")
        entries = b""
        if newline:
            head = prefix + b"F "
            entries = head + complete.replace(b"\n", b"\n" + head) + b"\n"
        if rest:
            entries += prefix + b"P " + rest + b"\n"
        self.log.write(entries)
        return len(entries)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        self._unwatch(loop)
        if self.resume is not None:
            self.resume.cancel()
            self.resume = None
        os.close(self.fd)


# --------------------------------------------------------------------------- cgroups


def cgroup_path(parent: str, container_id: str | None = None) -> Path:
    """A pod's (``container_id`` None) or a container's cgroup, relative to a hierarchy's
    root; the agent writes limits where the supervisor places the process (both use this)."""
    rel = Path(parent.strip("/"))
    return rel if container_id is None else rel / quote(container_id, safe="")


CGROUP_ROOT = Path("/sys/fs/cgroup")
# the v1 hierarchies a container joins: its limits' (memory, cpu, pids) and the freezer,
# which stops it whole (see kill_cgroup)
V1_HIERARCHIES = ("memory", "cpu", "pids", "freezer")
FREEZE_WAIT = 1.0  # bound on waiting for a cgroup to report itself frozen
KILL_ROUNDS = 20  # without a freezer: kill what the cgroup lists until it lists nothing new


def cgroup_dirs(parent: str, container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """The container's cgroup directory in each hierarchy it joins: the one unified
    hierarchy (v2), or each v1 hierarchy of ``V1_HIERARCHIES`` that is mounted."""
    leaf = cgroup_path(parent, container_id)
    if (root / "cgroup.controllers").exists():
        return [root / leaf]
    return [root / h / leaf for h in V1_HIERARCHIES if (root / h / "cgroup.procs").exists()]


def make_cgroups(dirs: list[Path]) -> tuple[list[Path], str]:
    """Create the container's cgroups (the agent made those holding its limits already);
    returns those that exist and, in words, what could not be made."""
    made, problems = [], []
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            made.append(d)
        except OSError as exc:
            problems.append(f"{d}: {exc.strerror}")
    return made, "; ".join(problems)


CLONE_NEWNET = 0x40000000  # <sched.h>
_setns: Callable[[int, int], int] | None = None


def libc_setns() -> Callable[[int, int], int]:
    """libc's ``setns`` (``os.setns`` is Python 3.12's), loaded once, in the parent: a
    forked child must not load libraries."""
    global _setns
    if _setns is None:
        import ctypes  # only supervisors of pods with a network namespace pay for it

        _setns = ctypes.CDLL(None, use_errno=True).setns
    return _setns


def enter_sandbox(
    procs_files: list[str], netns_fd: int | None, uid: int | None, gid: int | None
) -> Callable[[], None]:
    """The ``preexec_fn`` that puts a new container process in its cgroups and its pod's
    network namespace between fork and exec, so that nothing it runs or forks is ever
    outside them (moving it in after ``Popen`` returned left a window in which its first
    children escaped). Running Python in a forked child is safe only because the supervisor
    is single-threaded. The user and group are switched here too, after joining: a process
    that is no longer root could not write ``cgroup.procs`` nor call ``setns``."""
    setns = libc_setns() if netns_fd is not None else None

    def child() -> None:
        pid = str(os.getpid()).encode()
        for procs in procs_files:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if setns is not None and netns_fd is not None and setns(netns_fd, CLONE_NEWNET) != 0:
            raise OSError("setns into the pod's network namespace failed")
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)

    return child


def cgroup_pids(d: Path) -> list[int]:
    """The processes in cgroup ``d`` (none if it is gone)."""
    try:
        return [int(line) for line in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _freeze(d: Path, frozen: bool) -> bool:
    """Freeze (or thaw) cgroup ``d`` with the v2 ``cgroup.freeze`` or the v1 freezer; on
    freezing, wait (bounded) until every task is frozen, so none can fork any more. False if
    ``d`` has no freezer."""
    if (d / "cgroup.freeze").exists():  # v2
        control, value, done = d / "cgroup.freeze", "1" if frozen else "0", "frozen 1"
        state = d / "cgroup.events"
    elif (d / "freezer.state").exists():  # v1
        control, value, done = d / "freezer.state", "FROZEN" if frozen else "THAWED", "FROZEN"
        state = control
    else:
        return False
    try:
        control.write_text(value)
        deadline = time.monotonic() + FREEZE_WAIT
        while frozen and done not in state.read_text() and time.monotonic() < deadline:
            time.sleep(0.001)
    except OSError:
        return False
    return True


def kill_cgroup(dirs: list[Path]) -> None:
    """SIGKILL every process in a container's cgroup, whatever session or process group it
    made for itself: v2 ``cgroup.kill`` (Linux 5.14+); else freeze the cgroup, kill each task
    it lists, thaw (so the kills land and nothing forks in between); without a freezer,
    kill what it lists until it lists nothing alive. Returns at once: the tasks die right
    after (see :func:`cgroup_empty`)."""
    for d in dirs:
        with contextlib.suppress(OSError):
            if (d / "cgroup.kill").exists():
                (d / "cgroup.kill").write_text("1")
                return
    existing = [d for d in dirs if d.is_dir()]
    if not existing or not cgroup_pids(existing[0]):
        return  # nothing left, and an empty cgroup cannot fork: nothing to freeze
    frozen = next((d for d in existing if _freeze(d, True)), None)
    try:
        for _ in range(1 if frozen else KILL_ROUNDS):
            pids = cgroup_pids(frozen or existing[0])
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if not pids:
                break
    finally:
        if frozen is not None:
            _freeze(frozen, False)


def cgroup_empty(dirs: list[Path]) -> bool:
    return not any(cgroup_pids(d) for d in dirs)


def oom_kills(dirs: list[Path]) -> int:
    """OOM kills counted in a container's memory cgroup (v1 or v2); 0 if unknown."""
    for d in dirs:
        for name in ("memory.events", "memory.oom_control"):
            with contextlib.suppress(OSError, ValueError):
                for line in (d / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
    return 0


# --------------------------------------------------------------------------- containers


class Container:
    """One container: its spec, current instance, restart bookkeeping and log pumps."""

    def __init__(self, spec: ContainerSpec, directory: Path) -> None:
        self.spec = spec
        self.dir = directory
        # a container is its cgroup (none: the agent placed it in none, e.g. not root)
        self.cgroups = cgroup_dirs(spec.cgroup_parent, spec.id) if spec.cgroup_parent else []
        self.restart_count = 0
        self.failures = 0  # exits since the backoff was last reset
        self.wanted = True  # False once stopped: never restarted again
        self.pid: int | None = None
        self.pid_start_time: int | None = None
        self.started_at: float | None = None
        self.popen: subprocess.Popen[bytes] | None = None  # None for a re-adopted instance
        self.pidfd: int | None = None
        self.oom_baseline = 0
        self.last_exit: ExitRecord | None = None
        self.previous_exit: ExitRecord | None = None  # the exit before last_exit
        self.next_start_at: float | None = None
        self.backoff: float | None = None  # the restart delay being waited
        self.restart_timer: asyncio.TimerHandle | None = None
        self.message = ""
        self.exit_waiters: list[asyncio.Future[None]] = []
        self.log: LogFile | None = None  # the current instance's; see open_log()
        rate = LogRate(spec.max_log_rate) if spec.max_log_rate else None
        self.pumps = [
            StreamPump(directory / "stdout.fifo", b"stdout", None, rate),
            StreamPump(directory / "stderr.fifo", b"stderr", None, rate),
        ]

    def open_log(self) -> None:
        """Point the pumps at the log of the instance numbered ``restart_count``
        (``<log_dir>/<n>.log``, kubelet's layout), keeping only this instance's and the
        previous one's files, which is what ``kubectl logs [--previous]`` can ask for."""
        if self.spec.log_dir is None:
            return
        log_dir = Path(self.spec.log_dir)
        path = log_dir / f"{self.restart_count}.log"
        if self.log is not None and self.log.path == path:
            return
        if self.log is not None:
            self.log.close()
        spec = self.spec
        self.log = LogFile(path, max_bytes=spec.max_log_bytes, max_files=spec.max_log_files)
        for pump in self.pumps:
            pump.log = self.log
        for old in log_dir.glob("*.log*"):
            instance = old.name.partition(".")[0]
            if instance.isdigit() and int(instance) < self.restart_count - 1:
                with contextlib.suppress(OSError):
                    old.unlink()

    def state(self) -> ContainerState:
        if self.pid is not None:
            state, reason = "running", ""
        elif self.restart_timer is not None:
            state, reason = "waiting", "CrashLoopBackOff"
        else:
            state, reason = "exited", self.last_exit.reason if self.last_exit else ""
        return ContainerState(
            id=self.spec.id,
            state=state,
            pid=self.pid,
            pid_start_time=self.pid_start_time,
            restart_count=self.restart_count,
            started_at=self.started_at,
            last_exit=self.last_exit,
            reason=reason,
            message=self.message,
            next_start_at=self.next_start_at if state == "waiting" else None,
            previous_exit=self.previous_exit,
            backoff=self.backoff if state == "waiting" else None,
        )

    def save(self) -> None:
        write_json_atomic(
            self.dir / "state.json",
            {
                "pid": self.pid,
                "pid_start_time": self.pid_start_time,
                "started_at": self.started_at,
                "restart_count": self.restart_count,
                "failures": self.failures,
                "wanted": self.wanted,
                "waiting": self.restart_timer is not None,
            },
        )

    def record_exit(self, record: ExitRecord) -> None:
        append_json_line(self.dir / "exits.jsonl", dataclasses.asdict(record))
        self.previous_exit, self.last_exit = self.last_exit, record


class Supervisor:
    """All containers of one node, their restarts, and the subscribers to their changes."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / CONTAINERS
        private_dir(self.root)
        self.containers: dict[str, Container] = {}
        self.subscribers: set[asyncio.Queue[ContainerState | None]] = set()
        self.loop = asyncio.get_running_loop()

    # ---- recovery

    def recover(self) -> None:
        """Re-read every container from the state dir: re-adopt live instances, record the
        exits of dead ones, and resume restarts and backoffs."""
        for directory in sorted(self.root.iterdir()):
            try:
                private_dir(directory)  # one made by an older supervisor may be 0755
                spec = ContainerSpec.from_dict(json.loads((directory / "spec.json").read_text()))
                saved: dict[str, Any] = json.loads((directory / "state.json").read_text())
            except (OSError, ValueError, TypeError) as exc:
                print(f"skipping {directory.name}: {exc}", file=sys.stderr, flush=True)
                continue
            c = Container(spec, directory)
            self.containers[spec.id] = c
            c.restart_count = int(saved.get("restart_count", 0))
            c.failures = int(saved.get("failures", 0))
            c.wanted = bool(saved.get("wanted", True))
            exits = [ExitRecord.from_dict(e) for e in last_json_lines(directory / "exits.jsonl", 2)]
            c.last_exit = exits[-1] if exits else None
            c.previous_exit = exits[-2] if len(exits) == 2 else None
            pid, start_time = saved.get("pid"), saved.get("pid_start_time")
            if pid is not None and start_time is not None and is_same_process(pid, start_time):
                self._adopt(c, pid, start_time, saved.get("started_at"))
                continue
            if pid is not None and not (
                c.last_exit and (c.last_exit.pid, c.last_exit.pid_start_time) == (pid, start_time)
            ):
                c.pid, c.pid_start_time, c.started_at = pid, start_time, saved.get("started_at")
                self._finish(c, self._unknown_exit(c, "ended while no supervisor was running"))
            elif c.wanted and saved.get("waiting"):
                self._schedule_restart(c, 0.0)
            elif c.wanted and pid is not None and c.last_exit:
                self._after_exit(c, c.last_exit)  # died after its exit was recorded
            else:
                c.save()

    def _adopt(self, c: Container, pid: int, start_time: int, started_at: float | None) -> None:
        c.pid, c.pid_start_time, c.started_at = pid, start_time, started_at
        try:
            c.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._finish(c, self._unknown_exit(c, "ended while being re-adopted"))
            return
        self.loop.add_reader(c.pidfd, self._on_exit, c)
        c.open_log()
        for pump in c.pumps:
            pump.watch(self.loop)
        # If it died (and its pid was recycled) between the start-time check and pidfd_open,
        # the pidfd may be someone else's: a second matching check rules that out.
        if not is_same_process(pid, start_time):
            self._on_exit(c)

    def _unknown_exit(self, c: Container, message: str) -> ExitRecord:
        return ExitRecord(
            exit_code=UNKNOWN_EXIT_CODE,
            signal=None,
            reason="Unknown",
            pid=c.pid,
            pid_start_time=c.pid_start_time,
            started_at=c.started_at,
            finished_at=time.time(),
            restart_count=c.restart_count,
            message=message,
        )

    # ---- lifecycle

    def start(self, spec: ContainerSpec) -> ContainerState:
        if spec.id in self.containers:
            raise ValueError(f"container {spec.id!r} already exists; remove it first")
        directory = self.root / quote(spec.id, safe="")
        private_dir(directory)
        write_json_atomic(directory / "spec.json", spec.to_dict())
        c = Container(spec, directory)
        self.containers[spec.id] = c
        self._spawn(c)
        return c.state()

    def _spawn(self, c: Container) -> None:
        c.restart_timer = None
        c.next_start_at = None
        spec = c.spec
        c.open_log()
        cgroups, problems = make_cgroups(c.cgroups)
        # read before the process runs: an OOM kill right at its start still counts
        c.oom_baseline = oom_kills(cgroups)
        preexec = None
        netns_fd: int | None = None
        started_at = time.time()
        if spec.netns:
            try:
                netns_fd = os.open(spec.netns, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                self._start_failed(c, started_at, f"the pod's network namespace: {exc}")
                return
        if cgroups or netns_fd is not None:
            procs = [str(d / "cgroup.procs") for d in cgroups]
            preexec = enter_sandbox(procs, netns_fd, spec.uid, spec.gid)
        ends = [pump.child_end() for pump in c.pumps]
        if spec.stdin:
            ends.append(open_stdin_fifo(c.dir / STDIN_FIFO))
        try:
            popen = subprocess.Popen(
                spec.argv,
                env=spec.env,
                cwd=spec.cwd,
                stdin=ends[2] if spec.stdin else subprocess.DEVNULL,
                stdout=ends[0],
                stderr=ends[1],
                start_new_session=True,
                preexec_fn=preexec,
                user=None if preexec else spec.uid,
                group=None if preexec else spec.gid,
                extra_groups=[] if spec.gid is not None and not preexec else None,
            )
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            message = str(exc)
            if preexec is not None and type(exc) is subprocess.SubprocessError:
                joined = ", ".join(str(d) for d in cgroups)
                message = (
                    f"could not enter the container's cgroups ({joined}), network namespace or user"
                )
            self._start_failed(c, started_at, message)
            return
        finally:
            for fd in ends:
                os.close(fd)
            if netns_fd is not None:
                os.close(netns_fd)
        c.popen = popen
        c.pid = popen.pid
        c.pid_start_time = proc_start_time(popen.pid)
        c.started_at = started_at
        c.pidfd = os.pidfd_open(popen.pid)
        self.loop.add_reader(c.pidfd, self._on_exit, c)
        for pump in c.pumps:
            pump.watch(self.loop)
        c.message = problems
        c.save()
        self._publish(c)

    def _start_failed(self, c: Container, started_at: float, message: str) -> None:
        c.message = message
        record = ExitRecord(
            exit_code=START_ERROR_EXIT_CODE,
            signal=None,
            reason="StartError",
            pid=None,
            pid_start_time=None,
            started_at=started_at,
            finished_at=time.time(),
            restart_count=c.restart_count,
            message=message,
        )
        c.record_exit(record)
        self._after_exit(c, record)

    def _on_exit(self, c: Container) -> None:
        assert c.pidfd is not None
        self.loop.remove_reader(c.pidfd)
        os.close(c.pidfd)
        c.pidfd = None
        for pump in c.pumps:  # the instance's last words, before its exit is published
            pump.on_readable(self.loop)
        assert c.pid is not None
        if c.popen is None:
            status = self._reap_adopted(c)
            if status is None:
                self._finish(c, self._unknown_exit(c, "exit status lost: re-adopted instance"))
                return
        else:
            # The leader is a zombie until reaped, so its pid (= the group id) cannot be
            # recycled: killing what is left of its group is safe here, and only here.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.pid, signal.SIGKILL)
            status = c.popen.wait()
            c.popen = None
        signum = -status if status < 0 else None
        code = 128 + signum if signum is not None else status
        if c.cgroups and oom_kills(c.cgroups) > c.oom_baseline:
            # containerd's rule: the kernel OOM-killed a process of the container (its main
            # process, or any other: the container is its cgroup) while this instance ran
            reason = "OOMKilled"
        elif code == 0:
            reason = "Completed"
        else:
            reason = "Error"
        record = ExitRecord(
            exit_code=code,
            signal=signum,
            reason=reason,
            pid=c.pid,
            pid_start_time=c.pid_start_time,
            started_at=c.started_at,
            finished_at=time.time(),
            restart_count=c.restart_count,
        )
        self._finish(c, record)

    def _reap_adopted(self, c: Container) -> int | None:
        """The status (as ``Popen.returncode``) of a re-adopted instance that exited, if it
        is still our child — true across our own ``execve`` (an upgrade), not after a crash
        (then init inherited it and its status is lost: None)."""
        assert c.pid is not None
        try:  # look without reaping, so the pid stays ours while we kill its group
            if os.waitid(os.P_PID, c.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return None
        except ChildProcessError:
            return None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(c.pid, signal.SIGKILL)
        _, status = os.waitpid(c.pid, 0)
        return os.waitstatus_to_exitcode(status)

    def _finish(self, c: Container, record: ExitRecord) -> None:
        c.record_exit(record)  # durable before anything else happens
        # The instance is over, and a container is its cgroup: what its main process left
        # behind (a setsid daemon, children of a re-adopted instance whose group we could
        # not signal) goes with it, before a next instance starts in the same cgroup.
        kill_cgroup(c.cgroups)
        c.pid = c.pid_start_time = None
        waiters, c.exit_waiters = c.exit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._after_exit(c, record)

    def _after_exit(self, c: Container, record: ExitRecord) -> None:
        c.pid = c.pid_start_time = None
        if not (c.wanted and c.spec.restarts_after(record.exit_code)):
            c.save()
            self._publish(c)
            return
        ran = (record.finished_at - record.started_at) if record.started_at else 0.0
        if ran >= c.spec.reset_after:
            c.failures = 0
        c.failures += 1
        delay = c.spec.backoff(c.failures)
        if delay <= 0 and record.reason != "StartError":  # a failed spawn never recurses
            self._restart(c)
        else:
            self._schedule_restart(c, delay)

    def _schedule_restart(self, c: Container, delay: float) -> None:
        c.backoff = delay
        c.next_start_at = time.time() + delay
        c.restart_timer = self.loop.call_later(delay, self._restart, c)
        c.save()
        self._publish(c)

    def _restart(self, c: Container) -> None:
        c.restart_count += 1
        self._spawn(c)

    async def stop(self, container_id: str, grace_seconds: float) -> ContainerState:
        """SIGTERM the container's main process, as a runtime does; after the grace period
        SIGKILL the whole container (:meth:`_kill_all`)."""
        c = self._get(container_id)
        c.wanted = False
        if c.restart_timer is not None:
            c.restart_timer.cancel()
            c.restart_timer = None
        c.save()
        if c.pid is None:
            self._publish(c)
            return c.state()
        if grace_seconds > 0 and signal_process(c.pid, c.pid_start_time, signal.SIGTERM):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited(c), grace_seconds)
        if c.pid is not None and self._kill_all(c):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited(c), SIGKILL_WAIT)
        if c.pid is not None and not is_same_process(c.pid, c.pid_start_time):
            # Not ours any more (recycled) or gone without a pidfd telling us.
            self._drop_pidfd(c)
            self._finish(c, self._unknown_exit(c, "gone when stopped"))
        return c.state()

    async def kill_instance(
        self, container_id: str, grace_seconds: float, *, restart_count: int | None = None
    ) -> ContainerState:
        """Kill the current instance (SIGTERM to its main process, SIGKILL to all of it
        after the grace period) but, unlike :meth:`stop`, keep the container wanted: its
        restart policy decides what follows, as after a crash (a failed liveness probe).
        ``restart_count`` names the instance meant; a newer one is left alone."""
        c = self._get(container_id)
        if c.pid is None or restart_count not in (None, c.restart_count):
            return c.state()
        pid, start_time = c.pid, c.pid_start_time
        if grace_seconds > 0 and signal_process(pid, start_time, signal.SIGTERM):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited(c), grace_seconds)
        # an immediate restart may already run a new instance: only the old one is killed
        if (c.pid, c.pid_start_time) == (pid, start_time) and self._kill_all(c):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited(c), SIGKILL_WAIT)
        return c.state()

    def _kill_all(self, c: Container) -> bool:
        """SIGKILL the current instance whole: every process in the container's cgroup,
        whatever session it started, and the main process's group (all that a container
        without a cgroup has). True if its main process was still ours to wait for."""
        assert c.pid is not None
        ours = is_same_process(c.pid, c.pid_start_time)
        kill_cgroup(c.cgroups)
        return signal_group(c.pid, c.pid_start_time, signal.SIGKILL) or ours

    def _exited(self, c: Container) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self.loop.create_future()
        c.exit_waiters.append(waiter)
        return waiter

    def _drop_pidfd(self, c: Container) -> None:
        if c.pidfd is not None:
            self.loop.remove_reader(c.pidfd)
            os.close(c.pidfd)
            c.pidfd = None

    async def remove(self, container_id: str) -> None:
        """Remove a container (killing it first if it still runs, like CRI), with its state."""
        c = self._get(container_id)
        if c.pid is not None or c.restart_timer is not None:
            await self.stop(container_id, 0)
        self._drop_pidfd(c)
        for pump in c.pumps:
            pump.close(self.loop)
        if c.log is not None:
            c.log.close()
        files = ("spec.json", "state.json", "exits.jsonl", "stdout.fifo", "stderr.fifo")
        for name in (*files, STDIN_FIFO):
            with contextlib.suppress(FileNotFoundError):
                (c.dir / name).unlink()
        with contextlib.suppress(OSError):
            c.dir.rmdir()
        # the killed processes leave the cgroup as they die; only then can it go
        deadline = self.loop.time() + SIGKILL_WAIT
        while not cgroup_empty(c.cgroups) and self.loop.time() < deadline:
            await asyncio.sleep(0.005)
        for d in c.cgroups:
            with contextlib.suppress(OSError):
                d.rmdir()
        self.containers.pop(container_id, None)  # (a concurrent remove may have done it)

    def _get(self, container_id: str) -> Container:
        try:
            return self.containers[container_id]
        except KeyError:
            raise LookupError(f"no container {container_id!r}") from None

    def list(self) -> list[ContainerState]:
        return [c.state() for c in self.containers.values()]

    # ---- change stream

    def subscribe(self) -> asyncio.Queue[ContainerState | None]:
        queue: asyncio.Queue[ContainerState | None] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        for state in self.list():
            queue.put_nowait(state)
        self.subscribers.add(queue)
        return queue

    def _publish(self, c: Container) -> None:
        state = c.state()
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(state)
            except asyncio.QueueFull:  # too slow: cut it off; None tells it to go away
                self.subscribers.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)

    def close(self) -> None:
        """Let go of everything without touching the containers (they outlive us)."""
        for c in self.containers.values():
            if c.restart_timer is not None:
                c.restart_timer.cancel()
            self._drop_pidfd(c)
            for pump in c.pumps:
                pump.close(self.loop)


# --------------------------------------------------------------------------- protocol


class Server:
    """The Unix socket: one JSON request per line, answered by id, in any order.

    Requests: ``{"id": n, "op": "start", "spec": {...}}``, ``{"op": "stop", "container":
    id, "grace_seconds": s}``, ``{"op": "kill", "container": id, "grace_seconds": s,
    "restart_count": n}``, ``{"op": "remove", "container": id}``, ``{"op": "list"}``,
    ``{"op": "info"}`` (pid, container count, code version), ``{"op": "upgrade"}`` (answer,
    then re-exec the installed code: see :func:`upgrade`), and ``{"op": "watch"}``, after
    whose answer the connection carries only ``{"event": state}`` lines: the current state of
    every container, then each change.
    Answers: ``{"id": n, "ok": true, "result": ...}`` or ``{"id": n, "ok": false, "error":
    "..."}``."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.connections: set[asyncio.Task[None]] = set()
        self.upgrade_requested = False
        self.stopping = asyncio.Event()  # serve() returns (to exit, or to upgrade) once set

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        requests: set[asyncio.Task[None]] = set()
        lock = asyncio.Lock()

        async def send(message: dict[str, Any]) -> None:
            async with lock:
                writer.write(json.dumps(message).encode() + b"\n")
                await writer.drain()

        try:
            while line := await reader.readline():
                request = json.loads(line)
                if request.get("op") == "watch":
                    await send({"id": request.get("id"), "ok": True, "result": None})
                    await self.watch_until_hangup(reader, send)
                    return
                requests.add(asyncio.create_task(self.answer(request, send)))
                requests = {t for t in requests if not t.done()}
        except (ConnectionError, ValueError):
            pass
        finally:
            for t in requests:
                t.cancel()
            self.connections.discard(task)
            writer.close()

    async def answer(self, request: dict[str, Any], send: Callable[..., Any]) -> None:
        try:
            result = await self.dispatch(request)
        except (LookupError, ValueError, TypeError, OSError) as exc:
            await send({"id": request.get("id"), "ok": False, "error": str(exc)})
        else:
            await send({"id": request.get("id"), "ok": True, "result": result})
        if self.upgrade_requested:
            self.stopping.set()  # the answer is out: now re-exec (see serve)

    async def dispatch(self, request: dict[str, Any]) -> Any:
        sup = self.supervisor
        op = request.get("op")
        if op == "start":
            return sup.start(ContainerSpec.from_dict(request["spec"])).to_dict()
        if op == "stop":
            state = await sup.stop(request["container"], float(request["grace_seconds"]))
            return state.to_dict()
        if op == "kill":
            state = await sup.kill_instance(
                request["container"],
                float(request["grace_seconds"]),
                restart_count=request.get("restart_count"),
            )
            return state.to_dict()
        if op == "remove":
            await sup.remove(request["container"])
            return None
        if op == "list":
            return [s.to_dict() for s in sup.list()]
        if op == "info":
            return {
                "pid": os.getpid(),
                "containers": len(sup.containers),
                "version": VERSION,
                "image_started": IMAGE_STARTED,
            }
        if op == "upgrade":
            self.upgrade_requested = True
            return {"pid": os.getpid(), "version": VERSION, "image_started": IMAGE_STARTED}
        raise ValueError(f"unknown op {op!r}")

    async def watch_until_hangup(
        self, reader: asyncio.StreamReader, send: Callable[..., Any]
    ) -> None:
        watcher = asyncio.create_task(self.watch(send))
        hangup = asyncio.create_task(reader.read())
        try:
            await asyncio.wait((watcher, hangup), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            hangup.cancel()
            await asyncio.gather(watcher, hangup, return_exceptions=True)

    async def watch(self, send: Callable[..., Any]) -> None:
        queue = self.supervisor.subscribe()
        try:
            while (state := await queue.get()) is not None:
                await send({"event": state.to_dict()})
        finally:
            self.supervisor.subscribers.discard(queue)


# --------------------------------------------------------------------------- daemon


IDLE_EXIT_SECONDS = 300.0


async def _exit_when_idle(
    supervisor: Supervisor, server: Server, stopping: asyncio.Event, idle_seconds: float
) -> None:
    """A supervisor that owns no containers and has had no client for ``idle_seconds`` has
    nothing to guard: it goes (the next agent start spawns one again)."""
    loop = asyncio.get_running_loop()
    idle_since: float | None = None
    while not stopping.is_set():
        await asyncio.sleep(min(10.0, idle_seconds))
        if supervisor.containers or server.connections:
            idle_since = None
        elif idle_since is None:
            idle_since = loop.time()
        elif loop.time() - idle_since >= idle_seconds:
            stopping.set()


async def serve(
    state_dir: Path, ready: Callable[[], None], *, idle_exit_seconds: float = IDLE_EXIT_SECONDS
) -> bool:
    """Serve until SIGTERM/SIGINT, idleness or an upgrade request; True for an upgrade."""
    supervisor = Supervisor(state_dir)
    supervisor.recover()
    server = Server(supervisor)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SOCKET_NAME)
    old_umask = os.umask(0o177)  # the socket is born 0600: no window with looser rights
    try:
        # Relative to the state dir (our cwd): Unix socket paths are limited to 108 bytes.
        listener = await asyncio.start_unix_server(server.handle, path=SOCKET_NAME)
    finally:
        os.umask(old_umask)
    os.chmod(SOCKET_NAME, 0o600)
    stopping = server.stopping
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    ready()
    idle = (
        asyncio.create_task(_exit_when_idle(supervisor, server, stopping, idle_exit_seconds))
        if idle_exit_seconds > 0
        else None
    )
    try:
        await stopping.wait()
    finally:
        if idle is not None:
            idle.cancel()
        listener.close()
        for task in list(server.connections):
            task.cancel()
        supervisor.close()
    return server.upgrade_requested


def detach() -> Callable[[], None]:
    """Fork: the parent exits once the child is serving (or has found a live supervisor),
    so whoever started us can connect as soon as we are gone; the child, in a session of its
    own and orphaned, outlives them."""
    r, w = os.pipe()
    if os.fork():
        os.close(w)
        ok = os.read(r, 1)
        os._exit(0 if ok else 1)
    os.close(r)
    os.setsid()

    def ready() -> None:
        os.write(w, b"1")
        os.close(w)

    return ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m setpoint.agent.supervisor", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--detach", action="store_true", help="fork into the background once serving"
    )
    parser.add_argument(
        "--idle-exit-seconds",
        type=float,
        default=IDLE_EXIT_SECONDS,
        help="exit after this long with no containers and no client (0: never)",
    )
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.absolute()
    private_dir(state_dir)
    ready = detach() if args.detach else lambda: None
    os.chdir(state_dir)
    lock = open_private(LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"a supervisor already serves {state_dir}", file=sys.stderr, flush=True)
        ready()
        return 0
    pid_file = open_private(PID_NAME, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(pid_file, f"{os.getpid()}\n".encode())
    finally:
        os.close(pid_file)
    if asyncio.run(serve(state_dir, ready, idle_exit_seconds=args.idle_exit_seconds)):
        upgrade(state_dir, args.idle_exit_seconds)
    return 0


def upgrade(state_dir: Path, idle_exit_seconds: float) -> None:
    """Become the supervisor code now installed, in this same process: ``execve`` keeps the
    pid, so every container stays our child and its exit status can still be reaped (the new
    image re-adopts them from the state dir like after a restart). Our descriptors are
    close-on-exec, so the lock and the socket are taken anew; the containers' FIFOs hold
    their output meanwhile. Not ``--detach``: we already are the detached daemon."""
    print(f"upgrading supervisor {VERSION} in place (pid {os.getpid()})", file=sys.stderr)
    sys.stderr.flush()
    argv = [sys.executable, "-m", "setpoint.agent.supervisor", "--state-dir", str(state_dir)]
    os.execv(sys.executable, [*argv, "--idle-exit-seconds", str(idle_exit_seconds)])


if __name__ == "__main__":
    sys.exit(main())
