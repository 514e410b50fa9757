"""The Node authorizer: what a node's agent may do, and nothing more (kube-apiserver's
``plugin/pkg/auth/authorizer/node/node_authorizer.go``).

A request from ``system:node:<name>`` in ``system:nodes`` is decided here; everyone else
gets no opinion. Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes and
ServiceAccount tokens are subdivided by a graph of what the node's pods reference: a node
may read a Secret only while a pod bound to it names that Secret (a volume, an env var, an
image pull secret), and the same for ConfigMaps and PVCs; a PV only through such a PVC; a
ServiceAccount token only for the ServiceAccount of one of its pods. Everything else a node
does is a fixed list of rules (upstream's ``NodeRules`` in ``bootstrappolicy``), and the
writes those rules allow are narrowed to the node's own objects by NodeRestriction
admission (:mod:`setpoint.api.noderestriction`): its own Node and Lease, its own pods'
status, never a new pod.

Where setpoint differs on purpose: upstream with ``AuthorizeNodeWithSelectors`` lets a node
list and watch only its own Node and only pods with ``spec.nodeName=<node>``. A setpoint
agent is also the node's kube-proxy and CNI plugin (it needs every Node's podCIDR, every
Service and EndpointSlice), and ``setpoint sim`` serves all its hollow nodes from one pod
watch, so setpoint keeps the rules upstream had before that gate: every node may read all
Nodes and Pods. Pods hold no secret values; Secrets stay behind the graph.

The graph (:class:`NodeGraph`) is kept incrementally from the pods' watch cache: each pod
change re-counts only that pod's references, so a decision is a dictionary look-up or two,
whatever the cluster's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from setpoint.api.auth.attributes import RequestAttributes
from setpoint.api.auth.authorizer import Decision
from setpoint.api.auth.user import NODES_GROUP, node_name_of

if TYPE_CHECKING:
    from setpoint.api.watchcache import CachedObject

NODE_LEASE_NAMESPACE = "kube-node-lease"

SECRET, CONFIGMAP, PVC, SERVICEACCOUNT, POD = (
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "serviceaccounts",
    "pods",
)
Ref = tuple[str, str, str]  # (kind plural, namespace, name)
# (plural, namespace, name) -> the cached object, or None (the API server's watch caches)
Lookup = Callable[[str, str, str], dict[str, Any] | None]

_READ = frozenset({"get", "list", "watch"})
# upstream's NodeRules, as (API group, resource[/subresource]) -> verbs; what is not here,
# and is not subdivided below, a node may not do
NODE_RULES: dict[tuple[str, str], frozenset[str]] = {
    ("", "nodes"): frozenset({"create", "get", "list", "watch", "update", "patch"}),
    ("", "nodes/status"): frozenset({"update", "patch"}),
    # update/patch: setpoint's assigned-ports annotation (NodeRestriction allows only that)
    ("", "pods"): frozenset({"get", "list", "watch", "create", "delete", "update", "patch"}),
    ("", "pods/status"): frozenset({"update", "patch"}),
    ("", "pods/eviction"): frozenset({"create"}),
    ("", "events"): frozenset({"create", "update", "patch"}),
    ("events.k8s.io", "events"): frozenset({"create", "update", "patch"}),
    ("", "services"): _READ,
    ("", "endpoints"): _READ,
    ("discovery.k8s.io", "endpointslices"): _READ,
    ("node.k8s.io", "runtimeclasses"): _READ,
    ("authentication.k8s.io", "tokenreviews"): frozenset({"create"}),
    ("authorization.k8s.io", "subjectaccessreviews"): frozenset({"create"}),
    ("authorization.k8s.io", "localsubjectaccessreviews"): frozenset({"create"}),
}


# ------------------------------------------------------------------ what a pod references


# volume sources that name a Secret of the pod's namespace in a ``secretRef``
_SECRET_REF_SOURCES = (
    "csi",
    "cephfs",
    "cinder",
    "flexVolume",
    "iscsi",
    "rbd",
    "scaleIO",
    "storageos",
)


def pod_references(pod: dict[str, Any]) -> frozenset[Ref]:
    """The Secrets, ConfigMaps, PVCs and ServiceAccount a pod names, and the pod itself
    (upstream's ``graph_populator``/``AddPod``). Runs on every pod change: kept to plain
    loops over the fields that can name something."""
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    spec = pod.get("spec") or {}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    refs: set[Ref] = {(POD, ns, name), (SERVICEACCOUNT, ns, account)}
    add = refs.add
    for pull in spec.get("imagePullSecrets") or ():
        if pull and pull.get("name"):
            add((SECRET, ns, pull["name"]))
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or ():
            for env in container.get("env") or ():
                source = env.get("valueFrom")
                if source:
                    ref = source.get("secretKeyRef")
                    if ref and ref.get("name"):
                        add((SECRET, ns, ref["name"]))
                    ref = source.get("configMapKeyRef")
                    if ref and ref.get("name"):
                        add((CONFIGMAP, ns, ref["name"]))
            for env_from in container.get("envFrom") or ():
                ref = env_from.get("secretRef")
                if ref and ref.get("name"):
                    add((SECRET, ns, ref["name"]))
                ref = env_from.get("configMapRef")
                if ref and ref.get("name"):
                    add((CONFIGMAP, ns, ref["name"]))
    for volume in spec.get("volumes") or ():
        source = volume.get("secret")
        if source is not None:
            if source.get("secretName"):
                add((SECRET, ns, source["secretName"]))
            continue
        source = volume.get("configMap")
        if source is not None:
            if source.get("name"):
                add((CONFIGMAP, ns, source["name"]))
            continue
        source = volume.get("persistentVolumeClaim")
        if source is not None:
            if source.get("claimName"):
                add((PVC, ns, source["claimName"]))
            continue
        if volume.get("ephemeral") is not None and volume.get("name"):
            add((PVC, ns, f"{name}-{volume['name']}"))  # the generic ephemeral volume's claim
            continue
        projected = volume.get("projected")
        if projected is not None:
            for item in projected.get("sources") or ():
                ref = item.get("secret")
                if ref and ref.get("name"):
                    add((SECRET, ns, ref["name"]))
                ref = item.get("configMap")
                if ref and ref.get("name"):
                    add((CONFIGMAP, ns, ref["name"]))
            continue
        for plugin in _SECRET_REF_SOURCES:
            source = volume.get(plugin)
            if source is not None:
                for field in ("secretRef", "nodePublishSecretRef"):
                    ref = source.get(field)
                    if ref and ref.get("name"):
                        add((SECRET, ns, ref["name"]))
    return frozenset(refs)


class NodeGraph:
    """Which objects each node's pods reference, kept from pod changes: per node, how many
    of its pods name each object."""

    def __init__(self) -> None:
        self._by_node: dict[str, dict[Ref, int]] = {}
        self._pods: dict[str, tuple[str, frozenset[Ref]]] = {}  # pod key -> (node, refs)

    def pod_changed(self, key: str, pod: dict[str, Any] | None) -> None:
        """Pod ``key`` is now ``pod`` (None: deleted)."""
        node = ((pod or {}).get("spec") or {}).get("nodeName") or ""
        refs = pod_references(pod) if pod is not None and node else frozenset()
        before = self._pods.get(key)
        if before is not None:
            if before[0] == node and before[1] == refs:
                return  # a status change: what the pod names is the same
            counts = self._by_node[before[0]]
            for ref in before[1]:
                left = counts[ref] - 1
                if left:
                    counts[ref] = left
                else:
                    del counts[ref]
            if not counts:
                del self._by_node[before[0]]
        if node:
            self._pods[key] = (node, refs)
            counts = self._by_node.setdefault(node, {})
            for ref in refs:
                counts[ref] = counts.get(ref, 0) + 1
        else:
            self._pods.pop(key, None)

    # the pods' watch cache tells the graph of every change (a CacheListener)
    def replaced(self, objects: Iterable[CachedObject]) -> None:
        """Start over from every pod there is (the cache re-listed)."""
        self._by_node.clear()
        self._pods.clear()
        for cached in objects:
            self.pod_changed(cached.key, cached.obj)

    def changed(self, key: str, cached: CachedObject | None) -> None:
        self.pod_changed(key, cached.obj if cached is not None else None)

    def references(self, node: str, ref: Ref) -> bool:
        counts = self._by_node.get(node)
        return counts is not None and ref in counts

    def referenced(self, node: str, kind: str) -> Iterator[Ref]:
        for ref in self._by_node.get(node) or ():
            if ref[0] == kind:
                yield ref


class NodeAuthorizer:
    """Allows a node what its role and its pods give it; no opinion otherwise."""

    def __init__(self, graph: NodeGraph, lookup: Lookup) -> None:
        self.graph = graph
        self._lookup = lookup

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        user = attrs.user
        if NODES_GROUP not in user.groups:
            return Decision.NO_OPINION, ""
        node = node_name_of(user)
        if node is None:
            return Decision.NO_OPINION, f'unknown node for user "{user.name}"'
        if attrs.resource_request:
            key = (attrs.api_group, attrs.resource)
            if key in (("", SECRET), ("", CONFIGMAP)):
                return self._read_referenced(node, attrs)
            if key == ("", PVC):
                if attrs.subresource == "status":
                    if attrs.verb not in ("update", "patch"):
                        return Decision.NO_OPINION, "can only get/update/patch this type"
                    return self._related(node, attrs, PVC)
                return self._get_related(node, attrs, PVC)
            if key == ("", "persistentvolumes"):
                return self._get_persistent_volume(node, attrs)
            if key == ("", SERVICEACCOUNT):
                return self._create_token(node, attrs)
            if key == ("coordination.k8s.io", "leases"):
                return self._lease(node, attrs)
        rule = NODE_RULES.get((attrs.api_group, attrs.resource_and_subresource))
        if attrs.resource_request and rule is not None and attrs.verb in rule:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""

    def _related(self, node: str, attrs: RequestAttributes, kind: str) -> tuple[Decision, str]:
        if not attrs.name:
            return Decision.NO_OPINION, "No Object name found"
        if self.graph.references(node, (kind, attrs.namespace, attrs.name)):
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, f"no relationship found between node '{node}' and this object"

    def _read_referenced(self, node: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb not in _READ:
            return Decision.NO_OPINION, "can only read resources of this type"
        if attrs.subresource:
            return Decision.NO_OPINION, "cannot read subresource"
        if not attrs.namespace:
            return Decision.NO_OPINION, "can only read namespaced object of this type"
        return self._related(node, attrs, attrs.resource)

    def _get_related(self, node: str, attrs: RequestAttributes, kind: str) -> tuple[Decision, str]:
        if attrs.verb != "get":
            return Decision.NO_OPINION, "can only get individual resources of this type"
        if attrs.subresource:
            return Decision.NO_OPINION, "cannot get subresource"
        return self._related(node, attrs, kind)

    def _get_persistent_volume(self, node: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb != "get":
            return Decision.NO_OPINION, "can only get individual resources of this type"
        if attrs.subresource:
            return Decision.NO_OPINION, "cannot get subresource"
        for _, namespace, claim in self.graph.referenced(node, PVC):
            pvc = self._lookup(PVC, namespace, claim)
            if pvc is not None and (pvc.get("spec") or {}).get("volumeName") == attrs.name:
                return Decision.ALLOW, ""
        return Decision.NO_OPINION, f"no relationship found between node '{node}' and this object"

    def _create_token(self, node: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb != "create" or not attrs.name:
            return Decision.NO_OPINION, "can only create tokens for individual service accounts"
        if attrs.subresource != "token":
            return Decision.NO_OPINION, "can only create token subresource of serviceaccount"
        return self._related(node, attrs, SERVICEACCOUNT)

    def _lease(self, node: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return (
                Decision.NO_OPINION,
                "can only get, create, update, patch, or delete a node lease",
            )
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return (
                Decision.NO_OPINION,
                f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace',
            )
        # a create's name is in its body: NodeRestriction checks it
        if attrs.verb != "create" and attrs.name != node:
            return (
                Decision.NO_OPINION,
                "can only access node lease with the same name as the requesting node",
            )
        return Decision.ALLOW, ""
