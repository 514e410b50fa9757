"""NodeRestriction admission: a node writes only what is its own
(kube-apiserver's ``plugin/pkg/admission/noderestriction/admission.go``).

The Node authorizer (:mod:`setpoint.api.auth.node`) lets every node create and update Nodes,
update pod status, delete pods and write Leases, because it cannot see which object a
write is about. This plugin, on every write from ``system:node:<name>``, checks that it is:

- **Nodes**: only its own (create, update, status). It may not register with, add, change or
  remove labels in ``node-restriction.kubernetes.io/`` (nor other ``kubernetes.io``/``k8s.io``
  labels than the kubelet's own), nor change its taints once registered — either would let a
  node steer workloads (and their Secrets) to itself.
- **Pods**: setpoint has no static pods, so no mirror pods: a node may not create a pod at
  all. It may update the status of pods bound to it (not their labels), and delete pods
  bound to it (as the agent confirms a graceful deletion); not touch anyone else's. Beyond
  Kubernetes, it may set one annotation on its own pods, ``setpoint.io/assigned-ports``
  (the node ports the agent gave a pod without a network of its own, which the endpoints
  controller reads); any other change to a pod but its status is refused.
- **Leases**: only its own, in ``kube-node-lease``.
- **ServiceAccount tokens**: only bound to a pod that runs on it (``boundObjectRef`` a Pod,
  with its uid), as upstream's ``admitServiceAccount``.
- **PVC status**: only ``status.capacity`` and ``status.conditions``.

Writes by anyone else, and the API server's own, pass untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from setpoint.api import errors
from setpoint.api.admission import CREATE, DELETE, UPDATE, AdmissionRequest
from setpoint.api.auth.user import node_name_of
from setpoint.api.errors import APIError
from setpoint.meta.assignedports import ANNOTATION as ASSIGNED_PORTS_ANNOTATION

NODE_LEASE_NAMESPACE = "kube-node-lease"
RESTRICTED_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
# kubelet's own labels (kubeletapis.IsKubeletLabel): a node may set these on itself
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

# (namespace, name) -> the pod, or None
PodLookup = Callable[[str, str], dict[str, Any] | None]


def _label_namespace(key: str) -> str:
    prefix, sep, _ = key.partition("/")
    return prefix if sep else ""


def _is_kubelet_label(key: str) -> bool:
    if key in KUBELET_LABELS:
        return True
    namespace = _label_namespace(key)
    return any(namespace == ns or namespace.endswith("." + ns) for ns in KUBELET_LABEL_NAMESPACES)


def _is_kubernetes_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return any(
        namespace == ns or namespace.endswith("." + ns) for ns in ("kubernetes.io", "k8s.io")
    )


def forbidden_labels(new: dict[str, str], old: dict[str, str]) -> list[str]:
    """The labels a node changed (added, removed or set) that it may not."""
    changed = {k for k in new.keys() | old.keys() if new.get(k) != old.get(k)}
    found = []
    for key in sorted(changed):
        namespace = _label_namespace(key)
        restricted = namespace == RESTRICTED_LABEL_NAMESPACE or namespace.endswith(
            "." + RESTRICTED_LABEL_NAMESPACE
        )
        if restricted or (_is_kubernetes_label(key) and not _is_kubelet_label(key)):
            found.append(key)
    return found


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _besides_node_annotations(pod: dict[str, Any] | None) -> dict[str, Any]:
    """A pod without what a node may write on it besides its status: the ports the agent
    assigned it (setpoint's ``setpoint.io/assigned-ports``), and what every write changes."""
    copy = dict(pod or {})
    meta = dict(copy.get("metadata") or {})
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(ASSIGNED_PORTS_ANNOTATION, None)
    meta["annotations"] = annotations
    copy["metadata"] = meta
    return copy


def _node_of_pod(pod: dict[str, Any] | None) -> str:
    return str(((pod or {}).get("spec") or {}).get("nodeName") or "")


class NodeRestriction:
    """Refuses a node's writes to anything not its own."""

    def __init__(self, pods: PodLookup) -> None:
        self._pods = pods

    async def admit(self, request: AdmissionRequest) -> None:
        return None

    async def validate(self, request: AdmissionRequest) -> None:
        if request.user is None:
            return
        node = node_name_of(request.user)
        if node is None:
            return
        group, plural = request.resource
        if (group, plural) == ("", "nodes"):
            self._node(node, request)
        elif (group, plural) == ("", "pods"):
            self._pod(node, request)
        elif (group, plural) == ("coordination.k8s.io", "leases"):
            self._lease(node, request)
        elif (group, plural) == ("", "serviceaccounts"):
            self._token_request(node, request)
        elif (group, plural) == ("", "persistentvolumeclaims") and request.subresource == "status":
            self._pvc_status(node, request)

    def _refuse(self, request: AdmissionRequest, why: str) -> APIError:
        return errors.forbidden_object(request.rtype, request.name, why)

    def _node(self, node: str, request: AdmissionRequest) -> None:
        if request.name != node:
            raise self._refuse(
                request, f'node "{node}" is not allowed to modify node "{request.name}"'
            )
        if request.operation == CREATE:
            bad = forbidden_labels(_labels(request.obj), {})
            if bad:
                raise self._refuse(
                    request,
                    f'node "{node}" is not allowed to set the following labels: ' + ", ".join(bad),
                )
        elif request.operation == UPDATE:
            new_spec = (request.obj or {}).get("spec") or {}
            old_spec = (request.old or {}).get("spec") or {}
            if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise self._refuse(request, f'node "{node}" is not allowed to modify taints')
            bad = forbidden_labels(_labels(request.obj), _labels(request.old))
            if bad:
                raise self._refuse(request, "is not allowed to modify labels: " + ", ".join(bad))

    def _pod(self, node: str, request: AdmissionRequest) -> None:
        if request.operation == CREATE:
            raise self._refuse(
                request,
                f'node "{node}" can not create pods (setpoint has no static or mirror pods)',
            )
        if request.operation == DELETE:
            if _node_of_pod(request.old) != node:
                raise self._refuse(
                    request, f'node "{node}" can only delete pods with spec.nodeName set to itself'
                )
            return
        if request.subresource != "status":
            if _node_of_pod(request.old) != node:
                raise self._refuse(
                    request,
                    f'node "{node}" can only update pods with spec.nodeName set to itself',
                )
            if _besides_node_annotations(request.obj) != _besides_node_annotations(request.old):
                raise self._refuse(
                    request,
                    f'node "{node}" can only update the status of pods and their '
                    f"{ASSIGNED_PORTS_ANNOTATION} annotation",
                )
            return
        if _node_of_pod(request.old) != node:
            raise self._refuse(
                request,
                f'node "{node}" can only update pod status for pods with spec.nodeName set to '
                "itself",
            )
        if _labels(request.obj) != _labels(request.old):
            raise self._refuse(request, f'node "{node}" cannot update labels through pod status')

    def _lease(self, node: str, request: AdmissionRequest) -> None:
        if request.namespace != NODE_LEASE_NAMESPACE:
            raise self._refuse(
                request,
                f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace',
            )
        if request.name != node:
            raise self._refuse(
                request, "can only access node lease with the same name as the requesting node"
            )

    def _token_request(self, node: str, request: AdmissionRequest) -> None:
        if request.operation != CREATE or request.subresource != "token":
            return
        ref = ((request.obj or {}).get("spec") or {}).get("boundObjectRef") or {}
        if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise self._refuse(request, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise self._refuse(request, "node requested token with a pod binding without a uid")
        pod = self._pods(request.namespace or "", str(ref["name"]))
        if pod is None:
            raise errors.APIError(
                404, "NotFound", f'pods "{ref["name"]}" not found', details={"kind": "pods"}
            )
        if ref["uid"] != (pod.get("metadata") or {}).get("uid"):
            raise self._refuse(
                request,
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                "in record. The object might have been deleted and then recreated",
            )
        if _node_of_pod(pod) != node:
            raise self._refuse(
                request, "node requested token bound to a pod scheduled on a different node"
            )

    def _pvc_status(self, node: str, request: AdmissionRequest) -> None:
        def rest(obj: dict[str, Any] | None) -> dict[str, Any]:
            copy = dict(obj or {})
            meta = dict(copy.get("metadata") or {})
            for key in ("resourceVersion", "managedFields"):
                meta.pop(key, None)
            status = dict(copy.get("status") or {})
            for key in (
                "capacity",
                "conditions",
                "allocatedResources",
                "allocatedResourceStatuses",
            ):
                status.pop(key, None)
            copy["metadata"], copy["status"] = meta, status
            return copy

        if rest(request.obj) != rest(request.old):
            raise self._refuse(
                request,
                f'node "{node}" is not allowed to update fields other than status.capacity '
                "and status.conditions",
            )
