"""The apps API group's kinds, declared whole (``KINDS``): Deployments, ReplicaSets,
DaemonSets, StatefulSets and ControllerRevisions.

The three workloads run pods from a template that their selector must select, with
``restartPolicy: Always``. A Deployment defaults to one replica, a RollingUpdate strategy with
25% surge and 25% unavailability, ten old ReplicaSets kept and a ten-minute progress deadline;
a ReplicaSet defaults to one replica; a DaemonSet (one pod per eligible node) to a
RollingUpdate strategy with ``maxUnavailable: 1`` and ``maxSurge: 0`` and ten old revisions
kept. In ``apps/v1`` a selector can never change after creation.

A StatefulSet (pods with stable names and claims, :mod:`setpoint.controllers.statefulset`)
defaults to ``OrderedReady`` pod management, a RollingUpdate strategy with partition 0, one
replica, ten old revisions kept and claims retained when it is deleted or scaled down; its
claim templates get a claim's defaults (:mod:`setpoint.resources.volumeclaims`). After
creation only its replicas, ordinals, template, update strategy, history limit, retention
policy and ``minReadySeconds`` may change (``ValidateStatefulSetUpdate``).

A DaemonSet also carries the annotation ``deprecated.daemonset.template.generation``: what
``apps/v1`` shows of the internal ``spec.templateGeneration``, 1 on creation and raised by one
with every change of the pod template (``daemonSetStrategy``). The API server owns it: setpoint
keeps the stored value on update whatever the client sent, where Kubernetes validates the
client's value (it may not be lowered, nor raised without a template change).

A ControllerRevision is an immutable snapshot of state (``data``, any JSON) with a revision
number; the DaemonSet controller keeps its history in them (``kubectl rollout history``).
"""

from __future__ import annotations

import re
from typing import Any

from setpoint.meta import gofmt
from setpoint.meta.jsonvalue import json_equal
from setpoint.resources import podspec
from setpoint.resources.checks import (
    PERCENT,
    immutable,
    kube_finalizer_errors,
    label_selector_errors,
    nonnegative,
    not_more_than_100_percent,
    positive_int_or_percent_errors,
)
from setpoint.resources.fielderrors import (
    FieldError,
    forbidden,
    invalid_rendered,
    invalid_value,
    not_supported,
    required,
)
from setpoint.resources.printers.workloads import (
    CONTROLLERREVISION_PRINTER,
    DAEMONSET_PRINTER,
    DEPLOYMENT_PRINTER,
    REPLICASET_PRINTER,
    STATEFULSET_PRINTER,
)
from setpoint.resources.registry import (
    CATEGORY_ALL,
    POD_TEMPLATE,
    SPEC_AND_STATUS,
    Obj,
    ResourceType,
)
from setpoint.resources.volumeclaims import claim_spec_errors, default_claim

_STRATEGIES = ("Recreate", "RollingUpdate")
_POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
_RETENTION_POLICIES = ("Retain", "Delete")
# what ValidateStatefulSetUpdate lets change
_STATEFUL_SET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
_STATEFUL_SET_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
    "'minReadySeconds' are forbidden"
)
_DAEMONSET_STRATEGIES = ("RollingUpdate", "OnDelete")
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


# ------------------------------------------------------------------------------ defaults


def _default_deployment(deployment: Obj) -> None:
    spec = deployment.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    podspec.default_template(spec)


def _default_replica_set(replica_set: Obj) -> None:
    spec = replica_set.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    podspec.default_template(spec)


def _default_daemon_set(daemon_set: Obj) -> None:
    """``SetDefaults_DaemonSet``."""
    spec = daemon_set.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    podspec.default_template(spec)


def _default_stateful_set(stateful_set: Obj) -> None:
    """``SetDefaults_StatefulSet``, and the claim templates' own defaults."""
    spec = stateful_set.setdefault("spec", {})
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        strategy.setdefault("rollingUpdate", {})
    if strategy["type"] == "RollingUpdate" and isinstance(strategy.get("rollingUpdate"), dict):
        strategy["rollingUpdate"].setdefault("partition", 0)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            default_claim(claim)
    podspec.default_template(spec)


def _prepare_daemon_set(daemon_set: Obj) -> None:
    """``daemonSetStrategy.PrepareForCreate``: template generation 1 (or the one given)."""
    meta = daemon_set["metadata"]
    given = _template_generation(daemon_set)
    meta["annotations"] = {**(meta.get("annotations") or {}), TEMPLATE_GENERATION: str(given or 1)}


def _prepare_daemon_set_update(daemon_set: Obj, old: Obj) -> None:
    """``daemonSetStrategy.PrepareForUpdate``: a new pod template raises the template
    generation by one; anything else keeps it."""
    generation = _template_generation(old) or 1
    template = (daemon_set.get("spec") or {}).get("template")
    if template != (old.get("spec") or {}).get("template"):
        generation += 1
    meta = daemon_set["metadata"]
    meta["annotations"] = {**(meta.get("annotations") or {}), TEMPLATE_GENERATION: str(generation)}


def _template_generation(daemon_set: Obj) -> int:
    text = (daemon_set["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION, "")
    try:
        return max(int(text), 0)
    except ValueError:
        return 0


# ---------------------------------------------------------------------------- validation


def _validate_deployment(deployment: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateDeploymentSpec`` (+ selector immutability on update)."""
    spec = deployment.get("spec") or {}
    errors = kube_finalizer_errors(deployment) + nonnegative(spec.get("replicas"), "spec.replicas")
    errors += _selector_and_template_errors(spec)
    errors += _strategy_errors(spec.get("strategy") or {}, "spec.strategy")
    errors += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errors += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        errors += nonnegative(deadline, "spec.progressDeadlineSeconds")
        if deadline <= spec.get("minReadySeconds", 0):
            detail = "must be greater than minReadySeconds"
            errors.append(invalid_value("spec.progressDeadlineSeconds", deadline, detail))
    return errors + _selector_update_errors(deployment, old)


def _validate_replica_set(replica_set: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateReplicaSetSpec`` (+ selector immutability on update)."""
    spec = replica_set.get("spec") or {}
    errors = kube_finalizer_errors(replica_set) + nonnegative(spec.get("replicas"), "spec.replicas")
    errors += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errors += _selector_and_template_errors(spec)
    return errors + _selector_update_errors(replica_set, old)


def _validate_daemon_set(daemon_set: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateDaemonSetSpec`` (+ selector immutability on update)."""
    spec = daemon_set.get("spec") or {}
    errors = kube_finalizer_errors(daemon_set)
    errors += _selector_and_template_errors(spec, owner="daemonset")
    errors += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errors += _daemon_set_strategy_errors(spec.get("updateStrategy") or {}, "spec.updateStrategy")
    errors += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return errors + _selector_update_errors(daemon_set, old)


def _validate_stateful_set(stateful_set: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateStatefulSetSpec``, and on update ``ValidateStatefulSetUpdate``."""
    spec = stateful_set.get("spec") or {}
    errors = kube_finalizer_errors(stateful_set)
    policy = spec.get("podManagementPolicy", "")
    if not policy:
        errors.append(required("spec.podManagementPolicy"))
    elif policy not in _POD_MANAGEMENT_POLICIES:
        detail = "must be 'OrderedReady' or 'Parallel'"
        errors.append(invalid_value("spec.podManagementPolicy", policy, detail))
    errors += _stateful_set_strategy_errors(spec.get("updateStrategy") or {})
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    for key in ("whenDeleted", "whenScaled"):
        if retention.get(key, "Retain") not in _RETENTION_POLICIES:
            path = f"spec.persistentVolumeClaimRetentionPolicy.{key}"
            errors.append(not_supported(path, retention[key], _RETENTION_POLICIES))
    start = (spec.get("ordinals") or {}).get("start")
    errors += nonnegative(start, "spec.ordinals.start")
    errors += nonnegative(spec.get("replicas"), "spec.replicas")
    errors += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errors += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    errors += _selector_and_template_errors(_with_claim_volumes(spec), owner="statefulset")
    for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
        errors += claim_spec_errors(claim.get("spec") or {}, f"spec.volumeClaimTemplates[{i}].spec")
    if old is not None:
        errors += _stateful_set_update_errors(spec, old.get("spec") or {})
    return errors


def _with_claim_volumes(spec: Obj) -> Obj:
    """The spec with each claim template as a volume of the pod template, as its pods will
    have it: the pod spec is checked with them, so mounts of claims are not "Not found"
    (Kubernetes skips the pod spec check of a StatefulSet's template for that reason)."""
    claims = [
        {
            "name": (c.get("metadata") or {}).get("name", ""),
            "persistentVolumeClaim": {"claimName": "x"},
        }
        for c in spec.get("volumeClaimTemplates") or []
        if isinstance(c, dict)
    ]
    template = spec.get("template")
    if not claims or not isinstance(template, dict):
        return spec
    pod_spec = dict(template.get("spec") or {})
    names = {c["name"] for c in claims}
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in names]
    pod_spec["volumes"] = claims + volumes
    return {**spec, "template": {**template, "spec": pod_spec}}


def _stateful_set_strategy_errors(strategy: Obj) -> list[FieldError]:
    kind, rolling = strategy.get("type", ""), strategy.get("rollingUpdate")
    path = "spec.updateStrategy"
    if not kind:
        return [required(path)]
    if kind == "OnDelete":
        if rolling is None:
            return []
        rendered = (
            f"&apps.RollingUpdateStatefulSetStrategy{{Partition:{rolling.get('partition', 0)}}}"
        )
        detail = "only allowed for updateStrategy 'RollingUpdate'"
        return [invalid_rendered(f"{path}.rollingUpdate", rendered, detail)]
    if kind == "RollingUpdate":
        return nonnegative((rolling or {}).get("partition"), f"{path}.rollingUpdate.partition")
    rendered = (
        f"apps.StatefulSetUpdateStrategy{{Type:{gofmt.quote(kind)}, "
        f"RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}}"
    )
    return [invalid_rendered(path, rendered, "must be 'RollingUpdate' or 'OnDelete'")]


def _stateful_set_update_errors(spec: Obj, old_spec: Obj) -> list[FieldError]:
    """Only the fields Kubernetes lets change may differ from the stored spec."""
    fixed = {k: v for k, v in spec.items() if k not in _STATEFUL_SET_MUTABLE}
    old_fixed = {k: v for k, v in old_spec.items() if k not in _STATEFUL_SET_MUTABLE}
    if json_equal(_without_empty(fixed), _without_empty(old_fixed)):
        return []
    return [forbidden("spec", _STATEFUL_SET_UPDATE_FORBIDDEN)]


def _without_empty(value: Any) -> Any:
    """Absent and empty are the same to Go's ``Semantic.DeepEqual`` of optional fields."""
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def _daemon_set_strategy_errors(strategy: Obj, path: str) -> list[FieldError]:
    """``ValidateDaemonSetUpdateStrategy`` and ``ValidateRollingUpdateDaemonSet``."""
    kind, rolling = strategy.get("type", ""), strategy.get("rollingUpdate")
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [not_supported(path, kind, _DAEMONSET_STRATEGIES)]
    if rolling is None:
        return [required(f"{path}.rollingUpdate")]
    path = f"{path}.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errors = positive_int_or_percent_errors(unavailable, f"{path}.maxUnavailable")
    errors += positive_int_or_percent_errors(surge, f"{path}.maxSurge")
    errors += not_more_than_100_percent(unavailable, f"{path}.maxUnavailable")
    errors += not_more_than_100_percent(surge, f"{path}.maxSurge")
    has_unavailable = _int_or_percent_value(unavailable) != 0
    has_surge = _int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        detail = "may not be set when maxUnavailable is non-zero"
        rendered = gofmt.sharp_v_int_or_string(surge)
        errors.append(invalid_rendered(f"{path}.maxSurge", rendered, detail))
    elif not has_unavailable and not has_surge:
        errors.append(required(f"{path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errors


def _validate_controller_revision(revision: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateControllerRevision`` (+ ``data`` immutable on update)."""
    errors = kube_finalizer_errors(revision)
    if revision.get("data") is None:
        errors.append(required("data", "data is mandatory"))
    errors += nonnegative(revision.get("revision"), "revision")
    if old is not None:
        data = revision.get("data")
        errors += immutable(data, old.get("data"), "data", gofmt.json_marshal(data))
    return errors


def _selector_and_template_errors(spec: Obj, *, owner: str = "deployment") -> list[FieldError]:
    """The selector (required, valid, not empty) and the template it must select; ``owner``
    names the kind in the messages as Kubernetes does ("deployment" for ReplicaSets too)."""
    selector = spec.get("selector")
    if selector is None:
        errors = [required("spec.selector")]
    else:
        errors = label_selector_errors(selector, "spec.selector")
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            detail = f"empty selector is invalid for {owner}"
            errors.append(
                invalid_rendered("spec.selector", gofmt.sharp_v_label_selector(selector), detail)
            )
    invalid_selector = podspec.selector_is_parseable(
        selector, "spec.selector", "invalid label selector"
    )
    if invalid_selector:
        return errors + invalid_selector
    return errors + template_errors(selector, spec.get("template"), owner)


def template_errors(selector: Obj | None, template: Obj | None, owner: str) -> list[FieldError]:
    """``ValidatePodTemplateSpecForReplicaSet`` (and its DaemonSet and ReplicationController
    twins, ``owner`` ``"daemonset"`` and ``"replicationcontroller"``): the template the
    selector must select, its pod spec, restartPolicy Always and no activeDeadlineSeconds."""
    path = "spec.template"
    errors = podspec.validate_selector_matches_template(selector, template, path)
    errors += podspec.validate_template(template, path)
    pod_spec = (template or {}).get("spec") or {}
    restart_policy = pod_spec.get("restartPolicy", "")
    if restart_policy != "Always":
        errors.append(not_supported(f"{path}.spec.restartPolicy", restart_policy, ["Always"]))
    deadline = pod_spec.get("activeDeadlineSeconds")
    if deadline is not None:
        field_path = f"{path}.spec.activeDeadlineSeconds"
        if owner == "daemonset":
            detail = "activeDeadlineSeconds in DaemonSet is not Supported"
            errors.append(invalid_value(field_path, deadline, detail))
        elif owner == "statefulset":
            detail = "activeDeadlineSeconds in StatefulSet is not Supported"
            errors.append(forbidden(field_path, detail))
        else:
            kind = "ReplicationController" if owner == "replicationcontroller" else "ReplicaSet"
            errors.append(
                forbidden(field_path, f"activeDeadlineSeconds in {kind} is not Supported")
            )
    return errors


def _selector_update_errors(obj: Obj, old: Obj | None) -> list[FieldError]:
    if old is None:
        return []
    selector = (obj.get("spec") or {}).get("selector")
    old_selector = (old.get("spec") or {}).get("selector")
    return immutable(
        selector, old_selector, "spec.selector", gofmt.sharp_v_label_selector(selector)
    )


def _strategy_errors(strategy: Obj, path: str) -> list[FieldError]:
    kind, rolling = strategy.get("type", ""), strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is None:
            return []
        detail = "may not be specified when strategy `type` is 'Recreate'"
        return [forbidden(f"{path}.rollingUpdate", detail)]
    if kind == "RollingUpdate":
        if rolling is None:
            return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
        return _rolling_update_errors(rolling, f"{path}.rollingUpdate")
    pointer = "(nil)" if rolling is None else "(0xc000000000)"
    rendered = (
        f"apps.DeploymentStrategy{{Type:{gofmt.quote(kind)}, "
        f"RollingUpdate:(*apps.RollingUpdateDeployment){pointer}}}"
    )
    supported = ", ".join(f'"{s}"' for s in _STRATEGIES)
    message = f"Unsupported value: {rendered}: supported values: {supported}"
    return [FieldError("FieldValueNotSupported", path, message)]


def _rolling_update_errors(rolling: Obj, path: str) -> list[FieldError]:
    """``ValidateRollingUpdateDeployment``."""
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errors = positive_int_or_percent_errors(unavailable, f"{path}.maxUnavailable")
    errors += positive_int_or_percent_errors(surge, f"{path}.maxSurge")
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        detail = "may not be 0 when `maxSurge` is 0"
        errors.append(
            invalid_rendered(
                f"{path}.maxUnavailable", gofmt.sharp_v_int_or_string(unavailable), detail
            )
        )
    return errors + not_more_than_100_percent(unavailable, f"{path}.maxUnavailable")


def _int_or_percent_value(value: int | str | None) -> int:
    """``getIntOrPercentValue``: a percentage's number, else Go's ``IntValue``."""
    if isinstance(value, str):
        digits = value[:-1] if PERCENT.fullmatch(value) else value
        return int(digits) if re.fullmatch(r"[+-]?[0-9]+", digits) else 0
    return value or 0


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="apps",
        version="v1",
        kind="Deployment",
        plural="deployments",
        singular="deployment",
        namespaced=True,
        short_names=("deploy",),
        categories=CATEGORY_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.apps.v1.Deployment",
        printer=DEPLOYMENT_PRINTER,
        protobuf="k8s.io.api.apps.v1.Deployment",
        has_status=True,
        tracks_generation=True,
        generation_includes_annotations=True,
        # deploymentStatusStrategy resets only spec and labels: the controller writes the
        # revision annotation with its status, so it never bumps generation
        status_update_metadata=("annotations", "ownerReferences", "finalizers"),
        always_encoded={**SPEC_AND_STATUS, **POD_TEMPLATE, "spec.strategy": {}},
        defaulter=_default_deployment,
        validator=_validate_deployment,
    ),
    ResourceType(
        group="apps",
        version="v1",
        kind="ReplicaSet",
        plural="replicasets",
        singular="replicaset",
        namespaced=True,
        short_names=("rs",),
        categories=CATEGORY_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.apps.v1.ReplicaSet",
        printer=REPLICASET_PRINTER,
        protobuf="k8s.io.api.apps.v1.ReplicaSet",
        has_status=True,
        tracks_generation=True,
        always_encoded={**SPEC_AND_STATUS, **POD_TEMPLATE, "status.replicas": 0},
        defaulter=_default_replica_set,
        validator=_validate_replica_set,
    ),
    ResourceType(
        group="apps",
        version="v1",
        kind="DaemonSet",
        plural="daemonsets",
        singular="daemonset",
        namespaced=True,
        short_names=("ds",),
        categories=CATEGORY_ALL,
        subresources=("status",),
        definition="io.k8s.api.apps.v1.DaemonSet",
        printer=DAEMONSET_PRINTER,
        protobuf="k8s.io.api.apps.v1.DaemonSet",
        has_status=True,
        tracks_generation=True,
        always_encoded={
            **SPEC_AND_STATUS,
            **POD_TEMPLATE,
            "spec.updateStrategy": {},
            "status.currentNumberScheduled": 0,
            "status.numberMisscheduled": 0,
            "status.desiredNumberScheduled": 0,
            "status.numberReady": 0,
        },
        defaulter=_default_daemon_set,
        prepare_for_create=_prepare_daemon_set,
        prepare_for_update=_prepare_daemon_set_update,
        validator=_validate_daemon_set,
    ),
    ResourceType(
        group="apps",
        version="v1",
        kind="StatefulSet",
        plural="statefulsets",
        singular="statefulset",
        namespaced=True,
        short_names=("sts",),
        categories=CATEGORY_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.apps.v1.StatefulSet",
        printer=STATEFULSET_PRINTER,
        protobuf="k8s.io.api.apps.v1.StatefulSet",
        has_status=True,
        tracks_generation=True,
        always_encoded={
            **SPEC_AND_STATUS,
            **POD_TEMPLATE,
            "spec.updateStrategy": {},
            "status.replicas": 0,
            "status.availableReplicas": 0,
        },
        defaulter=_default_stateful_set,
        validator=_validate_stateful_set,
    ),
    ResourceType(
        group="apps",
        version="v1",
        kind="ControllerRevision",
        plural="controllerrevisions",
        singular="controllerrevision",
        namespaced=True,
        definition="io.k8s.api.apps.v1.ControllerRevision",
        printer=CONTROLLERREVISION_PRINTER,
        protobuf="k8s.io.api.apps.v1.ControllerRevision",
        always_encoded={"revision": 0},
        validator=_validate_controller_revision,
    ),
)
