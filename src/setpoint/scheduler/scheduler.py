"""The scheduler: binds each pending pod to a node, as kube-scheduler does.

It watches pods and nodes through the shared informers. Pods that are ours — no
``spec.nodeName`` yet, not terminating, no scheduling gates, ``spec.schedulerName`` equal to
this scheduler's name (``default-scheduler`` when unset) — go on the
:class:`~setpoint.scheduler.queue.SchedulingQueue`. Pods addressed to another scheduler are
left alone, Pending, for that scheduler.

The scheduler's **cache** is a :class:`~setpoint.scheduler.plugins.ClusterSnapshot`, kept
current incrementally from informer events: a node event rebuilds that node's NodeInfo, a
bound pod is added to its node's totals, a deleted or finished pod is subtracted. A
decision therefore costs the nodes it looks at, not the pods in the cluster.

Decisions are sequential, bindings are concurrent (the scheduling cycle and the binding
cycle of Kubernetes). When a pod is placed, it is **assumed** on its node at once — added to
the snapshot before the API has even heard of the binding — so the next decision, a
microsecond later, already sees the node's resources as taken. The binding (``POST
pods/NAME/binding``) then runs as its own task, up to :data:`BINDINGS_IN_FLIGHT` at once, on
a connection pool of its own (kube-scheduler is a process with its own connection); if it
fails, the assumption is forgotten and the pod retried after a backoff. When the pod informer
reports the pod bound, the informer's copy replaces the assumed one.

When no node fits, the scheduler records a ``Warning FailedScheduling`` event with
Kubernetes' summary (``0/3 nodes are available: ...``), sets the pod's PodScheduled
condition to False with reason Unschedulable and the same message, and parks the pod in the
queue's unschedulable pool until a node is added or changes, a pod goes away, or the
periodic flush retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from setpoint.client.api import NODES, PODS, ApiClient, ApiError, Obj
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, by_node_name, object_key
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.timestamps import format_time
from setpoint.scheduler.plugins import (
    ClusterSnapshot,
    Decision,
    PodInfo,
    fit_error_message,
    schedule_pod,
)
from setpoint.scheduler.queue import (
    ALL_PLUGINS,
    ASSIGNED_POD_CHANGED,
    POD_DELETED,
    QueueClosed,
    QueuedPod,
    SchedulingQueue,
)

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")


def responsible_for(pod: Obj, scheduler_name: str) -> bool:
    """Is this a pending pod this scheduler should place?"""
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or pod["metadata"].get("deletionTimestamp"):
        return False
    if (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) != scheduler_name:
        return False
    if spec.get("schedulingGates"):
        return False
    return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


def counts_on_node(pod: Obj) -> bool:
    """Does this pod take room on its node? (Bound and not finished.)"""
    return (
        bool((pod.get("spec") or {}).get("nodeName"))
        and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
    )


def scheduling_relevant(node: Obj) -> tuple[Any, ...]:
    """The parts of a node whose change may let an unschedulable pod fit."""
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return (
        node["metadata"].get("labels"),
        spec.get("taints"),
        spec.get("unschedulable"),
        status.get("allocatable"),
        ready,
    )


def unschedulable_condition(pod: Obj, message: str, now: str) -> list[Obj] | None:
    """The pod's conditions with PodScheduled=False/Unschedulable (a transition at ``now``),
    or None when they already say exactly that."""
    conditions = list((pod.get("status") or {}).get("conditions") or [])
    for i, condition in enumerate(conditions):
        if condition.get("type") != "PodScheduled":
            continue
        if (
            condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
            and condition.get("message") == message
        ):
            return None
        changed = dict(condition)
        if condition.get("status") != "False":
            changed["lastTransitionTime"] = now
        changed.update(status="False", reason="Unschedulable", message=message)
        changed.setdefault("lastTransitionTime", now)
        changed["lastProbeTime"] = None
        conditions[i] = changed
        return conditions
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
    )
    return conditions


# Bindings in flight at once. kube-scheduler bounds them only through its client and the
# apiserver's --max-mutating-requests-inflight (200 by default). Under load a binding's round
# trip is ~100-250 ms here (the server is busy with the writes of the very pods being
# placed), so the number in flight is what sets the binding rate: with 64 the scheduler
# benchmark bound ~550 pods/s, with 256 ~950-1,050 (docs/benchmarks.md).
BINDINGS_IN_FLIGHT = 256


class Scheduler:
    """Places pending pods on nodes. ``run`` until ``stop``. Bindings and status writes go
    through ``client`` (the informers' client when not given)."""

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        client: ApiClient | None = None,
        parallel_bindings: int = BINDINGS_IN_FLIGHT,
        flush_interval: float = 1.0,
        record_scheduled_events: bool = True,
        seed: int | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.informers = informers
        self.clock = clock
        self.client: ApiClient = client or informers.client
        self.recorder = recorder
        self.scheduler_name = scheduler_name
        self.queue = SchedulingQueue()
        self.snapshot = ClusterSnapshot()
        self.record_scheduled_events = record_scheduled_events
        self._assumed: dict[str, PodInfo] = {}
        self._rng = random.Random(seed)
        self._next_start = 0
        self._flush_interval = flush_interval
        self._slots = asyncio.Semaphore(parallel_bindings)
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: list[asyncio.Task[None]] = []
        self.scheduled = 0
        self.failed_attempts = 0
        self.pods = informers.informer(PODS, indexers={"by_node_name": by_node_name})
        self.nodes = informers.informer(NODES)
        self.nodes.add_handler(
            EventHandler(
                on_add=self._on_node_add,
                on_update=self._on_node_update,
                on_delete=self._on_node_delete,
            )
        )
        self.pods.add_handler(
            EventHandler(
                on_add=self._on_pod_add,
                on_update=self._on_pod_update,
                on_delete=self._on_pod_delete,
            )
        )

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        self.informers.start()
        await asyncio.gather(self.pods.wait_synced(), self.nodes.wait_synced())
        self._main = [
            asyncio.create_task(self._scheduling_loop(), name="scheduler-loop"),
            asyncio.create_task(self._flush_loop(), name="scheduler-flush"),
        ]
        try:
            await asyncio.gather(*self._main)
        finally:
            for task in self._main:
                task.cancel()

    async def stop(self) -> None:
        self.queue.close()
        tasks = [*self._main, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _scheduling_loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                queued = await self.queue.pop()
            except QueueClosed:
                self._slots.release()
                return
            try:
                self._schedule_one(queued)
            except Exception:
                log.exception("scheduling %s failed", queued.key)
                self._slots.release()
                self.queue.add_backoff(queued)
            # Let informers and bindings run between decisions.
            await asyncio.sleep(0)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            self.queue.flush()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler task %s failed", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------ one pod

    def _schedule_one(self, queued: QueuedPod) -> None:
        """The scheduling cycle: decide, assume, and hand the binding to a task."""
        pod = self.pods.get(queued.key) or queued.pod
        if not responsible_for(pod, self.scheduler_name) or queued.key in self._assumed:
            self.queue.done(queued.key)
            self._slots.release()
            return
        decision = schedule_pod(pod, self.snapshot, start=self._next_start, rng=self._rng)
        if decision.num_nodes:
            self._next_start = (self._next_start + decision.evaluated) % decision.num_nodes
        if decision.node is None:
            self._slots.release()
            self._unschedulable(queued, pod, decision)
            return
        info = PodInfo.from_pod(pod, decision.node)
        self._assumed[queued.key] = info
        self.snapshot.add_pod(info)
        self._spawn(self._bind(queued, pod, decision.node, info), f"bind-{queued.key}")

    async def _bind(self, queued: QueuedPod, pod: Obj, node: str, info: PodInfo) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.client.request(
                "POST", PODS.path(meta.get("namespace"), meta["name"], "binding"), body=binding
            )
        except (ApiError, OSError, TimeoutError) as exc:
            self._forget(queued.key, info)
            if isinstance(exc, ApiError) and exc.is_not_found:
                self.queue.done(queued.key)
            else:
                log.info("binding %s to %s failed: %s", queued.key, node, exc)
                self.queue.add_backoff(queued)
                await self.recorder.record(
                    pod, "Warning", "FailedScheduling", f"Binding rejected: {exc}"
                )
            return
        finally:
            self._slots.release()
        self.queue.done(queued.key)
        self.scheduled += 1
        if self.record_scheduled_events:
            await self.recorder.record(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta.get('namespace')}/{meta['name']} to {node}",
            )

    def _forget(self, key: str, info: PodInfo) -> None:
        if self._assumed.get(key) is info:
            del self._assumed[key]
            if self.snapshot.pods.get(key) is info:
                self.snapshot.remove_pod(key)

    def _unschedulable(self, queued: QueuedPod, pod: Obj, decision: Decision) -> None:
        self.failed_attempts += 1
        policy = str((pod.get("spec") or {}).get("preemptionPolicy") or "")
        message = fit_error_message(decision.num_nodes, decision.statuses, preemption_policy=policy)
        rejected = {s.plugin for s in decision.statuses.values()} or {"NoNodes"}
        self.queue.add_unschedulable(queued, rejected)
        self._spawn(self._report_unschedulable(pod, message), f"unschedulable-{queued.key}")

    async def _report_unschedulable(self, pod: Obj, message: str) -> None:
        await self.recorder.record(pod, "Warning", "FailedScheduling", message)
        conditions = unschedulable_condition(pod, message, format_time(self.clock.now()))
        if conditions is None:
            return
        meta = pod["metadata"]
        try:
            await self.client.patch(
                PODS,
                meta["name"],
                {"status": {"conditions": conditions}},
                meta.get("namespace"),
                subresource="status",
            )
        except (ApiError, OSError, TimeoutError) as exc:
            log.info("could not update PodScheduled of %s: %s", meta["name"], exc)

    # ------------------------------------------------------------ pod events

    def _on_pod_add(self, pod: Obj) -> None:
        key = object_key(pod)
        if counts_on_node(pod):
            self._bound(key, pod)
            self.queue.move_all(ASSIGNED_POD_CHANGED)
        elif responsible_for(pod, self.scheduler_name):
            self.queue.add(key, pod)

    def _on_pod_update(self, old: Obj, pod: Obj) -> None:
        key = object_key(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            if counts_on_node(pod):
                newly = not counts_on_node(old) or old["metadata"].get("labels") != pod[
                    "metadata"
                ].get("labels")
                if newly or old.get("spec") != pod.get("spec") or key not in self.snapshot.pods:
                    self._bound(key, pod)
                else:  # a status change: what the snapshot holds of the pod still stands
                    self._assumed.pop(key, None)
                if newly:
                    self.queue.move_all(ASSIGNED_POD_CHANGED)
            elif self.snapshot.remove_pod(key) is not None:
                self._assumed.pop(key, None)
                self.queue.move_all(POD_DELETED)  # finished: its room is free
            self.queue.delete(key)
        elif responsible_for(pod, self.scheduler_name):
            self.queue.update(key, pod)
        else:
            self.queue.delete(key)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = object_key(pod)
        self.queue.delete(key)
        self._assumed.pop(key, None)
        if self.snapshot.remove_pod(key) is not None:
            self.queue.move_all(POD_DELETED)

    def _bound(self, key: str, pod: Obj) -> None:
        """The informer shows the pod on a node: its copy replaces any assumption."""
        self._assumed.pop(key, None)
        self.snapshot.add_pod(PodInfo.from_pod(pod))

    # ------------------------------------------------------------ node events

    def _on_node_add(self, node: Obj) -> None:
        self.snapshot.set_node(node)
        self.queue.move_all(ALL_PLUGINS)

    def _on_node_update(self, old: Obj, node: Obj) -> None:
        self.snapshot.set_node(node)
        if scheduling_relevant(old) != scheduling_relevant(node):
            self.queue.move_all(ALL_PLUGINS)

    def _on_node_delete(self, node: Obj) -> None:
        self.snapshot.remove_node(node["metadata"]["name"])
