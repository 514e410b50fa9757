"""API server identity Leases: which API servers are alive, and where each is reached.

Each API server keeps a Lease ``kube-system/apiserver-<hash>`` labelled
``apiserver.kubernetes.io/identity=kube-apiserver``, as kube-apiserver does
(``pkg/controlplane/apiserver/server.go``, the ``APIServerIdentity`` feature): its
``holderIdentity`` is the lease name, ``renewTime`` is brought forward every third of
``leaseDurationSeconds``, and a server that stops cleanly deletes its own. The address and
port it serves at are in the annotation :data:`ENDPOINT_ANNOTATION`.

kube-apiserver lists itself in the ``kubernetes`` Endpoints through a second mechanism, the
lease endpoint reconciler (``pkg/controlplane/reconcilers/lease.go``): a TTL key per
server under ``/masterleases/`` (15 s, renewed every 10 s), and each server writes the
Endpoints from the unexpired keys. setpoint's store has no TTL keys and needs no second
kind of lease: the identity Lease carries the address, and its ``leaseDurationSeconds``
(``--identity-lease-duration-seconds``; default 15 s, the endpoint reconciler's TTL, where
kube-apiserver's identity Leases last an hour) is the TTL. :meth:`IdentityLeases.live`
answers the unexpired ones; an expired one is deleted by whichever server notices, as
upstream's ``apiserverleasegc`` controller does.

The hash names a server by its hostname *and* endpoint (upstream: by hostname alone),
since several servers of one cluster may run on one machine on different ports.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
from typing import NamedTuple

from setpoint.api.errors import APIError
from setpoint.api.storage import DeleteOptions, ResourceStorage, WriteOptions
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.timestamps import micro_time, parse_epoch
from setpoint.resources.registry import Obj

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY = "kube-apiserver"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ENDPOINT_ANNOTATION = "apiserver.setpoint.io/endpoint"  # "address:port" ("[v6]:port")
DEFAULT_DURATION_SECONDS = 15
FIELD_MANAGER = "kube-apiserver"


class ServerEndpoint(NamedTuple):
    """Where an API server is reached (its advertised address and secure port)."""

    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, value: object) -> ServerEndpoint | None:
        if not isinstance(value, str):
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            return None
        return cls(host.strip("[]"), int(port))


def lease_name(hostname: str, endpoint: ServerEndpoint) -> str:
    digest = hashlib.sha256(f"{hostname}/{endpoint}".encode()).digest()[:16]
    return "apiserver-" + base64.b32encode(digest).decode().rstrip("=").lower()


class IdentityLeases:
    """This server's identity Lease, and the view of every server's."""

    def __init__(
        self,
        *,
        leases: ResourceStorage,
        endpoint: ServerEndpoint,
        duration_seconds: int = DEFAULT_DURATION_SECONDS,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self._leases = leases
        self.endpoint = endpoint
        self.duration_seconds = duration_seconds
        self._clock = clock
        hostname = socket.gethostname()
        self.name = lease_name(hostname, endpoint)
        self._labels = {IDENTITY_LABEL: IDENTITY, HOSTNAME_LABEL: hostname}
        self.withdrawn = False

    @property
    def renew_interval(self) -> float:
        return self.duration_seconds / 3

    async def renew(self) -> None:
        """Create this server's Lease, or bring its ``renewTime`` to now."""
        now = micro_time(self._clock.time())
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": self.duration_seconds,
            "renewTime": now,
        }
        opts = WriteOptions(field_manager=FIELD_MANAGER)
        if self._leases.cache.get(self._leases.key(NAMESPACE, self.name)) is None:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": NAMESPACE,
                    "labels": dict(self._labels),
                    "annotations": {ENDPOINT_ANNOTATION: str(self.endpoint)},
                },
                "spec": {**spec, "acquireTime": now},
            }
            try:
                await self._leases.create(NAMESPACE, lease, opts)
                return
            except APIError as exc:
                if exc.code != 409:
                    raise

        def mutate(current: Obj) -> Obj:
            meta = current["metadata"]
            meta.setdefault("labels", {}).update(self._labels)
            meta.setdefault("annotations", {})[ENDPOINT_ANNOTATION] = str(self.endpoint)
            current.setdefault("spec", {}).update(spec)
            return current

        await self._leases.replace_with_retry(NAMESPACE, self.name, mutate, opts)

    async def withdraw(self) -> None:
        """Delete this server's Lease (a clean shutdown: the others drop it at once)."""
        self.withdrawn = True
        await self._delete(self.name)

    def live(self) -> list[ServerEndpoint]:
        """The endpoints of every API server whose Lease has not expired, sorted."""
        now = self._clock.time()
        found = set()
        for lease in self._identity_leases():
            endpoint = ServerEndpoint.parse(
                (lease["metadata"].get("annotations") or {}).get(ENDPOINT_ANNOTATION)
            )
            if endpoint is not None and not _expired(lease, now):
                found.add(endpoint)
        if not self.withdrawn:
            found.add(self.endpoint)
        return sorted(found)

    async def collect_expired(self) -> None:
        """Delete the Leases of servers that died without withdrawing."""
        now = self._clock.time()
        for lease in self._identity_leases():
            name = lease["metadata"]["name"]
            if name != self.name and _expired(lease, now):
                log.info("API server %s: its identity Lease %s expired", _endpoint(lease), name)
                await self._delete(name)

    def _identity_leases(self) -> list[Obj]:
        return [
            cached.obj
            for cached in self._leases.cache.items(NAMESPACE)
            if (cached.obj["metadata"].get("labels") or {}).get(IDENTITY_LABEL) == IDENTITY
        ]

    async def _delete(self, name: str) -> None:
        try:
            await self._leases.delete(NAMESPACE, name, DeleteOptions())
        except APIError as exc:
            if exc.code != 404:
                raise


def _endpoint(lease: Obj) -> str:
    return str((lease["metadata"].get("annotations") or {}).get(ENDPOINT_ANNOTATION, "?"))


def _expired(lease: Obj, now: float) -> bool:
    spec = lease.get("spec") or {}
    renewed = parse_epoch(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        return True
    return renewed + duration < now
