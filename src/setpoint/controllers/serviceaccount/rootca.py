"""The root CA publisher (``rootcacertpublisher/publisher.go``): every active namespace has a
ConfigMap ``kube-root-ca.crt`` whose ``ca.crt`` is the cluster CA's PEM, so that a pod can
check the API server's certificate (the ServiceAccount admission projects it into every pod
with its token). Made when the namespace appears, and put back when it is deleted or its
data changed; the controller manager knows the CA from its own kubeconfig.
"""

from __future__ import annotations

import copy

from setpoint.client.api import CONFIGMAPS, NAMESPACES, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler
from setpoint.client.workqueue import Requeue
from setpoint.controllers.serviceaccount.serviceaccounts import namespace_active
from setpoint.meta.clock import REAL_CLOCK, Clock

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


class RootCACertPublisher(Controller[str]):
    name = "root-ca-cert-publisher"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        root_ca: str,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.root_ca = root_ca
        self.namespaces = informers.informer(NAMESPACES)
        self.configmaps = informers.informer(
            CONFIGMAPS, field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}"
        )
        self.namespaces.add_handler(
            EventHandler(
                on_add=self._enqueue_namespace,
                on_update=lambda old, new: self._enqueue_namespace(new),
            )
        )
        self.configmaps.add_handler(
            EventHandler(
                on_update=lambda old, new: self._enqueue_owner(new),
                on_delete=self._enqueue_owner,
            )
        )

    def _enqueue_namespace(self, namespace: Obj) -> None:
        self.queue.add(namespace["metadata"]["name"])

    def _enqueue_owner(self, configmap: Obj) -> None:
        if configmap["metadata"].get("name") == ROOT_CA_CONFIGMAP:
            self.queue.add(configmap["metadata"].get("namespace", ""))

    async def reconcile(self, key: str) -> Requeue | None:
        if not namespace_active(self.namespaces.get(key)):
            return None
        current = self.configmaps.get(f"{key}/{ROOT_CA_CONFIGMAP}")
        data = {ROOT_CA_KEY: self.root_ca}
        try:
            if current is None:
                configmap = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": ROOT_CA_CONFIGMAP,
                        "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
                    },
                    "data": data,
                }
                await self.client.create(CONFIGMAPS, configmap, key)
                return None
            annotations = current["metadata"].get("annotations") or {}
            if (
                current.get("data") == data
                and annotations.get(DESCRIPTION_ANNOTATION) == DESCRIPTION
            ):
                return None
            updated = copy.deepcopy(current)
            updated["data"] = data
            updated.pop("binaryData", None)
            updated["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
            await self.client.update(CONFIGMAPS, updated)
        except ApiError as exc:
            # lost a race (409: the next event brings the key back), or the namespace went
            if exc.code in (403, 404, 409):
                return None
            raise
        return None
