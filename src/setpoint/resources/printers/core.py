"""Tables for the core kinds: pods, nodes, namespaces, config maps, secrets, service accounts.

Each printer reproduces the matching ``print*`` function of Kubernetes'
``pkg/printers/internalversion/printers.go``, reading the object in its v1 JSON shape instead
of Go's internal types. The pod's STATUS is the interesting one: it starts from the phase (or
``status.reason``), is overridden by the first init container that has not finished
(``Init:0/2``, ``Init:CrashLoopBackOff``, ``Init:ExitCode:1``), then by the last app container
with a waiting or terminated reason (``CrashLoopBackOff``, ``Completed``, ``Signal:9``), and
finally by deletion (``Terminating``, or ``Unknown`` when the node was lost).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.resources.printers.base import (
    AGE_COLUMN,
    NAME_COLUMN,
    Printer,
    age_of,
    column,
    dig,
    human_duration,
    items,
    name_of,
    number,
    parse_time,
    size,
    text,
)

# --- pods ---------------------------------------------------------------------------------

POD_COLUMNS = [
    NAME_COLUMN,
    column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    column("Status", description="The aggregate status of the containers in this pod."),
    column(
        "Restarts",
        description="The number of times the containers in this pod have been restarted and "
        "when the last container in this pod has restarted.",
    ),
    AGE_COLUMN,
    column(
        "IP",
        priority=1,
        description="podIP address allocated to the pod. Routable at least within the cluster. "
        "Empty if not yet allocated.",
    ),
    column(
        "Node",
        priority=1,
        description="NodeName indicates in which node this pod is scheduled. If empty, this pod "
        "is a candidate for scheduling by the scheduler defined in schedulerName. Once this field "
        "is set, the kubelet for this node becomes responsible for the lifecycle of this pod. "
        "This field should not be used to express a desire for the pod to be scheduled on a "
        "specific node. "
        "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
    ),
    column(
        "Nominated Node",
        priority=1,
        description="nominatedNodeName is set only when this pod preempts other pods on the "
        "node, but it cannot be scheduled right away as preemption victims receive their "
        "graceful termination periods. This field does not guarantee that the pod will be "
        "scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes "
        "become available sooner. Scheduler may also decide to give the resources on this node "
        "to a higher priority pod that is created after preemption. As a result, this field may "
        "be different than PodSpec.nodeName when the pod is scheduled.",
    ),
    column(
        "Readiness Gates",
        priority=1,
        description="If specified, all readiness gates will be evaluated for pod readiness. A "
        "pod is ready when all its containers are ready AND all conditions specified in the "
        'readiness gates have status equal to "True" More info: '
        "https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
    ),
]

_NODE_UNREACHABLE_POD_REASON = "NodeLost"
_SCHEDULING_GATED = "SchedulingGated"


class _LastRestart:
    """The latest ``lastState.terminated.finishedAt`` seen (Go's zero time until one is)."""

    def __init__(self) -> None:
        self.moment: datetime | None = None

    def see(self, status: Mapping[str, Any]) -> None:
        terminated = dig(status, "lastState", "terminated")
        if not isinstance(terminated, Mapping):
            return
        finished = parse_time(text(terminated, "finishedAt"))
        if finished is not None and (self.moment is None or self.moment < finished):
            self.moment = finished


def _is_restartable_init(container: Mapping[str, Any] | None) -> bool:
    """``IsRestartableInitContainer``: a sidecar, i.e. ``restartPolicy: Always``."""
    return container is not None and container.get("restartPolicy") == "Always"


def _terminated_reason(terminated: Mapping[str, Any], prefix: str = "") -> str:
    reason = text(terminated, "reason")
    if reason:
        return prefix + reason
    signal = number(terminated, "signal")
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{number(terminated, 'exitCode')}"


def _condition_true(conditions: list[Any], kind: str) -> bool:
    """The first condition of type ``kind`` exists and is ``True``."""
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def _has_true_condition(conditions: list[Any], kind: str) -> bool:
    """Some condition of type ``kind`` is ``True`` (``hasPodReadyCondition``)."""
    return any(
        isinstance(c, Mapping) and c.get("type") == kind and c.get("status") == "True"
        for c in conditions
    )


def pod_cells(pod: Obj, now: datetime) -> list[Any]:
    """``printPod``: NAME READY STATUS RESTARTS AGE, then IP NODE NOMINATED-NODE GATES."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = items(status, "conditions")
    init_specs = [c for c in items(spec, "initContainers") if isinstance(c, Mapping)]
    init_by_name = {text(c, "name"): c for c in init_specs}

    restarts = 0
    sidecar_restarts = 0
    ready = 0
    total = size(spec, "containers") + sum(1 for c in init_specs if _is_restartable_init(c))
    last_restart = _LastRestart()
    last_sidecar_restart = _LastRestart()

    phase = text(status, "phase")
    reason = text(status, "reason") or phase
    for condition in conditions:
        if (
            isinstance(condition, Mapping)
            and condition.get("type") == "PodScheduled"
            and condition.get("reason") == _SCHEDULING_GATED
        ):
            reason = _SCHEDULING_GATED

    initializing = False
    init_statuses = [s for s in items(status, "initContainerStatuses") if isinstance(s, Mapping)]
    for index, container in enumerate(init_statuses):
        restarts += number(container, "restartCount")
        last_restart.see(container)
        sidecar = _is_restartable_init(init_by_name.get(text(container, "name")))
        if sidecar:
            sidecar_restarts += number(container, "restartCount")
            last_sidecar_restart.see(container)
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, Mapping) and number(terminated, "exitCode") == 0:
            continue
        if sidecar and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, Mapping):
            reason = _terminated_reason(terminated, "Init:")
        elif (
            isinstance(waiting, Mapping)
            and text(waiting, "reason")
            and text(waiting, "reason") != "PodInitializing"
        ):
            reason = "Init:" + text(waiting, "reason")
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        statuses = [s for s in items(status, "containerStatuses") if isinstance(s, Mapping)]
        for container in reversed(statuses):
            restarts += number(container, "restartCount")
            last_restart.see(container)
            state = container.get("state") or {}
            terminated = state.get("terminated")
            waiting = state.get("waiting")
            if isinstance(waiting, Mapping) and text(waiting, "reason"):
                reason = text(waiting, "reason")
            elif isinstance(terminated, Mapping):
                reason = _terminated_reason(terminated)
            elif container.get("ready") is True and isinstance(state.get("running"), Mapping):
                has_running = True
                ready += 1
        # Back to Running if a container still runs after others completed.
        if reason == "Completed" and has_running:
            reason = "Running" if _has_true_condition(conditions, "Ready") else "NotReady"

    deleting = dig(pod, "metadata", "deletionTimestamp") is not None
    if deleting and text(status, "reason") == _NODE_UNREACHABLE_POD_REASON:
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart.moment is not None:
        since = human_duration((now - last_restart.moment).total_seconds())
        restarts_cell = f"{restarts} ({since} ago)"

    return [
        name_of(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age_of(pod, now),
        _pod_ip(status) or "<none>",
        text(spec, "nodeName") or "<none>",
        text(status, "nominatedNodeName") or "<none>",
        _readiness_gates(spec, conditions),
    ]


def _pod_ip(status: Mapping[str, Any]) -> str:
    """The first pod IP; ``podIP`` wins over ``podIPs`` as in the v1 -> internal conversion."""
    pod_ip = text(status, "podIP")
    if pod_ip:
        return pod_ip
    ips = items(status, "podIPs")
    return text(ips[0], "ip") if ips and isinstance(ips[0], Mapping) else ""


def _readiness_gates(spec: Mapping[str, Any], conditions: list[Any]) -> str:
    gates = items(spec, "readinessGates")
    if not gates:
        return "<none>"
    true_conditions = 0
    for gate in gates:
        wanted = text(gate, "conditionType")
        for condition in conditions:
            if isinstance(condition, Mapping) and condition.get("type") == wanted:
                if condition.get("status") == "True":
                    true_conditions += 1
                break
    return f"{true_conditions}/{len(gates)}"


_POD_SUCCEEDED_CONDITIONS = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED_CONDITIONS = [
    {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
]


def pod_conditions(pod: Obj) -> list[dict[str, Any]]:
    """A finished pod's row is ``Completed``: ``kubectl get`` hides such rows on request."""
    phase = text(pod, "status", "phase")
    if phase == "Succeeded":
        return [dict(c) for c in _POD_SUCCEEDED_CONDITIONS]
    if phase == "Failed":
        return [dict(c) for c in _POD_FAILED_CONDITIONS]
    return []


# --- nodes --------------------------------------------------------------------------------

_NODE_INFO_DOCS = {
    "kubeletVersion": "Kubelet Version reported by the node.",
    "osImage": "OS Image reported by the node from /etc/os-release "
    "(e.g. Debian GNU/Linux 7 (wheezy)).",
    "kernelVersion": "Kernel Version reported by the node from 'uname -r' "
    "(e.g. 3.16.0-0.bpo.4-amd64).",
    "containerRuntimeVersion": "ContainerRuntime Version reported by the node through runtime "
    "remote API (e.g. containerd://1.4.2).",
}
_NODE_ADDRESSES_DOC = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More "
    "info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is "
    "declared as mergeable, but the merge key is not sufficiently unique, which can cause data "
    "corruption when it is merged. Callers should instead use a full-replacement patch. See "
    "https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change "
    "during the lifetime of a Node. However, there are some exceptions where this may not be "
    "possible, such as Pods that inherit a Node's address in its own status or consumers of the "
    "downward API (status.hostIP)."
)

NODE_COLUMNS = [
    NAME_COLUMN,
    column("Status", description="The status of the node"),
    column("Roles", description="The roles of the node"),
    AGE_COLUMN,
    column("Version", description=_NODE_INFO_DOCS["kubeletVersion"]),
    column("Internal-IP", description=_NODE_ADDRESSES_DOC, priority=1),
    column("External-IP", description=_NODE_ADDRESSES_DOC, priority=1),
    column("OS-Image", description=_NODE_INFO_DOCS["osImage"], priority=1),
    column("Kernel-Version", description=_NODE_INFO_DOCS["kernelVersion"], priority=1),
    column("Container-Runtime", description=_NODE_INFO_DOCS["containerRuntimeVersion"], priority=1),
]

_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


def node_roles(node: Obj) -> list[str]:
    """``findNodeRoles``: ``node-role.kubernetes.io/<role>`` keys and ``kubernetes.io/role``."""
    roles: set[str] = set()
    labels = dig(node, "metadata", "labels")
    for key, value in (labels if isinstance(labels, Mapping) else {}).items():
        if key.startswith(_NODE_ROLE_PREFIX):
            role = key[len(_NODE_ROLE_PREFIX) :]
            if role:
                roles.add(role)
        elif key == _NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _node_address(node: Obj, kind: str) -> str:
    for address in items(node, "status", "addresses"):
        if isinstance(address, Mapping) and address.get("type") == kind:
            return text(address, "address")
    return "<none>"


def node_cells(node: Obj, now: datetime) -> list[Any]:
    """``printNode``: the Ready condition (last one wins), ``SchedulingDisabled``, roles."""
    ready: Mapping[str, Any] | None = None
    for condition in items(node, "status", "conditions"):
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            ready = condition
    statuses = ["Unknown"]
    if ready is not None:
        statuses = ["Ready" if ready.get("status") == "True" else "NotReady"]
    if dig(node, "spec", "unschedulable") is True:
        statuses.append("SchedulingDisabled")
    info = dig(node, "status", "nodeInfo")
    return [
        name_of(node),
        ",".join(statuses),
        ",".join(node_roles(node)) or "<none>",
        age_of(node, now),
        text(info, "kubeletVersion"),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        text(info, "osImage") or "<unknown>",
        text(info, "kernelVersion") or "<unknown>",
        text(info, "containerRuntimeVersion") or "<unknown>",
    ]


# --- namespaces, config maps, secrets, service accounts -----------------------------------

NAMESPACE_COLUMNS = [
    NAME_COLUMN,
    column("Status", description="The status of the namespace"),
    AGE_COLUMN,
]


def namespace_cells(namespace: Obj, now: datetime) -> list[Any]:
    return [name_of(namespace), text(namespace, "status", "phase"), age_of(namespace, now)]


CONFIGMAP_COLUMNS = [
    NAME_COLUMN,
    column(
        "Data",
        description="Data contains the configuration data. Each key must consist of "
        "alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use "
        "the BinaryData field. The keys stored in Data must not overlap with the keys in the "
        "BinaryData field, this is enforced during validation process.",
    ),
    AGE_COLUMN,
]


def configmap_cells(configmap: Obj, now: datetime) -> list[Any]:
    data = size(configmap, "data") + size(configmap, "binaryData")
    return [name_of(configmap), data, age_of(configmap, now)]


SECRET_COLUMNS = [
    NAME_COLUMN,
    column(
        "Type",
        description="Used to facilitate programmatic handling of secret data. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
    ),
    column(
        "Data",
        description="Data contains the secret data. Each key must consist of alphanumeric "
        "characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded "
        "string, representing the arbitrary (possibly non-string) data value here. Described in "
        "https://tools.ietf.org/html/rfc4648#section-4",
    ),
    AGE_COLUMN,
]


def secret_cells(secret: Obj, now: datetime) -> list[Any]:
    return [name_of(secret), text(secret, "type"), size(secret, "data"), age_of(secret, now)]


SERVICE_ACCOUNT_COLUMNS = [
    NAME_COLUMN,
    column(
        "Secrets",
        description="Secrets is a list of the secrets in the same namespace that pods running "
        "using this ServiceAccount are allowed to use. Pods are only limited to this list if "
        'this service account has a "kubernetes.io/enforce-mountable-secrets" annotation set to '
        '"true". The "kubernetes.io/enforce-mountable-secrets" annotation is deprecated since '
        "v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field "
        "should not be used to find auto-generated service account token secrets for use "
        "outside of pods. Instead, tokens can be requested directly using the TokenRequest API, "
        "or service account token secrets can be manually created. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret",
    ),
    AGE_COLUMN,
]


def service_account_cells(account: Obj, now: datetime) -> list[Any]:
    return [name_of(account), size(account, "secrets"), age_of(account, now)]


POD_PRINTER = Printer(POD_COLUMNS, pod_cells, pod_conditions)
NODE_PRINTER = Printer(NODE_COLUMNS, node_cells)
NAMESPACE_PRINTER = Printer(NAMESPACE_COLUMNS, namespace_cells)
CONFIGMAP_PRINTER = Printer(CONFIGMAP_COLUMNS, configmap_cells)
SECRET_PRINTER = Printer(SECRET_COLUMNS, secret_cells)
SERVICE_ACCOUNT_PRINTER = Printer(SERVICE_ACCOUNT_COLUMNS, service_account_cells)
