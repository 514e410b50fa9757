"""What a daemon pod is: the tolerations it gets, the node it is pinned to, whether it is up to
date, and which nodes should run one. Follows ``pkg/controller/daemon/util/daemonset_util.go``
and ``NodeShouldRunDaemonPod`` / ``predicates`` of ``daemon_controller.go``.

Every daemon pod tolerates the taints node problems bring (:data:`DAEMON_TOLERATIONS`:
``not-ready`` and ``unreachable`` NoExecute without ``tolerationSeconds``, so taint eviction
never removes it; disk/memory/pid pressure and ``unschedulable`` NoSchedule, so it lands on
cordoned and pressured nodes; ``network-unavailable`` too for ``hostNetwork`` pods). It is
labelled ``controller-revision-hash`` (the DaemonSet's current revision) and
``pod-template-generation``, and pinned to its node by a required node affinity
``matchFields metadata.name In [node]`` (replacing the template's own required terms, which
the controller has already checked), so the scheduler binds it there and nowhere else.

Whether a node should run a daemon pod (:func:`node_placement`) is decided with those
tolerations on the template: a node the template's node selector, required node affinity or
``nodeName`` exclude should run none and keeps none; a node with an untolerated NoSchedule or
NoExecute taint should not get one, and keeps the one it has unless an untolerated taint is
NoExecute.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

from setpoint.client.api import Obj
from setpoint.controllers.util import history
from setpoint.controllers.util.pods import is_terminating
from setpoint.meta.intstr import scaled_value
from setpoint.meta.nodeaffinity import NAME_FIELD, pod_matches_node
from setpoint.meta.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    Taint,
    untolerated_taint,
)
from setpoint.meta.timestamps import parse_time

KIND = "DaemonSet"
API_VERSION = "apps/v1"
HASH_LABEL = history.HASH_LABEL
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"

DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": TAINT_NOT_READY, "operator": "Exists", "effect": NO_EXECUTE},
    {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": NO_EXECUTE},
    {"key": TAINT_DISK_PRESSURE, "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": TAINT_PID_PRESSURE, "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": NO_SCHEDULE},
)
HOST_NETWORK_TOLERATION: Obj = {
    "key": TAINT_NETWORK_UNAVAILABLE,
    "operator": "Exists",
    "effect": NO_SCHEDULE,
}


class Placement(NamedTuple):
    """``NodeShouldRunDaemonPod``: should the node get a daemon pod, may it keep one."""

    should_run: bool
    should_continue_running: bool


# ------------------------------------------------------------------------ the pod


def _same_toleration(a: Obj, b: Obj) -> bool:
    """``Toleration.MatchToleration``: same key, operator, value and effect."""
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value", "effect"))


def add_daemon_tolerations(pod_spec: Obj) -> None:
    """``AddOrUpdateDaemonPodTolerations`` on ``pod_spec``, in place: each daemon toleration
    replaces an equal one or is appended (``AddOrUpdateTolerationInPodSpec``)."""
    wanted = list(DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(HOST_NETWORK_TOLERATION)
    tolerations = list(pod_spec.get("tolerations") or [])
    for toleration in wanted:
        for i, existing in enumerate(tolerations):
            if _same_toleration(existing, toleration):
                tolerations[i] = dict(toleration)
                break
        else:
            tolerations.append(dict(toleration))
    pod_spec["tolerations"] = tolerations


def template_generation(ds: Obj) -> int | None:
    """``GetTemplateGeneration``: the deprecated annotation, None if absent or unparseable."""
    text = (ds["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def create_pod_template(ds: Obj, hash_value: str) -> Obj:
    """``CreatePodTemplate``: the DaemonSet's template with the daemon tolerations and the
    ``pod-template-generation`` and ``controller-revision-hash`` labels."""
    template = copy.deepcopy(ds["spec"].get("template") or {})
    add_daemon_tolerations(template.setdefault("spec", {}))
    meta = template.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    generation = template_generation(ds)
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = str(generation)
    if hash_value:
        labels[HASH_LABEL] = hash_value
    return template


def pin_to_node(pod_spec: Obj, node_name: str) -> None:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``, in place: the required node affinity
    becomes the single term ``matchFields metadata.name In [node_name]``."""
    term = {"matchFields": [{"key": NAME_FIELD, "operator": "In", "values": [node_name]}]}
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    required["nodeSelectorTerms"] = [term]


def target_node_name(pod: Obj) -> str | None:
    """``GetTargetNodeName``: ``spec.nodeName``, else the one node the required node
    affinity's ``metadata.name In`` names; None if neither says."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchFields") or []:
            if expr.get("key") == NAME_FIELD and expr.get("operator") == "In":
                values = expr.get("values") or []
                return str(values[0]) if len(values) == 1 else None
    return None


def is_pod_updated(pod: Obj, hash_value: str) -> bool:
    """``IsPodUpdated``: the pod carries the current revision's hash. (Upstream also
    compares ``pod-template-generation``, but formats a pointer there, so that comparison
    never holds; setpoint leaves it out.)"""
    labels = pod["metadata"].get("labels") or {}
    return bool(hash_value) and labels.get(HASH_LABEL) == hash_value


def creation_order(pod: Obj) -> tuple[bool, float, str]:
    """``podByCreationTimestampAndPhase``: scheduled pods first, then oldest, then name."""
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    return (
        not (pod.get("spec") or {}).get("nodeName"),
        created.timestamp() if created else 0.0,
        str(pod["metadata"].get("name", "")),
    )


def live_pods(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not is_terminating(p)]


# ---------------------------------------------------------------------- the nodes


def node_placement(ds: Obj, node: Obj) -> Placement:
    """``NodeShouldRunDaemonPod`` with ``predicates``: node name, node selector and
    required node affinity, then taints against the template's tolerations plus the
    daemon tolerations."""
    spec = copy.deepcopy(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    node_name = node["metadata"]["name"]
    if spec.get("nodeName") and spec["nodeName"] != node_name:
        return Placement(False, False)
    if not pod_matches_node(spec, node):
        return Placement(False, False)
    add_daemon_tolerations(spec)
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = spec["tolerations"]

    def repels(taint: Taint) -> bool:
        return taint.get("effect") in (NO_SCHEDULE, NO_EXECUTE)

    if untolerated_taint(taints, tolerations, repels) is None:
        return Placement(True, True)

    def evicts(taint: Taint) -> bool:
        return taint.get("effect") == NO_EXECUTE

    return Placement(False, untolerated_taint(taints, tolerations, evicts) is None)


# ------------------------------------------------------------------ update strategy


def _rolling(ds: Obj) -> Obj | None:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    return strategy.get("rollingUpdate")


def is_rolling_update(ds: Obj) -> bool:
    strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
    return strategy.get("type", "RollingUpdate") == "RollingUpdate"


def surge_count(ds: Obj, number_to_schedule: int) -> int:
    """``SurgeCount``: ``maxSurge`` of ``number_to_schedule``, rounded up; 0 unless
    RollingUpdate."""
    rolling = _rolling(ds)
    if rolling is None or rolling.get("maxSurge") is None:
        return 0
    return scaled_value(rolling["maxSurge"], number_to_schedule, True)


def unavailable_count(ds: Obj, number_to_schedule: int) -> int:
    """``UnavailableCount``: ``maxUnavailable`` of ``number_to_schedule``, rounded up."""
    rolling = _rolling(ds)
    if rolling is None:
        return 0
    return scaled_value(rolling.get("maxUnavailable"), number_to_schedule, True)


def allows_surge(ds: Obj) -> bool:
    """``AllowsSurge``: more than one pod per node may run during an update."""
    try:
        return surge_count(ds, 1) > 0
    except ValueError:
        return False
