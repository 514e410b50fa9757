"""Hollow nodes: many fake nodes in one process, for scale tests without processes.

A hollow node is what kubemark calls a hollow kubelet: to the rest of the system it looks
like a real node agent, but it runs nothing. :class:`HollowNodes` plays ``count`` of them
(``<prefix>-0`` .. ``<prefix>-N-1``) and does, for each, the parts of the kubelet's job that
other components can observe through the API:

- **Registration.** It creates the Node with the shape ``kubelet_node_status.go`` gives it:
  the well-known labels (``kubernetes.io/hostname``, ``kubernetes.io/os``,
  ``kubernetes.io/arch``), capacity and allocatable, the four node conditions (Ready, and
  Memory/Disk/PID pressure False), addresses and ``nodeInfo``. If the Node already exists
  (hollow nodes restarted with the same prefix), it takes the Node over and refreshes its
  status instead of failing, keeping each condition's ``lastTransitionTime`` when the
  condition's status did not change.
- **Heartbeats.** As the kubelet's ``nodelease`` controller does, each node owns a Lease of
  the same name in ``kube-node-lease`` (``holderIdentity`` = node name, owned by the Node),
  renewed every ``heartbeat_seconds`` (a quarter of the lease duration unless told) with a
  little jitter so thousands of nodes do not renew in lock-step. The Node's status itself is
  re-posted only every minute (the kubelet's ``nodeStatusReportFrequency``), because the
  Lease is the cheap heartbeat, or with the next renewal when one Node informer (for all the
  hollow nodes) shows it marked lost (Ready ``Unknown``) by the node lifecycle controller.
- **Pods.** One pod informer serves all hollow nodes. It watches all pods (a
  ``spec.nodeName!=`` field selector is not something every server supports) and the
  handlers keep only pods whose ``spec.nodeName`` is one of ours. A bound pod is "run"
  without a process: after an optional start delay (annotation
  ``sim.setpoint.dev/start-delay-seconds``) its status becomes Running and Ready, with
  container statuses shaped like the kubelet's (``containerID`` ``hollow://<uid>/<name>``).
  Pods that should finish (annotation ``sim.setpoint.dev/exit-code``, or by default pods
  with ``restartPolicy`` Never/OnFailure, which exit 0) terminate after
  ``sim.setpoint.dev/run-seconds`` (default 0.1 s) and end Succeeded or Failed. A pod that
  gets a ``deletionTimestamp`` is "terminated" and its deletion confirmed with
  ``gracePeriodSeconds=0`` and a uid precondition, which is how the kubelet ends graceful
  deletion.

Simplifications on purpose: a container whose exit would be restarted by its restart policy
(``Always`` with an exit-code annotation, ``OnFailure`` with a non-zero code) is treated as
terminal with that code; no probes, no images, no volumes, no resource accounting.

What a pod's status should be is computed by pure functions (:func:`desired_pod_status`,
built from the pieces the real agent uses too, :mod:`setpoint.node.podstatus`)
from the pod, the time the hollow node first saw it and the clock, so the outcome is
level-triggered: after a restart the times are recovered from the status already written.
Writes are coalesced: a pod is reconciled through a de-duplicating work queue, the desired
status is compared with the cached one and with the last status written, and only changes
are sent, with at most ``max_concurrent_calls`` API calls in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from setpoint.client.api import NODES, PODS, ApiClient, ApiError, Obj
from setpoint.client.informer import EventHandler, Informer, object_key
from setpoint.client.join import request_node_credentials
from setpoint.client.nodes import (
    NODE_LEASE_DURATION_SECONDS,
    marked_lost,
    node_conditions,
    renew_interval,
    renew_lease,
)
from setpoint.client.tasks import cancel_all, run_until_stopped
from setpoint.client.workqueue import WorkQueue, run_worker
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.jsonvalue import json_copy
from setpoint.meta.timestamps import parse_epoch, rfc3339
from setpoint.node.podstatus import (
    others_conditions,
    pod_condition,
    same_status,
    terminated_state,
)

log = logging.getLogger(__name__)

JOIN_BATCH = 1000  # hollow nodes joined per request

T = TypeVar("T")

KUBELET_VERSION = "v1.37.0-setpoint-hollow"
RUNTIME_VERSION = "hollow://0"
HOLLOW_IP = "127.0.0.1"
EPHEMERAL_STORAGE = "100Gi"

ANNOTATION_START_DELAY = "sim.setpoint.dev/start-delay-seconds"
ANNOTATION_EXIT_CODE = "sim.setpoint.dev/exit-code"
ANNOTATION_RUN_SECONDS = "sim.setpoint.dev/run-seconds"
DEFAULT_RUN_SECONDS = 0.1

# the kubelet re-posts an unchanged node status at nodeStatusReportFrequency
NODE_STATUS_REPORT_SECONDS = 60.0
# nodelease uses wait.JitterUntil with a small jitter factor
LEASE_JITTER = 0.04


# ------------------------------------------------------------------ nodes


@dataclass(frozen=True)
class NodeShape:
    """What every hollow node reports about itself."""

    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    labels: tuple[tuple[str, str], ...] = ()


def node_labels(name: str, shape: NodeShape) -> dict[str, str]:
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    labels.update(dict(shape.labels))
    return labels


def node_status(name: str, shape: NodeShape, now: float, previous: Obj | None = None) -> Obj:
    resources = {
        "cpu": shape.cpu,
        "memory": shape.memory,
        "pods": str(shape.pods),
        "ephemeral-storage": EPHEMERAL_STORAGE,
    }
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": node_conditions(now, (previous or {}).get("conditions")),
        "addresses": [
            {"type": "InternalIP", "address": HOLLOW_IP},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": name,
            "systemUUID": name,
            "bootID": name,
            "kernelVersion": "hollow",
            "osImage": "setpoint hollow node",
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def node_object(name: str, shape: NodeShape, now: float) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(name, shape),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": node_status(name, shape, now),
    }


# ------------------------------------------------------------------ pods


class PodTiming(NamedTuple):
    """When a hollow pod's containers start and (for finishing pods) exit, in epoch
    seconds, and the exit code; ``finish_at`` is None for pods that run forever."""

    seen_at: float
    start_at: float
    finish_at: float | None
    exit_code: int


def _float_annotation(annotations: dict[str, str], key: str, default: float) -> float:
    try:
        return max(0.0, float(annotations.get(key, default)))
    except (TypeError, ValueError):
        return default


def pod_timing(pod: Obj, seen_at: float) -> PodTiming:
    """Read the sim annotations and restart policy. Times already written in the pod's
    status (startTime, a container's startedAt) win over ``seen_at``, so that a restarted
    hollow node reaches the same answer."""
    annotations = pod["metadata"].get("annotations") or {}
    status = pod.get("status") or {}
    seen_at = parse_epoch(status.get("startTime")) or seen_at
    start_at = seen_at + _float_annotation(annotations, ANNOTATION_START_DELAY, 0.0)
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        started = parse_epoch(
            (state.get("running") or state.get("terminated") or {}).get("startedAt")
        )
        if started is not None and str(cs.get("containerID", "")).startswith("hollow://"):
            start_at = started
            break
    restart_policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    exit_code: int | None = None
    if ANNOTATION_EXIT_CODE in annotations:
        try:
            exit_code = int(annotations[ANNOTATION_EXIT_CODE])
        except ValueError:
            exit_code = 1
    elif restart_policy in ("Never", "OnFailure"):
        exit_code = 0
    if exit_code is None:
        return PodTiming(seen_at, start_at, None, 0)
    run = _float_annotation(annotations, ANNOTATION_RUN_SECONDS, DEFAULT_RUN_SECONDS)
    return PodTiming(seen_at, start_at, start_at + run, exit_code)


def _container_status(pod: Obj, container: Obj, state: Obj, *, ready: bool) -> Obj:
    uid = pod["metadata"].get("uid", "")
    image = container.get("image", "")
    return {
        "name": container["name"],
        "image": image,
        "imageID": f"hollow://{image}",
        "containerID": f"hollow://{uid}/{container['name']}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }


def _terminated(code: int, started: float, finished: float) -> Obj:
    """A hollow container's end: ``Completed`` for exit code 0, ``Error`` otherwise."""
    reason = "Completed" if code == 0 else "Error"
    return {"terminated": terminated_state(code, reason, started, finished)}


def desired_pod_status(pod: Obj, timing: PodTiming, now: float) -> Obj:
    """The status a hollow kubelet reports for ``pod`` at ``now``: Pending while its start
    delay lasts, then Running and Ready, then (for finishing pods) Succeeded/Failed.
    Fields the hollow node does not own (qosClass, nominatedNodeName, ...) are kept."""
    spec = pod.get("spec") or {}
    current = pod.get("status") or {}
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    status = json_copy(current)
    status.update(
        {
            "hostIP": HOLLOW_IP,
            "hostIPs": [{"ip": HOLLOW_IP}],
            "podIP": HOLLOW_IP,
            "podIPs": [{"ip": HOLLOW_IP}],
            "startTime": rfc3339(timing.seen_at),
        }
    )
    scheduled = next(
        (c for c in current.get("conditions") or [] if c.get("type") == "PodScheduled"),
        pod_condition("PodScheduled", True, timing.seen_at),
    )
    if now < timing.start_at:
        state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        phase, ready, started_at = "Pending", False, timing.seen_at
        not_ready = "ContainersNotReady"
    elif timing.finish_at is None or now < timing.finish_at:
        state = {"running": {"startedAt": rfc3339(timing.start_at)}}
        phase, ready, started_at = "Running", True, timing.start_at
        not_ready = ""
    else:
        state = _terminated(timing.exit_code, timing.start_at, timing.finish_at)
        phase = "Succeeded" if timing.exit_code == 0 else "Failed"
        ready, started_at = False, timing.finish_at
        not_ready = "PodCompleted" if timing.exit_code == 0 else "PodFailed"
    status["phase"] = phase
    unready = f"containers with unready status: [{' '.join(c['name'] for c in containers)}]"
    status["conditions"] = [
        pod_condition(
            "PodReadyToStartContainers", phase != "Succeeded" and phase != "Failed", timing.seen_at
        ),
        pod_condition("Initialized", True, timing.seen_at),
        pod_condition(
            "Ready", ready, started_at, reason=not_ready, message="" if ready else unready
        ),
        pod_condition(
            "ContainersReady", ready, started_at, reason=not_ready, message="" if ready else unready
        ),
        scheduled,
        *others_conditions(current.get("conditions")),
    ]
    status["containerStatuses"] = [
        _container_status(pod, c, json_copy(state), ready=ready) for c in containers
    ]
    if init_containers:
        done = _terminated(0, timing.seen_at, timing.seen_at)
        status["initContainerStatuses"] = [
            _container_status(pod, c, json_copy(done), ready=True) for c in init_containers
        ]
    return status


def terminated_pod_status(pod: Obj, timing: PodTiming, now: float) -> Obj:
    """The status of a pod whose hollow containers were stopped because the pod is being
    deleted: every container exited 0 at ``now``."""
    ended = PodTiming(timing.seen_at, min(timing.start_at, now), now, 0)
    if timing.finish_at is not None and timing.finish_at <= now:
        ended = timing  # it had already finished on its own
    return desired_pod_status(pod, ended, max(now, ended.finish_at or now))


def next_transition(timing: PodTiming, now: float) -> float | None:
    """Seconds until the pod's status next changes by itself, or None."""
    for at in (timing.start_at, timing.finish_at):
        if at is not None and now < at:
            return at - now
    return None


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _resource_version(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


# ------------------------------------------------------------------ the nodes


class HollowNodes:
    """``count`` hollow nodes named ``<name_prefix>-<i>``; :meth:`run` until :meth:`stop`.

    The caller owns ``client`` (and closes it)."""

    def __init__(
        self,
        client: ApiClient,
        *,
        count: int,
        name_prefix: str = "hollow-node",
        cpu: str = "4",
        memory: str = "16Gi",
        pods: int = 110,
        labels: dict[str, str] | None = None,
        lease_duration_seconds: int = NODE_LEASE_DURATION_SECONDS,
        heartbeat_seconds: float | None = None,
        node_status_report_seconds: float = NODE_STATUS_REPORT_SECONDS,
        max_concurrent_calls: int = 32,
        join: bool = False,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.client = client
        # join=True: each hollow node gets its own system:node:<name> credential (``client``
        # only joins), and its writes go as that node over the shared connections
        self.join = join
        self._clients: dict[str, ApiClient] = {}
        self.clock = clock
        self.names = [f"{name_prefix}-{i}" for i in range(count)]
        self._ours = frozenset(self.names)
        self.shape = NodeShape(cpu, memory, pods, tuple(sorted((labels or {}).items())))
        self.lease_duration_seconds = lease_duration_seconds
        self.heartbeat_seconds = heartbeat_seconds or renew_interval(lease_duration_seconds)
        self.node_status_report_seconds = node_status_report_seconds
        self._calls = asyncio.Semaphore(max_concurrent_calls)
        self._workers = max_concurrent_calls
        self._nodes: dict[str, Obj] = {}
        self._leases: dict[str, Obj] = {}
        self._seen_at: dict[str, float] = {}  # pod uid -> when first seen bound to us
        self._written: dict[str, int] = {}  # pod uid -> resourceVersion of our last write
        self.pods = Informer(client, PODS)
        self.node_informer = Informer(client, NODES)
        self._lost: set[str] = set()  # our nodes seen marked lost, to re-post at next renewal
        self.queue: WorkQueue[str] = WorkQueue("hollow-pods", qps=1000.0, burst=10000)
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False

    # ------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Register the nodes, then heartbeat and run their pods until :meth:`stop`."""
        self._running = True
        tasks: list[asyncio.Task[Any]] = []
        try:
            if self.join:
                await self._join()
                if self.names:  # the shared informers read as the first node
                    self.pods.client = self.node_informer.client = self._as(self.names[0])
            await asyncio.gather(*(self._register(name) for name in self.names))
            await asyncio.gather(*(self._renew_lease(name) for name in self.names))
            self.pods.add_handler(
                EventHandler(
                    on_add=self._on_pod,
                    on_update=lambda old, new: self._on_pod(new),
                    on_delete=self._on_pod_deleted,
                )
            )
            tasks.append(self.pods.start())
            self.node_informer.add_handler(
                EventHandler(on_add=self._on_node, on_update=lambda old, new: self._on_node(new))
            )
            tasks.append(self.node_informer.start())
            tasks += [
                asyncio.create_task(run_worker(self.queue, self.reconcile_pod), name=f"hollow-{i}")
                for i in range(self._workers)
            ]
            tasks += [
                asyncio.create_task(self._lease_loop(name), name=f"lease-{name}")
                for name in self.names
            ]
            tasks.append(asyncio.create_task(self._node_status_loop(), name="node-status"))
            await self.pods.wait_synced(timeout=60)
            self.ready.set()
            await run_until_stopped(self._stopping, tasks)
        finally:
            self.queue.shut_down()
            await cancel_all(tasks)
            self._running = False
            self._stopped.set()

    async def stop(self) -> None:
        """Stop heartbeats and pod work; Nodes and Leases stay (the node lifecycle
        controller notices the missing heartbeats, as for a dead kubelet)."""
        self._stopping.set()
        if self._running:
            await self._stopped.wait()

    async def wait_ready(self, timeout: float = 60) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._calls:
            return await call()

    # ------------------------------------------------------------- nodes

    async def _join(self) -> None:
        """Each hollow node's own credential, a thousand nodes a request."""
        for start in range(0, len(self.names), JOIN_BATCH):
            batch = self.names[start : start + JOIN_BATCH]
            async with self._calls:
                tokens = await request_node_credentials(self.client, batch)
            for name in batch:
                self._clients[name] = self.client.with_token(tokens[name])

    def _as(self, node_name: str) -> ApiClient:
        """The client that speaks for ``node_name``."""
        return self._clients.get(node_name, self.client)

    async def _register(self, name: str) -> None:
        """Create the Node, or take over an existing one (restart) and refresh it."""
        now = self.clock.time()
        try:
            self._nodes[name] = await self._call(
                lambda: self._as(name).create(NODES, node_object(name, self.shape, now))
            )
            return
        except ApiError as exc:
            if not exc.is_already_exists:
                raise

        async def take_over() -> Obj:
            node = await self._as(name).get(NODES, name)
            labels = node_labels(name, self.shape)
            if any(node["metadata"].get("labels", {}).get(k) != v for k, v in labels.items()):
                node["metadata"].setdefault("labels", {}).update(labels)
                node = await self.client.update(NODES, node)
            node["status"] = node_status(name, self.shape, self.clock.time(), node.get("status"))
            return await self.client.update_status(NODES, node)

        self._nodes[name] = await self._call(lambda: self._as(name).retry_on_conflict(take_over))

    async def _post_node_status(self, name: str) -> None:
        previous = (self._nodes.get(name) or {}).get("status")
        status = node_status(name, self.shape, self.clock.time(), previous)
        self._nodes[name] = await self._call(
            lambda: self._as(name).patch(NODES, name, {"status": status}, subresource="status")
        )

    async def _node_status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.node_status_report_seconds)
            results = await asyncio.gather(
                *(self._post_node_status(name) for name in self.names), return_exceptions=True
            )
            for name, result in zip(self.names, results, strict=True):
                if isinstance(result, ApiError | OSError | TimeoutError):
                    log.warning("hollow node %s: status update failed: %s", name, result)
                elif isinstance(result, BaseException):
                    raise result

    # ------------------------------------------------------------- leases

    async def _renew_lease(self, name: str) -> None:
        last = self._leases.get(name)
        self._leases[name] = await self._call(
            lambda: renew_lease(
                self._as(name),
                self._nodes[name],
                last,
                duration_seconds=self.lease_duration_seconds,
                now=self.clock.time(),
            )
        )

    def _on_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        if name in self._ours and marked_lost(node):
            self._lost.add(name)

    async def _lease_loop(self, name: str) -> None:
        while True:
            interval = self.heartbeat_seconds * (1 + random.uniform(0, LEASE_JITTER))
            await asyncio.sleep(interval)
            try:
                await self._renew_lease(name)
                if name in self._lost:
                    await self._post_node_status(name)
                    self._lost.discard(name)
            except (ApiError, OSError, TimeoutError) as exc:
                log.warning("hollow node %s: lease renewal failed: %s", name, exc)

    # ------------------------------------------------------------- pods

    def _on_pod(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self._ours:
            self.queue.add(object_key(pod))

    def _on_pod_deleted(self, pod: Obj) -> None:
        uid = pod["metadata"].get("uid", "")
        self._seen_at.pop(uid, None)
        self._written.pop(uid, None)

    async def reconcile_pod(self, key: str) -> None:
        """Drive one bound pod's status toward what its hollow containers would report."""
        pod = self.pods.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") not in self._ours:
            return
        uid = pod["metadata"].get("uid", "")
        now = self.clock.time()
        timing = pod_timing(pod, self._seen_at.setdefault(uid, now))
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(pod, timing, now)
            return
        if is_terminal(pod):
            return
        wait = next_transition(timing, now)
        if wait is not None:
            self.queue.add_after(key, wait + 0.001)
        await self._write_status(pod, desired_pod_status(pod, timing, now))

    async def _write_status(self, pod: Obj, status: Obj) -> None:
        """Write ``status`` unless it is already there. While the cache is older than our
        last write, wait: the write would only conflict, and its watch event brings the
        pod back to the queue."""
        uid = pod["metadata"].get("uid", "")
        if same_status(status, pod.get("status") or {}):
            return
        written = self._written.get(uid)
        if written is not None and _resource_version(pod) < written:
            return
        update = dict(pod)
        update["status"] = status
        try:
            node = (pod.get("spec") or {}).get("nodeName", "")
            result = await self._call(lambda: self._as(node).update_status(PODS, update))
        except ApiError as exc:
            if exc.is_conflict or exc.is_not_found:
                return  # a newer version (or the deletion) is on its way through the watch
            raise
        self._written[uid] = _resource_version(result)

    async def _terminate(self, pod: Obj, timing: PodTiming, now: float) -> None:
        """Stop the pod's hollow containers, then confirm the graceful deletion."""
        meta = pod["metadata"]
        if not is_terminal(pod):
            await self._write_status(pod, terminated_pod_status(pod, timing, now))
        try:
            await self._call(
                lambda: self._as((pod.get("spec") or {}).get("nodeName", "")).delete(
                    PODS,
                    meta["name"],
                    meta.get("namespace"),
                    grace_period_seconds=0,
                    preconditions_uid=meta.get("uid"),
                )
            )
        except ApiError as exc:
            if not (exc.is_not_found or exc.is_conflict):
                raise
