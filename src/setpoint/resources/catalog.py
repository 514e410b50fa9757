"""The resource types setpoint serves, declared once.

Each entry names a kind the way Kubernetes' discovery does (plural, short names, categories,
subresources) and points at its official schema definition. Kind-specific behaviour
(defaults, semantic validation, field selectors) is attached from the per-group modules.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from setpoint.resources import apps, batch, coordination, core, events
from setpoint.resources.registry import Registry, ResourceType

_ALL = ("all",)
# structs every Go object of these kinds carries, encoded even when empty
_SPEC_AND_STATUS: dict[str, Any] = {"spec": {}, "status": {}}
_POD_TEMPLATE: dict[str, Any] = {"spec.template": {}, "spec.template.metadata": {}}

TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        group="",
        version="v1",
        kind="Namespace",
        plural="namespaces",
        singular="namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status", "finalize"),
        definition="io.k8s.api.core.v1.Namespace",
        has_status=True,
        return_deleted_object=True,
        always_encoded=_SPEC_AND_STATUS,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Pod",
        plural="pods",
        singular="pod",
        namespaced=True,
        short_names=("po",),
        categories=_ALL,
        subresources=("status", "binding", "log"),
        definition="io.k8s.api.core.v1.Pod",
        has_status=True,
        tracks_generation=True,
        return_deleted_object=True,
        always_encoded=_SPEC_AND_STATUS,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Node",
        plural="nodes",
        singular="node",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        definition="io.k8s.api.core.v1.Node",
        has_status=True,
        keeps_status_on_create=True,
        always_encoded=_SPEC_AND_STATUS,
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        short_names=("ev",),
        definition="io.k8s.api.core.v1.Event",
        allow_create_on_update=True,
        always_encoded={
            "involvedObject": {},
            "source": {},
            "reportingComponent": "",
            "reportingInstance": "",
        },
    ),
    ResourceType(
        group="",
        version="v1",
        kind="ConfigMap",
        plural="configmaps",
        singular="configmap",
        namespaced=True,
        short_names=("cm",),
        definition="io.k8s.api.core.v1.ConfigMap",
    ),
    ResourceType(
        group="",
        version="v1",
        kind="Secret",
        plural="secrets",
        singular="secret",
        namespaced=True,
        definition="io.k8s.api.core.v1.Secret",
    ),
    ResourceType(
        group="",
        version="v1",
        kind="ServiceAccount",
        plural="serviceaccounts",
        singular="serviceaccount",
        namespaced=True,
        short_names=("sa",),
        definition="io.k8s.api.core.v1.ServiceAccount",
        return_deleted_object=True,
    ),
    ResourceType(
        group="apps",
        version="v1",
        kind="Deployment",
        plural="deployments",
        singular="deployment",
        namespaced=True,
        short_names=("deploy",),
        categories=_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.apps.v1.Deployment",
        has_status=True,
        tracks_generation=True,
        generation_includes_annotations=True,
        # deploymentStatusStrategy resets only spec and labels: the controller writes the
        # revision annotation with its status, so it never bumps generation
        status_update_metadata=("annotations", "ownerReferences", "finalizers"),
        always_encoded={**_SPEC_AND_STATUS, **_POD_TEMPLATE, "spec.strategy": {}},
    ),
    ResourceType(
        group="apps",
        version="v1",
        kind="ReplicaSet",
        plural="replicasets",
        singular="replicaset",
        namespaced=True,
        short_names=("rs",),
        categories=_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.apps.v1.ReplicaSet",
        has_status=True,
        tracks_generation=True,
        always_encoded={**_SPEC_AND_STATUS, **_POD_TEMPLATE, "status.replicas": 0},
    ),
    ResourceType(
        group="batch",
        version="v1",
        kind="Job",
        plural="jobs",
        singular="job",
        namespaced=True,
        categories=_ALL,
        subresources=("status",),
        definition="io.k8s.api.batch.v1.Job",
        has_status=True,
        tracks_generation=True,
        always_encoded={**_SPEC_AND_STATUS, **_POD_TEMPLATE},
    ),
    ResourceType(
        group="batch",
        version="v1",
        kind="CronJob",
        plural="cronjobs",
        singular="cronjob",
        namespaced=True,
        short_names=("cj",),
        categories=_ALL,
        subresources=("status",),
        definition="io.k8s.api.batch.v1.CronJob",
        has_status=True,
        tracks_generation=True,
        always_encoded={
            **_SPEC_AND_STATUS,
            "spec.jobTemplate": {},
            "spec.jobTemplate.metadata": {},
            "spec.jobTemplate.spec": {},
            "spec.jobTemplate.spec.template": {},
            "spec.jobTemplate.spec.template.metadata": {},
        },
    ),
    ResourceType(
        group="coordination.k8s.io",
        version="v1",
        kind="Lease",
        plural="leases",
        singular="lease",
        namespaced=True,
        definition="io.k8s.api.coordination.v1.Lease",
        allow_create_on_update=True,
        always_encoded={"spec": {}},
    ),
    ResourceType(
        group="events.k8s.io",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        short_names=("ev",),
        definition="io.k8s.api.events.v1.Event",
        allow_create_on_update=True,
        always_encoded={"regarding": {}, "deprecatedSource": {}},
    ),
)

_HOOK_MODULES = (core, apps, batch, coordination, events)


def default_registry() -> Registry:
    """The registry with every served type and its kind-specific hooks attached."""
    hooks: dict[tuple[str, str], dict] = {}
    for module in _HOOK_MODULES:
        hooks.update(module.HOOKS)
    return Registry(replace(t, **hooks.get((t.group, t.kind), {})) for t in TYPES)
