"""``setpoint controller-manager``: every controller and the scheduler, under one leader election.

This is where the controllers and the scheduler are put together (the ``cmd/`` of
kube-controller-manager and kube-scheduler in one): :func:`build_components` instantiates the
enabled ones, :class:`ControllerManager` runs them while it holds the lease. ``setpoint
server`` starts one as a child process (unless ``--disable-controller-manager``); with several
servers only the holder of the ``kube-system/setpoint-controller-manager`` Lease reconciles,
the others wait to take over. All controllers share one set of informers, one API connection
pool and one event queue, as kube-controller-manager shares its informer factory and event
broadcaster. Events are queued and written by one sender at up to ``EVENT_QPS`` (burst
``EVENT_BURST``): a burst of reconciles is not slowed by, nor doubled in API writes by, the
events it records (see :class:`~setpoint.client.events.QueuedEventRecorder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from setpoint.cli.process import Runnable
from setpoint.client.api import ApiClient, ClientConfig
from setpoint.client.events import EventRecorder, QueuedEventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.leaderelection import LeaderElectionConfig, LeaderElector

log = logging.getLogger(__name__)

LEASE_NAME = "setpoint-controller-manager"
# Event writes per second for all controllers and the scheduler together. Kubernetes' event
# writes are bounded by each component's client QPS (kube-controller-manager 20,
# kube-scheduler 50); setpoint's controllers are not client-throttled, so events get a
# limit of their own.
EVENT_QPS = 100.0
EVENT_BURST = 200


@dataclass(frozen=True)
class ManagerConfig:
    run_controllers: bool = True
    run_scheduler: bool = True
    job_backoff_initial: float = 1.0
    job_backoff_max: float = 60.0


def build_components(
    informers: SharedInformers,
    recorder: EventRecorder,
    config: ManagerConfig,
    *,
    binding_client: ApiClient | None = None,
) -> list[Runnable]:
    """Instantiate the enabled components; each requests its informers as it is built. The
    scheduler binds through ``binding_client`` when given."""
    components: list[Any] = []
    if config.run_controllers:
        from setpoint.controllers.cronjob import CronJobController
        from setpoint.controllers.daemonset import DaemonSetController
        from setpoint.controllers.deployment import DeploymentController
        from setpoint.controllers.garbagecollector import GarbageCollector
        from setpoint.controllers.job import JobController
        from setpoint.controllers.namespace import NamespaceController
        from setpoint.controllers.replicaset import ReplicaSetController

        components += [
            ReplicaSetController(informers, recorder.for_component("replicaset-controller")),
            DeploymentController(informers, recorder.for_component("deployment-controller")),
            DaemonSetController(informers, recorder.for_component("daemonset-controller")),
            JobController(
                informers,
                recorder.for_component("job-controller"),
                backoff_initial=config.job_backoff_initial,
                backoff_max=config.job_backoff_max,
            ),
            CronJobController(informers, recorder.for_component("cronjob-controller")),
            # both find the resources they cover through discovery, as kube-controller-manager
            GarbageCollector(informers, recorder.for_component("garbage-collector-controller")),
            NamespaceController(informers, recorder.for_component("namespace-controller")),
        ]
    if config.run_scheduler:
        from setpoint.scheduler.scheduler import Scheduler

        # scheduling events come "From default-scheduler", as in Kubernetes
        components.append(
            Scheduler(informers, recorder.for_component("default-scheduler"), client=binding_client)
        )
    return components


class ControllerManager:
    def __init__(self, client_config: ClientConfig, config: ManagerConfig) -> None:
        self.client_config = client_config
        self.config = config
        self.identity = f"{socket.gethostname()}_{uuid.uuid4()}"

    async def run(self) -> None:
        client = ApiClient(self.client_config, connections=64)
        elector = LeaderElector(
            client, LeaderElectionConfig(lease_name=LEASE_NAME, identity=self.identity)
        )
        try:
            await elector.run(lambda: self._lead(client))
        finally:
            await elector.release()
            await client.close()

    async def _lead(self, client: ApiClient) -> None:
        informers = SharedInformers(client)
        recorder = QueuedEventRecorder(
            client, "setpoint-controller-manager", qps=EVENT_QPS, burst=EVENT_BURST
        )
        binding_client = None
        if self.config.run_scheduler:
            from setpoint.scheduler.scheduler import BINDINGS_IN_FLIGHT

            binding_client = ApiClient(self.client_config, connections=BINDINGS_IN_FLIGHT)
        components = build_components(
            informers, recorder, self.config, binding_client=binding_client
        )
        sender = asyncio.create_task(recorder.run(), name="controller-manager-events")
        informers.start()
        try:
            await informers.wait_synced()
            log.info("controller manager running %d components", len(components))
            await asyncio.gather(*(c.run() for c in components))
        finally:
            for component in components:
                try:
                    await component.stop()
                except Exception:  # stopping must not mask why we stopped
                    log.exception("stopping %r failed", component)
            await informers.stop()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            if binding_client is not None:
                await binding_client.close()
