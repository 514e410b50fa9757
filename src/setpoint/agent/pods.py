"""Pods as the node agent runs them: the pure translation both ways.

Downward, a pod's container becomes a :class:`ContainerSpec` for the supervisor. setpoint
runs containers as plain host processes, so the image is not used: the argv is the
container's ``command`` followed by its ``args``. Kubernetes runs the image's entrypoint
when ``command`` is absent; setpoint does not know it and takes it to be empty, as it is in
minimal images (busybox, alpine, python), so ``args`` alone are run as the command (the
agent says so in a Normal event). An interactive container (``stdin: true``) with neither
runs ``/bin/sh``, the default command of the images people debug with (busybox, alpine,
ubuntu: what ``kubectl debug -it --image=busybox`` and ``kubectl run -it`` start); any other
container with neither cannot run: the kubelet's ``CreateContainerConfigError``. As the
kubelet does, ``$(VAR)`` in the command, the args and env values is replaced by the value of
an environment variable defined earlier (``$$`` is an escaped ``$``; a reference to an
unknown variable stays as written), see ``third_party/forked/golang/expansion``. Env comes
from ``value`` and from ``valueFrom.fieldRef`` (the Downward API fields the kubelet resolves
itself), ``configMapKeyRef`` and ``secretKeyRef``, and ``envFrom``; the agent fetches the
ConfigMaps and Secrets and passes their data in, and a missing one that is not ``optional``
is a configuration error.
``restartPolicy`` maps onto the supervisor's policy with the kubelet's crash-loop backoff
shape: an immediate first restart, then the front-loaded curve of KEP-4603
(``ReduceDefaultCrashLoopBackOffDecay``): 1 s doubling up to the node's
``maxContainerRestartPeriod`` (KEP-5593; 60 s by default, and a cap below 1 s lowers the
first wait to it, as ``newCrashLoopBackOff`` in ``pkg/kubelet/kubelet.go`` does), reset after
10 minutes of running (the kubelet's ``HasExpiredFunc``). A container waiting out its
backoff shows ``CrashLoopBackOff`` with the kubelet's message, ``back-off 2s restarting
failed container=app pod=web_default(<uid>)``.

Upward, the supervisor's :class:`ContainerState` becomes a Kubernetes ``containerStatus``
(``waiting``/``running``/``terminated`` with the kubelet's reasons, ``restartCount``, and
``lastState``: the instance before the current one, as the kubelet reports the runtime's
second newest container, so a container that failed and then completed keeps the failure
there), and the pod's phase and conditions are computed from those statuses as
``kubelet_pods.go``'s ``getPhase`` and ``status.GeneratePodReadyCondition`` do. The pieces
the hollow nodes build the same way (conditions, terminated states, telling whether a status
changed) are :mod:`setpoint.node.podstatus`'s.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.agent import volumes
from setpoint.agent.runtime import ContainerSpec, ContainerState, ExitRecord
from setpoint.client.api import Obj
from setpoint.meta.gofmt import duration_string
from setpoint.meta.timestamps import rfc3339
from setpoint.node.podstatus import others_conditions, pod_condition, terminated_state

# the kubelet's container restart backoff with ReduceDefaultCrashLoopBackOffDecay (initial
# 1 s, max 60 s), the max configurable from 1 s to 300 s (crashLoopBackOff.
# maxContainerRestartPeriod), reset after 10 minutes of running
BACKOFF_BASE = 1.0
BACKOFF_MAX = 60.0
MAX_RESTART_PERIOD_RANGE = (1.0, 300.0)
BACKOFF_RESET = 600.0

DEFAULT_GRACE_SECONDS = 30  # terminationGracePeriodSeconds when a pod says none

CONTAINER_ID_SCHEME = "setpoint://"

NO_COMMAND_MESSAGE = (
    "container {name!r} has neither command nor args: setpoint runs containers as host "
    "processes and does not read images, so a container needs a command (or args, which "
    "are then run as the command)"
)
ARGS_AS_COMMAND_REASON = "ImageEntrypointUnknown"
ARGS_AS_COMMAND_MESSAGE = (
    "setpoint does not read images, so the entrypoint of image {image!r} is not known: "
    "container {name} runs its args as the command"
)
INTERACTIVE_SHELL = "/bin/sh"
SHELL_AS_COMMAND_MESSAGE = (
    "setpoint does not read images, so the command of image {image!r} is not known: "
    "interactive container {name} runs " + INTERACTIVE_SHELL
)


class ContainerConfigError(Exception):
    """The container cannot be created from its spec (``CreateContainerConfigError``)."""


def container_id(pod_uid: str, name: str) -> str:
    return f"{pod_uid}/{name}"


def pod_uid_of(container_id: str) -> str:
    return container_id.partition("/")[0]


# ------------------------------------------------------------------ $(VAR) expansion

_FIELD_PATHS = {
    "metadata.name": lambda pod, ips: pod["metadata"].get("name", ""),
    "metadata.namespace": lambda pod, ips: pod["metadata"].get("namespace", ""),
    "metadata.uid": lambda pod, ips: pod["metadata"].get("uid", ""),
    "spec.nodeName": lambda pod, ips: (pod.get("spec") or {}).get("nodeName", ""),
    "spec.serviceAccountName": lambda pod, ips: (pod.get("spec") or {}).get(
        "serviceAccountName", ""
    ),
    "status.podIP": lambda pod, ips: ips["podIP"],
    "status.hostIP": lambda pod, ips: ips["hostIP"],
}
_LABEL_OR_ANNOTATION = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables are substituted, unknown
    references and unterminated ``$(`` are left as written, ``$$`` becomes ``$``."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close < 0:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : close]
                    out.append(env.get(name, f"$({name})"))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def field_ref_value(pod: Obj, field_path: str, *, pod_ip: str, host_ip: str) -> str:
    """The Downward API value of ``fieldRef.fieldPath``."""
    getter = _FIELD_PATHS.get(field_path)
    if getter is not None:
        return str(getter(pod, {"podIP": pod_ip, "hostIP": host_ip}) or "")
    match = _LABEL_OR_ANNOTATION.match(field_path)
    if match:
        return str((pod["metadata"].get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {field_path!r}")


# ConfigMap and Secret data an env var refers to, keyed by ("configMap"|"secret", name);
# None for one that does not exist. Secret values are already base64-decoded.
Sources = Mapping[tuple[str, str], Mapping[str, str] | None]

_KEY_REFS = {"configMapKeyRef": "configMap", "secretKeyRef": "secret"}
_FROM_REFS = {"configMapRef": "configMap", "secretRef": "secret"}


def env_sources(container: Obj) -> set[tuple[str, str]]:
    """The ConfigMaps and Secrets the container's ``env`` and ``envFrom`` read."""
    wanted = set()
    for var in container.get("env") or []:
        for ref, kind in _KEY_REFS.items():
            name = ((var.get("valueFrom") or {}).get(ref) or {}).get("name")
            if name:
                wanted.add((kind, name))
    for source in container.get("envFrom") or []:
        for ref, kind in _FROM_REFS.items():
            name = (source.get(ref) or {}).get("name")
            if name:
                wanted.add((kind, name))
    return wanted


def _lookup(sources: Sources, kind: str, ref: Obj) -> Mapping[str, str] | None:
    data = sources.get((kind, ref.get("name", "")))
    if data is None and not ref.get("optional"):
        raise ContainerConfigError(f"{kind} {ref.get('name')!r} not found")
    return data


def container_env(
    pod: Obj,
    container: Obj,
    *,
    base_env: Mapping[str, str],
    pod_ip: str,
    host_ip: str,
    sources: Sources | None = None,
) -> dict[str, str]:
    """``base_env`` (e.g. PATH for host processes) overlaid by the container's ``envFrom``
    and then its ``env``, each ``env`` value expanded against the variables before it."""
    sources = sources or {}
    env = dict(base_env)
    env.setdefault("HOSTNAME", pod["metadata"].get("name", ""))
    for source in container.get("envFrom") or []:
        for ref, kind in _FROM_REFS.items():
            if ref in source:
                data = _lookup(sources, kind, source[ref] or {})
                prefix = source.get("prefix", "")
                env.update({prefix + k: v for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"] or {}
        if "fieldRef" in source:
            path = (source["fieldRef"] or {}).get("fieldPath", "")
            env[name] = field_ref_value(pod, path, pod_ip=pod_ip, host_ip=host_ip)
            continue
        if "resourceFieldRef" in source:
            # in env, containerName defaults to the container itself
            resource_ref: Obj = {
                "containerName": container.get("name"),
                **(source["resourceFieldRef"] or {}),
            }
            try:
                env[name] = volumes.downward_resource(pod, resource_ref, volumes.host_allocatable())
            except ValueError as exc:
                raise ContainerConfigError(f"env {name!r}: {exc}") from None
            continue
        ref_name = next((r for r in _KEY_REFS if r in source), None)
        if ref_name is None:
            kinds = ", ".join(sorted(source)) or "an empty valueFrom"
            raise ContainerConfigError(
                f"env {name!r}: {kinds} is not supported by the setpoint agent yet"
            )
        key_ref: Obj = source[ref_name] or {}
        data = _lookup(sources, _KEY_REFS[ref_name], key_ref)
        if data is None:
            continue
        key = key_ref.get("key", "")
        if key not in data:
            if key_ref.get("optional"):
                continue
            raise ContainerConfigError(
                f"couldn't find key {key} in {_KEY_REFS[ref_name]} {key_ref.get('name')!r}"
            )
        env[name] = data[key]
    return env


@dataclass(frozen=True)
class NodeContainerSettings:
    """What the node's flags set for every container: the crash-loop backoff's first delay
    and cap (``--crash-loop-backoff-initial``, ``--max-container-restart-period``) and log
    rotation (``--container-log-max-size``/``-max-files``, the kubelet's names)."""

    initial_backoff: float = 0.0
    backoff_max: float = BACKOFF_MAX
    max_log_bytes: int = 10 * 1024 * 1024
    max_log_files: int = 5
    max_log_rate: int = 32 * 1024 * 1024  # bytes of log a second (0: no limit)


def container_spec(
    pod: Obj,
    container: Obj,
    *,
    log_dir: Path,
    base_env: Mapping[str, str],
    pod_ip: str,
    host_ip: str,
    sources: Sources | None = None,
    init: bool = False,
    ephemeral: bool = False,
    settings: NodeContainerSettings | None = None,
) -> ContainerSpec:
    """The supervisor's spec for one container (``init``: an init container, which runs to
    completion; ``ephemeral``: an ephemeral container, never restarted); raises
    :class:`ContainerConfigError`."""
    settings = settings or NodeContainerSettings()
    name = container["name"]
    argv = container_argv(container)
    env = container_env(
        pod, container, base_env=base_env, pod_ip=pod_ip, host_ip=host_ip, sources=sources
    )
    argv = [expand(a, env) for a in argv]
    return ContainerSpec(
        id=container_id(pod["metadata"]["uid"], name),
        argv=argv,
        env=env,
        # an image without WORKDIR runs in /; so does a container without workingDir,
        # never in the supervisor's (private) directory
        cwd=container.get("workingDir") or "/",
        log_dir=str(log_dir / name),
        restart_policy=(
            "Never"
            if ephemeral
            else "Always"
            if is_sidecar(container)
            else init_restart_policy(pod)
            if init
            else restart_policy(pod)
        ),
        initial_backoff=settings.initial_backoff,
        backoff_base=min(BACKOFF_BASE, settings.backoff_max),
        backoff_max=settings.backoff_max,
        reset_after=BACKOFF_RESET,
        max_log_bytes=settings.max_log_bytes,
        max_log_files=settings.max_log_files,
        max_log_rate=settings.max_log_rate,
        stdin=bool(container.get("stdin")),
    )


def all_containers(pod: Obj) -> list[Obj]:
    """Init containers (sidecars among them), app containers, then ephemeral containers."""
    spec = pod.get("spec") or {}
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def container_argv(container: Obj) -> list[str]:
    """``command`` + ``args``, before ``$(VAR)`` expansion. Without ``command`` Kubernetes
    runs the image's entrypoint with ``args``; setpoint reads no image, so the entrypoint is
    empty and ``args`` are the whole argv. Neither: ``/bin/sh`` for an interactive
    container, else :class:`ContainerConfigError`."""
    argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    if not argv and container.get("stdin"):
        return [INTERACTIVE_SHELL]
    if not argv:
        raise ContainerConfigError(NO_COMMAND_MESSAGE.format(name=container["name"]))
    return argv


def runs_args_as_command(container: Obj) -> bool:
    """Its argv stands in for an image entrypoint setpoint does not know: ``args`` without
    a ``command``, or the shell of an interactive container with neither."""
    return not container.get("command") and bool(container.get("args") or container.get("stdin"))


def args_as_command_message(container: Obj) -> str:
    template = ARGS_AS_COMMAND_MESSAGE if container.get("args") else SHELL_AS_COMMAND_MESSAGE
    return template.format(image=str(container.get("image") or ""), name=container["name"])


def termination_grace_seconds(pod: Obj) -> float:
    """The pod's ``terminationGracePeriodSeconds`` (defaulted to 30 by the API server)."""
    return float(
        (pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    )


def restart_policy(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def is_sidecar(container: Obj) -> bool:
    """A restartable init container (``restartPolicy: Always``): started in order with the
    init containers, then kept running next to the app containers, restarted whatever the
    pod's restart policy, and stopped after them."""
    return container.get("restartPolicy") == "Always"


def sidecars(pod: Obj) -> list[Obj]:
    return [c for c in (pod.get("spec") or {}).get("initContainers") or [] if is_sidecar(c)]


def long_running(pod: Obj) -> list[Obj]:
    """The containers that run for the pod's life and are probed: sidecars, then app
    containers."""
    return [*sidecars(pod), *((pod.get("spec") or {}).get("containers") or [])]


def sidecar_started(state: ContainerState | None, probed: tuple[bool, bool] | None) -> bool:
    """Running and past its startup probe: the next init container may start."""
    return state is not None and state.state == "running" and (probed or (True,))[0]


def init_restart_policy(pod: Obj) -> str:
    """An init container is retried until it succeeds unless the pod's policy is Never."""
    return "Never" if restart_policy(pod) == "Never" else "OnFailure"


def init_succeeded(state: ContainerState | None) -> bool:
    return (
        state is not None
        and state.state == "exited"
        and state.last_exit is not None
        and state.last_exit.exit_code == 0
    )


def pod_log_dir(data_dir: Path, pod: Obj) -> Path:
    """``<data-dir>/pods/<namespace>_<name>_<uid>``, the layout of ``/var/log/pods``."""
    meta = pod["metadata"]
    return data_dir / "pods" / f"{meta.get('namespace')}_{meta['name']}_{meta['uid']}"


# ------------------------------------------------------------------ container statuses


def terminated(record: ExitRecord, cid: str) -> Obj:
    """The ``state.terminated`` of the container instance that ended as ``record`` says."""
    return terminated_state(
        record.exit_code,
        record.reason,
        record.started_at or None,
        record.finished_at,
        container_id=cid,
        signal=record.signal,
        message=record.message,
    )


def last_state_exit(state: ContainerState | None) -> ExitRecord | None:
    """The exit a container's ``lastState.terminated`` reports: the newest one while a
    later instance runs or waits to, the one before it once the container has exited."""
    if state is None:
        return None
    return state.previous_exit if state.state == "exited" else state.last_exit


def is_ready(
    container: Obj, state: ContainerState | None, probed: tuple[bool, bool] | None = None
) -> bool:
    """Running and, given ``probed`` (``(started, ready)`` from the probe manager), ready by
    its probes; without it, ready unless gated by a readiness probe."""
    running = state is not None and state.state == "running"
    if probed is not None:
        return running and probed[1]
    return running and not container.get("readinessProbe")


def container_status(
    pod: Obj,
    container: Obj,
    state: ContainerState | None,
    config_error: str = "",
    *,
    init: bool = False,
    initialized: bool = True,
    probed: tuple[bool, bool] | None = None,
) -> Obj:
    """The ``containerStatus`` of one container from what the runtime says about it. An
    init container is ready once it succeeded; an app container not yet started waits for
    ``PodInitializing`` until the pod is ``initialized``; ``probed`` is its ``(started,
    ready)`` by its startup and readiness probes."""
    name = container["name"]
    cid = CONTAINER_ID_SCHEME + container_id(pod["metadata"].get("uid", ""), name)
    status: Obj = {
        "name": name,
        "image": container.get("image", ""),
        "imageID": "",
        "ready": (
            init_succeeded(state)
            if init and not is_sidecar(container)
            else is_ready(container, state, probed)
        ),
        "started": state is not None and state.state == "running" and (probed or (True,))[0],
        "restartCount": state.restart_count if state else 0,
        "lastState": {},
    }
    if state is None:
        if config_error:
            waiting = {"reason": "CreateContainerConfigError", "message": config_error}
        elif not initialized:
            waiting = {"reason": "PodInitializing"}
        else:
            waiting = {"reason": "ContainerCreating"}
        status["state"] = {"waiting": waiting}
        return status
    status["containerID"] = cid
    last = state.last_exit
    if state.state == "running":
        status["state"] = {"running": {"startedAt": rfc3339(state.started_at or 0)}}
    elif state.state == "waiting":
        message = crash_loop_message(pod, name, state.backoff or 0.0)
        if last is not None and last.reason == "StartError":
            message += f": {last.message}"
        status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
    elif last is not None:
        status["state"] = {"terminated": terminated(last, cid)}
    else:  # exited without ever running (stopped before its first start)
        status["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    prior = last_state_exit(state)
    if prior is not None:
        status["lastState"] = {"terminated": terminated(prior, cid)}
    return status


def ephemeral_container_status(
    pod: Obj, container: Obj, state: ContainerState | None, config_error: str = ""
) -> Obj:
    """An ephemeral container's status: its state as any container's, never ready and
    without ``started`` (the kubelet's prober reports those for the pod's own containers
    only); it counts for neither the pod's phase nor its conditions."""
    status = container_status(pod, container, state, config_error, probed=(False, False))
    del status["started"]
    return status


def reported_instance(status: Obj | None) -> tuple[str, int] | None:
    """What a ``containerStatus`` says of the runtime's container, in the supervisor's terms:
    ``(state, restartCount)`` with state ``running``, ``waiting`` (in restart backoff) or
    ``exited``; None when it shows none (``ContainerCreating`` and other waiting reasons)."""
    if not status:
        return None
    state = status.get("state") or {}
    if "running" in state:
        kind = "running"
    elif "terminated" in state:
        kind = "exited"
    elif (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
        kind = "waiting"
    else:
        return None
    return kind, int(status.get("restartCount") or 0)


def pod_name(pod: Obj) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace')}/{meta.get('name')}"


def pod_desc(pod: Obj) -> str:
    """The kubelet's ``format.Pod``: ``<name>_<namespace>(<uid>)``."""
    meta = pod["metadata"]
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid', '')})"


def crash_loop_message(pod: Obj, name: str, backoff: float) -> str:
    """A ``CrashLoopBackOff`` container's message, as ``doBackOff`` in
    ``pkg/kubelet/kuberuntime`` words it (the wait as a Go duration)."""
    wait = duration_string(round(backoff * 1e9))
    return f"back-off {wait} restarting failed container={name} pod={pod_desc(pod)}"


def back_off_event_message(pod: Obj, name: str) -> str:
    """The message of the kubelet's ``BackOff`` event for a container in restart backoff."""
    return f"Back-off restarting failed container {name} in pod {pod_desc(pod)}"


# ------------------------------------------------------------------ pod phase and conditions


def pod_phase(pod: Obj, statuses: list[Obj], init_statuses: list[Obj] | None = None) -> str:
    """``getPhase`` of the kubelet over the init (regular and sidecar) and app containers'
    statuses."""
    policy = restart_policy(pod)
    restartable = {c["name"] for c in sidecars(pod)}
    pending_init = failed_init = 0
    running = waiting = stopped = succeeded = 0
    for cs in init_statuses or []:
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated")
        if cs["name"] in restartable:  # terminated sidecars do not count for the phase
            if "running" in state:
                pending_init += not cs.get("started")
                running += 1
            elif "waiting" in state and not last:
                pending_init += 1
                waiting += 1
        elif "terminated" in state:
            failed_init += state["terminated"].get("exitCode") != 0
        elif "waiting" in state and last:
            failed_init += last.get("exitCode") != 0
        else:
            pending_init += 1
    any_app_started = False
    for cs in statuses:
        state = cs.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif (cs.get("lastState") or {}).get("terminated"):
            stopped += 1
        else:
            waiting += 1
            continue
        any_app_started = True
    if failed_init and policy == "Never":
        return "Failed"
    if (pending_init or failed_init) and not any_app_started:
        return "Pending"
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def pod_conditions(
    pod: Obj,
    statuses: list[Obj],
    phase: str,
    now: float,
    previous: list[Obj] | None,
    init_statuses: list[Obj] | None = None,
) -> list[Obj]:
    """PodScheduled, Initialized, ContainersReady and Ready (no readiness gates), and the
    conditions others wrote (``DisruptionTarget``) as they were."""
    before = {c.get("type"): c for c in previous or []}
    restartable = {c["name"] for c in sidecars(pod)}
    incomplete = [
        cs["name"]
        for cs in init_statuses or []
        if not (cs.get("started") if cs["name"] in restartable else cs.get("ready"))
    ]
    sidecar_statuses = [cs for cs in init_statuses or [] if cs["name"] in restartable]
    unready = [cs["name"] for cs in [*sidecar_statuses, *statuses] if not cs.get("ready")]
    ready = not unready and bool(statuses)
    reason = ""
    message = ""
    if not ready:
        if phase == "Succeeded":
            reason = "PodCompleted"
        elif phase == "Failed":
            reason = "PodFailed"
        else:
            reason = "ContainersNotReady"
            message = f"containers with unready status: [{' '.join(unready)}]"
    initialized = pod_condition(
        "Initialized",
        not incomplete,
        now,
        previous=before.get("Initialized"),
        reason="ContainersNotInitialized" if incomplete else "",
    )
    if incomplete:
        initialized["message"] = f"containers with incomplete status: [{' '.join(incomplete)}]"
    conditions = [
        initialized,
        pod_condition(
            "ContainersReady", ready, now, previous=before.get("ContainersReady"), reason=reason
        ),
        pod_condition("Ready", ready, now, previous=before.get("Ready"), reason=reason),
    ]
    if message:
        for c in conditions[1:]:
            c["message"] = message
    scheduled = before.get("PodScheduled") or pod_condition("PodScheduled", True, now)
    return [*conditions, copy.deepcopy(scheduled), *others_conditions(previous)]


def pod_status(
    pod: Obj,
    states: Mapping[str, ContainerState],
    config_errors: Mapping[str, str],
    *,
    now: float,
    host_ip: str,
    pod_ip: str | None = None,
    previous: Obj | None = None,
    probes: Mapping[str, tuple[bool, bool]] | None = None,
) -> Obj:
    """The pod status the agent reports: ``states``, ``config_errors`` and ``probes``
    (``(started, ready)`` of app containers with probe results) are keyed by container
    name. Fields the agent does not own (qosClass, ...) are kept from the pod;
    condition transition times are kept from ``previous`` (default: the pod's status)."""
    spec = pod.get("spec") or {}
    current = pod.get("status") or {}
    previous = current if previous is None else previous
    init_statuses = [
        container_status(
            pod,
            c,
            states.get(c["name"]),
            config_errors.get(c["name"], ""),
            init=True,
            probed=(probes or {}).get(c["name"]),
        )
        for c in spec.get("initContainers") or []
    ]
    initialized = all(
        cs["started"] if is_sidecar(c) else cs["ready"]
        for c, cs in zip(spec.get("initContainers") or [], init_statuses, strict=True)
    )
    statuses = [
        container_status(
            pod,
            c,
            states.get(c["name"]),
            config_errors.get(c["name"], ""),
            initialized=initialized,
            probed=(probes or {}).get(c["name"]),
        )
        for c in spec.get("containers") or []
    ]
    ephemeral_statuses = [
        ephemeral_container_status(pod, c, states.get(c["name"]), config_errors.get(c["name"], ""))
        for c in spec.get("ephemeralContainers") or []
    ]
    phase = pod_phase(pod, statuses, init_statuses)
    status: dict[str, Any] = copy.deepcopy(current)
    status.update(
        {
            "phase": phase,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip or host_ip,
            "podIPs": [{"ip": pod_ip or host_ip}],
            "startTime": previous.get("startTime") or rfc3339(now),
            "conditions": pod_conditions(
                pod, statuses, phase, now, previous.get("conditions"), init_statuses
            ),
            "containerStatuses": statuses,
        }
    )
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if ephemeral_statuses:
        status["ephemeralContainerStatuses"] = ephemeral_statuses
    return status
