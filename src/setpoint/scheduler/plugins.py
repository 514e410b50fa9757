"""Scheduling plugins: filters and scores over a snapshot of nodes, as kube-scheduler's.

The scheduler decides one pod at a time. For that decision it reads a
:class:`ClusterSnapshot`: one :class:`NodeInfo` per node, holding the node's allocatable
resources, its (implicit and explicit) taints and labels, and the pods bound — or assumed
bound — to it with the resources they request. The snapshot is kept up to date
incrementally by the scheduler's cache (pod and node informer events, plus the pods it has
just bound itself), so a decision never walks every pod in the cluster.

A decision runs in the phases of Kubernetes' scheduling framework:

* **PreFilter** (:func:`prepare`): what can be computed once per pod — its effective
  requests (containers summed, init containers max'd, sidecars included, as
  ``resourcehelper.PodRequests``), its tolerations and node selector, and, only when the pod
  has them, the topology-domain counts its inter-pod affinity and topology spread
  constraints need.
* **Filter** (:func:`filter_node`): a node is feasible if every filter passes, run in the
  order of the default profile — NodeUnschedulable, TaintToleration, NodeAffinity (node
  selector and required node affinity), NodePorts (``hostPort``s already taken),
  NodeResourcesFit, PodTopologySpread, InterPodAffinity. The first filter that rejects a
  node gives that node's :class:`Status`, whose reasons are Kubernetes' own texts.
* **Score** (:func:`score_nodes`): each feasible node gets 0..100 per plugin, weighted as
  the default profile weighs them — least-allocated and balanced resource use (weight 1
  each), taint toleration for ``PreferNoSchedule`` (3), preferred node affinity (2), and
  spreading pods of the same controller across nodes (2). The highest total wins; ties are
  broken at random.

When no node fits, :func:`fit_error_message` renders the summary kube-scheduler puts in the
``FailedScheduling`` event and the PodScheduled condition (``FitError.Error()``): the number
of nodes, the histogram of reasons sorted as strings, and what preemption would say.
setpoint does not preempt; the message says what Kubernetes says when preemption finds no
victims, which is what it finds in a cluster without pod priorities.

A node whose Ready condition is not True is treated as carrying the taint the node
lifecycle controller would put on it (``node.kubernetes.io/not-ready`` or
``.../unreachable``, ``NoSchedule``), so pods that tolerate it (as DaemonSet pods do) can
still land there, and others see the usual untolerated-taint reason.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from setpoint.meta.labels import Selector, SelectorParseError, selector_from_label_selector
from setpoint.meta.nodeaffinity import node_selector_term_matches
from setpoint.meta.quantity import QuantityError, parse_quantity
from setpoint.meta.taints import TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, tolerates

Obj = dict[str, Any]

HOSTNAME_LABEL = "kubernetes.io/hostname"

# Used for scoring only, as schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: a
# container without requests still counts for something, so empty pods spread out.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
MAX_NODE_SCORE = 100

# Filter reasons, verbatim from the Kubernetes plugins.
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_TAINT = "node(s) had untolerated taint(s)"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
REASON_NODE_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_SPREAD = "node(s) didn't match pod topology spread constraints"
REASON_SPREAD_LABEL = REASON_SPREAD + " (missing required label)"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
NO_NODES_AVAILABLE = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
PREEMPTION_NO_VICTIMS = "No preemption victims found for incoming pod"

# Score weights of the default profile.
WEIGHT_LEAST_ALLOCATED = 1
WEIGHT_BALANCED = 1
WEIGHT_TAINT = 3
WEIGHT_NODE_AFFINITY = 2
WEIGHT_SPREAD = 2

# percentageOfNodesToScore, adaptive as in Kubernetes' numFeasibleNodesToFind.
MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENTAGE = 5
BASE_PERCENTAGE = 50


# ------------------------------------------------------------------ resources


@functools.lru_cache(maxsize=8192)
@functools.lru_cache(maxsize=8192)
def milli_value(text: str) -> int:
    """``Quantity.MilliValue()``: rounded up to whole milli-units."""
    try:
        return math.ceil(parse_quantity(str(text)).value * 1000)
    except QuantityError:
        return 0


@functools.lru_cache(maxsize=8192)
def int_value(text: str) -> int:
    """``Quantity.Value()``: rounded up to a whole unit."""
    try:
        return math.ceil(parse_quantity(str(text)).value)
    except QuantityError:
        return 0


@dataclass
class Resources:
    """A resource amount as the scheduler counts it: milli-CPU, bytes, and extended
    resources by name (``nvidia.com/gpu``: count)."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_list(cls, rl: Mapping[str, Any] | None) -> Resources:
        r = cls()
        r.add_list(rl)
        return r

    def add_list(self, rl: Mapping[str, Any] | None) -> None:
        for name, quantity in (rl or {}).items():
            if name == "cpu":
                self.milli_cpu += milli_value(str(quantity))
            elif name == "memory":
                self.memory += int_value(str(quantity))
            elif name == "ephemeral-storage":
                self.ephemeral_storage += int_value(str(quantity))
            elif name != "pods" and _is_scalar(name):
                self.scalar[name] = self.scalar.get(name, 0) + int_value(str(quantity))

    def add(self, other: Resources, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        for name, value in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + sign * value

    def set_max(self, other: Resources) -> None:
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        for name, value in other.scalar.items():
            self.scalar[name] = max(self.scalar.get(name, 0), value)

    def copy(self) -> Resources:
        return Resources(self.milli_cpu, self.memory, self.ephemeral_storage, dict(self.scalar))

    def is_zero(self) -> bool:
        return not (
            self.milli_cpu
            or self.memory
            or self.ephemeral_storage
            or any(v for v in self.scalar.values())
        )


def _is_scalar(name: str) -> bool:
    # Extended resources (domain-prefixed), hugepages and attachable volumes count as
    # scalar resources; "cpu", "memory" and friends are handled by name.
    return "/" in name or name.startswith("hugepages-")


def _container_requests(container: Mapping[str, Any], *, non_zero: bool) -> Resources:
    requests = (container.get("resources") or {}).get("requests") or {}
    r = Resources.from_list(requests)
    if non_zero:
        if "cpu" not in requests:
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
        if "memory" not in requests:
            r.memory = DEFAULT_MEMORY_REQUEST
    return r


def pod_requests(pod: Mapping[str, Any], *, non_zero: bool = False) -> Resources:
    """The pod's effective requests, as ``resourcehelper.PodRequests``.

    Regular containers run together, so their requests add up. Init containers run one at
    a time before them, so the pod needs the largest of them — but restartable init
    containers (sidecars, ``restartPolicy: Always``) keep running, so each sidecar adds to
    the regular containers' sum and to every init container started after it. Pod-level
    ``spec.resources.requests`` replace the container sum for the resources they name;
    ``spec.overhead`` is added on top. With ``non_zero``, containers without a cpu or
    memory request count the scoring defaults (100m, 200Mi).
    """
    spec = pod.get("spec") or {}
    total = Resources()
    for container in spec.get("containers") or []:
        total.add(_container_requests(container, non_zero=non_zero))
    sidecars = Resources()
    init_max = Resources()
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container, non_zero=non_zero)
        if container.get("restartPolicy") == "Always":
            total.add(requests)
            sidecars.add(requests)
            init_max.set_max(sidecars)
        else:
            running = requests.copy()
            running.add(sidecars)
            init_max.set_max(running)
    total.set_max(init_max)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    if pod_level:
        if "cpu" in pod_level:
            total.milli_cpu = milli_value(str(pod_level["cpu"]))
        if "memory" in pod_level:
            total.memory = int_value(str(pod_level["memory"]))
    total.add_list(spec.get("overhead"))
    return total


# ------------------------------------------------------------------ snapshot


class Term(NamedTuple):
    """A pod (anti-)affinity term, parsed: which pods it selects and over which domain."""

    selector: Selector
    namespaces: frozenset[str] | None  # None: every namespace
    topology_key: str
    weight: int = 0

    def matches(self, pod: PodInfo) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return self.selector.matches(pod.labels)


def parse_terms(pod: Mapping[str, Any], terms: Iterable[Mapping[str, Any]] | None) -> list[Term]:
    """``GetAffinityTerms``: namespaces default to the pod's own; an empty
    ``namespaceSelector`` ({}) means all namespaces. Other namespace selectors need
    namespace labels, which the scheduler does not watch: they add no namespaces."""
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    parsed: list[Term] = []
    for raw in terms or []:
        weight = 0
        if "podAffinityTerm" in raw:
            weight = int(raw.get("weight") or 0)
            raw = raw["podAffinityTerm"] or {}
        try:
            selector = selector_from_label_selector(raw.get("labelSelector"))
        except SelectorParseError:
            selector = Selector.nothing()
        names = raw.get("namespaces") or []
        ns_selector = raw.get("namespaceSelector")
        namespaces: frozenset[str] | None
        if (
            ns_selector is not None
            and not ns_selector.get("matchLabels")
            and not (ns_selector.get("matchExpressions"))
        ):
            namespaces = None
        elif names or ns_selector is not None:
            namespaces = frozenset(names)
        else:
            namespaces = frozenset([namespace])
        parsed.append(Term(selector, namespaces, str(raw.get("topologyKey") or ""), weight))
    return parsed


@dataclass
class PodInfo:
    """What the snapshot keeps of a pod bound (or assumed bound) to a node."""

    key: str
    namespace: str
    labels: Mapping[str, str]
    node_name: str
    requests: Resources
    non_zero: Resources
    owner_uid: str
    anti_affinity: list[Term]  # required anti-affinity of this pod, for incoming pods
    host_ports: tuple[HostPort, ...] = ()

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any], node_name: str = "") -> PodInfo:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        anti = ((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        return cls(
            key=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
            namespace=meta.get("namespace") or "",
            labels=meta.get("labels") or {},
            node_name=node_name or spec.get("nodeName") or "",
            requests=pod_requests(pod),
            non_zero=pod_requests(pod, non_zero=True),
            owner_uid=controller_uid(pod),
            anti_affinity=parse_terms(pod, anti) if anti else [],
            host_ports=host_ports(spec),
        )


class HostPort(NamedTuple):
    """A ``hostPort`` a pod claims on its node (``hostIP`` 0.0.0.0 means every address)."""

    ip: str
    protocol: str
    port: int


WILDCARD_IP = "0.0.0.0"


def host_ports(spec: Mapping[str, Any]) -> tuple[HostPort, ...]:
    """The host ports of a pod's containers and sidecars, as NodePorts' ``getContainerPorts``."""
    containers = [
        *(spec.get("containers") or []),
        *(c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"),
    ]
    return tuple(
        HostPort(port.get("hostIP") or WILDCARD_IP, port.get("protocol") or "TCP", host_port)
        for container in containers
        for port in container.get("ports") or []
        if (host_port := port.get("hostPort"))
    )


def controller_uid(pod: Mapping[str, Any]) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid") or "")
    return ""


@dataclass
class NodeInfo:
    """One node as the scheduler sees it: the node, what it offers, what is taken."""

    name: str
    node: Obj
    labels: Mapping[str, str]
    taints: list[Mapping[str, Any]]
    unschedulable: bool
    allocatable: Resources
    allowed_pods: int
    requested: Resources = field(default_factory=Resources)
    non_zero_requested: Resources = field(default_factory=Resources)
    pods: dict[str, PodInfo] = field(default_factory=dict)
    # (protocol, port) -> how many pods hold it on each host IP
    used_ports: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    # resource_scores by the incoming pod's requests, while the node's pods stay the same:
    # the replicas of one workload ask the same, so most nodes are scored once per change
    resource_score_cache: dict[tuple[int, int, int, int], int] = field(default_factory=dict)

    @classmethod
    def from_node(cls, node: Obj) -> NodeInfo:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        labels = dict(meta.get("labels") or {})
        labels.setdefault(HOSTNAME_LABEL, meta.get("name", ""))
        taints = list(spec.get("taints") or [])
        implicit = _readiness_taint(node)
        if implicit and not any(t.get("key") == implicit["key"] for t in taints):
            taints.append(implicit)
        return cls(
            name=meta.get("name", ""),
            node=node,
            labels=labels,
            taints=taints,
            unschedulable=bool(spec.get("unschedulable")),
            allocatable=Resources.from_list(allocatable),
            allowed_pods=int_value(str(allocatable.get("pods", "0"))),
        )

    def add_pod(self, pod: PodInfo) -> None:
        self.pods[pod.key] = pod
        self.requested.add(pod.requests)
        self.non_zero_requested.add(pod.non_zero)
        self.resource_score_cache.clear()
        for ip, protocol, port in pod.host_ports:
            ips = self.used_ports.setdefault((protocol, port), {})
            ips[ip] = ips.get(ip, 0) + 1

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            self.requested.add(pod.requests, -1)
            self.non_zero_requested.add(pod.non_zero, -1)
            self.resource_score_cache.clear()
            for ip, protocol, port in pod.host_ports:
                ips = self.used_ports[(protocol, port)]
                ips[ip] -= 1
                if not ips[ip]:
                    del ips[ip]
                if not ips:
                    del self.used_ports[(protocol, port)]
        return pod

    def port_taken(self, want: HostPort) -> bool:
        """``HostPortInfo.CheckConflict``: the same protocol and port on the same host IP,
        or on any IP when either side binds every address."""
        ips = self.used_ports.get((want.protocol, want.port))
        if not ips:
            return False
        return want.ip == WILDCARD_IP or want.ip in ips or WILDCARD_IP in ips


def _readiness_taint(node: Mapping[str, Any]) -> dict[str, str] | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return None
            if condition.get("status") == "Unknown":
                return {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}
            return {"key": TAINT_NOT_READY, "effect": "NoSchedule"}
    return {"key": TAINT_NOT_READY, "effect": "NoSchedule"}


class ClusterSnapshot:
    """Every node with the pods on it, kept current by incremental updates.

    Besides the per-node totals it indexes what scheduling needs often: pods by namespace
    (for affinity and spread counting), pods carrying required anti-affinity (which every
    incoming pod must respect), and per-controller pod counts per node (for spreading).
    """

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.order: list[str] = []
        self.pods: dict[str, PodInfo] = {}
        self.pods_by_namespace: dict[str, dict[str, PodInfo]] = {}
        self.with_anti_affinity: dict[str, PodInfo] = {}
        self.owner_counts: dict[str, dict[str, int]] = {}
        # Pods whose node is not (yet) known: counted once their node appears.
        self._orphans: dict[str, dict[str, PodInfo]] = {}
        self._node_list: list[NodeInfo] | None = None

    def node_list(self) -> list[NodeInfo]:
        """The nodes in the order they were added (do not change the list)."""
        if self._node_list is None:
            self._node_list = [self.nodes[name] for name in self.order]
        return self._node_list

    def set_node(self, node: Obj) -> NodeInfo:
        self._node_list = None
        info = NodeInfo.from_node(node)
        old = self.nodes.get(info.name)
        if old is None:
            self.order.append(info.name)
            for pod in self._orphans.pop(info.name, {}).values():
                info.add_pod(pod)
        else:
            for pod in old.pods.values():
                info.add_pod(pod)
        self.nodes[info.name] = info
        return info

    def remove_node(self, name: str) -> None:
        info = self.nodes.pop(name, None)
        if info is None:
            return
        self._node_list = None
        self.order.remove(name)
        if info.pods:
            self._orphans[name] = dict(info.pods)

    def add_pod(self, pod: PodInfo) -> None:
        self.remove_pod(pod.key)
        self.pods[pod.key] = pod
        self.pods_by_namespace.setdefault(pod.namespace, {})[pod.key] = pod
        if pod.anti_affinity:
            self.with_anti_affinity[pod.key] = pod
        if pod.owner_uid:
            counts = self.owner_counts.setdefault(pod.owner_uid, {})
            counts[pod.node_name] = counts.get(pod.node_name, 0) + 1
        node = self.nodes.get(pod.node_name)
        if node is not None:
            node.add_pod(pod)
        else:
            self._orphans.setdefault(pod.node_name, {})[pod.key] = pod

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        namespace_pods = self.pods_by_namespace.get(pod.namespace)
        if namespace_pods is not None:
            namespace_pods.pop(key, None)
            if not namespace_pods:
                del self.pods_by_namespace[pod.namespace]
        self.with_anti_affinity.pop(key, None)
        if pod.owner_uid:
            counts = self.owner_counts.get(pod.owner_uid, {})
            left = counts.get(pod.node_name, 0) - 1
            if left > 0:
                counts[pod.node_name] = left
            else:
                counts.pop(pod.node_name, None)
                if not counts:
                    self.owner_counts.pop(pod.owner_uid, None)
        node = self.nodes.get(pod.node_name)
        if node is not None:
            node.remove_pod(key)
        else:
            orphans = self._orphans.get(pod.node_name)
            if orphans is not None:
                orphans.pop(key, None)
                if not orphans:
                    del self._orphans[pod.node_name]
        return pod


# ------------------------------------------------------------------ pre-filter


class Status(NamedTuple):
    """Why one filter rejected a node. ``resolvable`` is Kubernetes' Unschedulable (removing
    pods could help; preemption is tried) as opposed to UnschedulableAndUnresolvable."""

    plugin: str
    reasons: tuple[str, ...]
    resolvable: bool = False


@dataclass
class PodState:
    """Everything about the incoming pod that filters and scores read (PreFilter)."""

    pod: Mapping[str, Any]
    info: PodInfo
    tolerations: list[Mapping[str, Any]]
    node_selector: Mapping[str, str]
    required_node_terms: list[Mapping[str, Any]] | None
    preferred_node_terms: list[Mapping[str, Any]]
    affinity_terms: list[Term]
    affinity_counts: dict[tuple[str, str], int]  # (key, value) -> pods matching all terms
    affinity_matches_self: bool
    anti_affinity_terms: list[Term]
    anti_affinity_counts: list[dict[str, int]]  # per term: domain value -> matching pods
    existing_anti_affinity: set[tuple[str, str]]  # (topologyKey, value) forbidden
    spread: list[SpreadConstraint]
    has_node_affinity: bool = False
    has_inter_pod_affinity: bool = False


@dataclass
class SpreadConstraint:
    max_skew: int
    topology_key: str
    selector: Selector
    self_match: int
    counts: dict[str, int]  # domain value -> matching pods in eligible nodes
    min_match: int


def prepare(pod: Mapping[str, Any], snapshot: ClusterSnapshot) -> PodState:
    """PreFilter: compute once per pod what every node's filter and score needs."""
    spec = pod.get("spec") or {}
    info = PodInfo.from_pod(pod)
    affinity = spec.get("affinity") or {}
    node_affinity = affinity.get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    state = PodState(
        pod=pod,
        info=info,
        tolerations=spec.get("tolerations") or [],
        node_selector=spec.get("nodeSelector") or {},
        required_node_terms=(required or {}).get("nodeSelectorTerms") or []
        if required is not None
        else None,
        preferred_node_terms=node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
        or [],
        affinity_terms=parse_terms(
            pod,
            (affinity.get("podAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            ),
        ),
        affinity_counts={},
        affinity_matches_self=False,
        anti_affinity_terms=info.anti_affinity,
        anti_affinity_counts=[],
        existing_anti_affinity=set(),
        spread=[],
    )
    state.has_node_affinity = bool(state.node_selector) or state.required_node_terms is not None
    _prepare_inter_pod_affinity(state, snapshot)
    state.has_inter_pod_affinity = bool(
        state.affinity_terms or state.anti_affinity_terms or state.existing_anti_affinity
    )
    state.spread = _prepare_spread(state, snapshot)
    return state


def _prepare_inter_pod_affinity(state: PodState, snapshot: ClusterSnapshot) -> None:
    for existing in snapshot.with_anti_affinity.values():
        node = snapshot.nodes.get(existing.node_name)
        if node is None:
            continue
        for term in existing.anti_affinity:
            if term.matches(state.info) and term.topology_key in node.labels:
                state.existing_anti_affinity.add(
                    (term.topology_key, node.labels[term.topology_key])
                )
    terms = state.affinity_terms + state.anti_affinity_terms
    if not terms:
        return
    affinity: dict[tuple[str, str], int] = {}
    anti: list[dict[str, int]] = [{} for _ in state.anti_affinity_terms]
    for existing in _candidate_pods(snapshot, terms):
        node = snapshot.nodes.get(existing.node_name)
        if node is None:
            continue
        # An existing pod counts for affinity only if it matches every term.
        if state.affinity_terms and all(t.matches(existing) for t in state.affinity_terms):
            for term in state.affinity_terms:
                value = node.labels.get(term.topology_key)
                if value is not None:
                    pair = (term.topology_key, value)
                    affinity[pair] = affinity.get(pair, 0) + 1
        for i, term in enumerate(state.anti_affinity_terms):
            value = node.labels.get(term.topology_key)
            if value is not None and term.matches(existing):
                anti[i][value] = anti[i].get(value, 0) + 1
    state.affinity_counts = affinity
    state.anti_affinity_counts = anti
    state.affinity_matches_self = bool(state.affinity_terms) and all(
        t.matches(state.info) for t in state.affinity_terms
    )


def _candidate_pods(snapshot: ClusterSnapshot, terms: Sequence[Term]) -> Iterable[PodInfo]:
    namespaces: set[str] = set()
    for term in terms:
        if term.namespaces is None:
            return snapshot.pods.values()
        namespaces |= term.namespaces
    return [p for ns in namespaces for p in snapshot.pods_by_namespace.get(ns, {}).values()]


def _prepare_spread(state: PodState, snapshot: ClusterSnapshot) -> list[SpreadConstraint]:
    raw = [
        c
        for c in (state.pod.get("spec") or {}).get("topologySpreadConstraints") or []
        if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
    ]
    if not raw:
        return []
    labels = state.info.labels
    constraints: list[SpreadConstraint] = []
    for c in raw:
        try:
            selector = selector_from_label_selector(c.get("labelSelector"))
        except SelectorParseError:
            selector = Selector.nothing()
        keys = [k for k in c.get("matchLabelKeys") or [] if k in labels]
        if keys:
            selector = Selector(
                [*selector.requirements, *selector_from_set(labels, keys).requirements]
            )
        constraints.append(
            SpreadConstraint(
                max_skew=int(c.get("maxSkew") or 1),
                topology_key=str(c.get("topologyKey") or ""),
                selector=selector,
                self_match=1 if selector.matches(labels) else 0,
                counts={},
                min_match=0,
            )
        )
    # Eligible nodes: those the pod's node selector / required affinity admit
    # (nodeAffinityPolicy: Honor) and that carry every constraint's topology key.
    eligible = [
        node
        for node in snapshot.node_list()
        if _node_affinity_matches(state, node)
        and all(c.topology_key in node.labels for c in constraints)
    ]
    for c in constraints:
        for node in eligible:
            c.counts.setdefault(node.labels[c.topology_key], 0)
    namespace_pods = snapshot.pods_by_namespace.get(state.info.namespace, {})
    eligible_names = {node.name for node in eligible}
    for existing in namespace_pods.values():
        if existing.node_name not in eligible_names:
            continue
        node = snapshot.nodes[existing.node_name]
        for c in constraints:
            if c.selector.matches(existing.labels):
                value = node.labels[c.topology_key]
                c.counts[value] += 1
    for c in constraints:
        c.min_match = min(c.counts.values()) if c.counts else 0
    return constraints


def selector_from_set(labels: Mapping[str, str], keys: Iterable[str]) -> Selector:
    return selector_from_label_selector({"matchLabels": {k: labels[k] for k in keys}})


# ------------------------------------------------------------------ filters


def filter_node(state: PodState, node: NodeInfo) -> Status | None:
    """Run the filters in the default profile's order; None means the node fits.

    Filters that cannot reject this pod on this node (no cordon, no taints, no selector,
    no constraints) are skipped: this loop runs for hundreds of nodes per decision.
    """
    status: Status | None
    if node.unschedulable and (status := node_unschedulable(state, node)):
        return status
    if node.taints and (status := taint_toleration(state, node)):
        return status
    if state.has_node_affinity and (status := node_affinity(state, node)):
        return status
    if state.info.host_ports and (status := node_ports(state, node)):
        return status
    if status := node_resources_fit(state, node):
        return status
    if state.spread and (status := pod_topology_spread(state, node)):
        return status
    if state.has_inter_pod_affinity and (status := inter_pod_affinity(state, node)):
        return status
    return None


def node_unschedulable(state: PodState, node: NodeInfo) -> Status | None:
    if not node.unschedulable:
        return None
    taint = {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
    if any(tolerates(t, taint) for t in state.tolerations):
        return None
    return Status("NodeUnschedulable", (REASON_UNSCHEDULABLE,))


def taint_toleration(state: PodState, node: NodeInfo) -> Status | None:
    for taint in node.taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in state.tolerations):
            return Status("TaintToleration", (REASON_TAINT,))
    return None


def node_ports(state: PodState, node: NodeInfo) -> Status | None:
    if any(node.port_taken(want) for want in state.info.host_ports):
        return Status("NodePorts", (REASON_NODE_PORTS,))
    return None


def node_affinity(state: PodState, node: NodeInfo) -> Status | None:
    if _node_affinity_matches(state, node):
        return None
    return Status("NodeAffinity", (REASON_NODE_AFFINITY,))


def _node_affinity_matches(state: PodState, node: NodeInfo) -> bool:
    labels = node.labels
    for key, value in state.node_selector.items():
        if labels.get(key) != value:
            return False
    terms = state.required_node_terms
    if terms is None:
        return True
    return any(node_selector_term_matches(term, labels, node.name) for term in terms)


def node_resources_fit(state: PodState, node: NodeInfo) -> Status | None:
    """``fitsRequest``: pod count, then cpu, memory, ephemeral-storage, extended resources;
    every shortage is a reason of its own."""
    want = state.info.requests
    have, used = node.allocatable, node.requested
    if (
        len(node.pods) < node.allowed_pods
        and want.milli_cpu <= have.milli_cpu - used.milli_cpu
        and want.memory <= have.memory - used.memory
        and want.ephemeral_storage <= have.ephemeral_storage - used.ephemeral_storage
        and not want.scalar
    ):
        return None  # the common case, decided in one expression
    reasons: list[str] = []
    if len(node.pods) + 1 > node.allowed_pods:
        reasons.append(REASON_TOO_MANY_PODS)
    if want.milli_cpu > 0 and want.milli_cpu > have.milli_cpu - used.milli_cpu:
        reasons.append("Insufficient cpu")
    if want.memory > 0 and want.memory > have.memory - used.memory:
        reasons.append("Insufficient memory")
    if want.ephemeral_storage > 0 and (
        want.ephemeral_storage > have.ephemeral_storage - used.ephemeral_storage
    ):
        reasons.append("Insufficient ephemeral-storage")
    for name, amount in want.scalar.items():
        if amount > 0 and amount > have.scalar.get(name, 0) - used.scalar.get(name, 0):
            reasons.append(f"Insufficient {name}")
    if reasons:
        return Status("NodeResourcesFit", tuple(reasons), resolvable=True)
    return None


def pod_topology_spread(state: PodState, node: NodeInfo) -> Status | None:
    for c in state.spread:
        value = node.labels.get(c.topology_key)
        if value is None:
            return Status("PodTopologySpread", (REASON_SPREAD_LABEL,))
        skew = c.counts.get(value, 0) + c.self_match - c.min_match
        if skew > c.max_skew:
            return Status("PodTopologySpread", (REASON_SPREAD,), resolvable=True)
    return None


def inter_pod_affinity(state: PodState, node: NodeInfo) -> Status | None:
    if state.affinity_terms and not _satisfies_affinity(state, node):
        return Status("InterPodAffinity", (REASON_AFFINITY,))
    for term, counts in zip(state.anti_affinity_terms, state.anti_affinity_counts, strict=True):
        value = node.labels.get(term.topology_key)
        if value is not None and counts.get(value, 0) > 0:
            return Status("InterPodAffinity", (REASON_ANTI_AFFINITY,), resolvable=True)
    for key, value in state.existing_anti_affinity:
        if node.labels.get(key) == value:
            return Status("InterPodAffinity", (REASON_EXISTING_ANTI_AFFINITY,), resolvable=True)
    return None


def _satisfies_affinity(state: PodState, node: NodeInfo) -> bool:
    pods_exist = True
    for term in state.affinity_terms:
        value = node.labels.get(term.topology_key)
        if value is None:
            return False  # every topology key must exist on the node
        if state.affinity_counts.get((term.topology_key, value), 0) <= 0:
            pods_exist = False
    if pods_exist:
        return True
    # The first pod of a group that selects itself may go anywhere, as long as no pod
    # anywhere matches the terms yet; otherwise it could never be scheduled.
    return not state.affinity_counts and state.affinity_matches_self


# ------------------------------------------------------------------ scores


def least_allocated(state: PodState, node: NodeInfo) -> int:
    """NodeResourcesFit LeastAllocated over cpu and memory (non-zero requests): the share
    left free, averaged."""
    cpu_cap, mem_cap = node.allocatable.milli_cpu, node.allocatable.memory
    cpu = node.non_zero_requested.milli_cpu + state.info.non_zero.milli_cpu
    mem = node.non_zero_requested.memory + state.info.non_zero.memory
    total = 0
    if cpu_cap > 0 and cpu <= cpu_cap:
        total += (cpu_cap - cpu) * MAX_NODE_SCORE // cpu_cap
    if mem_cap > 0 and mem <= mem_cap:
        total += (mem_cap - mem) * MAX_NODE_SCORE // mem_cap
    return total // 2


def balanced_allocation(state: PodState, node: NodeInfo) -> int:
    """NodeResourcesBalancedAllocation: 100 when cpu and memory are used in equal
    fractions, less the further apart they are (1 - standard deviation)."""
    cpu_cap, mem_cap = node.allocatable.milli_cpu, node.allocatable.memory
    cpu = node.requested.milli_cpu + state.info.requests.milli_cpu
    mem = node.requested.memory + state.info.requests.memory
    cpu_fraction = min(cpu / cpu_cap, 1.0) if cpu_cap > 0 else 1.0
    mem_fraction = min(mem / mem_cap, 1.0) if mem_cap > 0 else 1.0
    return int((1 - abs(cpu_fraction - mem_fraction) / 2) * MAX_NODE_SCORE)


_SCORE_CACHE_LIMIT = 64


def resource_scores(state: PodState, nodes: Sequence[NodeInfo]) -> list[int]:
    """``least_allocated`` + ``balanced_allocation`` (weights 1 and 1) for many nodes at
    once: the same arithmetic, written as one loop because it runs for every feasible node
    of every decision."""
    pod_cpu, pod_mem = state.info.non_zero.milli_cpu, state.info.non_zero.memory
    req_cpu, req_mem = state.info.requests.milli_cpu, state.info.requests.memory
    key = (pod_cpu, pod_mem, req_cpu, req_mem)
    out = []
    for n in nodes:
        cache = n.resource_score_cache
        cached = cache.get(key)
        if cached is not None:
            out.append(cached)
            continue
        cpu_cap, mem_cap = n.allocatable.milli_cpu, n.allocatable.memory
        nz, rq = n.non_zero_requested, n.requested
        cpu, mem = nz.milli_cpu + pod_cpu, nz.memory + pod_mem
        least = 0
        if cpu_cap > 0 and cpu <= cpu_cap:
            least += (cpu_cap - cpu) * MAX_NODE_SCORE // cpu_cap
        if mem_cap > 0 and mem <= mem_cap:
            least += (mem_cap - mem) * MAX_NODE_SCORE // mem_cap
        cpu_f = (rq.milli_cpu + req_cpu) / cpu_cap if cpu_cap > 0 else 1.0
        mem_f = (rq.memory + req_mem) / mem_cap if mem_cap > 0 else 1.0
        cpu_f = 1.0 if cpu_f > 1.0 else cpu_f
        mem_f = 1.0 if mem_f > 1.0 else mem_f
        balanced = int((1 - abs(cpu_f - mem_f) / 2) * MAX_NODE_SCORE)
        score = WEIGHT_LEAST_ALLOCATED * (least // 2) + WEIGHT_BALANCED * balanced
        if len(cache) >= _SCORE_CACHE_LIMIT:
            cache.clear()
        cache[key] = score
        out.append(score)
    return out


def intolerable_prefer_no_schedule(state: PodState, node: NodeInfo) -> int:
    """TaintToleration's raw score: untolerated ``PreferNoSchedule`` taints (fewer is better)."""
    tolerations = [
        t for t in state.tolerations if t.get("effect") in (None, "", "PreferNoSchedule")
    ]
    return sum(
        1
        for taint in node.taints
        if taint.get("effect") == "PreferNoSchedule"
        and not any(tolerates(t, taint) for t in tolerations)
    )


def preferred_node_affinity(state: PodState, node: NodeInfo) -> int:
    """NodeAffinity's raw score: the summed weights of matching preferred terms."""
    total = 0
    for term in state.preferred_node_terms:
        weight = int(term.get("weight") or 0)
        if weight and node_selector_term_matches(
            term.get("preference") or {}, node.labels, node.name
        ):
            total += weight
    return total


def owner_pod_count(state: PodState, node: NodeInfo, snapshot: ClusterSnapshot) -> int:
    """Spreading's raw score: pods of the same controller already on the node."""
    if not state.info.owner_uid:
        return 0
    return snapshot.owner_counts.get(state.info.owner_uid, {}).get(node.name, 0)


def _normalize(raw: list[int], *, reverse: bool) -> list[int]:
    """``DefaultNormalizeScore``: scale to 0..100 by the maximum; reversed, fewer is better."""
    top = max(raw) if raw else 0
    if top == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in raw]
    if reverse:
        return [MAX_NODE_SCORE - r * MAX_NODE_SCORE // top for r in raw]
    return [r * MAX_NODE_SCORE // top for r in raw]


def score_nodes(state: PodState, nodes: Sequence[NodeInfo], snapshot: ClusterSnapshot) -> list[int]:
    """Weighted total score per feasible node (same order as ``nodes``). A plugin that
    gives every node the same score (no PreferNoSchedule taints, no preferences, no
    owner) is left out: it cannot change the ranking."""
    totals = resource_scores(state, nodes)
    if any(t.get("effect") == "PreferNoSchedule" for n in nodes for t in n.taints):
        taints = _normalize([intolerable_prefer_no_schedule(state, n) for n in nodes], reverse=True)
        totals = [t + WEIGHT_TAINT * s for t, s in zip(totals, taints, strict=True)]
    if state.preferred_node_terms:
        affinity = _normalize([preferred_node_affinity(state, n) for n in nodes], reverse=False)
        totals = [t + WEIGHT_NODE_AFFINITY * s for t, s in zip(totals, affinity, strict=True)]
    counts = snapshot.owner_counts.get(state.info.owner_uid) if state.info.owner_uid else None
    if counts:
        spread = _normalize([counts.get(n.name, 0) for n in nodes], reverse=True)
        totals = [t + WEIGHT_SPREAD * s for t, s in zip(totals, spread, strict=True)]
    return totals


def select_host(nodes: Sequence[NodeInfo], scores: Sequence[int], rng: random.Random) -> NodeInfo:
    """The highest score; among equals, each is equally likely."""
    best = max(scores)
    ties = [i for i, score in enumerate(scores) if score == best]
    return nodes[ties[0] if len(ties) == 1 else ties[rng.randrange(len(ties))]]


# ------------------------------------------------------------------ one decision


def num_feasible_nodes_to_find(num_all_nodes: int) -> int:
    """How many feasible nodes are enough (adaptive percentageOfNodesToScore)."""
    if num_all_nodes < MIN_FEASIBLE_NODES:
        return num_all_nodes
    percentage = max(BASE_PERCENTAGE - num_all_nodes // 125, MIN_FEASIBLE_PERCENTAGE)
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES)


@dataclass
class Decision:
    """The outcome of one scheduling cycle: a node, or the statuses of every node."""

    node: str | None
    statuses: dict[str, Status]
    num_nodes: int
    evaluated: int


def schedule_pod(
    pod: Mapping[str, Any],
    snapshot: ClusterSnapshot,
    *,
    start: int = 0,
    rng: random.Random | None = None,
) -> Decision:
    """Filter from ``start`` (rotating across cycles, as Kubernetes does) until enough
    feasible nodes are found, score them, and pick one."""
    nodes = snapshot.node_list()
    if not nodes:
        return Decision(None, {}, 0, 0)
    state = prepare(pod, snapshot)
    want = num_feasible_nodes_to_find(len(nodes))
    feasible: list[NodeInfo] = []
    statuses: dict[str, Status] = {}
    evaluated = 0
    count = len(nodes)
    req = state.info.requests
    # A pod with nothing but resource requests, on an uncordoned untainted node, needs only
    # the resource check: do it inline (the same test as node_resources_fit's fast path).
    simple = not (
        state.has_node_affinity or state.spread or state.has_inter_pod_affinity or req.scalar
    )
    for i in range(count):
        node = nodes[(start + i) % count]
        evaluated += 1
        if simple and not node.unschedulable and not node.taints:
            have, used = node.allocatable, node.requested
            if (
                len(node.pods) < node.allowed_pods
                and req.milli_cpu <= have.milli_cpu - used.milli_cpu
                and req.memory <= have.memory - used.memory
                and req.ephemeral_storage <= have.ephemeral_storage - used.ephemeral_storage
            ):
                feasible.append(node)
                if len(feasible) >= want:
                    break
                continue
        status = filter_node(state, node)
        if status is None:
            feasible.append(node)
            if len(feasible) >= want:
                break
        else:
            statuses[node.name] = status
    if not feasible:
        return Decision(None, statuses, count, evaluated)
    if len(feasible) == 1:
        return Decision(feasible[0].name, statuses, count, evaluated)
    scores = score_nodes(state, feasible, snapshot)
    chosen = select_host(feasible, scores, rng or random.Random())
    return Decision(chosen.name, statuses, count, evaluated)


def _histogram(counts: Mapping[str, int]) -> str:
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def fit_error_message(
    num_nodes: int, statuses: Mapping[str, Status], *, preemption_policy: str = ""
) -> str:
    """``FitError.Error()`` followed by DefaultPreemption's PostFilter message.

    ``0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable.
    preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod,
    2 Preemption is not helpful for scheduling.``
    """
    if num_nodes == 0:
        return NO_NODES_AVAILABLE
    reasons: dict[str, int] = {}
    for status in statuses.values():
        for reason in status.reasons:
            reasons[reason] = reasons.get(reason, 0) + 1
    message = f"0/{num_nodes} nodes are available:"
    if reasons:
        message += f" {_histogram(reasons)}."
    if preemption_policy == "Never":
        return message + " preemption: not eligible due to preemptionPolicy=Never."
    preemption: dict[str, int] = {}
    resolvable = sum(1 for s in statuses.values() if s.resolvable)
    if resolvable:
        preemption[PREEMPTION_NO_VICTIMS] = resolvable
    if num_nodes - resolvable:
        preemption[PREEMPTION_NOT_HELPFUL] = num_nodes - resolvable
    return message + f" preemption: 0/{num_nodes} nodes are available: {_histogram(preemption)}."
