"""The ReplicationController (core/v1): the ReplicaSet's predecessor, still served by
Kubernetes and still on kubectl's default ``apply --prune`` allow-list.

It differs from a ReplicaSet only in its selector, a plain label map (equality only) that
defaults to the template's labels, as do the controller's own labels
(``SetDefaults_ReplicationController``). Validation is ``ValidateReplicationController``:
a non-empty selector that selects the template, the template's pod spec with
``restartPolicy: Always`` and no ``activeDeadlineSeconds``; unlike a ReplicaSet's, the
selector may change. The controller that runs them is the ReplicaSet controller
(:mod:`setpoint.controllers.replicaset`), as in Kubernetes.
"""

from __future__ import annotations

from setpoint.meta.labels import selector_from_set
from setpoint.resources import podspec
from setpoint.resources.apps import template_errors
from setpoint.resources.checks import kube_finalizer_errors, label_errors, nonnegative
from setpoint.resources.fielderrors import FieldError, required
from setpoint.resources.registry import Obj


def default_replication_controller(controller: Obj) -> None:
    """``SetDefaults_ReplicationController``, then the template's pod defaults."""
    spec = controller.setdefault("spec", {})
    template = spec.get("template")
    labels = ((template or {}).get("metadata") or {}).get("labels")
    if labels is not None:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        metadata = controller.setdefault("metadata", {})
        if not metadata.get("labels"):
            metadata["labels"] = dict(labels)
    spec.setdefault("replicas", 1)
    if template is not None:
        podspec.default_template(spec)


def selector_text(controller: Obj) -> str:
    """The label map ``spec.selector`` as ``Scale.status.selector`` writes it."""
    return str(selector_from_set((controller.get("spec") or {}).get("selector") or {}))


def validate_replication_controller(controller: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateReplicationControllerSpec`` (the selector may change on update)."""
    spec = controller.get("spec") or {}
    errors = kube_finalizer_errors(controller)
    errors += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = spec.get("selector") or {}
    if not selector:
        errors.append(required("spec.selector"))
    else:
        errors += label_errors(selector, "spec.selector")
    errors += nonnegative(spec.get("replicas"), "spec.replicas")
    template = spec.get("template")
    if template is None:
        return [*errors, required("spec.template")]
    return errors + template_errors(
        {"matchLabels": selector}, template, owner="replicationcontroller"
    )
