"""ApiClient: an asyncio Kubernetes REST client over HTTPS with a bearer token.

It addresses resources by :class:`Resource` (group, version, plural, namespaced), returns
objects as plain JSON dicts, raises :class:`ApiError` carrying the server's ``Status``, and
streams watches as ``(type, object)`` events. ``from_kubeconfig`` reads the kubeconfig that
``setpoint server`` writes. Writers that read-modify-write use :meth:`ApiClient.retry_on_conflict`.
"""

from __future__ import annotations

import asyncio
import copy
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from setpoint.client.http import ConnectionPool
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
        server: str | None,
        token_file: Path | None,
        ca_file: Path | None,
        user_agent: str,
    ) -> ClientConfig:
        """A server URL with a token file and a CA file (k3s agent's ``--server``,
        ``--token-file``, ``--ca-file``), or else a kubeconfig; ValueError names what is
        missing. ``user_agent`` is the component's own: it becomes the field manager of
        everything it writes."""
        if server:
            if token_file is None or ca_file is None:
                raise ValueError("--server needs --token-file and --ca-file")
            return cls(
                server_url=server,
                token=token_file.read_text().strip(),
                ca_pem=ca_file.read_bytes(),
                user_agent=user_agent,
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


class ApiClient:
    """One keep-alive connection pool to the API server. Close with :meth:`close`."""

    def __init__(self, config: ClientConfig, *, connections: int = 32) -> None:
        self.config = config
        self._ssl: ssl.SSLContext = client_ssl_context(
            config.ca_pem,
            client_cert_pem=config.client_cert_pem,
            client_key_pem=config.client_key_pem,
        )
        headers = {"User-Agent": config.user_agent, "Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._authorization: str | None = None  # this view's own (see with_token)
        # unary requests: the lean pool; watches and other streams: aiohttp
        self._pool = ConnectionPool(
            config.server_url, ssl_context=self._ssl, headers=headers, limit=connections
        )
        self._session = aiohttp.ClientSession(
            base_url=config.server_url,
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

    async def close(self) -> None:
        await self._pool.close()
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
        for attempt in range(THROTTLE_RETRIES + 1):
            response = await self._pool.request(
                method,
                path,
                query=query_string(params) if params else "",
                body=encoded,
                content_type=content_type,
                timeout=timeout,
                authorization=self._authorization,
            )
            decoded: Obj = orjson.loads(response.body) if response.body else {}
            if response.status != 429 or attempt == THROTTLE_RETRIES:
                break
            # refused before it was served (the server sheds load): safe to send again
            await asyncio.sleep(_retry_after(decoded))
        if response.status >= 400:
            raise ApiError(response.status, decoded if isinstance(decoded, dict) else {})
        return decoded

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
        try:
            async with self._session.get(
                resource.path(namespace),
                params=_clean(params),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=30, sock_read=timeout_seconds + 30
                ),
                headers={"Authorization": self._authorization} if self._authorization else None,
            ) as response:
                if response.status >= 400:
                    payload = await response.read()
                    raise ApiError(response.status, orjson.loads(payload) if payload else {})
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    if event["type"] == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(int(status.get("code", 500)), status)
                    yield event["type"], event["object"]
        except aiohttp.ClientError as exc:
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


def _clean(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    return {k: str(v) for k, v in params.items() if v not in (None, "", 0)}


def query_string(params: dict[str, Any]) -> str:
    cleaned = _clean(params)
    return urlencode(cleaned) if cleaned else ""
