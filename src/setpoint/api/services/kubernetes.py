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

With several API servers each would write its own address; Kubernetes merges them through
leases (``--endpoint-reconciler-type=lease``), which setpoint does not have yet: the
Endpoints name the address of the server that wrote them last.
"""

from __future__ import annotations

import asyncio
import copy
import logging

from setpoint.api.errors import APIError
from setpoint.api.storage import ResourceStorage, WriteOptions
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


def desired_service(cluster_ip: str, port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(SERVICE_LABELS)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None",
        },
    }


def desired_endpoints(address: str, port: int) -> Obj:
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
                "addresses": [{"ip": address}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }


def desired_slice(address: str, port: int) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {SERVICE_NAME_LABEL: NAME},
        },
        "addressType": ip_family(address),
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


class KubernetesService:
    """Keeps the three objects as :func:`desired_service` and friends describe them."""

    def __init__(
        self,
        *,
        services: ResourceStorage,
        endpoints: ResourceStorage,
        slices: ResourceStorage,
        cluster_ip: str,
        address: str,
        port: int,
    ) -> None:
        # the fields kept as desired: of the Service only its type and ports, as
        # CreateOrUpdateMasterServiceIfNeeded (its cluster IP cannot change anyway)
        self._service = (services, desired_service(cluster_ip, port), ("spec.type", "spec.ports"))
        self._endpoints = (endpoints, desired_endpoints(address, port), ("subsets",))
        self._slice = (slices, desired_slice(address, port), ("addressType", "endpoints", "ports"))

    async def reconcile(self) -> None:
        """Bring the three objects back to what they should be; a failure (a full disk, a
        user's Service holding the first address) is logged and tried again next time."""
        for storage, desired, fields in (self._service, self._endpoints, self._slice):
            try:
                await _ensure(storage, desired, fields)
            except (APIError, BackendError) as exc:
                log.warning("could not update %s default/kubernetes: %s", desired["kind"], exc)

    async def run(self) -> None:
        """Reconcile every interval until cancelled."""
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL)
            await self.reconcile()


async def _ensure(storage: ResourceStorage, desired: Obj, fields: tuple[str, ...]) -> None:
    """Create ``desired``, or bring its labels and its ``fields`` (dotted paths) back when
    they differ."""
    opts = WriteOptions(field_manager=FIELD_MANAGER)
    cached = storage.cache.get(storage.key(NAMESPACE, NAME))
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

    await storage.replace_with_retry(NAMESPACE, NAME, mutate, opts)


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
