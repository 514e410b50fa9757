"""The API server: HTTPS, authentication, routing, and the lifecycle of the watch caches.

``APIServer`` wires a :class:`~setpoint.store.interface.Store` to the Kubernetes REST surface:
it builds one :class:`WatchCache` and :class:`ResourceStorage` per served type, answers
discovery and OpenAPI, authenticates and authorizes every request (see ``auth``; except the
three health endpoints, which Kubernetes also leaves open; see ``health``) — with RBAC, whose
default roles it puts in place at start, and impersonation —, holds each user to its request
rate and watch cap (see ``ratelimit``), records requests in the audit log (see ``audit``),
passes every write through the admission chain (see ``admission``) and every value of an
encrypted kind through its transformer (see ``encryption``), turns every error into a
``Status``, creates the namespaces a cluster starts with, allocates Services' cluster IPs
and node ports and keeps the ``kubernetes`` Service (see ``services``), and compacts old
store history periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from setpoint.api import errors, negotiation
from setpoint.api.admission import AdmissionChain
from setpoint.api.audit import AUDIT_CONTEXT_KEY, HEADER_AUDIT_ID, Auditor
from setpoint.api.auth.attributes import request_attributes
from setpoint.api.auth.authn import Authenticator, AuthenticatorChain
from setpoint.api.auth.authorizer import (
    Authorizer,
    Decision,
    PrivilegedGroups,
    UnionAuthorizer,
    forbidden,
)
from setpoint.api.auth.bootstrap import ensure_default_policy
from setpoint.api.auth.effective import EffectiveOnReturn
from setpoint.api.auth.escalation import RBACEscalationCheck
from setpoint.api.auth.impersonation import impersonate, wants_impersonation
from setpoint.api.auth.node import NodeAuthorizer, NodeGraph
from setpoint.api.auth.nodecredentials import JOIN_PATH, JoinAuthorizer, NodeCredentials
from setpoint.api.auth.rbac import CachedPolicy, RBACAuthorizer
from setpoint.api.auth.reviews import AccessReviews
from setpoint.api.auth.tokens import TokenIssuer
from setpoint.api.auth.user import REQUEST_USER_KEY, request_user
from setpoint.api.authentication import (
    JWKS_PATH,
    OPENID_CONFIGURATION_PATH,
    IssuerDiscovery,
    Reviews,
    TokenRequests,
)
from setpoint.api.discovery.discovery import (
    AGGREGATED_CONTENT_TYPE,
    KUBERNETES_VERSION,
    Discovery,
)
from setpoint.api.discovery.openapi import build_openapi
from setpoint.api.encryption import EncryptionConfig
from setpoint.api.errors import APIError
from setpoint.api.eviction import PodEviction
from setpoint.api.handlers import ResourceHandlers
from setpoint.api.health import Check, HealthEndpoints
from setpoint.api.inflight import (
    InflightLimiter,
    InflightLimits,
    PriorityLevel,
    is_long_running,
    priority_level,
)
from setpoint.api.kubelet import KubeletClient
from setpoint.api.noderestriction import NodeRestriction
from setpoint.api.podlogs import PodLogs
from setpoint.api.podstreams import STREAM_SUBRESOURCES, PodStreams
from setpoint.api.ratelimit import ClientLimits, ClientRateLimiter
from setpoint.api.serverbootstrap import ServerBootstrap
from setpoint.api.services import ServiceNetwork, identity
from setpoint.api.services.allocation import (
    IPS_RECORDS,
    NODE_PORTS_RECORDS,
    ServiceAllocations,
)
from setpoint.api.services.allocator import RecordAllocator
from setpoint.api.services.kubernetes import KubernetesService
from setpoint.api.services.repair import AllocationRepair
from setpoint.api.serving import APIHTTPServer, ServingLimits, status_response
from setpoint.api.storage import (
    NO_HOOKS,
    DeleteOptions,
    ResourceStorage,
    WriteHooks,
    WriteOptions,
)
from setpoint.api.watchcache import WatchCache
from setpoint.resources.authorization import GROUP as AUTHORIZATION_GROUP
from setpoint.resources.rbac import GROUP
from setpoint.resources.registry import Registry, ResourceType
from setpoint.resources.schema import SchemaSet
from setpoint.store.clustertimer import ClusterTimer
from setpoint.store.interface import BackendError, Store, ValueTooLargeError

log = logging.getLogger(__name__)

UnstoredHandler = Callable[[web.BaseRequest, str | None], Awaitable[web.StreamResponse]]
"""Answers a create of a kind that is never stored (``ResourceType.stored=False``): the
request and its namespace (None for a cluster-scoped kind)."""

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# what answers without a token, as kube-apiserver's system:public-info-viewer role allows;
# a single check (/readyz/etcd) says why it fails, so it needs a token
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
COMPACTION_INTERVAL = 300.0
EVENT_TTL_SWEEP_INTERVAL = 60.0
ALLOCATION_REPAIR_INTERVAL = 60.0


class APIServer:
    auditor: Auditor | None = None  # see ``audit``; set by __init__

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        authenticator: Authenticator,
        authorizer: Authorizer | None = None,
        authorizers_before_rbac: Sequence[Authorizer] = (),
        admission: AdmissionChain | None = None,
        node_credentials: NodeCredentials | None = None,
        kubelet_client_cert: tuple[Path, Path] | None = None,
        event_ttl: float = 3600.0,
        metrics_sockets: list[Path] | None = None,
        inflight: InflightLimits | None = None,
        services: ServiceNetwork | None = None,
        encryption: EncryptionConfig | None = None,
        auditor: Auditor | None = None,
        client_limits: ClientLimits | None = None,
        token_issuer: TokenIssuer | None = None,
        server_bootstrap: ServerBootstrap | None = None,
    ) -> None:
        self.store = store
        self.server_bootstrap = server_bootstrap
        self.encryption = encryption or EncryptionConfig()
        self.auditor = auditor
        self.client_limits = ClientRateLimiter(client_limits or ClientLimits())
        self.registry = registry
        self.authenticator = authenticator
        # what each node's pods reference, for the Node authorizer (fed by the pods' cache)
        self.node_graph = NodeGraph()
        self.node_credentials = node_credentials
        self.admission = admission or AdmissionChain()
        # the Node authorizer's other half, always first: a node writes only what is its own
        self.node_restriction = NodeRestriction(lambda ns, name: self._cached("pods", ns, name))
        self.admission.plugins.insert(0, self.node_restriction)
        self.event_ttl = event_ttl
        self.metrics_sockets = metrics_sockets or []
        self.inflight = InflightLimiter(inflight or InflightLimits())
        self.schemas = SchemaSet()
        self.caches: dict[ResourceType, WatchCache] = {}
        self.storages: dict[ResourceType, ResourceStorage] = {}
        self._namespace_type = registry.lookup("", "v1", "namespaces")
        network = services or ServiceNetwork()
        self.service_allocations = ServiceAllocations(
            RecordAllocator(store, IPS_RECORDS, network.cluster_ips, what="IP"),
            RecordAllocator(store, NODE_PORTS_RECORDS, network.node_ports, what="port"),
        )
        self.allocation_repair = AllocationRepair(self.service_allocations, self._all_services)
        for rtype in registry.types:
            self._build_storage(rtype)
        # the default chain: system:masters, the Node authorizer (and the join endpoint's),
        # then RBAC, as kube-apiserver's --authorization-mode=Node,RBAC
        self.rbac = RBACAuthorizer(
            CachedPolicy(
                roles=self._rbac_cache("roles"),
                cluster_roles=self._rbac_cache("clusterroles"),
                role_bindings=self._rbac_cache("rolebindings"),
                cluster_role_bindings=self._rbac_cache("clusterrolebindings"),
            )
        )
        self.authorizer: Authorizer = authorizer or UnionAuthorizer(
            [
                PrivilegedGroups(),
                NodeAuthorizer(self.node_graph, self._cached),
                JoinAuthorizer(),
                *authorizers_before_rbac,
                self.rbac,
            ]
        )
        self.admission.add(RBACEscalationCheck(self.authorizer, self.rbac))
        self.access_reviews = AccessReviews(self.authorizer, self.rbac)
        self._render()
        self.handlers = ResourceHandlers(registry, self.storages)
        pods_type = registry.lookup("", "v1", "pods")
        if pods_type is not None:
            self.caches[pods_type].listeners.append(self.node_graph)
        self.kubelet = KubeletClient(nodes=self._storage("nodes"), client_cert=kubelet_client_cert)
        self.pod_logs = PodLogs(pods=self._storage("pods"), kubelet=self.kubelet)
        self.pod_streams = PodStreams(pods=self._storage("pods"), kubelet=self.kubelet)
        pods = self._storage("pods")
        assert pods is not None
        self.eviction = PodEviction(pods=pods, budgets=self._budgets)
        # authentication.k8s.io: reviews, and ServiceAccount tokens when there is an issuer
        chain = authenticator if isinstance(authenticator, AuthenticatorChain) else None
        self.reviews = Reviews(chain)
        # who answers each kind that is never stored (a review), by (group, plural)
        self.unstored: dict[tuple[str, str], UnstoredHandler] = {
            ("authentication.k8s.io", "tokenreviews"): self.reviews.token_review,
            ("authentication.k8s.io", "selfsubjectreviews"): self.reviews.self_subject_review,
        }
        for review in self.registry.types:
            if review.group == AUTHORIZATION_GROUP and not review.stored:
                self.unstored[(review.group, review.plural)] = self.access_reviews.handler(review)
        self.token_requests: TokenRequests | None = None
        self.issuer_discovery: IssuerDiscovery | None = None
        if token_issuer is not None:
            self.token_requests = TokenRequests(
                token_issuer,
                service_accounts=self._required_storage("serviceaccounts"),
                pods=pods,
                secrets=self._required_storage("secrets"),
                nodes=self._required_storage("nodes"),
                validate=self.node_restriction.validate,
            )
            self.issuer_discovery = IssuerDiscovery(token_issuer)
        self._tasks: list[asyncio.Task[None]] = []
        self._kubernetes_service: KubernetesService | None = None  # see publish_endpoint
        self.ready = False
        ping = Check("ping", _ok)
        etcd = Check("etcd", store.check_readable)
        self.health = HealthEndpoints(
            {
                "livez": [ping, etcd],
                "healthz": [ping, etcd],
                "readyz": [
                    ping,
                    etcd,
                    Check("etcd-readiness", store.check_writable),
                    Check("informer-sync", self._informers_synced),
                ],
            }
        )

    def _build_storage(self, rtype: ResourceType) -> WatchCache | None:
        if not rtype.stored:
            return None  # a review: answered, never stored (see authentication)
        cache = WatchCache(
            rtype,
            self.store,
            transformer=self.encryption.for_resource(rtype.group, rtype.plural),
        )
        self.caches[rtype] = cache
        hooks: WriteHooks = NO_HOOKS
        if (rtype.group, rtype.kind) == ("", "Service"):
            hooks = self.service_allocations
        elif rtype.group == GROUP:
            hooks = EffectiveOnReturn(cache, self.store)
        self.storages[rtype] = ResourceStorage(
            rtype,
            self.store,
            cache,
            self.schemas,
            namespace_check=self._check_namespace,
            hooks=hooks,
            admission=self.admission,
        )
        return cache

    def _render(self) -> None:
        """Discovery and OpenAPI for the registry as it is now (their ETags change with it)."""
        self.discovery = Discovery(self.registry, platform=f"linux/{platform.machine()}")
        self.openapi = build_openapi(self.registry, server_version=KUBERNETES_VERSION["gitVersion"])

    # --------------------------------------------------------- kinds at run time

    async def add_kind(self, rtype: ResourceType) -> None:
        """Serve ``rtype`` from now on: its watch cache loads what the store holds, and
        discovery and OpenAPI name it (a CustomResourceDefinition becomes Established so)."""
        self.registry.register(rtype)
        cache = self._build_storage(rtype)
        try:
            if cache is not None:
                await cache.start()
        except BaseException:
            self.caches.pop(rtype, None)
            self.storages.pop(rtype, None)
            self.registry.remove(rtype)
            raise
        self._render()

    async def remove_kind(self, rtype: ResourceType) -> None:
        """Stop serving ``rtype``: it leaves discovery and OpenAPI, its watches end and its
        cache goes. Its objects stay in the store (deleting them is its owner's business,
        as the CRD controller deletes custom resources before a CRD goes)."""
        self.registry.remove(rtype)
        self._render()
        cache = self.caches.pop(rtype, None)
        self.storages.pop(rtype, None)
        if cache is not None:
            cache.close_watchers()
            await cache.stop()

    def _rbac_cache(self, plural: str) -> WatchCache | None:
        rtype = self.registry.lookup(GROUP, "v1", plural)
        return self.caches.get(rtype) if rtype is not None else None

    def _budgets(self) -> ResourceStorage | None:
        rtype = self.registry.lookup("policy", "v1", "poddisruptionbudgets")
        return self.storages.get(rtype) if rtype is not None else None

    async def read(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The core/v1 object, fresh (as a GET would answer it), or None."""
        storage = self._storage(plural)
        if storage is None:
            return None
        try:
            return (await storage.get(namespace or None, name)).obj
        except APIError:
            return None

    def _cached(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The core/v1 object as the watch cache holds it now (never to be changed)."""
        rtype = self.registry.lookup("", "v1", plural)
        cache = self.caches.get(rtype) if rtype is not None else None
        if cache is None or rtype is None:
            return None
        cached = cache.get(rtype.store_key(namespace or None, name))
        return cached.obj if cached is not None else None

    def _storage(self, plural: str) -> ResourceStorage | None:
        rtype = self.registry.lookup("", "v1", plural)
        return self.storages.get(rtype) if rtype is not None else None

    def _required_storage(self, plural: str) -> ResourceStorage:
        storage = self._storage(plural)
        assert storage is not None, f"the core group serves no {plural}"
        return storage

    async def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The core/v1 object ``plural`` ``namespace/name`` as stored now, from its watch
        cache (which catches up with the store first when it does not hold it), or None."""
        storage = self._required_storage(plural)
        key = storage.key(namespace or None, name)
        cached = storage.cache.get(key)
        if cached is None:
            await storage.cache.wait_fresh(await self.store.current_revision())
            cached = storage.cache.get(key)
        return cached.obj if cached is not None else None

    # ----------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self.auditor is not None:
            await self.auditor.start()
        await asyncio.gather(*(cache.start() for cache in self.caches.values()))
        await self._ensure_initial_namespaces()
        await self._ensure_default_policy()
        await self.allocation_repair.run_once()
        await self.service_allocations.load()
        for timer in self._cluster_timers():
            self._tasks.append(asyncio.create_task(timer.run(), name=timer.name))
        self.ready = True

    async def publish_endpoint(
        self,
        address: str,
        port: int,
        *,
        lease_duration_seconds: int = identity.DEFAULT_DURATION_SECONDS,
    ) -> None:
        """Keep this server, reached at ``address`` and ``port``, listed in the
        ``kubernetes`` Service's endpoints with the other live servers, through its identity
        Lease of ``lease_duration_seconds`` (see ``services.kubernetes``); its first
        reconcile is done on return. :meth:`stop` takes it out again."""
        services, endpoints = self._storage("services"), self._storage("endpoints")
        slices = self.registry.lookup("discovery.k8s.io", "v1", "endpointslices")
        leases = self.registry.lookup("coordination.k8s.io", "v1", "leases")
        assert services is not None and endpoints is not None
        assert slices is not None and leases is not None
        self._kubernetes_service = KubernetesService(
            services=services,
            endpoints=endpoints,
            slices=self.storages[slices],
            identity=identity.IdentityLeases(
                leases=self.storages[leases],
                endpoint=identity.ServerEndpoint(address, port),
                duration_seconds=lease_duration_seconds,
            ),
            cluster_ip=self.service_allocations.ip_range.value(0),
        )
        await self._kubernetes_service.reconcile()
        self._tasks.append(
            asyncio.create_task(self._kubernetes_service.run(), name="kubernetes-service")
        )

    async def _all_services(self) -> list[dict[str, Any]]:
        storage = self._storage("services")
        assert storage is not None
        await storage.cache.wait_fresh(await self.store.current_revision())
        return [cached.obj for cached in storage.cache.items(None)]

    def close_watches(self) -> None:
        for cache in self.caches.values():
            cache.close_watchers()

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._kubernetes_service is not None:
            await self._kubernetes_service.withdraw()
        await asyncio.gather(*(cache.stop() for cache in self.caches.values()))
        await self.kubelet.close()
        if self.auditor is not None:
            await self.auditor.stop()

    async def _ensure_initial_namespaces(self) -> None:
        assert self._namespace_type is not None
        storage = self.storages[self._namespace_type]
        for name in INITIAL_NAMESPACES:
            if storage.cache.get(storage.key(None, name)) is not None:
                continue
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            try:
                await storage.create(None, body, WriteOptions())
            except APIError as exc:
                if exc.code != 409:
                    raise

    async def _ensure_default_policy(self) -> None:
        """The default roles and bindings (kube-apiserver's ``rbac/bootstrap-roles``)."""
        roles = self.registry.lookup(GROUP, "v1", "clusterroles")
        bindings = self.registry.lookup(GROUP, "v1", "clusterrolebindings")
        if roles is not None and bindings is not None:
            await ensure_default_policy(self.storages[roles], self.storages[bindings])

    def _cluster_timers(self) -> list[ClusterTimer]:
        """Compaction and the Event TTL sweep, each done once per interval for the whole
        cluster however many API servers share the store (see ``store.clustertimer``)."""

        async def revision_now() -> bytes:
            return str(await self.store.current_revision()).encode()

        async def compact(recorded: bytes | None) -> None:
            # forget history older than the revision seen one interval ago, as
            # kube-apiserver's compactor does
            # a record above the store's revision came with the data from another store
            # (``setpoint datastore migrate``): nothing of this store's history is that old
            if recorded and int(recorded) <= await self.store.current_revision():
                await self.store.compact(int(recorded))

        async def sweep(_: bytes | None) -> None:
            await self.expire_events()

        async def repair(_: bytes | None) -> None:
            await self.allocation_repair.run_once()

        sweep_interval = min(EVENT_TTL_SWEEP_INTERVAL, max(self.event_ttl / 2, 0.5))
        return [
            ClusterTimer(
                self.store, "compaction", COMPACTION_INTERVAL, compact, record=revision_now
            ),
            ClusterTimer(self.store, "event-ttl", sweep_interval, sweep),
            ClusterTimer(
                self.store, "service-allocation-repair", ALLOCATION_REPAIR_INTERVAL, repair
            ),
        ]

    async def _child_metrics(self) -> bytes:
        """Metrics of the processes this server runs (the controller manager), read from
        their Unix sockets; a process that is not up contributes nothing."""
        out = b""
        for path in self.metrics_sockets:
            if not path.exists():
                continue
            try:
                connector = aiohttp.UnixConnector(path=str(path))
                async with (
                    aiohttp.ClientSession(connector=connector) as session,
                    session.get(
                        "http://localhost/metrics", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response,
                ):
                    out += await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError):
                continue
        return out

    async def expire_events(self) -> int:
        """Delete every Event last touched more than ``event_ttl`` ago (kube-apiserver's
        ``--event-ttl``, 1 h by default), so recorders never fill the store."""
        expired = 0
        cutoff = time.time() - self.event_ttl
        for rtype, storage in self.storages.items():
            if rtype.kind != "Event":
                continue
            for cached in list(storage.cache.items(None)):
                if _event_time(cached.obj) < cutoff:
                    try:
                        await storage.delete(cached.namespace, cached.name, DeleteOptions())
                        expired += 1
                    except APIError:
                        pass  # already gone or changed; the next sweep looks again
        return expired

    async def _check_namespace(self, rtype: ResourceType, namespace: str, name: str) -> None:
        """NamespaceLifecycle admission: no new objects in a namespace that does not exist
        (404) or is being deleted (403 with the NamespaceTerminating cause, by which
        controllers recognise it)."""
        assert self._namespace_type is not None
        cache = self.caches[self._namespace_type]
        cached = cache.get(self._namespace_type.store_key(None, namespace))
        if cached is None:
            await cache.wait_fresh(await self.store.current_revision())
            cached = cache.get(self._namespace_type.store_key(None, namespace))
        if cached is None:
            raise errors.not_found(self._namespace_type, namespace)
        if cached.obj["metadata"].get("deletionTimestamp"):
            raise errors.namespace_terminating(rtype, name, namespace)

    # --------------------------------------------------------------- HTTP

    def http_server(self, limits: ServingLimits) -> APIHTTPServer:
        """aiohttp's low-level server around :meth:`_serve`, with setpoint's connection
        limits (:mod:`setpoint.api.serving`): every path goes to one handler, so an
        Application's router, middleware chain and signals would only add work (~5% of the
        server's samples during a binding load). A client that disconnects cancels its
        handler, which ends its watch at once."""
        loop = asyncio.get_running_loop()

        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            return _Request(
                message,
                payload,
                protocol,
                writer,
                task,
                loop,
                client_max_size=negotiation.MAX_BODY_BYTES + 1024,
            )

        return APIHTTPServer(
            self._serve,
            limits=limits,
            request_factory=make_request,
            handler_cancellation=True,
            access_log=None,
        )

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request, and its audit events once it has been answered (see ``audit``)."""
        try:
            response = await self._serve_request(request)
        except asyncio.CancelledError:
            # the client went away (a watch it closed): what it was sent is complete
            context = request.get(AUDIT_CONTEXT_KEY)
            if self.auditor is not None and context is not None and context.response:
                self.auditor.complete(context, request, context.response)
            raise
        if self.auditor is not None:
            context = request.get(AUDIT_CONTEXT_KEY)
            if context is not None:
                self.auditor.complete(context, request, response)
            elif response.status == 401:
                self.auditor.unauthenticated(request, response)
        return response

    async def _serve_request(self, request: web.BaseRequest) -> web.StreamResponse:
        """Authenticate (health endpoints excepted), apply the per-user limits, authorize,
        dispatch, and turn any failure into a Status — one function rather than a middleware
        chain, since it runs on every request."""
        try:
            path = request.path
            if path in HEALTH_PATHS:
                return await self._dispatch(request)
            if self.server_bootstrap is not None and path in self.server_bootstrap.paths:
                return await self.server_bootstrap.serve(request)
            user = await self.authenticator.authenticate(request)
            if user is None:
                raise errors.unauthorized()
            impersonator = None
            if wants_impersonation(request.headers):
                impersonator = user
                user = impersonate(user, request.headers, self.authorizer)
            request[REQUEST_USER_KEY] = user
            attrs = request_attributes(user, request.method, path, request.query)
            segments = [s for s in path.split("/") if s]
            watch = request.query.get("watch", "").lower() in ("1", "true")
            long_running = is_long_running(request.method, segments, watch)
            audit = None
            if self.auditor is not None:
                audit = self.auditor.begin(
                    request, attrs, long_running=long_running, impersonator=impersonator
                )
                request[AUDIT_CONTEXT_KEY] = audit
                request[_AUDITOR_KEY] = self.auditor
            self.client_limits.take(user)
            decision, reason = self.authorizer.authorize(attrs)
            if audit is not None:
                audit.decision = "allow" if decision is Decision.ALLOW else "forbid"
                audit.reason = reason
            if decision is not Decision.ALLOW:
                raise forbidden(attrs, reason)
            if long_running:
                if watch:
                    with self.client_limits.watching(user):
                        return await self._dispatch(request)
                return await self._dispatch(request)
            return await self._dispatch_in_a_seat(request, priority_level(user.name, user.groups))
        except APIError as exc:
            response = status_response(exc)
            if exc.code == 413:
                response.force_close()  # the rest of an oversized body is not worth reading
            return response
        except ConnectionResetError:
            transport = request.transport
            if transport is None or transport.is_closing():
                # the client went away (a watch or `kubectl logs -f` closed as its answer
                # began): there is nobody to answer, and nothing went wrong here
                return web.Response(status=499)
            raise
        except asyncio.CancelledError:
            raise
        except BackendError as exc:  # a full disk, a corrupt database: say which (store logs it)
            return status_response(errors.internal(str(exc)))
        except ValueTooLargeError as exc:  # past etcd's request limit: the request's fault
            return status_response(
                APIError(413, "RequestEntityTooLarge", f"Request entity too large: {exc}")
            )
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.path)
            context = request.get(AUDIT_CONTEXT_KEY)
            if context is not None:
                context.panicked = True
            return status_response(errors.internal(type(exc).__name__))

    async def _dispatch_in_a_seat(
        self, request: web.BaseRequest, level: PriorityLevel
    ) -> web.StreamResponse:
        """Serve a request that is not long-running: in a seat of its priority level, and
        before its deadline (a system request waiting for a seat is counted in it)."""
        deadline = asyncio.timeout(self.inflight.limits.request_timeout)
        try:
            async with deadline, self.inflight.seat(level, request.method):
                return await self._dispatch(request)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise errors.timeout(
                "Timeout: request did not complete within requested timeout - context "
                "deadline exceeded"
            ) from None

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        segments = [s for s in path.split("/") if s]
        if not segments:
            return _json({"paths": sorted(self._root_paths())})
        head = segments[0]
        if head in ("healthz", "livez", "readyz"):
            if len(segments) == 1:
                return await self.health.serve(head, request)
            check = self.health.find(head, "/".join(segments[1:]))
            if check is None:
                raise errors.resource_not_found(path)
            return await self.health.serve_one(check)
        if head == "version" and len(segments) == 1:
            return _raw(self.discovery.version_json)
        if head == "metrics" and len(segments) == 1:
            self._only_get(request)
            return web.Response(
                body=generate_latest() + await self._child_metrics(),
                headers={"Content-Type": CONTENT_TYPE_LATEST},
            )
        if head == "openapi":
            return self._openapi(request, segments[1:])
        if path == JOIN_PATH and self.node_credentials is not None:
            user = request_user(request)
            assert user is not None  # authenticated before dispatch
            return await self.node_credentials.serve_join(request, user)
        if path in (OPENID_CONFIGURATION_PATH, JWKS_PATH) and self.issuer_discovery is not None:
            return self.issuer_discovery.serve(request)
        if head == "api":
            if len(segments) == 1:
                self._only_get(request)
                if negotiation.wants_aggregated_discovery(request.headers.get("Accept", "")):
                    return _aggregated(self.discovery.aggregated_api_json)
                return _raw(self.discovery.api_versions_json(_server_address(request)))
            return await self._group_version(request, "", segments[1], segments[2:])
        if head == "apis":
            if len(segments) == 1:
                self._only_get(request)
                if negotiation.wants_aggregated_discovery(request.headers.get("Accept", "")):
                    return _aggregated(self.discovery.aggregated_apis_json)
                return _raw(self.discovery.group_list_json)
            group = segments[1]
            if len(segments) == 2:
                self._only_get(request)
                if group not in self.discovery.groups:
                    raise errors.resource_not_found(path)
                return _raw(self.discovery.groups[group])
            return await self._group_version(request, group, segments[2], segments[3:])
        raise errors.resource_not_found(path)

    def _only_get(self, request: web.BaseRequest) -> None:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(request.method)

    async def _group_version(
        self, request: web.BaseRequest, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        key = (group, version)
        if key not in self.discovery.resource_lists:
            raise errors.resource_not_found(request.path)
        if not rest:
            self._only_get(request)
            return _raw(self.discovery.resource_lists[key])
        target = self.handlers.resolve(group, version, rest)
        if target is None:
            raise errors.resource_not_found(request.path)
        if target.subresource == "log" and target.namespace is not None:
            return await self.pod_logs.serve(request, target.namespace, target.name)
        if target.subresource in STREAM_SUBRESOURCES and target.namespace is not None:
            return await self.pod_streams.serve(
                request, target.subresource, target.namespace, target.name
            )
        if target.subresource == "eviction" and target.namespace is not None:
            return await self.eviction.serve(request, target.namespace, target.name)
        if not target.rtype.stored:
            handler = self.unstored.get((target.rtype.group, target.rtype.plural))
            if handler is None:
                raise errors.resource_not_found(request.path)
            if target.name or request.method != "POST":
                raise errors.method_not_allowed(request.method)
            return await handler(request, target.namespace)
        if (
            target.subresource == "token"
            and target.rtype.plural == "serviceaccounts"
            and target.namespace is not None
        ):
            if self.token_requests is None:
                raise errors.resource_not_found(request.path)
            return await self.token_requests.serve(request, target.namespace, target.name)
        return await self.handlers.handle(request, target)

    async def _informers_synced(self) -> None:
        if not self.ready:
            raise RuntimeError("the watch caches have not loaded yet")

    def _openapi(self, request: web.BaseRequest, rest: list[str]) -> web.Response:
        self._only_get(request)
        docs = self.openapi
        if rest == ["v2"]:
            content_type = negotiation.negotiate_openapi_v2(request.headers.get("Accept", ""))
            body = docs.v2_json if content_type == negotiation.JSON else docs.v2_protobuf
            response = _cached(request, body, docs.v2_etag, content_type=content_type)
            response.headers["Vary"] = "Accept"
            return response
        if rest == ["v3"]:
            return _cached(request, docs.v3_root_json, docs.v3_root_etag)
        if rest and rest[0] == "v3":
            key = "/".join(rest[1:])
            doc = docs.v3_group_versions.get(key)
            if doc is None:
                raise errors.resource_not_found(request.path)
            return _cached(request, doc, docs.v3_etags.get(key, ""))
        raise errors.resource_not_found(request.path)

    def _root_paths(self) -> list[str]:
        paths = [
            "/api",
            "/api/v1",
            "/apis",
            "/healthz",
            "/livez",
            "/readyz",
            "/version",
            "/openapi/v2",
            "/openapi/v3",
        ]
        if self.issuer_discovery is not None:
            paths += [OPENID_CONFIGURATION_PATH, JWKS_PATH]
        for group, versions in self.registry.group_versions().items():
            if group:
                paths.append(f"/apis/{group}")
                paths += [f"/apis/{group}/{v}" for v in versions]
        return paths


class _Request(web.BaseRequest):
    """aiohttp's request, telling the audit log when a response's headers go out (its
    ``_prepare_hook`` is what aiohttp calls then; an Application's Request uses it for the
    ``on_response_prepare`` signal)."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        context = self.get(AUDIT_CONTEXT_KEY)
        auditor = self.get(_AUDITOR_KEY)
        if context is not None and auditor is not None:
            response.headers.setdefault(HEADER_AUDIT_ID, context.audit_id)
            auditor.started(context, response)


_AUDITOR_KEY: web.RequestKey[Auditor] = web.RequestKey("setpoint.auditor", Auditor)


def _server_address(request: web.BaseRequest) -> str:
    """``host:port`` of the listener the request came in on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not sockname:
        return request.host
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _event_time(event: dict[str, Any]) -> float:
    """When an Event was last touched, as a Unix time (0 if it carries no time)."""
    for text in (
        event.get("lastTimestamp"),
        (event.get("series") or {}).get("lastObservedTime"),
        event.get("eventTime"),
        event.get("deprecatedLastTimestamp"),
        event["metadata"].get("creationTimestamp"),
    ):
        if text:
            try:
                return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def _json(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=negotiation.JSON)


def _aggregated(data: bytes) -> web.Response:
    response = web.Response(body=data)
    response.headers["Content-Type"] = AGGREGATED_CONTENT_TYPE
    return response


def _raw(data: bytes) -> web.Response:
    return web.Response(body=data, content_type=negotiation.JSON)


def _cached(
    request: web.BaseRequest, data: bytes, etag: str, *, content_type: str = negotiation.JSON
) -> web.Response:
    if etag and request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    headers = {"ETag": etag, "Cache-Control": "no-cache, private"} if etag else {}
    headers["Content-Type"] = content_type
    return web.Response(body=data, headers=headers)


def monotonic() -> float:
    return time.monotonic()


async def _ok() -> None:
    """The ``ping`` check: answering is all it takes."""
