"""The ``kubernetes`` Service in ``default``: how pods (and ``kubectl cluster-info``) find the
API server.

kube-apiserver maintains it itself (``pkg/controlplane/controller/kubernetesservice`` and the
endpoint reconcilers of ``pkg/controlplane/reconcilers``): a ClusterIP Service holding the
first address of the service range, port 443 named ``https`` pointing at the server's secure
port, labelled ``component: apiserver, provider: kubernetes``, without a selector; and beside
it the Endpoints (``endpointslice.kubernetes.io/skip-mirror: "true"``) and the EndpointSlice
(``kubernetes.io/service-name: kubernetes``) that list the server's advertised address.
:class:`KubernetesService` writes all three through the storage (so the cluster IP is
allocated like any other) at start-up and every :data:`RECONCILE_INTERVAL`, putting back
whatever a user changed or deleted.

With several API servers the Endpoints list every live one, as kube-apiserver's lease
endpoint reconciler (``pkg/controlplane/reconcilers/lease.go``) does: each server keeps its
identity Lease (:mod:`setpoint.api.services.identity`) and every server writes, from the
unexpired Leases, the same objects. A server stopping cleanly deletes its Lease and writes
them without itself; one that died drops out when its Lease expires. Unlike upstream's,
servers of one cluster may share an address on different ports (several on one machine):
the Endpoints then have one subset per port, there is one EndpointSlice per port (the first
named ``kubernetes``, the others ``kubernetes-<port>-<family>``), and the Service's
``targetPort`` is the port name ``https`` instead of a number. The node proxy takes each
slice's port by that name, so the cluster IP reaches every server.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections import defaultdict

from setpoint.api.errors import APIError
from setpoint.api.services.identity import IdentityLeases, ServerEndpoint
from setpoint.api.storage import DeleteOptions, ResourceStorage, WriteOptions
from setpoint.resources.registry import Obj
from setpoint.resources.service import ip_family
from setpoint.store.interface import BackendError

log = logging.getLogger(__name__)

NAME = "kubernetes"
NAMESPACE = "default"
RECONCILE_INTERVAL = 10.0
FIELD_MANAGER = "kube-apiserver"
SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
PORT_NAME = "https"
_EXTRA_SLICE = re.compile(rf"{NAME}-\d+-ipv[46]")


def desired_service(cluster_ip: str, servers: list[ServerEndpoint]) -> Obj:
    ports = {s.port for s in servers}
    target: int | str = ports.pop() if len(ports) == 1 else PORT_NAME
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(SERVICE_LABELS)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [{"name": PORT_NAME, "port": 443, "protocol": "TCP", "targetPort": target}],
            "sessionAffinity": "None",
        },
    }


def _by_port(servers: list[ServerEndpoint]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for server in sorted(servers):
        found[server.port].append(server.address)
    return dict(sorted(found.items()))


def desired_endpoints(servers: list[ServerEndpoint]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {SKIP_MIRROR_LABEL: "true"},
        },
        "subsets": [
            {
                "addresses": [{"ip": address} for address in addresses],
                "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
            }
            for port, addresses in _by_port(servers).items()
        ],
    }


def desired_slices(servers: list[ServerEndpoint]) -> list[Obj]:
    """One EndpointSlice per port and address family, the first named ``kubernetes`` (an
    empty one when no server is left)."""
    groups: dict[tuple[int, str], list[str]] = defaultdict(list)
    for port, addresses in _by_port(servers).items():
        for address in addresses:
            groups[(port, ip_family(address))].append(address)
    slices = []
    for i, ((port, family), addresses) in enumerate(sorted(groups.items()) or [((0, "IPv4"), [])]):
        slices.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": NAME if i == 0 else f"{NAME}-{port}-{family.lower()}",
                    "namespace": NAMESPACE,
                    "labels": {SERVICE_NAME_LABEL: NAME},
                },
                "addressType": family,
                "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
                "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}] if port else [],
            }
        )
    return slices


class KubernetesService:
    """Keeps the ``kubernetes`` Service, Endpoints and EndpointSlices as
    :func:`desired_service` and friends describe them for the live API servers, and this
    server's identity Lease alive."""

    def __init__(
        self,
        *,
        services: ResourceStorage,
        endpoints: ResourceStorage,
        slices: ResourceStorage,
        identity: IdentityLeases,
        cluster_ip: str,
    ) -> None:
        self._services = services
        self._endpoints = endpoints
        self._slices = slices
        self._identity = identity
        self._cluster_ip = cluster_ip

    async def reconcile(self) -> None:
        """Renew this server's Lease, then bring the objects back to what they should be;
        a failure (a full disk, a user's Service holding the first address) is logged and
        tried again next time."""
        if not self._identity.withdrawn:
            try:
                await self._identity.renew()
            except (APIError, BackendError) as exc:
                log.warning("could not renew the identity Lease %s: %s", self._identity.name, exc)
        await self._write(self._identity.live())

    async def _write(self, servers: list[ServerEndpoint]) -> None:
        # the fields kept as desired: of the Service only its type and ports, as
        # CreateOrUpdateMasterServiceIfNeeded (its cluster IP cannot change anyway)
        service_fields = ("spec.type", "spec.ports")
        slice_fields = ("addressType", "endpoints", "ports")
        slices = desired_slices(servers)
        wanted: list[tuple[ResourceStorage, Obj, tuple[str, ...]]] = [
            (self._endpoints, desired_endpoints(servers), ("subsets",)),
            *((self._slices, s, slice_fields) for s in slices),
        ]
        if servers:  # the last server going leaves the Service as it was
            service = desired_service(self._cluster_ip, servers)
            wanted.insert(0, (self._services, service, service_fields))
        for storage, desired, fields in wanted:
            try:
                await _ensure(storage, desired, fields)
            except (APIError, BackendError) as exc:
                log.warning("could not update %s default/kubernetes: %s", desired["kind"], exc)
        names = {s["metadata"]["name"] for s in slices}
        for cached in list(self._slices.cache.items(NAMESPACE)):
            name = cached.obj["metadata"]["name"]
            if _EXTRA_SLICE.fullmatch(name) and name not in names:
                try:
                    await self._slices.delete(NAMESPACE, name, DeleteOptions())
                except APIError as exc:
                    if exc.code != 404:
                        log.warning("could not delete EndpointSlice default/%s: %s", name, exc)

    async def run(self) -> None:
        """Reconcile every interval (and collect the Leases of servers gone) until
        cancelled."""
        interval = min(RECONCILE_INTERVAL, self._identity.renew_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._identity.collect_expired()
            except (APIError, BackendError) as exc:
                log.warning("could not delete expired identity Leases: %s", exc)
            await self.reconcile()

    async def withdraw(self) -> None:
        """This server is stopping: delete its Lease and write the objects without it."""
        try:
            await self._identity.withdraw()
        except (APIError, BackendError) as exc:
            log.warning("could not delete the identity Lease %s: %s", self._identity.name, exc)
        await self._write(self._identity.live())


async def _ensure(storage: ResourceStorage, desired: Obj, fields: tuple[str, ...]) -> None:
    """Create ``desired``, or bring its labels and its ``fields`` (dotted paths) back when
    they differ."""
    opts = WriteOptions(field_manager=FIELD_MANAGER)
    name = desired["metadata"]["name"]
    cached = storage.cache.get(storage.key(NAMESPACE, name))
    if cached is None:
        try:
            await storage.create(NAMESPACE, copy.deepcopy(desired), opts)
        except APIError as exc:
            if exc.code != 409:
                raise
        return
    if not _differs(cached.obj, desired, fields):
        return

    def mutate(current: Obj) -> Obj:
        current["metadata"].setdefault("labels", {}).update(desired["metadata"]["labels"])
        for path in fields:
            *parents, leaf = path.split(".")
            target, source = current, desired
            for name in parents:
                target, source = target.setdefault(name, {}), source[name]
            target[leaf] = copy.deepcopy(source[leaf])
        return current

    await storage.replace_with_retry(NAMESPACE, name, mutate, opts)


def _get(obj: Obj, path: str) -> object:
    value: object = obj
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _differs(current: Obj, desired: Obj, fields: tuple[str, ...]) -> bool:
    labels = current["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in desired["metadata"]["labels"].items()):
        return True
    return any(_get(current, path) != _get(desired, path) for path in fields)
