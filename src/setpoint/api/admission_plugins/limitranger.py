"""The LimitRanger admission plugin (``plugin/pkg/admission/limitranger``): a namespace's
LimitRanges fill in container resources and bound pods and claims.

* ``admit`` (pods, on create): every container and init container without a limit or a
  request for a resource gets the ``default`` / ``defaultRequest`` of the namespace's
  ``Container`` items; the pod is annotated ``kubernetes.io/limit-ranger`` with what was set
  (``LimitRanger plugin set: cpu request for container app``), and its QoS class follows.
* ``validate`` (pods on create, persistent volume claims on create and update): every
  ``min``, ``max`` and ``maxLimitRequestRatio`` of the ``Container`` items holds for each
  container, of the ``Pod`` items for the pod's sums (init containers counted at their
  maximum), of the ``PersistentVolumeClaim`` items for the claim's storage request. All
  failures are refused together, as upstream's aggregate: ``pods "x" is forbidden: [minimum
  cpu usage per Container is 100m, but request is 50m, ...]``.

Pods are not checked on update: their containers' resources cannot change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any

from setpoint.api import errors
from setpoint.api.admission import CREATE, UPDATE, AdmissionRequest
from setpoint.api.admission_plugins import StorageLookup
from setpoint.meta.quantity import Quantity, canonical
from setpoint.resources.podspec import qos_class
from setpoint.resources.quota import CONTAINER, PERSISTENT_VOLUME_CLAIM, POD
from setpoint.resources.quotausage import ResourceList, add, parse_list

Obj = dict[str, Any]
LIMIT_RANGER_ANNOTATION = "kubernetes.io/limit-ranger"


class LimitRanger:
    def __init__(self, storages: StorageLookup) -> None:
        self._storages = storages

    def _limit_ranges(self, namespace: str | None) -> list[Obj]:
        storage = self._storages("limitranges")
        if storage is None or not namespace:
            return []
        return [cached.obj for cached in storage.cache.sorted_items(namespace)]

    async def admit(self, request: AdmissionRequest) -> None:
        if request.resource != ("", "pods") or request.operation != CREATE or request.subresource:
            return
        assert request.obj is not None
        ranges = self._limit_ranges(request.namespace)
        if not ranges:
            return
        set_any = False
        notes: list[str] = []
        for limit_range in ranges:
            requests, limits = default_container_resources(limit_range)
            if requests or limits:
                found = merge_pod_resources(request.obj, requests, limits)
                notes += found
                set_any = set_any or bool(found)
        if not set_any:
            return
        annotations = request.obj["metadata"].setdefault("annotations", {})
        annotations[LIMIT_RANGER_ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
        status = request.obj.get("status")
        if isinstance(status, dict) and "qosClass" in status:
            status["qosClass"] = qos_class(request.obj.get("spec") or {})

    async def validate(self, request: AdmissionRequest) -> None:
        if request.subresource or request.obj is None:
            return
        group_plural = request.resource
        check: Callable[[Obj, Obj], list[str]]
        if group_plural == ("", "pods") and request.operation == CREATE:
            check = pod_limit_errors
        elif group_plural == ("", "persistentvolumeclaims") and request.operation in (
            CREATE,
            UPDATE,
        ):
            check = claim_limit_errors
        else:
            return
        problems: list[str] = []
        for limit_range in self._limit_ranges(request.namespace):
            problems += check(limit_range, request.obj)
        if problems:
            raise errors.forbidden_object(request.rtype, request.name, aggregate(problems))


def aggregate(messages: Iterable[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message alone, several (without
    repeats) in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# ------------------------------------------------------------------------- defaults


def default_container_resources(limit_range: Obj) -> tuple[dict[str, Any], dict[str, Any]]:
    """``defaultContainerResourceRequirements``: (requests, limits) from Container items."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if item.get("type") == CONTAINER:
            requests.update(item.get("defaultRequest") or {})
            limits.update(item.get("default") or {})
    return requests, limits


def merge_pod_resources(pod: Obj, requests: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    """``mergeContainerResources`` for each container and init container: fill what is
    unset; returns the annotation notes (``cpu, memory request for container app``)."""
    spec = pod.get("spec") or {}
    notes = []
    for kind, prefix in (("containers", "container"), ("initContainers", "init container")):
        for container in spec.get(kind) or []:
            resources = container.setdefault("resources", {})
            set_limits = _fill(resources.setdefault("limits", {}), limits)
            set_requests = _fill(resources.setdefault("requests", {}), requests)
            for key in ("limits", "requests"):
                if not resources[key]:
                    del resources[key]
            name = container.get("name")
            if set_requests:
                notes.append(f"{', '.join(sorted(set_requests))} request for {prefix} {name}")
            if set_limits:
                notes.append(f"{', '.join(sorted(set_limits))} limit for {prefix} {name}")
    return notes


def _fill(target: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    filled = []
    for name, value in defaults.items():
        if name not in target:
            target[name] = value
            filled.append(name)
    return filled


# ------------------------------------------------------------------------ constraints


def _text(q: Quantity) -> str:
    return canonical(q)


def min_constraint(
    kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    request, limit = requests.get(name), limits.get(name)
    if request is None:
        return f"minimum {name} usage per {kind} is {_text(enforced)}.  No request is specified"
    if request.value < enforced.value:
        return (
            f"minimum {name} usage per {kind} is {_text(enforced)}, but request is {_text(request)}"
        )
    if limit is not None and limit.value < enforced.value:
        return f"minimum {name} usage per {kind} is {_text(enforced)}, but limit is {_text(limit)}"
    return None


def max_constraint(
    kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    request, limit = requests.get(name), limits.get(name)
    if limit is None:
        return f"maximum {name} usage per {kind} is {_text(enforced)}.  No limit is specified"
    if limit.value > enforced.value:
        return f"maximum {name} usage per {kind} is {_text(enforced)}, but limit is {_text(limit)}"
    if request is not None and request.value > enforced.value:
        return (
            f"maximum {name} usage per {kind} is {_text(enforced)}, but request is {_text(request)}"
        )
    return None


def max_request_constraint(
    kind: str, name: str, enforced: Quantity, requests: ResourceList
) -> str | None:
    request = requests.get(name)
    if request is None:
        return f"maximum {name} usage per {kind} is {_text(enforced)}.  No request is specified"
    if request.value > enforced.value:
        return (
            f"maximum {name} usage per {kind} is {_text(enforced)}, but request is {_text(request)}"
        )
    return None


def ratio_constraint(
    kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList
) -> str | None:
    request, limit = requests.get(name), limits.get(name)
    if request is None or request.value == 0:
        return (
            f"{name} max limit to request ratio per {kind} is {_text(enforced)}, but no request "
            "is specified or request is 0"
        )
    if limit is None or limit.value == 0:
        return (
            f"{name} max limit to request ratio per {kind} is {_text(enforced)}, but no limit "
            "is specified or limit is 0"
        )
    observed = Fraction(limit.value) / Fraction(request.value)
    if observed > enforced.value:
        return (
            f"{name} max limit to request ratio per {kind} is {_text(enforced)}, but provided "
            f"ratio is {float(observed):f}"
        )
    return None


def _item_errors(item: Obj, kind: str, requests: ResourceList, limits: ResourceList) -> list[str]:
    found = []
    for name, enforced in parse_list(item.get("min")).items():
        found.append(min_constraint(kind, name, enforced, requests, limits))
    for name, enforced in parse_list(item.get("max")).items():
        found.append(max_constraint(kind, name, enforced, requests, limits))
    for name, enforced in parse_list(item.get("maxLimitRequestRatio")).items():
        found.append(ratio_constraint(kind, name, enforced, requests, limits))
    return [message for message in found if message is not None]


def pod_limit_errors(limit_range: Obj, pod: Obj) -> list[str]:
    """``PodValidateLimitFunc``."""
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    problems: list[str] = []
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        kind = item.get("type")
        if kind == CONTAINER:
            for container in [*containers, *init_containers]:
                resources = container.get("resources") or {}
                problems += _item_errors(
                    item,
                    CONTAINER,
                    parse_list(resources.get("requests")),
                    parse_list(resources.get("limits")),
                )
        elif kind == POD:
            requests, limits = _pod_totals(containers, init_containers)
            problems += _item_errors(item, POD, requests, limits)
    return problems


def _pod_totals(
    containers: list[Obj], init_containers: list[Obj]
) -> tuple[ResourceList, ResourceList]:
    """The pod's sums as LimitRanger computes them: containers add up, then each init
    container raises a resource to its own value if larger."""
    totals: list[ResourceList] = [{}, {}]
    for i, key in enumerate(("requests", "limits")):
        for container in containers:
            totals[i] = add(totals[i], parse_list((container.get("resources") or {}).get(key)))
        for container in init_containers:
            for name, q in parse_list((container.get("resources") or {}).get(key)).items():
                if name not in totals[i] or q.value > totals[i][name].value:
                    totals[i][name] = q
    return totals[0], totals[1]


def claim_limit_errors(limit_range: Obj, claim: Obj) -> list[str]:
    """``PersistentVolumeClaimValidateLimitFunc``: min and max against the request."""
    requests = parse_list(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    problems: list[str | None] = []
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if item.get("type") != PERSISTENT_VOLUME_CLAIM:
            continue
        for name, enforced in parse_list(item.get("min")).items():
            problems.append(min_constraint(PERSISTENT_VOLUME_CLAIM, name, enforced, requests, {}))
        for name, enforced in parse_list(item.get("max")).items():
            problems.append(
                max_request_constraint(PERSISTENT_VOLUME_CLAIM, name, enforced, requests)
            )
    return [message for message in problems if message is not None]
