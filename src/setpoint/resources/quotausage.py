"""How much quota an object uses: Kubernetes' quota evaluators (``pkg/quota/v1/evaluator/core``
and ``.../generic``), shared by the ResourceQuota admission plugin and the resource quota
controller.

A usage is a resource list: quota resource name -> :class:`Quantity`. Every object counts
once as ``count/<plural>[.<group>]``; the core kinds also under their legacy names
(``pods``, ``services``, ``configmaps``, ``secrets``, ``persistentvolumeclaims``,
``replicationcontrollers``, ``resourcequotas``). Beyond counts:

* a **pod** that has not finished (not ``Succeeded``/``Failed``, not past its deletion grace
  period) uses ``pods`` and its effective requests and limits (``requests.cpu`` = ``cpu``,
  ``limits.memory``, ...): regular containers add up, init containers take the maximum, as
  ``resourcehelper.PodRequests`` computes them;
* a **service** uses ``services.loadbalancers`` (type LoadBalancer) and ``services.nodeports``
  (one per port of a NodePort or LoadBalancer service);
* a **persistent volume claim** uses ``requests.storage`` (and the per-StorageClass
  ``<class>.storageclass.storage.k8s.io/...`` names).

A quota *matches* an object when it limits at least one resource the object's evaluator knows
and every scope of the quota selects the object (only pods have scopes: Terminating,
NotTerminating, BestEffort, NotBestEffort, PriorityClass, CrossNamespacePodAffinity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from setpoint.meta.quantity import Quantity, canonical
from setpoint.meta.timestamps import parse_time
from setpoint.resources.podspec import qos_class
from setpoint.resources.quota import (
    BEST_EFFORT,
    CROSS_NAMESPACE_POD_AFFINITY,
    NOT_BEST_EFFORT,
    NOT_TERMINATING,
    POD_COMPUTE_RESOURCES,
    PRIORITY_CLASS,
    TERMINATING,
    parse,
)

Obj = dict[str, Any]
ResourceList = dict[str, Quantity]

_ONE = Quantity(Fraction(1), "DecimalSI")
_LEGACY_COUNTS = {
    ("", "configmaps"): "configmaps",
    ("", "secrets"): "secrets",
    ("", "replicationcontrollers"): "replicationcontrollers",
    ("", "resourcequotas"): "resourcequotas",
    ("", "services"): "services",
    ("", "persistentvolumeclaims"): "persistentvolumeclaims",
}
# the quota names a pod's usage can have (besides hugepages and extended requests)
POD_RESOURCES = frozenset(("pods", "count/pods", *POD_COMPUTE_RESOURCES))
# the resources a quota on cpu or memory obliges every container to declare
VALIDATION_SET = frozenset(
    ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
)
_SERVICE_RESOURCES = frozenset(
    ("services", "count/services", "services.nodeports", "services.loadbalancers")
)
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_PVC_RESOURCES = frozenset(
    ("persistentvolumeclaims", "count/persistentvolumeclaims", "requests.storage")
)


def count_name(group: str, plural: str) -> str:
    """``ObjectCountQuotaResourceNameFor``: ``count/pods``, ``count/deployments.apps``."""
    return f"count/{plural}.{group}" if group else f"count/{plural}"


# ------------------------------------------------------------------ resource lists


def add(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """``quota.Add``: the sum, in the format of the first operand unless that is zero
    (``Quantity.Add`` takes the other's format then: ``0`` + ``256Mi`` is ``256Mi``)."""
    out = dict(a)
    for name, q in b.items():
        mine = out.get(name)
        if mine is None or mine.value == 0:
            out[name] = Quantity(q.value + (mine.value if mine else 0), q.format)
        else:
            out[name] = Quantity(mine.value + q.value, mine.format)
    return out


def subtract_non_negative(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """``quota.SubtractWithNonNegativeResult``."""
    out = {}
    for name, q in a.items():
        other = b.get(name)
        value = q.value - (other.value if other is not None else 0)
        out[name] = Quantity(max(value, Fraction(0)), q.format)
    return out


def mask(resources: Mapping[str, Quantity], names: Iterable[str]) -> ResourceList:
    keep = set(names)
    return {name: q for name, q in resources.items() if name in keep}


def remove_zeros(resources: Mapping[str, Quantity]) -> ResourceList:
    return {name: q for name, q in resources.items() if q.value != 0}


def exceeded(used: Mapping[str, Quantity], hard: Mapping[str, Quantity]) -> list[str]:
    """``quota.LessThanOrEqual``'s second result: the names whose usage is over the hard
    limit (a name without a limit is not over)."""
    return sorted(name for name, q in used.items() if name in hard and q.value > hard[name].value)


def parse_list(resources: Mapping[str, Any] | None) -> ResourceList:
    out = {}
    for name, text in (resources or {}).items():
        quantity = parse(text)
        if quantity is not None:
            out[name] = quantity
    return out


def render_list(resources: Mapping[str, Quantity]) -> dict[str, str]:
    return {name: canonical(q) for name, q in sorted(resources.items())}


def pretty(resources: Mapping[str, Quantity]) -> str:
    """``prettyPrint``: ``name=quantity`` sorted by name, comma separated."""
    return ",".join(f"{name}={canonical(q)}" for name, q in sorted(resources.items()))


def zero(names: Iterable[str], formats: Mapping[str, Quantity]) -> ResourceList:
    """Zero usage of ``names`` in the format of the matching hard limits."""
    return {
        name: Quantity(Fraction(0), formats[name].format if name in formats else "DecimalSI")
        for name in names
    }


# ------------------------------------------------------------------------ evaluators


def handles(group: str, plural: str, operation: str) -> bool:
    """``Evaluator.Handles``: creation always may use quota; an update only for the kinds
    whose usage can change after creation (services, persistent volume claims)."""
    if operation == "CREATE":
        return True
    return operation == "UPDATE" and (group, plural) in (
        ("", "services"),
        ("", "persistentvolumeclaims"),
    )


def matching_resources(group: str, plural: str, names: Iterable[str]) -> list[str]:
    """``Evaluator.MatchingResources``: which of ``names`` this kind's usage can have."""
    return [name for name in names if _kind_uses(group, plural, name)]


def _kind_uses(group: str, plural: str, name: str) -> bool:
    if name in (count_name(group, plural), _LEGACY_COUNTS.get((group, plural))):
        return True
    if (group, plural) == ("", "pods"):
        return (
            name in POD_RESOURCES
            or name.startswith(("hugepages-", "requests.hugepages-"))
            or (name.startswith("requests.") and "/" in name)
        )
    if (group, plural) == ("", "services"):
        return name in _SERVICE_RESOURCES
    if (group, plural) == ("", "persistentvolumeclaims"):
        return name in _PVC_RESOURCES or _STORAGE_CLASS_SUFFIX in name
    return False


def usage(group: str, plural: str, obj: Obj, now: datetime) -> ResourceList:
    """``Evaluator.Usage`` of one object."""
    result: ResourceList = {count_name(group, plural): _ONE}
    legacy = _LEGACY_COUNTS.get((group, plural))
    if legacy is not None:
        result[legacy] = _ONE
    if (group, plural) == ("", "pods"):
        return add(result, pod_usage(obj, now))
    if (group, plural) == ("", "services"):
        return add(result, _service_usage(obj))
    if (group, plural) == ("", "persistentvolumeclaims"):
        return add(result, _claim_usage(obj))
    return result


def quota_scope_selectors(quota: Obj) -> list[Obj]:
    """``getScopeSelectorsFromQuota``: the scopes as ``Exists`` requirements plus the scope
    selector's expressions."""
    spec = quota.get("spec") or {}
    selectors: list[Obj] = [
        {"scopeName": scope, "operator": "Exists"} for scope in spec.get("scopes") or []
    ]
    selectors += list((spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return selectors


def matches(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """``Evaluator.Matches``: the quota limits one of this kind's resources and each of its
    scopes selects the object (only pods are selected by scopes)."""
    hard = (quota.get("status") or {}).get("hard") or {}
    if not matching_resources(group, plural, hard):
        return False
    is_pod = (group, plural) == ("", "pods")
    return all(is_pod and pod_matches_scope(s, obj) for s in quota_scope_selectors(quota))


# ------------------------------------------------------------------------------- pods


def pod_is_active(pod: Obj, now: datetime) -> bool:
    """``QuotaV1Pod``: a pod still uses compute quota until it finishes or its deletion
    grace period has run out."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    deleted, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    deleted_at = parse_time(deleted) if deleted else None
    if deleted_at is not None and grace is not None:
        return now <= deleted_at + timedelta(seconds=int(grace))
    return True


def pod_usage(pod: Obj, now: datetime) -> ResourceList:
    """``PodUsageFunc`` beyond the object count: ``pods`` and compute, while active."""
    if not pod_is_active(pod, now):
        return {}
    spec = pod.get("spec") or {}
    return _compute_usage(pod_resources(spec, "requests"), pod_resources(spec, "limits"))


def _compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    """``podComputeUsageHelper``."""
    result: ResourceList = {"pods": _ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            result[name] = requests[name]
            result[f"requests.{name}"] = requests[name]
        if name in limits:
            result[f"limits.{name}"] = limits[name]
    for name, q in requests.items():
        if name.startswith("hugepages-"):
            result[name] = q
            result[f"requests.{name}"] = q
        elif "/" in name and "kubernetes.io/" not in name:  # an extended resource
            result[f"requests.{name}"] = q
    return result


def pod_resources(spec: Obj, kind: str) -> ResourceList:
    """``resourcehelper.PodRequests`` / ``PodLimits``: regular containers add up; an init
    container needs the maximum of itself and the sidecars started before it; sidecars
    (restartable init containers) add to the sum; pod-level resources replace the sum; the
    overhead is added."""
    total: ResourceList = {}
    for container in spec.get("containers") or []:
        total = add(total, _container(container, kind))
    sidecars: ResourceList = {}
    init_max: ResourceList = {}
    for container in spec.get("initContainers") or []:
        own = _container(container, kind)
        if container.get("restartPolicy") == "Always":
            total = add(total, own)
            sidecars = add(sidecars, own)
            init_max = _maximum(init_max, sidecars)
        else:
            init_max = _maximum(init_max, add(own, sidecars))
    total = _maximum(total, init_max)
    pod_level = parse_list((spec.get("resources") or {}).get(kind))
    total.update({name: q for name, q in pod_level.items() if name in ("cpu", "memory")})
    overhead = parse_list(spec.get("overhead"))
    # the overhead adds to every request, but only to the limits that are set
    return add(total, overhead if kind == "requests" else mask(overhead, total))


def _container(container: Obj, kind: str) -> ResourceList:
    return parse_list((container.get("resources") or {}).get(kind))


def _maximum(a: ResourceList, b: ResourceList) -> ResourceList:
    out = dict(a)
    for name, q in b.items():
        if name not in out or q.value > out[name].value:
            out[name] = q
    return out


def pod_constraints(required: Iterable[str], pod: Obj) -> str | None:
    """``podEvaluator.Constraints``: a quota on cpu or memory obliges every container to
    declare it; the message names what each container misses, or None."""
    required_set = set(required) & VALIDATION_SET
    if not required_set:
        return None
    spec = pod.get("spec") or {}
    missing: dict[str, list[str]] = {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        declared = _compute_usage(
            _container(container, "requests"), _container(container, "limits")
        )
        for name in sorted(required_set - set(declared)):
            missing.setdefault(name, [])
            if container.get("name") not in missing[name]:
                missing[name].append(str(container.get("name")))
    if not missing:
        return None
    parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
    return f"must specify {'; '.join(parts)}"


def pod_matches_scope(selector: Obj, pod: Obj) -> bool:
    """``podMatchesScopeFunc``."""
    spec = pod.get("spec") or {}
    scope = selector.get("scopeName")
    if scope == TERMINATING:
        return _terminating(spec)
    if scope == NOT_TERMINATING:
        return not _terminating(spec)
    if scope == BEST_EFFORT:
        return qos_class(spec) == "BestEffort"
    if scope == NOT_BEST_EFFORT:
        return qos_class(spec) != "BestEffort"
    if scope == PRIORITY_CLASS:
        return _priority_class_matches(selector, str(spec.get("priorityClassName") or ""))
    if scope == CROSS_NAMESPACE_POD_AFFINITY:
        return _cross_namespace_affinity(spec)
    return False


def _terminating(spec: Obj) -> bool:
    deadline = spec.get("activeDeadlineSeconds")
    return deadline is not None and int(deadline) >= 0


def _priority_class_matches(selector: Obj, name: str) -> bool:
    operator, values = selector.get("operator"), selector.get("values") or []
    if operator == "Exists":
        return bool(name)
    if operator == "DoesNotExist":
        return not name
    if operator == "In":
        return name in values
    if operator == "NotIn":
        return name not in values
    return False


def _cross_namespace_affinity(spec: Obj) -> bool:
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        terms = list(rules.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [
            t.get("podAffinityTerm") or {}
            for t in rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


# ---------------------------------------------------------------- services and claims


def _service_usage(service: Obj) -> ResourceList:
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    ports = len(spec.get("ports") or [])
    result: ResourceList = {}
    if kind == "NodePort":
        result["services.nodeports"] = Quantity(Fraction(ports), "DecimalSI")
    elif kind == "LoadBalancer":
        result["services.loadbalancers"] = _ONE
        node_ports = ports if spec.get("allocateLoadBalancerNodePorts", True) else 0
        result["services.nodeports"] = Quantity(Fraction(node_ports), "DecimalSI")
    return result


def _claim_usage(claim: Obj) -> ResourceList:
    spec = claim.get("spec") or {}
    storage = parse(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
    allocated = parse(((claim.get("status") or {}).get("allocatedResources") or {}).get("storage"))
    if allocated is not None and (storage is None or allocated.value > storage.value):
        storage = allocated
    result: ResourceList = {}
    storage_class = spec.get("storageClassName")
    if storage_class:
        prefix = f"{storage_class}{_STORAGE_CLASS_SUFFIX}"
        result[f"{prefix}persistentvolumeclaims"] = _ONE
        if storage is not None:
            result[f"{prefix}requests.storage"] = storage
    if storage is not None:
        result["requests.storage"] = storage
    return result
