"""ApiClient: an asyncio Kubernetes REST client over HTTPS with a bearer token.

It addresses resources by :class:`Resource` (group, version, plural, namespaced), returns
objects as plain JSON dicts, raises :class:`ApiError` carrying the server's ``Status``, and
streams watches as ``(type, object)`` events. ``from_kubeconfig`` reads the kubeconfig that
``setpoint server`` writes. Writers that read-modify-write use :meth:`ApiClient.retry_on_conflict`.

A client may know several API servers (``ClientConfig.fallback_urls``, or a
:class:`~setpoint.client.servers.ServerList` it is given): it uses one at a time and moves
to the next when a request cannot reach it, sending again what is safe to send again (see
``client.servers`` for the rules and why this lives in the client, not in a proxy).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from setpoint.client.http import ConnectionPool, Response, ServerUnreachable
from setpoint.client.servers import ServerList
from setpoint.pki import client_ssl_context, load_kubeconfig

Obj = dict[str, Any]
T = TypeVar("T")


class Resource(NamedTuple):
    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


PODS = Resource("", "v1", "pods", True, "Pod")
NODES = Resource("", "v1", "nodes", False, "Node")
NAMESPACES = Resource("", "v1", "namespaces", False, "Namespace")
EVENTS = Resource("", "v1", "events", True, "Event")
CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap")
PERSISTENTVOLUMECLAIMS = Resource("", "v1", "persistentvolumeclaims", True, "PersistentVolumeClaim")
DEPLOYMENTS = Resource("apps", "v1", "deployments", True, "Deployment")
REPLICASETS = Resource("apps", "v1", "replicasets", True, "ReplicaSet")
DAEMONSETS = Resource("apps", "v1", "daemonsets", True, "DaemonSet")
STATEFULSETS = Resource("apps", "v1", "statefulsets", True, "StatefulSet")
CONTROLLERREVISIONS = Resource("apps", "v1", "controllerrevisions", True, "ControllerRevision")
JOBS = Resource("batch", "v1", "jobs", True, "Job")
CRONJOBS = Resource("batch", "v1", "cronjobs", True, "CronJob")
LEASES = Resource("coordination.k8s.io", "v1", "leases", True, "Lease")
PODDISRUPTIONBUDGETS = Resource("policy", "v1", "poddisruptionbudgets", True, "PodDisruptionBudget")
SECRETS = Resource("", "v1", "secrets", True, "Secret")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", True, "ServiceAccount")
SERVICES = Resource("", "v1", "services", True, "Service")
ENDPOINTS = Resource("", "v1", "endpoints", True, "Endpoints")
REPLICATIONCONTROLLERS = Resource("", "v1", "replicationcontrollers", True, "ReplicationController")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", True, "EndpointSlice")


class ApiError(Exception):
    """A non-2xx answer; ``status`` is the server's ``Status`` object."""

    def __init__(self, code: int, status: Obj) -> None:
        super().__init__(f"{code} {status.get('reason', '')}: {status.get('message', '')}")
        self.code = code
        self.status = status

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def is_not_found(self) -> bool:
        return self.code == 404

    @property
    def is_namespace_terminating(self) -> bool:
        """Refused because the namespace is being deleted (``NamespaceTerminating`` cause):
        every create there will fail, so controllers do not retry or report it."""
        details = self.status.get("details")
        causes = details.get("causes") if isinstance(details, dict) else None
        return any(
            isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes or []
        )

    @property
    def is_conflict(self) -> bool:
        return self.code == 409 and self.reason == "Conflict"

    @property
    def is_already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def is_gone(self) -> bool:
        return self.code == 410


@dataclass(frozen=True)
class ClientConfig:
    server_url: str
    token: str
    ca_pem: bytes
    user_agent: str = "setpoint"
    client_cert_pem: bytes = b""  # a client certificate (with its key) instead of a token
    client_key_pem: bytes = b""
    fallback_urls: tuple[str, ...] = ()  # further API servers of the same cluster

    @property
    def server_urls(self) -> tuple[str, ...]:
        return (self.server_url, *self.fallback_urls)

    @classmethod
    def from_kubeconfig(cls, path: Path, *, user_agent: str = "setpoint") -> ClientConfig:
        info = load_kubeconfig(path)
        return cls(
            info.server_url,
            info.token,
            info.ca_pem,
            user_agent,
            client_cert_pem=info.client_cert_pem,
            client_key_pem=info.client_key_pem,
        )

    @classmethod
    def from_flags(
        cls,
        *,
        kubeconfig: Path | None,
        server: str | Sequence[str] | None,
        token_file: Path | None,
        ca_file: Path | None,
        user_agent: str,
    ) -> ClientConfig:
        """Server URLs (one, or several of one cluster, the first preferred) with a token
        file and a CA file (k3s agent's ``--server``, ``--token-file``, ``--ca-file``), or
        else a kubeconfig; ValueError names what is missing. ``user_agent`` is the
        component's own: it becomes the field manager of everything it writes."""
        urls = [server] if isinstance(server, str) else list(server or ())
        if urls:
            if token_file is None or ca_file is None:
                raise ValueError("--server needs --token-file and --ca-file")
            return cls(
                server_url=urls[0],
                token=token_file.read_text().strip(),
                ca_pem=ca_file.read_bytes(),
                user_agent=user_agent,
                fallback_urls=tuple(urls[1:]),
            )
        if kubeconfig is None:
            raise ValueError("give --kubeconfig (or $KUBECONFIG), or --server")
        return cls.from_kubeconfig(kubeconfig, user_agent=user_agent)


# client-go retries a 429 up to 10 times, waiting as long as the server's Retry-After says
THROTTLE_RETRIES = 10


def _retry_after(status: Obj) -> float:
    details = status.get("details") if isinstance(status, dict) else None
    seconds = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    return float(seconds) if isinstance(seconds, int) and 0 < seconds <= 60 else 1.0


# methods that may be sent again after a connection broke mid-request: doing them twice is
# doing them once (PUT and DELETE carry the object or its name; a second try at worst meets
# 409 Conflict or 404, as any retry might); a JSON patch or a POST is not
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
_IDEMPOTENT_PATCHES = frozenset(
    {
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    }
)


def _resendable(method: str, content_type: str) -> bool:
    return method in _IDEMPOTENT or (method == "PATCH" and content_type in _IDEMPOTENT_PATCHES)


class ApiClient:
    """Keep-alive connections to the API server (the current one of ``servers``, by
    default ``config``'s URLs in order). Close with :meth:`close`."""

    def __init__(
        self, config: ClientConfig, *, connections: int = 32, servers: ServerList | None = None
    ) -> None:
        self.config = config
        self.servers = servers or ServerList(config.server_urls)
        self._connections = connections
        self._ssl: ssl.SSLContext = client_ssl_context(
            config.ca_pem,
            client_cert_pem=config.client_cert_pem,
            client_key_pem=config.client_key_pem,
        )
        headers = {"User-Agent": config.user_agent, "Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._authorization: str | None = None  # this view's own (see with_token)
        # unary requests: the lean pool, one per server; watches and other streams: aiohttp
        self._headers = headers
        self._pools: dict[str, ConnectionPool] = {}
        self._streams: dict[str, set[aiohttp.ClientResponse]] = {}  # open watches, by server
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=connections),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    def with_token(self, token: str) -> ApiClient:
        """A view of this client that sends ``token`` as its bearer token over the same
        connections: many identities (hollow nodes, each its own node) share one pool.
        Close only the original, never a view."""
        view = copy.copy(self)
        view._authorization = f"Bearer {token}"
        view.config = replace(self.config, token=token)
        return view

    @property
    def server_url(self) -> str:
        """The API server this client talks to now."""
        return self.servers.current

    def _pool(self, url: str) -> ConnectionPool:
        pool = self._pools.get(url)
        if pool is None:
            pool = ConnectionPool(
                url, ssl_context=self._ssl, headers=self._headers, limit=self._connections
            )
            self._pools[url] = pool
        return pool

    async def abandon(self, url: str) -> None:
        """Stop using the server at ``url``, which has stopped answering without closing its
        connections (a machine lost, a process stopped): the next server becomes current,
        and every connection to ``url`` is closed, open watches included, which then resume
        on the next server. The kubelet does the same (``closeAllConns``) when its
        heartbeats go unanswered; without it they would wait out their read timeouts."""
        self.servers.failed(url)
        pool = self._pools.pop(url, None)
        if pool is not None:
            await pool.close()
        for response in self._streams.pop(url, set()):
            response.close()

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        await self._session.close()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Obj:
        encoded = None if body is None else orjson.dumps(body)
        query = query_string(params) if params else ""
        for attempt in range(THROTTLE_RETRIES + 1):
            response = await self._send(method, path, query, encoded, content_type, timeout)
            decoded: Obj = orjson.loads(response.body) if response.body else {}
            if response.status != 429 or attempt == THROTTLE_RETRIES:
                break
            # refused before it was served (the server sheds load): safe to send again
            await asyncio.sleep(_retry_after(decoded))
        if response.status >= 400:
            raise ApiError(response.status, decoded if isinstance(decoded, dict) else {})
        return decoded

    async def _send(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes | None,
        content_type: str,
        timeout: float,
    ) -> Response:
        """One request to the current server, or, when it cannot be reached, to the next
        ones in turn (each at most once) as far as the request may be sent again."""
        tried: set[str] = set()
        while True:
            url = self.servers.current
            tried.add(url)
            try:
                return await self._pool(url).request(
                    method,
                    path,
                    query=query,
                    body=body,
                    content_type=content_type,
                    timeout=timeout,
                    authorization=self._authorization,
                )
            except ConnectionError as exc:
                if self.servers.failed(url) in tried:
                    raise
                if not isinstance(exc, ServerUnreachable) and not _resendable(method, content_type):
                    raise

    # ------------------------------------------------------------- verbs

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        return await self.request("GET", resource.path(namespace, name))

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
    ) -> Obj:
        params = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit or None,
            "continue": continue_token,
            "resourceVersion": resource_version,
        }
        return await self.request("GET", resource.path(namespace), params=params)

    async def create(self, resource: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or obj.get("metadata", {}).get("namespace")
        return await self.request("POST", resource.path(ns), body=obj)

    async def update(self, resource: Resource, obj: Obj, *, subresource: str = "") -> Obj:
        meta = obj["metadata"]
        path = resource.path(meta.get("namespace"), meta["name"], subresource)
        return await self.request("PUT", path, body=obj)

    async def update_status(self, resource: Resource, obj: Obj) -> Obj:
        return await self.update(resource, obj, subresource="status")

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "application/merge-patch+json",
        subresource: str = "",
        field_manager: str = "",
        force: bool = False,
    ) -> Obj:
        params = {"fieldManager": field_manager or None, "force": "true" if force else None}
        return await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            params=params,
            content_type=patch_type,
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions_uid: str | None = None,
    ) -> Obj:
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if preconditions_uid:
            options["preconditions"] = {"uid": preconditions_uid}
        return await self.request("DELETE", resource.path(namespace, name), body=options)

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield ``(type, object)`` until the server ends the watch. An ``ERROR`` event
        (e.g. 410 Gone) is raised as :class:`ApiError`; a stream that breaks off as
        :class:`ConnectionResetError` (an ``OSError``, as a refused connection is)."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
        }
        url = self.servers.current
        try:
            async with self._session.get(
                url + resource.path(namespace),
                params=_clean(params),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=30, sock_read=timeout_seconds + 30
                ),
                headers={"Authorization": self._authorization} if self._authorization else None,
            ) as response:
                if response.status >= 400:
                    payload = await response.read()
                    raise ApiError(response.status, orjson.loads(payload) if payload else {})
                streams = self._streams.setdefault(url, set())
                streams.add(response)
                try:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = orjson.loads(line)
                        if event["type"] == "ERROR":
                            status = event.get("object") or {}
                            raise ApiError(int(status.get("code", 500)), status)
                        yield event["type"], event["object"]
                finally:
                    streams.discard(response)
        except (aiohttp.ClientError, OSError) as exc:
            # the watcher watches again, from the next server if this one is gone
            self.servers.failed(url)
            if isinstance(exc, OSError):
                raise
            # a stream cut mid-way (the server died, a proxy dropped it): a connection error
            # like any other, which every watcher already retries
            raise ConnectionResetError(f"the watch stream broke: {exc}") from exc

    async def retry_on_conflict(
        self, attempt: Callable[[], Awaitable[T]], *, retries: int = 5
    ) -> T:
        """Run a read-modify-write ``attempt`` again when it loses an optimistic-concurrency
        race (409 Conflict), with a short jittered pause, like client-go's RetryOnConflict."""
        for i in range(retries):
            try:
                return await attempt()
            except ApiError as exc:
                if not exc.is_conflict or i == retries - 1:
                    raise
                await asyncio.sleep(0.01 * (2**i))
        raise AssertionError("unreachable")


def is_unavailable(exc: BaseException) -> bool:
    """The API could not answer now — unreachable, timed out, a 5xx or a 429 — so trying
    again later may succeed; any other error is an answer (a refusal) to act on."""
    if isinstance(exc, ApiError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, (OSError, TimeoutError))


async def retry_while_unavailable(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    max_backoff: float = 7.0,
) -> T:
    """``call()`` until the API answers it, backing off from 0.2 s to ``max_backoff``
    between attempts (as the kubelet retries its registration); a refusal is raised."""
    backoff = 0.2
    while True:
        try:
            return await call()
        except (ApiError, OSError, TimeoutError) as exc:
            if not is_unavailable(exc):
                raise
            log.warning("cannot %s yet (%s); trying again in %.1fs", what, exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


def _clean(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v not in (None, "", 0)}


def query_string(params: dict[str, Any]) -> str:
    cleaned = _clean(params)
    return urlencode(cleaned) if cleaned else ""
