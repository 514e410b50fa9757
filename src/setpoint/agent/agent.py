"""The node agent: setpoint's kubelet.

:class:`NodeAgent` makes one host a node of the cluster. It registers the Node (capacity
read from the host: CPUs, memory from ``/proc/meminfo``, disk of its data dir, 110 pods),
renews the node's Lease in ``kube-node-lease`` every ``heartbeat_seconds`` (the cheap
heartbeat the node lifecycle controller watches; by default a quarter of the lease duration)
and re-posts the Node's conditions every minute, or at once when it sees its Node marked lost
(Ready ``Unknown``) by the node lifecycle controller while it is in fact alive.

It runs the pods bound to the node. An informer follows exactly those pods (field selector
``spec.nodeName=<node>``) and a work queue reconciles each pod, level-triggered: start the
app containers the runtime does not have yet, translate what the runtime says about them
into the pod's status (:mod:`setpoint.agent.pods`) and write that status when, and only
when, it changed. The processes themselves belong to the per-node supervisor
(:mod:`setpoint.agent.runtime`), which restarts them by the pod's restart policy without
the agent; the agent follows the supervisor's change stream and re-reconciles the pod a
change belongs to.

A lost supervisor (killed, crashed) is a node fault, handled as the kubelet handles a
container runtime that is down: the moment its change stream breaks and it no longer
answers, the node reports ``Ready=False`` (reason ``KubeletNotReady``, message "container
runtime is down") and pod syncs are skipped, while the agent starts a new supervisor at
once. That one re-adopts the containers still running and records the exits it missed, so
each container that died in the gap is restarted by its restart policy and reported
(restart count, last state); then the node is ready again and every pod is reconciled.

A pod with a ``deletionTimestamp`` is stopped: every container runs its preStop hook, gets
SIGTERM, SIGKILL after the pod's grace period, is removed from the runtime, and the deletion
is confirmed with ``gracePeriodSeconds=0`` and a uid precondition, as the kubelet ends
graceful deletion.
Containers whose pod no longer exists (deleted while the agent was down or cut off, or
forcibly) are stopped and removed, at start and whenever a pod leaves the cache (a watch
event, or a relist that no longer lists it), with the 1 s grace period the kubelet gives
such orphans.

A bad pod never takes the agent down: reconcile errors are retried with backoff and
configuration errors are reported in the pod's status and as events.

Init containers run one after another, each to success (retried unless the pod's
restartPolicy is Never), before the app containers start. Probes and lifecycle hooks
belong to a :class:`~setpoint.agent.probes.ProbeManager`: reconcile tells it which container
instances run, it reports each container's ``started``/``ready`` and wakes the pod's key when
a result changes. Sidecars (init containers with ``restartPolicy: Always``) start in
order with the init containers, each once the previous one started, keep running next to
the app containers, and are stopped after them, last one first. Ephemeral containers
(added to a running pod through ``pods/ephemeralcontainers``, as ``kubectl debug`` does) start
as soon as the sandbox is up, before the init containers, are never restarted, and are
reported in ``ephemeralContainerStatuses``; they count for neither the pod's phase nor its
readiness. Not yet: images (a
container without ``command`` runs its ``args`` as the command, with a Normal
``ImageEntrypointUnknown`` event; one with neither is a configuration error). Volumes,
mount namespaces and cgroup limits belong to the pod sandbox (:mod:`setpoint.agent.sandbox`),
set up before the first container starts and torn down once the last is removed.

With a pod network the agent also serves cluster DNS for its pods
(:mod:`setpoint.agent.clusterdns`): informers on every Service and EndpointSlice feed an
index of the cluster's names, answered on UDP and TCP port 53 of the bridge address (the
first address of the node's podCIDR), which each pod's resolv.conf names. The data
dir is private to the agent's user (:mod:`setpoint.meta.privatefiles`), tightened at start if it
already exists.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import platform
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from setpoint.agent import lifecycle, network, shutdown
from setpoint.agent import pods as podspec
from setpoint.agent.clusterdns.records import ClusterRecords
from setpoint.agent.clusterdns.resolvconf import parse_resolv_conf
from setpoint.agent.clusterdns.server import DNSServer, upstreams_from
from setpoint.agent.pressure import measure_host, meminfo_bytes, node_pressure
from setpoint.agent.probes import ProbeManager
from setpoint.agent.proxy.proxier import PROXY_MODES, NodeProxy
from setpoint.agent.remotecommand import ContainerContext
from setpoint.agent.runtime import (
    ContainerState,
    Runtime,
    RuntimeUnavailableError,
    SupervisorError,
    stdin_fifo,
)
from setpoint.agent.sandbox import DNSSettings, Sandboxes
from setpoint.agent.server import DEFAULT_KUBELET_PORT, KubeletServer, PodView
from setpoint.agent.tokens import SERVICE_ACCOUNT_MOUNT_PATH
from setpoint.client.api import (
    CONFIGMAPS,
    ENDPOINTSLICES,
    NODES,
    PODS,
    SECRETS,
    SERVICES,
    ApiClient,
    ApiError,
    Obj,
    retry_while_unavailable,
)
from setpoint.client.events import QueuedEventRecorder
from setpoint.client.informer import EventHandler, Informer, object_key
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
from setpoint.meta.privatefiles import private_dir
from setpoint.node.podstatus import same_status

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.37.0-setpoint"
RUNTIME_VERSION = "setpoint-supervisor://1"
MAX_PODS = 110
NODE_STATUS_REPORT_SECONDS = 60.0
CONFIG_RETRY_SECONDS = 10.0
SHUTDOWN_KILL_WAIT_SECONDS = 15.0  # after the last group: a kill's SIGKILL, and the status
ORPHANS_KEY = ""  # the work item "remove containers of pods that are gone"
# the kubelet kills what a pod it no longer knows left running with a 1 s grace period
# (HandlePodCleanups: PodTerminationGracePeriodSecondsOverride)
ORPHAN_GRACE_SECONDS = 1.0
RUNTIME_DOWN_MESSAGE = "container runtime is down"  # the kubelet's runtimeErrors()
RUNTIME_RETRY_MIN, RUNTIME_RETRY_MAX = 0.1, 5.0  # between attempts to start a supervisor
POD_NETWORK_MODES = ("auto", "host")
HOST_ONLY = "the agent runs with --pod-network=host"
POD_CIDR_WAIT_SECONDS = 10.0
ROUTE_SYNC_INTERVAL = 0.2  # at most five route syncs a second, however many Nodes change
DNS_RETRY_SECONDS = 5.0  # between attempts to bind the node's DNS server
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


# ------------------------------------------------------------------ the host


def host_capacity(data_dir: Path) -> dict[str, str]:
    disk = os.statvfs(data_dir)
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{(meminfo_bytes('MemTotal') or 0) // 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{disk.f_blocks * disk.f_frsize // 1024}Ki",
    }


def host_arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def node_labels(name: str) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": host_arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": host_arch(),
    }


def node_status(
    name: str,
    data_dir: Path,
    host_ip: str,
    now: float,
    previous: Obj | None,
    *,
    kubelet_port: int = DEFAULT_KUBELET_PORT,
    not_ready: str | None = None,
) -> Obj:
    capacity = host_capacity(data_dir)
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": node_conditions(
            now,
            (previous or {}).get("conditions"),
            node_pressure(measure_host(data_dir)),
            not_ready=not_ready,
        ),
        "addresses": [
            {"type": "InternalIP", "address": host_ip},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": _read_first("/etc/machine-id") or name,
            "systemUUID": name,
            "bootID": _read_first("/proc/sys/kernel/random/boot_id") or name,
            "kernelVersion": platform.release(),
            "osImage": platform.platform(),
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": host_arch(),
        },
    }


def _read_first(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip()
    return ""


# ------------------------------------------------------------------ the agent


class NodeAgent:
    """Runs the pods bound to ``node_name`` in ``runtime``; :meth:`run` until :meth:`stop`.

    The caller owns ``client`` and ``runtime`` (and closes them)."""

    def __init__(
        self,
        client: ApiClient,
        *,
        node_name: str,
        data_dir: Path,
        runtime: Runtime,
        host_ip: str = "127.0.0.1",
        heartbeat_seconds: float | None = None,
        lease_duration_seconds: int = NODE_LEASE_DURATION_SECONDS,
        workers: int = 64,
        container_settings: podspec.NodeContainerSettings | None = None,
        kubelet_port: int = 0,
        kubelet_client_ca: bytes | None = None,
        shutdown_grace_period: float = 0.0,
        shutdown_grace_period_critical_pods: float = 0.0,
        pod_max_pids: int = -1,
        pod_network: str = "host",
        proxy_mode: str = "none",
        dns: DNSSettings | None = None,
        dns_port: int = 53,
        default_run_as_user: int | None = None,
        masked_paths: tuple[Path, ...] = (),
        clock: Clock = REAL_CLOCK,
    ) -> None:
        if pod_network not in POD_NETWORK_MODES:
            raise ValueError(f"pod_network must be one of {', '.join(POD_NETWORK_MODES)}")
        if proxy_mode not in PROXY_MODES:
            raise ValueError(f"proxy_mode must be one of {', '.join(PROXY_MODES)}")
        if not 0 <= shutdown_grace_period_critical_pods <= shutdown_grace_period:
            raise ValueError(
                "the shutdown grace period for critical pods must lie between 0 and the "
                "shutdown grace period"
            )
        self.client = client
        self.clock = clock
        self.node_name = node_name
        self.data_dir = data_dir
        self.runtime = runtime
        self.host_ip = host_ip
        self.heartbeat_seconds = heartbeat_seconds or renew_interval(lease_duration_seconds)
        self.lease_duration_seconds = lease_duration_seconds
        self.workers = workers
        self.container_settings = container_settings or podspec.NodeContainerSettings()
        self.shutdown_grace_period = shutdown_grace_period
        self.shutdown_grace_period_critical_pods = shutdown_grace_period_critical_pods
        # events are written behind the pod workers' backs, like the kubelet's broadcaster
        self.recorder = QueuedEventRecorder(client, "kubelet", host=node_name, clock=clock)
        why_not = network.pod_network_unavailable() if pod_network == "auto" else HOST_ONLY
        self.network = network.PodNetwork(data_dir) if not why_not else None
        self.sandboxes = Sandboxes(
            client,
            self.recorder,
            data_dir=data_dir,
            pod_max_pids=pod_max_pids,
            pod_network=self.network,
            no_pod_network=why_not,
            dns=dns,
            host_ip=host_ip,
            default_run_as_user=default_run_as_user,
            masked_paths=masked_paths,
        )
        # every Service and EndpointSlice, for the node proxy and cluster DNS
        self.services = Informer(client, SERVICES)
        self.endpoint_slices = Informer(client, ENDPOINTSLICES)
        # cluster DNS (agent/clusterdns): with a pod network the node serves it on its bridge
        self.dns_records = ClusterRecords(self.sandboxes.dns.cluster_domain)
        self.dns_port = dns_port
        self.dns_server: DNSServer | None = None
        self._dns_address_changed = asyncio.Event()
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={node_name}")
        # our own Node, to see the node lifecycle controller mark it lost
        self.node_informer = Informer(client, NODES, field_selector=f"metadata.name={node_name}")
        # every Node, for routes to their pods (only with a pod network)
        self.all_nodes = Informer(client, NODES) if self.network is not None else None
        self._routes_changed = asyncio.Event()
        self.proxy = NodeProxy(
            self.services,
            self.endpoint_slices,
            data_dir=data_dir,
            host_ip=host_ip,
            mode=proxy_mode,
        )
        self._repost_status = asyncio.Event()
        self.queue: WorkQueue[str] = WorkQueue("agent-pods", qps=100.0, burst=1000)
        self.base_env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH}
        self.probes = ProbeManager(
            runtime=runtime,
            recorder=self.recorder,
            wake=self.queue.add,
            fetch_sources=self._fetch_sources,
            base_env=self.base_env,
            assigned_ports=self.sandboxes.assigned_ports,
            pod_ip=self.pod_ip,
            host_ip=host_ip,
            enter_namespace=self.sandboxes.enter,
            clock=clock,
        )
        self.ready = asyncio.Event()
        self._node: Obj = {}
        self._lease: Obj | None = None
        self._runtime_down: str | None = None  # why the node is not ready, while it is not
        self._states: dict[str, ContainerState] = {}  # container id -> latest state
        self._config_errors: dict[str, str] = {}  # container id -> message
        self._reported: dict[str, tuple[str, int]] = {}  # container id -> (state, restarts)
        self._keys: dict[str, str] = {}  # pod uid -> pod key
        self._written: dict[str, Obj] = {}  # pod uid -> status we last wrote
        self._deadlines: dict[str, float] = {}  # pod uid -> active deadline requeued for
        self._terminating: set[str] = set()  # pod uids being (or done) torn down
        self._shutdown: asyncio.Task[None] | None = None  # the graceful node shutdown
        self._shut_down: set[str] = set()  # pod uids it terminated
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        # `kubectl logs` through the API server: only the API server's client certificate,
        # signed by the cluster CA (the one we trust the API server by), gets in
        self.kubelet = KubeletServer(
            PodView(
                self.pods.get,
                self._states,
                self._config_errors,
                data_dir,
                context=self._container_context,
                stdin_fifo=lambda cid: stdin_fifo(runtime.state_dir, cid),
                netns=self.sandboxes.network_namespace,
            ),
            client_ca_pem=kubelet_client_ca or client.config.ca_pem,
            host=host_ip,
            port=kubelet_port,
            cert_dir=data_dir / "pki",
            node_name=node_name,
            clock=clock,
        )

    # ------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Register the node, then heartbeat and run its pods until :meth:`stop`."""
        self._running = True
        tasks: list[asyncio.Task[Any]] = []
        try:
            tasks.append(asyncio.create_task(self.recorder.run(), name="agent-events"))
            # private, also if it existed: secrets live below (see setpoint.meta.privatefiles)
            await asyncio.to_thread(private_dir, self.data_dir)
            await asyncio.to_thread(private_dir, self.data_dir / "pods")
            await self.kubelet.start()  # first: the Node publishes its port
            await self._register_until_done()
            await self._wait_for_pod_cidr()
            for state in await self.runtime.list():
                self._states[state.id] = state
            self.probes.adopt(self._states.values())
            self.pods.add_handler(
                EventHandler(
                    on_add=self._on_pod,
                    on_update=self._on_pod_updated,
                    on_delete=self._on_pod_deleted,
                )
            )
            tasks.append(self.pods.start())
            self.node_informer.add_handler(
                EventHandler(on_add=self._on_node, on_update=lambda old, new: self._on_node(new))
            )
            tasks.append(self.node_informer.start())
            if self.all_nodes is not None:
                self.all_nodes.add_handler(
                    EventHandler(
                        on_add=lambda n: self._routes_changed.set(),
                        on_update=lambda old, new: self._routes_changed.set(),
                        on_delete=lambda n: self._routes_changed.set(),
                    )
                )
                tasks.append(self.all_nodes.start())
                tasks.append(asyncio.create_task(self._routes_loop(), name="agent-routes"))
                tasks.append(self._serve_cluster_dns())
            if self.all_nodes is not None or self.proxy.requested != "none":
                tasks += [self.services.start(), self.endpoint_slices.start()]
            if self.proxy.requested != "none":
                tasks.append(asyncio.create_task(self.proxy.run(), name="agent-proxy"))
            await self.pods.wait_synced(timeout=60)
            await self._remove_orphans()
            tasks += [
                asyncio.create_task(run_worker(self.queue, self.reconcile), name=f"agent-{i}")
                for i in range(self.workers)
            ]
            tasks.append(asyncio.create_task(self._lease_loop(), name="agent-lease"))
            tasks.append(asyncio.create_task(self._node_status_loop(), name="agent-node"))
            tasks.append(asyncio.create_task(self._follow_runtime(), name="agent-runtime"))
            self.ready.set()
            await run_until_stopped(self._stopping, tasks)
        finally:
            self.queue.shut_down()
            await cancel_all(tasks)
            await self.proxy.close()
            await self.probes.close()
            await self.sandboxes.close()
            if self.dns_server is not None:
                await self.dns_server.close()
            await self.kubelet.stop()
            self._running = False
            self._stopped.set()

    async def stop(self) -> None:
        """Stop the agent. Without a shutdown grace period (the default) the containers
        keep running under the supervisor, so restarting or upgrading the agent restarts
        nothing; with one, the node is shut down gracefully first (:meth:`_shut_down_node`)."""
        try:
            if self.shutdown_grace_period > 0 and self.ready.is_set():
                if self._shutdown is None and not self._stopping.is_set():
                    self._shutdown = asyncio.create_task(self._shut_down_node(), name="shutdown")
                if self._shutdown is not None:
                    await self._shutdown
        finally:
            self._stopping.set()
            if self._running:
                await self._stopped.wait()

    async def _shut_down_node(self) -> None:
        """The kubelet's graceful node shutdown (:mod:`setpoint.agent.shutdown`): report the
        node not ready, start no more containers, then kill the pods group by group, each
        reported ``Failed`` for the shutdown once its containers are gone."""
        log.info("node %s: shutting down its pods", self.node_name)
        await self._post_node_status()
        groups = shutdown.shutdown_groups(
            self.pods.objects(),
            grace_period=self.shutdown_grace_period,
            critical_grace_period=self.shutdown_grace_period_critical_pods,
        )
        kills: list[asyncio.Task[None]] = []
        for group in groups:
            started = [
                asyncio.create_task(self._kill_for_shutdown(pod, group)) for pod in group.pods
            ]
            kills += started
            await asyncio.wait(started, timeout=group.grace_seconds)
        # A kill outlasts its group only by its SIGKILL; processes must not outlive the agent.
        if kills:
            await asyncio.wait(kills, timeout=SHUTDOWN_KILL_WAIT_SECONDS)

    async def _kill_for_shutdown(self, pod: Obj, group: shutdown.ShutdownGroup) -> None:
        uid, grace = pod["metadata"]["uid"], shutdown.pod_grace_seconds(pod, group)
        self._shut_down.add(uid)

        async def kill(cid: str) -> None:
            state = self._states.get(cid)
            if state is not None and state.state != "exited":
                stopped = await self._kill_container(pod, cid, grace)
                if stopped is not None:
                    self._states[cid] = stopped

        await self._in_stop_order(uid, pod, kill)
        try:
            await self._write_status(self.pods.get(object_key(pod)) or pod)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("node %s: shut down pod %s: %s", self.node_name, object_key(pod), exc)

    # ------------------------------------------------------------- node and lease

    async def _register_until_done(self) -> None:
        """Register the Node and take its Lease, trying again while the API cannot answer
        (its servers restarting or unreachable, etcd without a quorum), as the kubelet keeps
        retrying its registration. A refusal still stops the agent."""

        async def register() -> None:
            await self._register()
            await self._renew_lease()

        await retry_while_unavailable(register, what=f"register node {self.node_name}", log=log)

    async def _register(self) -> None:
        """Create the Node, or take over an existing one and refresh its status."""
        name, now = self.node_name, self.clock.time()
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": node_labels(name)},
            "spec": {},
            "status": node_status(
                name, self.data_dir, self.host_ip, now, None, kubelet_port=self.kubelet.port
            ),
        }
        try:
            self._node = await self.client.create(NODES, node)
            return
        except ApiError as exc:
            if not exc.is_already_exists:
                raise

        async def take_over() -> Obj:
            current = await self.client.get(NODES, name)
            labels = current["metadata"].setdefault("labels", {})
            if any(labels.get(k) != v for k, v in node_labels(name).items()):
                labels.update(node_labels(name))
                current = await self.client.update(NODES, current)
            current["status"] = node_status(
                name,
                self.data_dir,
                self.host_ip,
                self.clock.time(),
                current.get("status"),
                kubelet_port=self.kubelet.port,
            )
            return await self.client.update_status(NODES, current)

        self._node = await self.client.retry_on_conflict(take_over)

    async def _renew_lease(self) -> None:
        self._lease = await renew_lease(
            self.client,
            self._node,
            self._lease,
            duration_seconds=self.lease_duration_seconds,
            now=self.clock.time(),
        )

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            server = self.client.server_url
            try:
                if len(self.client.servers.urls) > 1:
                    # another server could answer: one that keeps a renewal waiting for a
                    # whole heartbeat interval is abandoned, as the kubelet does
                    async with asyncio.timeout(self.heartbeat_seconds):
                        await self._renew_lease()
                else:
                    await self._renew_lease()
            except TimeoutError:
                log.warning(
                    "node %s: API server %s did not answer a lease renewal in %.1fs; "
                    "closing its connections and moving on",
                    self.node_name,
                    server,
                    self.heartbeat_seconds,
                )
                await self.client.abandon(server)
            except (ApiError, OSError) as exc:
                log.warning("node %s: lease renewal failed: %s", self.node_name, exc)

    def _on_node(self, node: Obj) -> None:
        if marked_lost(node):
            self._repost_status.set()
        if self.network is not None:
            self.network.set_pod_cidr((node.get("spec") or {}).get("podCIDR"))
            self._dns_address_changed.set()

    # ------------------------------------------------------------- cluster DNS

    def _serve_cluster_dns(self) -> asyncio.Task[Any]:
        """Follow Services and EndpointSlices into the DNS index and serve it on the
        bridge address (:mod:`setpoint.agent.clusterdns`); the caller starts the informers."""
        records = self.dns_records
        self.services.add_handler(
            EventHandler(
                on_add=records.set_service,
                on_update=lambda old, new: records.set_service(new),
                on_delete=records.delete_service,
            )
        )
        self.endpoint_slices.add_handler(
            EventHandler(
                on_add=records.set_slice,
                on_update=lambda old, new: records.set_slice(new),
                on_delete=records.delete_slice,
            )
        )
        return asyncio.create_task(self._dns_loop(), name="agent-dns")

    async def _dns_loop(self) -> None:
        """Serve DNS on the first address of the node's podCIDR, moving with it; a bind
        that fails (the port taken) is logged and tried again."""
        while True:
            await self._dns_address_changed.wait()
            self._dns_address_changed.clear()
            subnet = self.network.subnet if self.network is not None else None
            address = str(network.gateway(subnet)) if subnet is not None else None
            current = self.dns_server
            if current is not None and current.host == address:
                continue
            if current is not None:
                await current.close()
                self.dns_server = None
            if address is None:
                continue
            settings = self.sandboxes.dns
            try:
                text = await asyncio.to_thread(settings.resolv_conf.read_text, errors="replace")
            except OSError:
                text = ""
            server = DNSServer(
                self.dns_records,
                host=address,
                port=self.dns_port,
                upstreams=upstreams_from(parse_resolv_conf(text).nameservers),
            )
            try:
                await server.start()
            except OSError as exc:
                log.warning("cluster DNS: cannot serve on %s:%d: %s", address, self.dns_port, exc)
                self._queue_dns_retry()
                continue
            self.dns_server = server

    def _queue_dns_retry(self) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(DNS_RETRY_SECONDS, self._dns_address_changed.set)

    async def _wait_for_pod_cidr(self) -> None:
        """With a pod network, give node IPAM ``POD_CIDR_WAIT_SECONDS`` to give the new Node
        its podCIDR before pods are run (without one they run in the node's network)."""
        if self.network is None:
            return
        deadline = time.monotonic() + POD_CIDR_WAIT_SECONDS
        while True:
            self._on_node(self._node)
            if self.network.subnet is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
            with contextlib.suppress(ApiError, OSError, TimeoutError):
                self._node = await self.client.get(NODES, self.node_name)
        if self.network.subnet is None:
            log.warning(
                "node %s: no spec.podCIDR after %.0fs (is node IPAM on?): pods run in the "
                "node's network until it has one",
                self.node_name,
                POD_CIDR_WAIT_SECONDS,
            )

    async def _routes_loop(self) -> None:
        """Route to other nodes' pods: again whenever a Node changes (debounced)."""
        assert self.network is not None and self.all_nodes is not None
        while True:
            await self._routes_changed.wait()
            self._routes_changed.clear()
            routes = network.other_node_routes(self.all_nodes.objects(), self.node_name)
            try:
                await self.network.sync_routes(routes)
            except (OSError, network.NetworkError) as exc:
                log.warning("node %s: routes to other nodes: %s", self.node_name, exc)
            await asyncio.sleep(ROUTE_SYNC_INTERVAL)

    def pod_ip(self, pod: Obj) -> str:
        """The pod's own IP, or the node's for a pod in the node's network."""
        return self.sandboxes.pod_ip(pod) or self.host_ip

    async def _node_status_loop(self) -> None:
        """Re-post the Node's status every minute, within a heartbeat of a pressure
        condition changing, and at once when the Node was marked lost."""
        reported, pressure = time.monotonic(), node_pressure(measure_host(self.data_dir))
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._repost_status.wait(),
                    min(self.heartbeat_seconds, NODE_STATUS_REPORT_SECONDS),
                )
            lost, previous = self._repost_status.is_set(), pressure
            self._repost_status.clear()
            pressure = node_pressure(measure_host(self.data_dir))
            recent = time.monotonic() - reported < NODE_STATUS_REPORT_SECONDS
            if not lost and pressure == previous and recent:
                continue
            reported = time.monotonic()
            await self._post_node_status()

    async def _post_node_status(self) -> None:
        status = node_status(
            self.node_name,
            self.data_dir,
            self.host_ip,
            self.clock.time(),
            self._node.get("status"),
            kubelet_port=self.kubelet.port,
            not_ready=(
                shutdown.NODE_SHUTTING_DOWN if self._shutdown is not None else self._runtime_down
            ),
        )
        try:
            self._node = await self.client.patch(
                NODES, self.node_name, {"status": status}, subresource="status"
            )
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("node %s: status update failed: %s", self.node_name, exc)

    # ------------------------------------------------------------- following the runtime

    async def _follow_runtime(self) -> None:
        """Keep ``_states`` current from the supervisor's change stream and requeue the
        pod of each change; when the stream ends, reach a supervisor again (starting one
        if it died) and subscribe again."""
        while True:
            try:
                async for state in self.runtime.events():
                    self._observe(state)
            except (SupervisorError, ConnectionError, OSError, ValueError) as exc:
                log.warning("node %s: runtime event stream broke: %s", self.node_name, exc)
            await self._reattach_runtime()

    async def _reattach_runtime(self) -> None:
        """After the change stream ended: if the supervisor still answers (it only cut off
        a slow reader), re-list. If it is gone, report the node not ready at once and start
        a new one, retrying with backoff until one answers; then re-list (the new supervisor
        has re-adopted the live containers and recorded the exits of the others), report the
        node ready and reconcile every pod."""
        lost = not await self.runtime.responsive()
        down: asyncio.Task[None] | None = None
        if lost:
            log.warning(
                "node %s: %s; starting a new supervisor", self.node_name, RUNTIME_DOWN_MESSAGE
            )
            self._runtime_down = RUNTIME_DOWN_MESSAGE
            # in parallel: an API that is slow to answer must not delay the new supervisor
            down = asyncio.create_task(self._post_node_status(), name="agent-runtime-down")
        delay = RUNTIME_RETRY_MIN
        try:
            while True:
                try:
                    await self.runtime.reconnect()
                    states = await self.runtime.list()
                    break
                except (SupervisorError, ConnectionError, OSError, TimeoutError) as exc:
                    log.warning("node %s: no supervisor: %s", self.node_name, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RUNTIME_RETRY_MAX)
            if down is not None:
                await down  # Ready=False is posted before Ready=True
        finally:
            if down is not None and not down.done():  # the agent is stopping
                down.cancel()
        listed = {state.id for state in states}
        for cid in [cid for cid in self._states if cid not in listed]:
            self._states.pop(cid, None)  # gone with its state dir: the pod starts it anew
        for state in states:
            self._observe(state)
        if lost:
            self._runtime_down = None
            await self._post_node_status()
            for pod in self.pods.objects():
                self.queue.add(object_key(pod))

    def _observe(self, state: ContainerState) -> None:
        uid = podspec.pod_uid_of(state.id)
        if uid in self._terminating:
            return
        self._states[state.id] = state
        key = self._keys.get(uid)
        if key is not None:
            self.queue.add(key)

    # ------------------------------------------------------------- pods

    def _on_pod(self, pod: Obj) -> None:
        key = object_key(pod)
        self._keys[pod["metadata"].get("uid", "")] = key
        self.queue.add(key)

    def _on_pod_updated(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            # deleted and made again under the same name while the watch was away (a relist
            # showed only the new one): the old pod's containers are orphans now
            self.queue.add(ORPHANS_KEY)

    def _on_pod_deleted(self, pod: Obj) -> None:
        # the pod may already be back under the same key with a new uid: sweep by uid
        self.queue.add(ORPHANS_KEY)

    async def reconcile(self, key: str) -> None:
        """Bring one pod's containers and status in line with its spec. A failure is
        recorded on the pod as an event and the key retried with backoff. While the runtime
        is down pods are not synced (the kubelet's "Skipping pod synchronization"): every
        pod is reconciled again once a supervisor answers."""
        if self._runtime_down is not None:
            return
        try:
            await self._reconcile(key)
        except RuntimeUnavailableError:
            raise  # the node's Ready condition says it; no event per pod
        except Exception as exc:
            pod = self.pods.get(key)
            if pod is not None:
                message = f"setpoint agent could not sync pod: {exc}"
                await self.recorder.record(pod, "Warning", "FailedSync", message)
            raise

    async def _reconcile(self, key: str) -> None:
        if self._shutdown is not None:
            return  # the node is going down: nothing starts, the shutdown writes statuses
        pod = self.pods.get(key)
        if key == ORPHANS_KEY or pod is None:
            await self._remove_orphans()
            return
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(pod)
            return
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            if lifecycle.deadline_exceeded(pod, self.clock.time()):
                await self._stop_for_deadline(pod)
            else:
                await self._start_missing_containers(pod)
                await self._stop_sidecars_when_done(pod)
                self._requeue_at_deadline(key, pod)
        # status first: what the user waits for is the pod's state, the events follow
        await self._write_status(pod)
        await self._record_container_events(pod)

    def _requeue_at_deadline(self, key: str, pod: Obj) -> None:
        """Look at the pod again the moment its ``activeDeadlineSeconds`` runs out."""
        deadline, uid = lifecycle.active_deadline(pod), pod["metadata"]["uid"]
        if deadline is not None and self._deadlines.get(uid) != deadline:
            self._deadlines[uid] = deadline
            self.queue.add_after(key, deadline - self.clock.time())

    async def _stop_for_deadline(self, pod: Obj) -> None:
        """The pod ran out of its ``activeDeadlineSeconds``: kill its containers within its
        grace period (they are not restarted); the status written next says why."""
        uid = pod["metadata"]["uid"]
        live = [
            cid
            for cid, state in self._states.items()
            if podspec.pod_uid_of(cid) == uid and state.state != "exited"
        ]
        if not live:
            return
        message = lifecycle.DEADLINE_MESSAGE
        await self.recorder.record(pod, "Normal", lifecycle.DEADLINE_REASON, message)
        grace = podspec.termination_grace_seconds(pod)

        async def stop(cid: str) -> None:
            state = await self._kill_container(pod, cid, grace)
            if state is not None:
                self._states[cid] = state

        await asyncio.gather(*(stop(cid) for cid in live))

    async def _stop_sidecars_when_done(self, pod: Obj) -> None:
        """A pod that does not restart its app containers completes once they have all
        exited for good: what still runs is then stopped as the kubelet terminates such a
        pod, ephemeral containers at once and sidecars last, last one first (only then can
        the pod reach Succeeded or Failed)."""
        spec = pod.get("spec") or {}
        sidecars, ephemeral = podspec.sidecars(pod), spec.get("ephemeralContainers") or []
        if podspec.restart_policy(pod) == "Always" or not (sidecars or ephemeral):
            return
        uid = pod["metadata"]["uid"]
        app_states = [
            self._states.get(podspec.container_id(uid, c["name"]))
            for c in spec.get("containers") or []
        ]
        if not all(state is not None and state.state == "exited" for state in app_states):
            return
        grace = podspec.termination_grace_seconds(pod)

        async def stop(container: Obj) -> None:
            cid = podspec.container_id(uid, container["name"])
            state = self._states.get(cid)
            if state is not None and state.state != "exited":
                stopped = await self._kill_container(pod, cid, grace)
                if stopped is not None:
                    self._states[cid] = stopped

        await asyncio.gather(*(stop(c) for c in ephemeral))
        for sidecar in reversed(sidecars):
            await stop(sidecar)

    async def _kill_container(
        self, pod: Obj, cid: str, grace_seconds: float
    ) -> ContainerState | None:
        """The kubelet's killContainer: a Killing event, the preStop hook within the grace
        period, then SIGTERM and SIGKILL after what is left of it. The container is not
        restarted afterwards; None if the runtime no longer has it."""
        name = cid.partition("/")[2]
        await self.recorder.record(pod, "Normal", "Killing", f"Stopping container {name}")
        grace = await self.probes.pre_stop(pod, name, self._states.get(cid), grace_seconds)
        with contextlib.suppress(LookupError, SupervisorError):
            return await self.runtime.stop_container(cid, grace_seconds=grace)
        return None

    async def _start_missing_containers(self, pod: Obj) -> None:
        """Run the init containers one after another, each to success, then start every
        app container the runtime does not have yet."""
        uid = pod["metadata"]["uid"]
        spec = pod.get("spec") or {}
        setup = await self.sandboxes.ensure(pod)  # volumes and pod cgroup; FailedMount
        if setup.recheck_after is not None:
            self.queue.add_after(object_key(pod), setup.recheck_after)
        if not setup.ready:
            return
        # ephemeral containers first, as the kubelet starts them: they may debug the others
        for container in spec.get("ephemeralContainers") or []:
            if podspec.container_id(uid, container["name"]) not in self._states:
                await self._start_container(pod, container, init=False, ephemeral=True)
        for container in spec.get("initContainers") or []:
            state = self._states.get(podspec.container_id(uid, container["name"]))
            if state is None:
                await self._start_container(pod, container, init=True)
                return
            if podspec.is_sidecar(container):
                probed = self.probes.status(pod, self._pod_states(pod)).get(container["name"])
                if not podspec.sidecar_started(state, probed):
                    return  # the next one starts once this sidecar runs (and its probe says so)
            elif not podspec.init_succeeded(state):
                return  # still running, or retried by the supervisor, or failed for good
        for container in spec.get("containers") or []:
            if podspec.container_id(uid, container["name"]) not in self._states:
                await self._start_container(pod, container, init=False)

    async def _start_container(
        self, pod: Obj, container: Obj, *, init: bool, ephemeral: bool = False
    ) -> None:
        """Start one container (an ephemeral one is never restarted). One that cannot be
        created is reported (status and a Warning event) and retried every
        ``CONFIG_RETRY_SECONDS``, since the ConfigMap it misses may yet appear."""
        cid = podspec.container_id(pod["metadata"]["uid"], container["name"])
        log_dir = podspec.pod_log_dir(self.data_dir, pod)
        try:
            sources = await self._fetch_sources(
                pod["metadata"].get("namespace", ""), podspec.env_sources(container)
            )
            container_spec = podspec.container_spec(
                pod,
                container,
                log_dir=log_dir,
                base_env={
                    **self.base_env,
                    **self.kubernetes_service_env(pod),
                    **self.sandboxes.port_env(pod),
                },
                pod_ip=self.pod_ip(pod),
                host_ip=self.host_ip,
                sources=sources,
                init=init,
                ephemeral=ephemeral,
                settings=self.container_settings,
            )
            self.sandboxes.identity(pod, container)  # e.g. runAsNonRoot and a root user
        except (podspec.ContainerConfigError, ValueError) as exc:
            self._config_errors[cid] = str(exc)
            await self.recorder.record(pod, "Warning", "Failed", f"Error: {exc}")
            self.queue.add_after(object_key(pod), CONFIG_RETRY_SECONDS)
            return
        self._config_errors.pop(cid, None)
        prepared = await self.sandboxes.prepare_container(pod, container, container_spec)
        if prepared is None:  # FailedMount reported: stays ContainerCreating, retried
            self.queue.add_after(object_key(pod), CONFIG_RETRY_SECONDS)
            return
        container_spec = prepared
        await asyncio.to_thread(private_dir, log_dir / container["name"])
        try:
            state = await self.runtime.start_container(container_spec)
        except SupervisorError as exc:
            if "already exists" not in str(exc):
                raise
            state = next(s for s in await self.runtime.list() if s.id == cid)
        else:
            if podspec.runs_args_as_command(container):  # once per container, not per restart
                message = podspec.args_as_command_message(container)
                await self.recorder.record(pod, "Normal", podspec.ARGS_AS_COMMAND_REASON, message)
        self._states.setdefault(cid, state)

    def kubernetes_service_env(self, pod: Obj) -> dict[str, str]:
        """``KUBERNETES_SERVICE_HOST`` and the other variables of the ``kubernetes`` Service
        that the kubelet gives every container (so in-cluster clients find the API server).
        A pod with a network of its own gets the Service's cluster IP and port, as in
        Kubernetes, when this node runs a proxy. A pod in the node's network gets the API
        server as this agent reaches it (its ``--server``): that address works from here
        whatever the proxy, and on a machine that runs several setpoint clusters the cluster
        IP, the same in each, may lead to another's API server. So does a pod of a node
        without a proxy, where the cluster IP leads nowhere."""
        host, port = "", 0
        own_network = self.sandboxes.pod_ip(pod) is not None
        proxied = own_network and self.proxy.mode != "none"
        service = self.services.get("default/kubernetes") if proxied else None
        if service is not None:
            spec = service.get("spec") or {}
            ports = spec.get("ports") or []
            if spec.get("clusterIP") and ports:
                host, port = str(spec["clusterIP"]), int(ports[0].get("port") or 443)
        if not host:
            url = urllib.parse.urlsplit(self.client.server_url)
            host, port = url.hostname or "", url.port or 443
        if not host:
            return {}
        address = f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
        prefix = f"KUBERNETES_PORT_{port}_TCP"
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": address,
            prefix: address,
            f"{prefix}_PROTO": "tcp",
            f"{prefix}_PORT": str(port),
            f"{prefix}_ADDR": host,
        }

    async def _container_context(self, pod: Obj, container: Obj) -> ContainerContext:
        """Where a process joining the container runs (``kubectl exec``): the container's
        env and workingDir as its probes get them, its namespaces and its cgroups."""
        target = await self.probes.target(pod, container)
        cgroups = await asyncio.to_thread(self.sandboxes.container_cgroups, pod, container)
        # (a mount namespace that only holds the pod's resolv.conf adds no commands)
        # (nor does the ServiceAccount token's, which every pod has)
        mounts = [
            m
            for m in container.get("volumeMounts") or []
            if m.get("mountPath") != SERVICE_ACCOUNT_MOUNT_PATH
        ]
        own_mounts = bool(mounts) and any(
            kind == "mount" for kind, _ in self.sandboxes.namespaces(pod, container)
        )
        return ContainerContext(
            env=target.env,
            cwd=target.cwd,
            enter=target.enter,
            cgroups=tuple(cgroups),
            own_mounts=own_mounts,
        )

    async def _fetch_sources(
        self, namespace: str, wanted: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, str] | None]:
        """The data of the ConfigMaps and Secrets in ``wanted`` (None: not found)."""
        sources: dict[tuple[str, str], dict[str, str] | None] = {}
        for kind, name in sorted(wanted):
            try:
                obj = await self.client.get(
                    CONFIGMAPS if kind == "configMap" else SECRETS, name, namespace
                )
            except ApiError as exc:
                if not exc.is_not_found:
                    raise
                sources[(kind, name)] = None
                continue
            data = obj.get("data") or {}
            if kind == "secret":
                data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
            sources[(kind, name)] = {str(k): str(v) for k, v in data.items()}
        return sources

    async def _record_container_events(self, pod: Obj) -> None:
        """Started / BackOff / Failed events, once per change of a container's state.

        A container this agent has not reported on yet may have been reported by the agent
        before it (a restart): what the pod's status, written by that agent, already shows
        was announced then. Only what changed since gets events, so an agent restart adds
        no Created/Started for containers that kept running, while a restart that happened
        meanwhile (the supervisor's, without an agent) still gets its Started."""
        uid = pod["metadata"]["uid"]
        status = pod.get("status") or {}
        shown = {
            cs.get("name"): cs
            for cs in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
                *(status.get("ephemeralContainerStatuses") or []),
            ]
        }
        for container in podspec.all_containers(pod):
            name = container["name"]
            cid = podspec.container_id(uid, name)
            state = self._states.get(cid)
            if state is None:
                continue
            seen = (state.state, state.restart_count)
            if cid not in self._reported:
                before = podspec.reported_instance(shown.get(name))
                if before is not None:
                    self._reported[cid] = before
            if self._reported.get(cid) == seen:
                continue
            self._reported[cid] = seen
            last = state.last_exit
            if state.state == "running":
                # the kubelet's pair for every instance: CreateContainer, then StartContainer
                await self.recorder.record(pod, "Normal", "Created", f"Created container: {name}")
                await self.recorder.record(pod, "Normal", "Started", f"Started container {name}")
            elif last is not None and last.reason == "StartError":
                message = f"Error: failed to start container {name}: {last.message}"
                await self.recorder.record(pod, "Warning", "Failed", message)
            elif state.state == "waiting":
                message = podspec.back_off_event_message(pod, name)
                await self.recorder.record(pod, "Warning", "BackOff", message)

    def _pod_states(self, pod: Obj) -> dict[str, ContainerState]:
        """What the runtime says about each of the pod's containers, by container name."""
        uid = pod["metadata"]["uid"]
        return {
            c["name"]: state
            for c in podspec.all_containers(pod)
            if (state := self._states.get(podspec.container_id(uid, c["name"]))) is not None
        }

    async def _write_status(self, pod: Obj) -> None:
        """Write the pod's status unless it is already what it should be."""
        uid = pod["metadata"]["uid"]
        states = self._pod_states(pod)
        errors = {
            c["name"]: self._config_errors[cid]
            for c in podspec.all_containers(pod)
            if (cid := podspec.container_id(uid, c["name"])) in self._config_errors
        }
        written = self._written.get(uid)
        self.probes.sync(object_key(pod), pod, states)
        status = podspec.pod_status(
            pod,
            states,
            errors,
            now=self.clock.time(),
            host_ip=self.host_ip,
            pod_ip=self.pod_ip(pod),
            previous=written,
            probes=self.probes.status(pod, states),
        )
        status = lifecycle.deadline_exceeded_status(pod, status, now=self.clock.time())
        status = shutdown.node_shutdown_status(
            pod, status, now=self.clock.time(), terminated=uid in self._shut_down
        )
        current = pod.get("status") or {}
        if same_status(status, current) or (written is not None and same_status(status, written)):
            return
        try:
            await self.client.patch(
                PODS,
                pod["metadata"]["name"],
                {"status": status},
                pod["metadata"].get("namespace"),
                subresource="status",
            )
        except ApiError as exc:
            if exc.is_not_found:
                return
            raise
        self._written[uid] = status

    # ------------------------------------------------------------- teardown

    async def _terminate(self, pod: Obj) -> None:
        """Stop the pod's containers within its grace period, remove them, confirm."""
        meta = pod["metadata"]
        uid = meta["uid"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = podspec.termination_grace_seconds(pod)
        self._terminating.add(uid)
        await self._remove_containers(uid, grace_seconds=float(grace), pod=pod)
        try:
            await self.client.delete(
                PODS,
                meta["name"],
                meta.get("namespace"),
                grace_period_seconds=0,
                preconditions_uid=uid,
            )
        except ApiError as exc:
            if not (exc.is_not_found or exc.is_conflict):
                raise

    async def _remove_containers(
        self, uid: str, *, grace_seconds: float, pod: Obj | None = None
    ) -> None:
        self.probes.forget_pod(uid)

        async def stop_and_remove(cid: str) -> None:
            state = self._states.get(cid)
            if pod is not None and state is not None and state.state != "exited":
                await self._kill_container(pod, cid, grace_seconds)
            else:
                with contextlib.suppress(LookupError, SupervisorError):
                    await self.runtime.stop_container(cid, grace_seconds=grace_seconds)
            with contextlib.suppress(LookupError, SupervisorError):
                await self.runtime.remove(cid)
            self._states.pop(cid, None)
            self._reported.pop(cid, None)
            self._config_errors.pop(cid, None)

        await self._in_stop_order(uid, pod, stop_and_remove)
        for cid in [c for c in self._config_errors if podspec.pod_uid_of(c) == uid]:
            self._config_errors.pop(cid, None)
        await self.sandboxes.teardown(uid)  # StopPodSandbox, now its containers are gone

    async def _in_stop_order(
        self, uid: str, pod: Obj | None, action: Callable[[str], Awaitable[None]]
    ) -> None:
        """``action`` on each of the pod's containers the runtime has, in the kubelet's
        order: everything else at once, then the sidecars, last one first."""
        ids = [cid for cid in self._states if podspec.pod_uid_of(cid) == uid]
        sidecars = [
            podspec.container_id(uid, c["name"]) for c in podspec.sidecars(pod or {"spec": {}})
        ]
        await asyncio.gather(*(action(cid) for cid in ids if cid not in sidecars))
        for cid in reversed(sidecars):
            if cid in ids:
                await action(cid)

    async def _remove_orphans(self) -> None:
        """Stop and remove containers whose pod is not (any more) bound to this node."""
        live = {p["metadata"].get("uid") for p in self.pods.objects()}
        for uid in list(self._keys):
            if uid not in live:
                self._keys.pop(uid, None)
                self._written.pop(uid, None)
                self._deadlines.pop(uid, None)
        orphans = {podspec.pod_uid_of(cid) for cid in self._states} - live
        # forget torn-down pods, keeping those whose containers a late event brought back
        self._terminating &= live | orphans
        for uid in orphans:
            self._terminating.add(uid)
            await self._remove_containers(uid, grace_seconds=ORPHAN_GRACE_SECONDS)
        for uid in self.sandboxes.on_disk() - live:  # sandboxes of pods gone while we were down
            await self.sandboxes.teardown(uid)
