"""What every node agent tells the API about its node: conditions, and the Lease heartbeat.

A kubelet (the real node agent in ``setpoint.agent`` as well as the hollow ones in
``setpoint.sim``) reports on its node in two ways. The Node's status carries the node
conditions (Ready, and Memory/Disk/PID pressure), re-posted rarely; the cheap heartbeat is
a Lease of the node's name in ``kube-node-lease`` (``holderIdentity`` = node name, owned by
the Node), renewed every quarter of its ``leaseDurationSeconds`` (:func:`renew_interval`), as
the kubelet's ``nodelease`` controller does. The node lifecycle controller reads the Lease's
``renewTime`` to decide whether a node is alive: a node whose Lease and status were not renewed
for its ``--node-monitor-grace-period`` (15 s by default) is marked lost, its Ready condition
``Unknown``. The default lease duration matches that grace period, so a node renews about four
times in it and may miss three renewals. A node that finds itself marked lost
(:func:`marked_lost`) while it is alive re-posts its status at once rather than waiting for its
next periodic report, so that the control plane sees it Ready again within a heartbeat.

This module holds the shapes and the renewal step both kinds of agent share; timers and
capacity stay with each agent.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from setpoint.client.api import LEASES, ApiClient, ApiError, Obj
from setpoint.meta.timestamps import micro_time, rfc3339

LEASE_NAMESPACE = "kube-node-lease"
# the controller manager's --node-monitor-grace-period default (Kubernetes: 40 s lease, 50 s grace)
NODE_LEASE_DURATION_SECONDS = 15
# nodelease's renewIntervalFraction
RENEW_INTERVAL_FRACTION = 0.25


def renew_interval(lease_duration_seconds: float) -> float:
    """How often a node renews a Lease of ``lease_duration_seconds`` (the kubelet's
    ``leaseDuration * 0.25``)."""
    return lease_duration_seconds * RENEW_INTERVAL_FRACTION


def ready_status(node: Obj) -> str | None:
    """The Node's Ready condition status (``True``, ``False``, ``Unknown``); None without one."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


def marked_lost(node: Obj) -> bool:
    """The node lifecycle controller marked this Node lost (its Ready condition ``Unknown``)."""
    return ready_status(node) == "Unknown"


# ------------------------------------------------------------------ node conditions


@dataclass(frozen=True)
class NodePressure:
    """Which eviction signals are past their thresholds on a node (measured by the agent
    that runs there; hollow nodes never are)."""

    memory: bool = False
    disk: bool = False
    pid: bool = False


# (type, attribute of NodePressure, (reason, message) without pressure, ... with pressure),
# as the kubelet's nodestatus setters word them
_PRESSURE_CONDITIONS = (
    (
        "MemoryPressure",
        "memory",
        ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
    ),
    (
        "DiskPressure",
        "disk",
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("KubeletHasDiskPressure", "kubelet has disk pressure"),
    ),
    (
        "PIDPressure",
        "pid",
        ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
    ),
)


def node_conditions(
    now: float,
    previous: list[Obj] | None = None,
    pressure: NodePressure | None = None,
    *,
    not_ready: str | None = None,
) -> list[Obj]:
    """The node conditions at ``now`` of a node under ``pressure`` (default: none), ready
    unless ``not_ready`` says why not (Ready False, reason ``KubeletNotReady``, as the
    kubelet's ``ReadyCondition`` setter reports its errors); a condition whose status is
    unchanged keeps its ``lastTransitionTime`` from ``previous``, as the kubelet's setters
    do."""
    pressure = pressure or NodePressure()
    table: list[tuple[str, str, str, str]] = []
    for kind, attr, low, high in _PRESSURE_CONDITIONS:
        under = getattr(pressure, attr)
        table.append((kind, "True" if under else "False", *(high if under else low)))
    if not_ready:
        table.append(("Ready", "False", "KubeletNotReady", not_ready))
    else:
        table.append(("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
    before = {c.get("type"): c for c in previous or []}
    conditions = []
    for kind, status, reason, message in table:
        old = before.get(kind)
        transition = rfc3339(now)
        if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
            transition = old["lastTransitionTime"]
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": rfc3339(now),
                "lastTransitionTime": transition,
            }
        )
    return conditions


# ------------------------------------------------------------------ the Lease heartbeat


def lease_object(node: Obj, duration_seconds: int, now: float) -> Obj:
    name = node["metadata"]["name"]
    owner = {"apiVersion": "v1", "kind": "Node", "name": name}
    if node["metadata"].get("uid"):
        owner["uid"] = node["metadata"]["uid"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": micro_time(now),
        },
    }


async def renew_lease(
    client: ApiClient, node: Obj, last: Obj | None, *, duration_seconds: int, now: float
) -> Obj:
    """Renew ``node``'s Lease and return it as written.

    From ``last`` (the copy this agent wrote before) it is one PUT; on a conflict or a
    missing lease it reads the lease again or creates it (nodelease's ``ensureLease``)."""
    name = node["metadata"]["name"]
    for _ in range(3):
        if last is not None:
            renewed = copy.deepcopy(last)
            renewed["spec"]["renewTime"] = micro_time(now)
            renewed["spec"]["holderIdentity"] = name
            renewed["spec"]["leaseDurationSeconds"] = duration_seconds
            try:
                return await client.update(LEASES, renewed)
            except ApiError as exc:
                if not (exc.is_conflict or exc.is_not_found):
                    raise
        try:
            last = await client.get(LEASES, name, LEASE_NAMESPACE)
        except ApiError as exc:
            if not exc.is_not_found:
                raise
            try:
                return await client.create(LEASES, lease_object(node, duration_seconds, now))
            except ApiError as exc2:
                if not exc2.is_already_exists:
                    raise
                last = None
    raise ApiError(409, {"message": f"could not renew the lease of node {name}"})
