"""The core group's two policy kinds that bound what a namespace may consume: ResourceQuota and
LimitRange, declared whole (``KINDS``) with their defaults and validation.

* A **ResourceQuota** names hard limits (``spec.hard``) on aggregate consumption in its
  namespace: object counts (``pods``, ``services``, ``count/deployments.apps``) and compute
  (``requests.cpu``, ``limits.memory``, ...), optionally only for pods of some scopes
  (``Terminating``, ``BestEffort``, a ``PriorityClass`` selector). Its ``status`` (``hard``
  and ``used``) is written by the resource quota controller and charged by the ResourceQuota
  admission plugin (:mod:`setpoint.api.admission_plugins.resourcequota`); how an object counts
  is :mod:`setpoint.resources.quotausage`.
* A **LimitRange** bounds single objects: per ``Container``, per ``Pod`` and per
  ``PersistentVolumeClaim`` minimums, maximums and limit/request ratios, and container
  defaults the LimitRanger admission plugin fills in
  (:mod:`setpoint.api.admission_plugins.limitranger`).

Validation is ``ValidateResourceQuota`` and ``ValidateLimitRange`` of
``pkg/apis/core/validation``; LimitRange defaults are ``SetDefaults_LimitRangeItem`` (a
Container item's ``default`` falls back to ``max``, ``defaultRequest`` to ``default`` and then
to ``min``). Printers are kubectl's: ResourceQuota ``NAME AGE REQUEST LIMIT``, LimitRange
``NAME CREATED AT``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from setpoint.meta.quantity import (
    QUANTITY_ERROR,
    Quantity,
    QuantityError,
    canonical,
    parse_quantity,
)
from setpoint.meta.validation import label_key_errors
from setpoint.resources.fielderrors import (
    FieldError,
    duplicate,
    forbidden,
    invalid_rendered,
    invalid_value,
    not_supported,
    required,
)
from setpoint.resources.printers.base import (
    AGE_COLUMN,
    CREATION_TIMESTAMP_DOC,
    NAME_COLUMN,
    Printer,
    age_of,
    column,
    name_of,
)
from setpoint.resources.registry import SPEC_AND_STATUS, Obj, ResourceType

# ----------------------------------------------------------------------------- names

# quota scopes (``core.ResourceQuotaScope``) and the resources each may track
TERMINATING = "Terminating"
NOT_TERMINATING = "NotTerminating"
BEST_EFFORT = "BestEffort"
NOT_BEST_EFFORT = "NotBestEffort"
PRIORITY_CLASS = "PriorityClass"
CROSS_NAMESPACE_POD_AFFINITY = "CrossNamespacePodAffinity"
STANDARD_SCOPES = (
    TERMINATING,
    NOT_TERMINATING,
    BEST_EFFORT,
    NOT_BEST_EFFORT,
    PRIORITY_CLASS,
    CROSS_NAMESPACE_POD_AFFINITY,
)
SCOPE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# ``helper.IsStandardQuotaResourceName``
POD_COMPUTE_RESOURCES = (
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
)
STANDARD_QUOTA_RESOURCES = (
    *POD_COMPUTE_RESOURCES,
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
)
# integer-valued quota resources (``helper.IsIntegerResourceName``)
_INTEGER_RESOURCES = (
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
)
# what a scope may restrict (``validateResourceQuotaScopes``): BestEffort pods only count
# as pods; the other pod scopes also their compute resources
_BEST_EFFORT_RESOURCES = ("pods",)
_POD_SCOPE_RESOURCES = (
    "pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
)

CONTAINER = "Container"
POD = "Pod"
PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
STANDARD_LIMIT_TYPES = (POD, CONTAINER, PERSISTENT_VOLUME_CLAIM)
_LIMIT_FIELDS = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")


def parse(text: Any) -> Quantity | None:
    try:
        return parse_quantity(str(text))
    except QuantityError:
        return None


def is_integer_resource(name: str) -> bool:
    return name in _INTEGER_RESOURCES or name.startswith("count/")


# ----------------------------------------------------------------------- ResourceQuota


def _prepare_quota(quota: Obj) -> None:
    quota.pop("status", None)


def _canonicalize(quantities: Any) -> None:
    """Quantities as Kubernetes stores them: canonical text (``0.5`` is ``500m``)."""
    if not isinstance(quantities, dict):
        return
    for name, text in quantities.items():
        quantity = parse(text)
        if quantity is not None:
            quantities[name] = canonical(quantity)


def _default_quota(quota: Obj) -> None:
    _canonicalize((quota.get("spec") or {}).get("hard"))
    status = quota.get("status") or {}
    _canonicalize(status.get("hard"))
    _canonicalize(status.get("used"))


def _validate_quota(quota: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateResourceQuota``: hard names and values, scopes and the scope selector, and
    the status's names and values."""
    spec = quota.get("spec") or {}
    errors = _quota_resource_list(spec.get("hard"), "spec.hard")
    errors += _quota_scopes(spec)
    status = quota.get("status") or {}
    errors += _quota_resource_list(status.get("hard"), "status.hard")
    errors += _quota_resource_list(status.get("used"), "status.used")
    return errors


def _quota_resource_list(resources: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for name, text in (resources or {}).items():
        item = f"{path}[{name}]"
        errors += quota_resource_name_errors(name, item)
        quantity = parse(text)
        if quantity is None:
            errors.append(invalid_value(item, str(text), QUANTITY_ERROR))
            continue
        if quantity.value < 0:
            errors.append(
                invalid_value(item, canonical(quantity), "must be greater than or equal to 0")
            )
        if is_integer_resource(name) and quantity.value.denominator != 1:
            errors.append(invalid_value(item, canonical(quantity), "must be an integer"))
    return errors


def quota_resource_name_errors(name: str, path: str) -> list[FieldError]:
    """``ValidateResourceQuotaResourceName``."""
    messages = label_key_errors(name)
    if messages:
        return [invalid_value(path, name, m) for m in messages]
    if "/" not in name and not _standard_quota_resource(name):
        return [invalid_value(path, name, "must be a standard resource for quota")]
    return []


def _standard_quota_resource(name: str) -> bool:
    return (
        name in STANDARD_QUOTA_RESOURCES
        or name.startswith("hugepages-")
        or name.startswith("requests.hugepages-")
    )


def _quota_scopes(spec: Obj) -> list[FieldError]:
    """``validateResourceQuotaScopes`` and ``validateScopeSelector``."""
    errors: list[FieldError] = []
    hard = sorted((spec.get("hard") or {}).keys())
    scopes = list(spec.get("scopes") or [])
    # upstream reports every scope problem with the whole list as the value
    listed = ", ".join(f'"{scope}"' for scope in scopes)
    rendered = f"[]core.ResourceQuotaScope{{{listed}}}"
    for scope in scopes:
        if scope not in STANDARD_SCOPES:
            errors.append(invalid_rendered("spec.scopes", rendered, "unsupported scope"))
        for name in hard:
            if _standard_quota_resource(name) and not _scope_allows(scope, name):
                detail = "unsupported scope applied to resource"
                errors.append(invalid_rendered("spec.scopes", rendered, detail))
    selector = spec.get("scopeSelector")
    path = "spec.scopeSelector.matchExpressions"
    for i, req in enumerate((selector or {}).get("matchExpressions") or []):
        scope, operator = req.get("scopeName"), req.get("operator")
        if scope not in STANDARD_SCOPES:
            errors.append(invalid_value(f"{path}[{i}].scopeName", scope, "unsupported scope"))
        if operator not in SCOPE_OPERATORS:
            errors.append(not_supported(f"{path}[{i}].operator", operator, SCOPE_OPERATORS))
        values = req.get("values") or []
        if operator in ("In", "NotIn") and not values:
            detail = (
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"
            )
            errors.append(required(f"{path}[{i}].values", detail))
        if operator in ("Exists", "DoesNotExist") and values:
            detail = (
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"
            )
            errors.append(invalid_value(f"{path}[{i}].values", values, detail))
        if _EXISTS_ONLY.get(scope) and operator != "Exists":
            detail = (
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, "
                "ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort and "
                "ResourceQuotaScopeNotBestEffort"
            )
            errors.append(invalid_value(f"{path}[{i}].operator", operator, detail))
    selected = [r.get("scopeName") for r in (selector or {}).get("matchExpressions") or []]
    for a, b in ((TERMINATING, NOT_TERMINATING), (BEST_EFFORT, NOT_BEST_EFFORT)):
        if a in scopes and b in scopes:
            errors.append(invalid_rendered("spec.scopes", rendered, "conflicting scopes"))
        if a in selected and b in selected:
            errors.append(invalid_rendered("spec.scopeSelector", "{...}", "conflicting scopes"))
    return errors


_EXISTS_ONLY = dict.fromkeys((TERMINATING, NOT_TERMINATING, BEST_EFFORT, NOT_BEST_EFFORT), True)


def _scope_allows(scope: str, name: str) -> bool:
    """``IsResourceQuotaScopeValidForResource``."""
    if scope == BEST_EFFORT:
        return name in _BEST_EFFORT_RESOURCES
    if scope in (
        TERMINATING,
        NOT_TERMINATING,
        NOT_BEST_EFFORT,
        PRIORITY_CLASS,
        CROSS_NAMESPACE_POD_AFFINITY,
    ):
        return name in _POD_SCOPE_RESOURCES
    return True


def _sorted_resources(resources: Obj) -> list[str]:
    return sorted(resources)


def quota_cells(quota: Obj, now: datetime) -> list[Any]:
    """``printResourceQuota``: ``name: used/hard`` for each hard resource, ``limits.*`` in
    LIMIT and the rest in REQUEST."""
    status = quota.get("status") or {}
    hard = status.get("hard") or {}
    used = status.get("used") or {}
    request: list[str] = []
    limit: list[str] = []
    for name in _sorted_resources(hard):
        used_text = _quantity_text(used.get(name, "0"))
        entry = f"{name}: {used_text}/{_quantity_text(hard[name])}"
        pieces = name.split(".")
        (limit if len(pieces) > 1 and pieces[0] == "limits" else request).append(entry)
    return [name_of(quota), age_of(quota, now), ", ".join(request), ", ".join(limit)]


def _quantity_text(text: Any) -> str:
    quantity = parse(text)
    return canonical(quantity) if quantity is not None else str(text)


QUOTA_COLUMNS = [
    NAME_COLUMN,
    AGE_COLUMN,
    column(
        "Request",
        description="Request represents a minimum amount of cpu/memory that a container may "
        "consume.",
    ),
    column(
        "Limit",
        description="Limits control the maximum amount of cpu/memory that a container may use "
        "independent of contention on the node.",
    ),
]
QUOTA_PRINTER = Printer(QUOTA_COLUMNS, quota_cells)


# ------------------------------------------------------------------------- LimitRange


def _default_limit_range(limit_range: Obj) -> None:
    """``SetDefaults_LimitRangeItem``: a Container item's default limit falls back to its
    max, its default request to its default limit and then to its min."""
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict):
            continue
        for name in _LIMIT_FIELDS:
            _canonicalize(item.get(name))
        if item.get("type") != CONTAINER:
            continue
        default = item.setdefault("default", {}) or {}
        default_request = item.setdefault("defaultRequest", {}) or {}
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        for name, value in default.items():
            default_request.setdefault(name, value)
        for name, value in (item.get("min") or {}).items():
            default_request.setdefault(name, value)
        item["default"], item["defaultRequest"] = default, default_request
        for key in ("default", "defaultRequest"):
            if not item[key]:
                del item[key]


def _validate_limit_range(limit_range: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateLimitRange``."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate((limit_range.get("spec") or {}).get("limits") or []):
        path = f"spec.limits[{i}]"
        kind = str(item.get("type") or "")
        errors += _limit_type_errors(kind, f"{path}.type")
        if kind in seen:
            errors.append(duplicate(f"{path}.type", kind))
        seen.add(kind)
        values: dict[str, dict[str, Quantity]] = {}
        for name in _LIMIT_FIELDS:
            quantities = item.get(name) or {}
            if kind == POD and name in ("default", "defaultRequest"):
                if quantities:
                    detail = "may not be specified when `type` is 'Pod'"
                    errors.append(forbidden(f"{path}.{name}", detail))
                continue
            parsed: dict[str, Quantity] = {}
            for resource, text in quantities.items():
                item_path = f"{path}.{name}[{resource}]"
                errors += _limit_resource_name_errors(kind, resource, item_path)
                quantity = parse(text)
                if quantity is None:
                    errors.append(invalid_value(item_path, str(text), QUANTITY_ERROR))
                else:
                    parsed[resource] = quantity
            values[name] = parsed
        if kind == PERSISTENT_VOLUME_CLAIM and not (
            "storage" in (item.get("min") or {}) or "storage" in (item.get("max") or {})
        ):
            detail = "either minimum or maximum storage value is required, but neither was provided"
            errors.append(required(f"{path}.limits", detail))
        errors += _limit_order_errors(values, path)
    return errors


def _limit_order_errors(values: dict[str, dict[str, Quantity]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    minimum, maximum = values.get("min", {}), values.get("max", {})
    default, default_request = values.get("default", {}), values.get("defaultRequest", {})
    ratios = values.get("maxLimitRequestRatio", {})
    keys = {k for quantities in values.values() for k in quantities}
    for k in sorted(keys):
        lo, hi, d, dr, ratio = (
            minimum.get(k),
            maximum.get(k),
            default.get(k),
            default_request.get(k),
            ratios.get(k),
        )
        if lo is not None and hi is not None and lo.value > hi.value:
            detail = f"min value {lo} is greater than max value {hi}"
            errors.append(invalid_value(f"{path}.min[{k}]", str(lo), detail))
        if dr is not None and lo is not None and lo.value > dr.value:
            detail = f"min value {lo} is greater than default request value {dr}"
            errors.append(invalid_value(f"{path}.defaultRequest[{k}]", str(dr), detail))
        if dr is not None and hi is not None and dr.value > hi.value:
            detail = f"default request value {dr} is greater than max value {hi}"
            errors.append(invalid_value(f"{path}.defaultRequest[{k}]", str(dr), detail))
        if dr is not None and d is not None and dr.value > d.value:
            detail = f"default request value {dr} is greater than default limit value {d}"
            errors.append(invalid_value(f"{path}.defaultRequest[{k}]", str(dr), detail))
        if d is not None and lo is not None and lo.value > d.value:
            detail = f"min value {lo} is greater than default value {d}"
            errors.append(invalid_value(f"{path}.default[{k}]", str(lo), detail))
        if d is not None and hi is not None and d.value > hi.value:
            detail = f"default value {d} is greater than max value {hi}"
            errors.append(invalid_value(f"{path}.default[{k}]", str(hi), detail))
        if ratio is not None and ratio.value < 1:
            detail = f"ratio {ratio} is less than 1"
            errors.append(invalid_value(f"{path}.maxLimitRequestRatio[{k}]", str(ratio), detail))
        if ratio is not None and lo is not None and hi is not None and lo.value > 0:
            bound = float(hi.value / lo.value)
            if float(ratio.value) > bound:
                detail = f"ratio {ratio} is greater than max/min = {bound:f}"
                path_k = f"{path}.maxLimitRequestRatio[{k}]"
                errors.append(invalid_value(path_k, str(ratio), detail))
        overcommit = "/" not in k and not k.startswith("hugepages-")
        if not overcommit and d is not None and dr is not None and d.value != dr.value:
            detail = f"default value {d} must equal to defaultRequest value {dr} in {k}"
            errors.append(invalid_value(f"{path}.defaultRequest[{k}]", str(dr), detail))
    return errors


def _limit_type_errors(kind: str, path: str) -> list[FieldError]:
    """``validateLimitRangeTypeName``."""
    messages = label_key_errors(kind)
    if messages:
        return [invalid_value(path, kind, m) for m in messages]
    if "/" not in kind and kind not in STANDARD_LIMIT_TYPES:
        return [invalid_value(path, kind, "must be a standard limit type or fully qualified")]
    return []


def _limit_resource_name_errors(kind: str, name: str, path: str) -> list[FieldError]:
    """``validateLimitRangeResourceName``: Pod and Container items name container
    resources, the others any qualified resource name."""
    messages = label_key_errors(name)
    if messages:
        return [invalid_value(path, name, m) for m in messages]
    standard = name in ("cpu", "memory", "ephemeral-storage") or name.startswith("hugepages-")
    if kind in (POD, CONTAINER) and "/" not in name and not standard:
        return [invalid_value(path, name, "must be a standard resource for containers")]
    return []


def limit_range_cells(limit_range: Obj, now: datetime) -> list[Any]:
    """``printLimitRange``: the name and the creation timestamp itself."""
    return [name_of(limit_range), limit_range["metadata"].get("creationTimestamp")]


LIMIT_RANGE_COLUMNS = [
    NAME_COLUMN,
    column("Created At", "date", CREATION_TIMESTAMP_DOC),
]
LIMIT_RANGE_PRINTER = Printer(LIMIT_RANGE_COLUMNS, limit_range_cells)


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="",
        version="v1",
        kind="ResourceQuota",
        plural="resourcequotas",
        singular="resourcequota",
        namespaced=True,
        short_names=("quota",),
        subresources=("status",),
        definition="io.k8s.api.core.v1.ResourceQuota",
        printer=QUOTA_PRINTER,
        protobuf="k8s.io.api.core.v1.ResourceQuota",
        has_status=True,
        always_encoded=SPEC_AND_STATUS,
        prepare_for_create=_prepare_quota,
        defaulter=_default_quota,
        validator=_validate_quota,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="LimitRange",
        plural="limitranges",
        singular="limitrange",
        namespaced=True,
        short_names=("limits",),
        definition="io.k8s.api.core.v1.LimitRange",
        printer=LIMIT_RANGE_PRINTER,
        protobuf="k8s.io.api.core.v1.LimitRange",
        defaulter=_default_limit_range,
        validator=_validate_limit_range,
    ),
)
