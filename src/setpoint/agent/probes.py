"""Probes and lifecycle hooks: how the agent learns whether a container is healthy and
lets it act around its own start and stop.

A container may declare three probes, each an *action* (``exec``, ``httpGet``,
``tcpSocket``) run every ``periodSeconds`` (default 10) with a ``timeoutSeconds`` budget
(default 1), after ``initialDelaySeconds``:

- **startup** gates the other two: until it has succeeded the container is not ``started``
  and neither liveness nor readiness is probed (its result starts *unknown*);
- **liveness** starts *success*; ``failureThreshold`` (default 3) failures in a row kill the
  current instance (events ``Unhealthy``, then ``Killing``), which its restart policy then
  restarts — a failed startup probe does the same;
- **readiness** starts *failure* (a container without one is ready once running and
  started); ``successThreshold`` (default 1) successes in a row make it ready, which drives
  the container's ``ready``, and through it the pod's ContainersReady and Ready conditions.

That is the kubelet's ``pkg/kubelet/prober`` (``worker.go``'s ``doProbe``, ``prober.go``):
one worker per probe per container instance, each an asyncio task that sleeps its period;
a result changes only once a threshold is reached, and a new instance (a restart: a new
``restart_count``/pid) starts again from the initial results. A probe that cannot run at
all (a bad port name, a ``grpc`` probe, which setpoint does not implement) is an *error*:
reported as a Warning ``Unhealthy`` event and thrown away, as the kubelet throws away
prober errors, so the result stays where it was (never ready, never killed).

setpoint runs containers as host processes, so an ``exec`` action is a host process too,
with the container's environment and ``workingDir`` (built by :mod:`setpoint.agent.pods`
exactly as for the container), in a process group of its own that is killed on timeout; an
``httpGet`` goes to the pod IP (the node's for a pod in the node's network); ``tcpSocket``
connects there. A pod with a network namespace runs its ``exec`` actions inside it.

The same actions are the **lifecycle hooks**: ``postStart`` runs as soon as the agent sees
a new instance running (each restart too) and, if it fails, ``FailedPostStartHook`` is
reported and the instance killed; ``preStop`` runs before SIGTERM, when the pod is deleted
or a probe kills the container, within the grace period, whose remainder (at least 2 s, as
``kuberuntime_container.go``'s ``killContainer`` gives) is what SIGTERM then gets.

:class:`ProbeManager` owns all of it for one :class:`~setpoint.agent.agent.NodeAgent`: the
agent calls :meth:`ProbeManager.sync` from each pod's reconcile, asks
:meth:`ProbeManager.status` for every container's ``started``/``ready``, and the manager wakes
the agent's work queue for a pod whose results changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import json
import logging
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from setpoint.agent import dynports
from setpoint.agent import pods as podspec
from setpoint.agent.runtime import ContainerState, Runtime, SupervisorError
from setpoint.client.api import ApiError, Obj
from setpoint.client.events import EventRecorder
from setpoint.meta.assignedports import port_key
from setpoint.meta.clock import REAL_CLOCK, Clock

# (argv, cwd) -> the same command made to run inside the container's mount namespace
EnterNamespace = Callable[[list[str], str | None], tuple[list[str], str | None]]

log = logging.getLogger(__name__)

USER_AGENT = "kube-probe/1.37"
MAX_OUTPUT = 10 * 1024  # the kubelet keeps at most 10 KiB of a probe's output or body
MIN_GRACE_SECONDS = 2.0  # kuberuntime's minimumGracePeriodInSeconds
HOOK_HTTP_TIMEOUT = 10.0
PROBE_TYPES = ("startup", "liveness", "readiness")


class Result(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


# worker.go's initialValue for each probe type
INITIAL_RESULTS = {
    "startup": Result.UNKNOWN,
    "liveness": Result.SUCCESS,
    "readiness": Result.FAILURE,
}


class Outcome(NamedTuple):
    """One run of an action: its result and the output the event message quotes."""

    result: Result
    output: str


class ProbeError(Exception):
    """The probe could not be run at all (bad port, unsupported action): no result."""


class ProbeStatus(NamedTuple):
    started: bool
    ready: bool


@dataclass(frozen=True)
class ProbeConfig:
    """A container's probe with the API server's defaults filled in."""

    kind: str  # startup | liveness | readiness
    action: Obj
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None  # probe-level terminationGracePeriodSeconds

    @classmethod
    def from_probe(cls, kind: str, probe: Obj) -> ProbeConfig:
        def number(name: str, default: float, minimum: float) -> float:
            value = probe.get(name)
            return max(float(value), minimum) if isinstance(value, int | float) else default

        grace = probe.get("terminationGracePeriodSeconds")
        return cls(
            kind=kind,
            action=probe,
            initial_delay=number("initialDelaySeconds", 0.0, 0.0),
            period=number("periodSeconds", 10.0, 1.0),
            timeout=number("timeoutSeconds", 1.0, 1.0),
            # liveness and startup must have successThreshold 1 (API validation)
            success_threshold=int(number("successThreshold", 1, 1)) if kind == "readiness" else 1,
            failure_threshold=int(number("failureThreshold", 3, 1)),
            termination_grace=float(grace) if isinstance(grace, int | float) else None,
        )

    @property
    def label(self) -> str:
        return self.kind.capitalize()


def probe_configs(container: Obj) -> dict[str, ProbeConfig]:
    return {
        kind: ProbeConfig.from_probe(kind, container[f"{kind}Probe"])
        for kind in PROBE_TYPES
        if isinstance(container.get(f"{kind}Probe"), dict)
    }


# ------------------------------------------------------------------ thresholds


@dataclass
class Threshold:
    """``lastResult``/``resultRun`` of the kubelet's worker: a result is published only
    after ``success_threshold`` or ``failure_threshold`` of it in a row."""

    success_threshold: int
    failure_threshold: int
    last: Result | None = None
    run: int = 0

    def observe(self, result: Result) -> Result | None:
        """Count ``result``; return it if it is now to be published, else None."""
        if result == self.last:
            self.run += 1
        else:
            self.last, self.run = result, 1
        if result == Result.FAILURE and self.run < self.failure_threshold:
            return None
        if result == Result.SUCCESS and self.run < self.success_threshold:
            return None
        return result

    def reset(self) -> None:
        self.last, self.run = None, 0


def probe_status(
    container: Obj, state: ContainerState | None, results: Mapping[str, Result] | None
) -> ProbeStatus:
    """``started`` and ``ready`` of one container, as ``prober_manager.UpdatePodStatus``
    decides them: nothing that is not running is started or ready; without a result yet
    (no worker has seen this instance) a probe that exists holds its gate shut."""
    if state is None or state.state != "running":
        return ProbeStatus(False, False)
    results = results or {}

    def passed(kind: str) -> bool:
        if not isinstance(container.get(f"{kind}Probe"), dict):
            return True
        return results.get(kind, INITIAL_RESULTS[kind]) == Result.SUCCESS

    started = passed("startup")
    return ProbeStatus(started, started and passed("readiness"))


# ------------------------------------------------------------------ actions


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's ``port``: a number, or the name of one of the container's ``ports``
    (its ``containerPort``; a numeric string is taken as a number, as the kubelet does)."""
    if isinstance(port, str):
        named = next(
            (p.get("containerPort") for p in container.get("ports") or [] if p.get("name") == port),
            None,
        )
        if named is None:
            if not port.isdigit():
                raise ProbeError(f"couldn't find port {port!r} in container {container['name']!r}")
            named = int(port)
        port = named
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ProbeError(f"invalid port number: {port}")
    return port


def http_status_result(code: int) -> Result:
    """The kubelet's rule for an HTTP probe: 200-399 is success."""
    return Result.SUCCESS if 200 <= code < 400 else Result.FAILURE


def truncate(text: str) -> str:
    return text[:MAX_OUTPUT]


@dataclass(frozen=True)
class Target:
    """What an action runs against: the container, its pod IP, and, for ``exec``, the
    environment and working directory the container itself got."""

    container: Obj
    pod_ip: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    enter: EnterNamespace | None = None  # wraps an exec command to run where the container is
    ports: Mapping[str, int] = field(default_factory=dict)  # assigned node ports (dynports)

    def port(self, action: Obj) -> int:
        """The action's port, resolved in the container, then to the node port the agent
        assigned it if the pod has one (a pod in the node's network: see dynports)."""
        port = resolve_port(action.get("port"), self.container)
        return self.ports.get(port_key(port), port)


async def run_action(action: Obj, target: Target, *, timeout: float | None) -> Outcome:
    """Run a probe or hook action once; raises :class:`ProbeError` if it cannot run."""
    if "exec" in action:
        command = [str(c) for c in (action["exec"] or {}).get("command") or []]
        cwd = target.cwd
        if target.enter is not None and command:
            command, cwd = target.enter(command, cwd)
        return await run_exec(command, env=target.env, cwd=cwd, timeout=timeout)
    if "httpGet" in action:
        return await run_http_get(
            action["httpGet"] or {}, target, timeout=timeout or HOOK_HTTP_TIMEOUT
        )
    if "tcpSocket" in action:
        return await run_tcp_socket(action["tcpSocket"] or {}, target, timeout=timeout or 1.0)
    if "grpc" in action:
        raise ProbeError("setpoint does not support grpc probes")
    raise ProbeError("the probe has no exec, httpGet or tcpSocket action")


async def run_exec(
    command: list[str], *, env: Mapping[str, str], cwd: str | None, timeout: float | None
) -> Outcome:
    """Run ``command`` as a host process in its own process group; exit 0 is success. On
    timeout the whole group is killed and the run fails, as with ``ExecProbeTimeout``.

    Spawned with :class:`subprocess.Popen` (vfork) and watched through a pidfd rather than
    with ``asyncio.create_subprocess_exec``: under uvloop that forks the whole agent, ~3.7 ms
    of CPU per probe against ~0.3 ms, which is most of the agent's cost with exec probes."""
    if not command:
        raise ProbeError("exec action without a command")
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            command,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=write_end,
            start_new_session=True,
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        os.close(read_end)
        # the kubelet's runtime reports a command that cannot start as a failed exec
        return Outcome(Result.FAILURE, truncate(str(exc)))
    finally:
        os.close(write_end)
    output = _OutputReader(read_end)
    try:
        async with asyncio.timeout(timeout):
            await process_exited(process.pid)
    except (TimeoutError, asyncio.CancelledError) as exc:
        # not reaped yet, so the pid (= the group id) cannot have been recycled
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.shield(process_exited(process.pid))
        process.wait()
        output.close()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return Outcome(Result.FAILURE, f"command {' '.join(command)!r} timed out")
    code = process.wait()
    text = truncate(output.close().decode(errors="replace"))
    return Outcome(Result.SUCCESS if code == 0 else Result.FAILURE, text)


async def process_exited(pid: int) -> None:
    """Until the process ``pid`` (our unreaped child) has exited."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(pid)
    done: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, wake)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


class _OutputReader:
    """Collects a command's combined output from a pipe as it comes (so a chatty command
    never blocks on a full pipe), keeping the first ``MAX_OUTPUT`` bytes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self.loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self.loop.add_reader(fd, self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.fd, 65536):
                if len(self.data) < MAX_OUTPUT:
                    self.data += chunk
            self.loop.remove_reader(self.fd)  # EOF

    def close(self) -> bytes:
        """What was written so far (what a still-running child of the command writes later
        is not waited for)."""
        self._read()
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        return bytes(self.data)


def _url(scheme: str, host: str, port: int, path: str) -> str:
    host_port = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme.lower()}://{host_port}{path}"


def _unverified_tls() -> ssl.SSLContext:
    # the kubelet does not verify a probe's certificate (InsecureSkipVerify)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def run_http_get(action: Obj, target: Target, *, timeout: float) -> Outcome:
    """``GET scheme://host:port/path`` with ``httpHeaders`` and the kubelet's User-Agent;
    one connection per probe, closed after (the kubelet disables keep-alive for probes)."""
    port = target.port(action)
    host = action.get("host") or target.pod_ip
    scheme = str(action.get("scheme") or "HTTP").upper()
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    url = _url(scheme, host, port, path)
    headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in action.get("httpHeaders") or []:
        name = str(header.get("name", ""))
        # a header the user sets replaces ours, whatever its case
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        if name:
            headers[name] = str(header.get("value", ""))
    headers["Connection"] = "close"
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=_unverified_tls() if scheme == "HTTPS" else None
            )
            writer.write(request.encode("latin-1") + b"\r\n")
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                return Outcome(Result.FAILURE, f'Get "{url}": malformed HTTP response')
            code = int(parts[1])
            if http_status_result(code) == Result.FAILURE:
                return Outcome(Result.FAILURE, f"HTTP probe failed with statuscode: {code}")
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
                await reader.readuntil(b"\r\n\r\n")
            body = b""
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(0.1):  # the body is only quoted, never required
                    body = await reader.read(MAX_OUTPUT)
            return Outcome(Result.SUCCESS, body.decode(errors="replace"))
    except TimeoutError:
        message = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        return Outcome(Result.FAILURE, f'Get "{url}": {message}')
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        return Outcome(Result.FAILURE, f'Get "{url}": {_dial_error(host, port, exc)}')
    finally:
        if writer is not None:
            writer.close()


def _dial_error(host: str, port: int, exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {host}:{port}: connect: connection refused"
    if isinstance(exc, TimeoutError):
        return f"dial tcp {host}:{port}: i/o timeout"
    return f"dial tcp {host}:{port}: {getattr(exc, 'strerror', None) or exc}"


async def run_tcp_socket(action: Obj, target: Target, *, timeout: float) -> Outcome:
    """Success if a TCP connection to ``host:port`` opens within the timeout."""
    port = target.port(action)
    host = action.get("host") or target.pod_ip
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return Outcome(Result.FAILURE, _dial_error(host, port, exc))
    writer.close()
    return Outcome(Result.SUCCESS, "")


# ------------------------------------------------------------------ hook messages


def pod_format(pod: Obj) -> str:
    """The kubelet's ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod["metadata"]
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def hook_failure_message(pod: Obj, container: Obj, action: Obj, outcome: Outcome) -> str:
    """``lifecycle/handlers.go``'s message for a failed hook."""
    name, where = container["name"], pod_format(pod)
    if "exec" in action:
        command = " ".join(str(c) for c in (action["exec"] or {}).get("command") or [])
        return (
            f'Exec lifecycle hook ([{command}]) for Container "{name}" in Pod "{where}" '
            f"failed - error: command '{command}' failed, message: {json.dumps(outcome.output)}"
        )
    path = ((action.get("httpGet") or {}).get("path")) or ""
    return (
        f'HTTP lifecycle hook ({path}) for Container "{name}" in Pod "{where}" failed - '
        f"error: {outcome.output}"
    )


# ------------------------------------------------------------------ the manager

FetchSources = Callable[[str, set[tuple[str, str]]], Awaitable[podspec.Sources]]


@dataclass
class Instance:
    """One running instance of a container and its probe workers."""

    cid: str
    key: str  # the pod's work-queue key
    pod: Obj
    container: Obj
    identity: tuple[int, int | None]  # (restart_count, pid start time)
    started_at: float
    configs: dict[str, ProbeConfig]
    results: dict[str, Result] = field(default_factory=dict)
    wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    target: Target | None = None
    killing: bool = False


def instance_identity(state: ContainerState) -> tuple[int, int | None]:
    return (state.restart_count, state.pid_start_time)


class ProbeManager:
    """Probe workers and hooks of every container the agent runs. The agent owns it,
    calls :meth:`sync` from reconcile, :meth:`pre_stop` before stopping a container and
    :meth:`close` when it stops; ``wake(key)`` requeues a pod whose results changed."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        recorder: EventRecorder,
        wake: Callable[[str], None],
        fetch_sources: FetchSources,
        base_env: Mapping[str, str],
        pod_ip: Callable[[Obj], str],
        host_ip: str,
        assigned_ports: Callable[[Obj], Mapping[str, int]] | None = None,
        enter_namespace: Callable[[Obj, Obj, list[str], str | None], tuple[list[str], str | None]]
        | None = None,  # (pod, container, argv, cwd): see Sandboxes.enter
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.enter_namespace = enter_namespace
        self.recorder = recorder
        self.wake = wake
        self.fetch_sources = fetch_sources
        self.base_env = base_env
        self.assigned_ports = assigned_ports
        self.pod_ip = pod_ip
        self.host_ip = host_ip
        self._instances: dict[str, Instance] = {}
        self._adopted: set[tuple[str, tuple[int, int | None]]] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # kills, which outlive their instance

    # ---- the agent's side

    def adopt(self, states: Iterable[ContainerState]) -> None:
        """Instances already running when the agent started: their postStart hook ran
        under an earlier agent and must not run again (probes do restart, from their
        initial results)."""
        for state in states:
            if state.state == "running":
                self._adopted.add((state.id, instance_identity(state)))

    def sync(self, key: str, pod: Obj, states: Mapping[str, ContainerState]) -> None:
        """Follow the pod's sidecars and app containers (``states`` by container name): start
        workers and the postStart hook for an instance not seen before, stop those of an
        instance that is gone."""
        uid = pod["metadata"]["uid"]
        for container in podspec.long_running(pod):
            cid = podspec.container_id(uid, container["name"])
            state = states.get(container["name"])
            current = self._instances.get(cid)
            if state is None or state.state != "running":
                if current is not None:
                    self._drop(cid)
                continue
            identity = instance_identity(state)
            if current is not None and current.identity == identity:
                current.pod = pod
                continue
            if current is not None:
                self._drop(cid)
            self._start_instance(key, pod, container, state)

    def status(self, pod: Obj, states: Mapping[str, ContainerState]) -> dict[str, ProbeStatus]:
        """``started`` and ``ready`` of each sidecar and app container, by name."""
        uid = pod["metadata"]["uid"]
        out = {}
        for container in podspec.long_running(pod):
            state = states.get(container["name"])
            inst = self._instances.get(podspec.container_id(uid, container["name"]))
            results = None
            if inst is not None and state is not None and inst.identity == instance_identity(state):
                results = inst.results
            out[container["name"]] = probe_status(container, state, results)
        return out

    def forget_pod(self, uid: str) -> None:
        """Stop probing the pod's containers (it is being deleted or is gone)."""
        for cid in [c for c in self._instances if podspec.pod_uid_of(c) == uid]:
            self._drop(cid)

    async def pre_stop(
        self, pod: Obj, name: str, state: ContainerState | None, grace_seconds: float
    ) -> float:
        """Run the container's preStop hook (if it has one and is running) within
        ``grace_seconds``; returns the grace left for SIGTERM (at least 2 s after a hook)."""
        container = next(
            (c for c in (pod.get("spec") or {}).get("containers") or [] if c["name"] == name),
            None,
        )
        action = ((container or {}).get("lifecycle") or {}).get("preStop")
        if container is None or not isinstance(action, dict) or grace_seconds <= 0:
            return grace_seconds
        if state is None or state.state != "running":
            return grace_seconds
        began = time.monotonic()
        try:
            target = await self.target(pod, container)
            async with asyncio.timeout(grace_seconds):
                outcome = await run_action(action, target, timeout=None)
        except TimeoutError:
            outcome = None  # the grace period is over; SIGTERM gets its minimum
        except ProbeError as exc:
            outcome = Outcome(Result.FAILURE, str(exc))
        if outcome is not None and outcome.result != Result.SUCCESS:
            # the event stays terse, as the kubelet's, so hook output (which may hold
            # secrets) does not leak into Events; the details go to the agent's log
            log.info("%s", hook_failure_message(pod, container, action, outcome))
            await self._record(pod, "Warning", "FailedPreStopHook", "PreStopHook failed")
        return max(grace_seconds - (time.monotonic() - began), MIN_GRACE_SECONDS)

    async def close(self) -> None:
        """Stop every worker, hook and kill (the containers keep running)."""
        for cid in list(self._instances):
            self._drop(cid)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- instances and workers

    def _start_instance(self, key: str, pod: Obj, container: Obj, state: ContainerState) -> None:
        cid = podspec.container_id(pod["metadata"]["uid"], container["name"])
        identity = instance_identity(state)
        inst = Instance(
            cid=cid,
            key=key,
            pod=pod,
            container=container,
            identity=identity,
            started_at=state.started_at or self.clock.time(),
            configs=probe_configs(container),
        )
        self._instances[cid] = inst
        for kind, config in inst.configs.items():
            inst.results[kind] = INITIAL_RESULTS[kind]
            inst.wakeups[kind] = asyncio.Event()
            inst.tasks.append(
                asyncio.create_task(self._work(inst, config), name=f"probe-{kind}-{cid}")
            )
        post_start = (container.get("lifecycle") or {}).get("postStart")
        adopted = (cid, identity) in self._adopted
        self._adopted.discard((cid, identity))
        if isinstance(post_start, dict) and not adopted:
            inst.tasks.append(
                asyncio.create_task(self._post_start(inst, post_start), name=f"poststart-{cid}")
            )

    def _drop(self, cid: str) -> None:
        inst = self._instances.pop(cid, None)
        if inst is not None:
            for task in inst.tasks:
                task.cancel()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def target(self, pod: Obj, container: Obj) -> Target:
        """The container's own env and workingDir, built as the agent built them."""
        namespace = pod["metadata"].get("namespace", "")
        ports = self.assigned_ports(pod) if self.assigned_ports is not None else {}
        base_env = {**self.base_env, **dynports.port_env(dynports.declared_ports(pod), ports)}
        try:
            sources = await self.fetch_sources(namespace, podspec.env_sources(container))
            env = podspec.container_env(
                pod,
                container,
                base_env=base_env,
                pod_ip=self.pod_ip(pod),
                host_ip=self.host_ip,
                sources=sources,
            )
        except (podspec.ContainerConfigError, ApiError, OSError, ValueError) as exc:
            log.info("probe env of %s falls back to the base env: %s", container["name"], exc)
            env = base_env
        enter = (
            functools.partial(self.enter_namespace, pod, container)
            if self.enter_namespace is not None
            else None
        )
        cwd = container.get("workingDir") or None
        return Target(container, self.pod_ip(pod), env, cwd, enter, ports)

    async def _work(self, inst: Instance, config: ProbeConfig) -> None:
        """One probe of one instance: probe, then sleep a period (or until woken)."""
        delay = inst.started_at + config.initial_delay - self.clock.time()
        if delay > 0:
            await asyncio.sleep(delay)
        threshold = Threshold(config.success_threshold, config.failure_threshold)
        wakeup = inst.wakeups[config.kind]
        while True:
            try:
                keep_going = await self._probe_once(inst, config, threshold)
            except Exception:  # a bug here must not end probing silently
                log.exception("probe %s of %s failed", config.kind, inst.cid)
                keep_going = True
            if not keep_going:
                return
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), config.period)

    async def _probe_once(self, inst: Instance, config: ProbeConfig, threshold: Threshold) -> bool:
        """``doProbe``: returns False once this worker has nothing left to do."""
        if inst.killing:
            return True  # on hold until the next instance replaces this one
        started = probe_status(inst.container, _running(inst), inst.results).started
        if config.kind == "startup" and started:
            return True
        if config.kind != "startup" and not started:
            return True
        if inst.target is None:
            inst.target = await self.target(inst.pod, inst.container)
        try:
            outcome = await run_action(config.action, inst.target, timeout=config.timeout)
        except ProbeError as exc:
            message = f"{config.label} probe errored: {exc}"
            await self._record(inst.pod, "Warning", "Unhealthy", message)
            # a probe that can never run is reported once; one with a bad port may be fixed
            # by nothing but a new pod either, so both stop here
            return False
        if outcome.result == Result.FAILURE:
            message = f"{config.label} probe failed: {outcome.output}"
            await self._record(inst.pod, "Warning", "Unhealthy", message)
        published = threshold.observe(outcome.result)
        if published is None:
            return True
        if inst.results.get(config.kind) != published:
            inst.results[config.kind] = published
            self.wake(inst.key)
            if config.kind == "startup" and published == Result.SUCCESS:
                for kind, event in inst.wakeups.items():  # probe the others at once
                    if kind != "startup":
                        event.set()
        if config.kind != "readiness" and published == Result.FAILURE:
            inst.killing = True
            threshold.reset()
            reason = f"Container {inst.container['name']} failed {config.kind} probe"
            self._spawn(self._kill(inst, reason, config.termination_grace), f"kill-{inst.cid}")
        return True

    async def _post_start(self, inst: Instance, action: Obj) -> None:
        inst.target = inst.target or await self.target(inst.pod, inst.container)
        try:
            outcome = await run_action(action, inst.target, timeout=None)
        except ProbeError as exc:
            outcome = Outcome(Result.FAILURE, str(exc))
        if outcome.result == Result.SUCCESS:
            return
        log.info("%s", hook_failure_message(inst.pod, inst.container, action, outcome))
        await self._record(inst.pod, "Warning", "FailedPostStartHook", "PostStartHook failed")
        inst.killing = True
        # the kill outlives this task, which goes with the instance
        self._spawn(self._kill(inst, "FailedPostStartHook", None), f"kill-{inst.cid}")

    async def _kill(self, inst: Instance, message: str, probe_grace: float | None) -> None:
        """``killContainer``: the Killing event, preStop within the grace period, then
        SIGTERM, SIGKILL after what is left of it; the restart policy does the rest."""
        pod = inst.pod
        if message.startswith("Container ") and podspec.restart_policy(pod) != "Never":
            message += ", will be restarted"
        await self._record(pod, "Normal", "Killing", message)
        grace = podspec.termination_grace_seconds(pod) if probe_grace is None else probe_grace
        grace = await self.pre_stop(pod, inst.container["name"], _running(inst), grace)
        try:
            await self.runtime.kill_instance(
                inst.cid, grace_seconds=grace, restart_count=inst.identity[0]
            )
        except (LookupError, SupervisorError, ConnectionError) as exc:
            log.warning("could not kill %s: %s", inst.cid, exc)

    async def _record(self, pod: Obj, event_type: str, reason: str, message: str) -> None:
        try:
            await self.recorder.record(pod, event_type, reason, message)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("event %s on %s not recorded: %s", reason, podspec.pod_name(pod), exc)


def _running(inst: Instance) -> ContainerState:
    """A stand-in state for an instance the manager knows to be running."""
    return ContainerState(
        id=inst.cid,
        state="running",
        pid=None,
        pid_start_time=inst.identity[1],
        restart_count=inst.identity[0],
        started_at=inst.started_at,
        last_exit=None,
    )
