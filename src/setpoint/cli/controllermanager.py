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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from setpoint.cli.flags import parse_duration
from setpoint.cli.process import Runnable
from setpoint.client.api import ApiClient, ClientConfig
from setpoint.client.events import EventRecorder, QueuedEventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.leaderelection import LeaderElectionConfig, LeaderElector
from setpoint.controllers.nodeipam import DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_CIDR_MASK_SIZE
from setpoint.controllers.nodeipam.cidrset import CIDRSet, CIDRSetError
from setpoint.controllers.nodelifecycle import NodeLifecycleSettings
from setpoint.controllers.podgc.controller import DEFAULT_TERMINATED_POD_THRESHOLD

log = logging.getLogger(__name__)

LEASE_NAME = "setpoint-controller-manager"
# Event writes per second for all controllers and the scheduler together. Kubernetes' event
# writes are bounded by each component's client QPS (kube-controller-manager 20,
# kube-scheduler 50); setpoint's controllers are not client-throttled, so events get a
# limit of their own.
EVENT_QPS = 100.0
EVENT_BURST = 200


@dataclass(frozen=True)
class NodeIPAMSettings:
    """``--cluster-cidr`` cut into ``--node-cidr-mask-size`` subnets, one per Node."""

    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE


@dataclass(frozen=True)
class ManagerConfig:
    run_controllers: bool = True
    run_scheduler: bool = True
    job_backoff_initial: float = 1.0
    job_backoff_max: float = 60.0
    node_lifecycle: NodeLifecycleSettings = field(default_factory=NodeLifecycleSettings)
    terminated_pod_gc_threshold: int = DEFAULT_TERMINATED_POD_THRESHOLD
    node_ipam: NodeIPAMSettings | None = field(default_factory=NodeIPAMSettings)


# ------------------------------------------------------------------ node lifecycle flags
# `setpoint controller-manager` takes them, and `setpoint server` passes them on to the
# controller manager it runs; spelt as kube-controller-manager spells them.

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = NodeLifecycleSettings()


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    return parse_duration(value)


_NODE_LIFECYCLE_OPTIONS = (
    click.option(
        "--node-monitor-period",
        default="1s",
        show_default=True,
        callback=_duration,
        help="How often node heartbeats are checked (Kubernetes: 5s).",
    ),
    click.option(
        "--node-monitor-grace-period",
        default="15s",
        show_default=True,
        callback=_duration,
        help="How long a node may go without a heartbeat before it is marked lost "
        "(Ready Unknown) and tainted unreachable (Kubernetes: 50s).",
    ),
    click.option(
        "--node-startup-grace-period",
        default="30s",
        show_default=True,
        callback=_duration,
        help="The same for a node that never reported Ready (Kubernetes: 1m).",
    ),
    click.option(
        "--node-eviction-rate",
        type=click.FloatRange(0),
        default=_DEFAULTS.eviction_rate,
        show_default=True,
        help="Nodes per second tainted NoExecute in a healthy zone (Kubernetes: 0.1).",
    ),
    click.option(
        "--secondary-node-eviction-rate",
        type=click.FloatRange(0),
        default=_DEFAULTS.secondary_eviction_rate,
        show_default=True,
        help="Nodes per second in a large zone in partial disruption (Kubernetes: 0.01).",
    ),
    click.option(
        "--unhealthy-zone-threshold",
        type=click.FloatRange(0, 1),
        default=_DEFAULTS.unhealthy_zone_threshold,
        show_default=True,
        help="Fraction of not-Ready nodes (at least 3) that puts a zone in partial disruption.",
    ),
    click.option(
        "--large-cluster-size-threshold",
        type=click.IntRange(0),
        default=_DEFAULTS.large_cluster_size_threshold,
        show_default=True,
        help="Zones up to this size stop evictions altogether in partial disruption.",
    ),
    click.option(
        "--terminated-pod-gc-threshold",
        type=click.IntRange(0),
        default=DEFAULT_TERMINATED_POD_THRESHOLD,
        show_default=True,
        help="Finished pods kept before PodGC deletes the oldest (0: never).",
    ),
)


def node_lifecycle_options(command: F) -> F:
    """Add the node lifecycle, PodGC and node IPAM flags to a click command."""
    for option in reversed(_NODE_LIFECYCLE_OPTIONS + _NODE_IPAM_OPTIONS):
        command = option(command)
    return command


# ------------------------------------------------------------------ node IPAM flags

_NODE_IPAM_OPTIONS = (
    click.option(
        "--allocate-node-cidrs/--no-allocate-node-cidrs",
        default=True,
        show_default=True,
        help="Give every Node a spec.podCIDR from --cluster-cidr, from which its agent "
        "addresses its pods (Kubernetes: off unless set).",
    ),
    click.option(
        "--cluster-cidr",
        default=DEFAULT_CLUSTER_CIDR,
        show_default=True,
        help="The pods' address range, cut into one subnet per Node.",
    ),
    click.option(
        "--node-cidr-mask-size",
        type=click.IntRange(1, 128),
        default=DEFAULT_NODE_CIDR_MASK_SIZE,
        show_default=True,
        help="Prefix length of each Node's subnet (/24: 254 pods per node).",
    ),
)


def node_ipam_config(flags: dict[str, Any]) -> NodeIPAMSettings | None:
    """The node IPAM settings of those flags (None: not allocating); a range that cannot
    be cut as asked is a usage error."""
    if not flags.pop("allocate_node_cidrs"):
        flags.pop("cluster_cidr")
        flags.pop("node_cidr_mask_size")
        return None
    settings = NodeIPAMSettings(flags.pop("cluster_cidr"), flags.pop("node_cidr_mask_size"))
    try:
        CIDRSet(settings.cluster_cidr, settings.node_cidr_mask_size)
    except (CIDRSetError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-cidr") from None
    return settings


def node_ipam_args(settings: NodeIPAMSettings | None) -> list[str]:
    """The same settings as `setpoint controller-manager` flags."""
    if settings is None:
        return ["--no-allocate-node-cidrs"]
    return [
        f"--cluster-cidr={settings.cluster_cidr}",
        f"--node-cidr-mask-size={settings.node_cidr_mask_size}",
    ]


def node_lifecycle_config(flags: dict[str, Any]) -> tuple[NodeLifecycleSettings, int]:
    """The settings those flags (as click passed them) give, and the PodGC threshold."""
    settings = NodeLifecycleSettings(
        monitor_period=flags["node_monitor_period"],
        grace_period=flags["node_monitor_grace_period"],
        startup_grace_period=flags["node_startup_grace_period"],
        eviction_rate=flags["node_eviction_rate"],
        secondary_eviction_rate=flags["secondary_node_eviction_rate"],
        unhealthy_zone_threshold=flags["unhealthy_zone_threshold"],
        large_cluster_size_threshold=flags["large_cluster_size_threshold"],
    )
    return settings, int(flags["terminated_pod_gc_threshold"])


def node_lifecycle_args(settings: NodeLifecycleSettings, terminated_threshold: int) -> list[str]:
    """The same settings as `setpoint controller-manager` flags."""
    return [
        f"--node-monitor-period={settings.monitor_period}s",
        f"--node-monitor-grace-period={settings.grace_period}s",
        f"--node-startup-grace-period={settings.startup_grace_period}s",
        f"--node-eviction-rate={settings.eviction_rate}",
        f"--secondary-node-eviction-rate={settings.secondary_eviction_rate}",
        f"--unhealthy-zone-threshold={settings.unhealthy_zone_threshold}",
        f"--large-cluster-size-threshold={settings.large_cluster_size_threshold}",
        f"--terminated-pod-gc-threshold={terminated_threshold}",
    ]


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
        from setpoint.controllers.clusterroleaggregation import ClusterRoleAggregationController
        from setpoint.controllers.cronjob import CronJobController
        from setpoint.controllers.daemonset import DaemonSetController
        from setpoint.controllers.deployment import DeploymentController
        from setpoint.controllers.disruption import DisruptionController
        from setpoint.controllers.endpoints import EndpointsController
        from setpoint.controllers.endpointslice import EndpointSliceController
        from setpoint.controllers.garbagecollector import GarbageCollector
        from setpoint.controllers.job import JobController
        from setpoint.controllers.namespace import NamespaceController
        from setpoint.controllers.nodeipam import NodeIPAMController
        from setpoint.controllers.nodelifecycle import NodeLifecycleController
        from setpoint.controllers.podgc import PodGCController
        from setpoint.controllers.replicaset import REPLICATION_CONTROLLER, ReplicaSetController
        from setpoint.controllers.resourcequota import ResourceQuotaController
        from setpoint.controllers.serviceaccount import (
            RootCACertPublisher,
            ServiceAccountsController,
        )
        from setpoint.controllers.statefulset import StatefulSetController
        from setpoint.controllers.tainteviction import TaintEvictionController

        components += [
            ReplicaSetController(informers, recorder.for_component("replicaset-controller")),
            ReplicaSetController(
                informers,
                recorder.for_component("replication-controller"),
                kind=REPLICATION_CONTROLLER,
            ),
            DeploymentController(informers, recorder.for_component("deployment-controller")),
            DaemonSetController(informers, recorder.for_component("daemonset-controller")),
            StatefulSetController(informers, recorder.for_component("statefulset-controller")),
            JobController(
                informers,
                recorder.for_component("job-controller"),
                backoff_initial=config.job_backoff_initial,
                backoff_max=config.job_backoff_max,
            ),
            CronJobController(informers, recorder.for_component("cronjob-controller")),
            DisruptionController(informers, recorder.for_component("controllermanager")),
            # both find the resources they cover through discovery, as kube-controller-manager
            GarbageCollector(informers, recorder.for_component("garbage-collector-controller")),
            NamespaceController(informers, recorder.for_component("namespace-controller")),
            # events "From node-controller" and "taint-eviction-controller", as upstream's
            NodeLifecycleController(
                informers,
                recorder.for_component("node-controller"),
                settings=config.node_lifecycle,
            ),
            TaintEvictionController(informers, recorder.for_component("taint-eviction-controller")),
            PodGCController(
                informers,
                recorder.for_component("pod-garbage-collector"),
                terminated_pod_threshold=config.terminated_pod_gc_threshold,
            ),
            EndpointSliceController(informers, recorder.for_component("endpoint-slice-controller")),
            EndpointsController(informers, recorder.for_component("endpoint-controller")),
            ResourceQuotaController(informers, recorder.for_component("resourcequota-controller")),
            ClusterRoleAggregationController(
                informers, recorder.for_component("clusterrole-aggregation-controller")
            ),
            ServiceAccountsController(
                informers, recorder.for_component("serviceaccount-controller")
            ),
            # the CA this process trusts the API server by (its kubeconfig's) is the cluster's
            RootCACertPublisher(
                informers,
                recorder.for_component("root-ca-cert-publisher"),
                root_ca=informers.client.config.ca_pem.decode(),
            ),
        ]
        if config.node_ipam is not None:
            # events "From cidrAllocator", as upstream's range allocator
            components.append(
                NodeIPAMController(
                    informers,
                    recorder.for_component("cidrAllocator"),
                    cluster_cidr=config.node_ipam.cluster_cidr,
                    node_cidr_mask_size=config.node_ipam.node_cidr_mask_size,
                )
            )
    if config.run_scheduler:
        from setpoint.scheduler.scheduler import Scheduler

        # scheduling events come "From default-scheduler", as in Kubernetes
        components.append(
            Scheduler(informers, recorder.for_component("default-scheduler"), client=binding_client)
        )
    return components


class ControllerManager:
    def __init__(
        self,
        client_config: ClientConfig,
        config: ManagerConfig,
        *,
        scheduler_client_config: ClientConfig | None = None,
    ) -> None:
        self.client_config = client_config
        # the scheduler's own identity for its writes (bindings, pod status); its reads come
        # from the informers every component shares
        self.scheduler_client_config = scheduler_client_config
        self.config = config
        self.identity = f"{socket.gethostname()}_{uuid.uuid4()}"

    async def run(self) -> None:
        """Stand by with warm caches, lead once elected, and return when leadership is lost
        (the process then exits and is started afresh, as kube-controller-manager is).

        The informers start before the election, not once it is won: a standby then holds
        the cluster's state already, and a successor reconciles as soon as it takes the
        lease instead of listing everything first. Its components are built too, so what
        changes while it waits is already queued for them."""
        client = ApiClient(self.client_config, connections=64)
        elector = LeaderElector(
            client, LeaderElectionConfig(lease_name=LEASE_NAME, identity=self.identity)
        )
        informers = SharedInformers(client)
        recorder = QueuedEventRecorder(
            client, "setpoint-controller-manager", qps=EVENT_QPS, burst=EVENT_BURST
        )
        binding_client = None
        if self.config.run_scheduler:
            from setpoint.scheduler.scheduler import BINDINGS_IN_FLIGHT

            binding_client = ApiClient(
                self.scheduler_client_config or self.client_config,
                connections=BINDINGS_IN_FLIGHT,
            )
        components = build_components(
            informers, recorder, self.config, binding_client=binding_client
        )
        informers.start()
        try:
            await elector.run(lambda: self._lead(informers, recorder, components))
        finally:
            await elector.release()
            await informers.stop()
            if binding_client is not None:
                await binding_client.close()
            await client.close()

    async def _lead(
        self,
        informers: SharedInformers,
        recorder: QueuedEventRecorder,
        components: list[Runnable],
    ) -> None:
        sender = asyncio.create_task(recorder.run(), name="controller-manager-events")
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
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
