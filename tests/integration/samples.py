"""A small valid object of each kind the server serves, for tests that must cover every kind
discovery names (the namespace controller empties them all; the garbage collector follows
them all). A kind the server starts serving needs an entry here only if a bare object of it
(``apiVersion``, ``kind``, ``metadata``) is not valid."""

from __future__ import annotations

import copy
from typing import Any

from setpoint.client.api import Resource

Obj = dict[str, Any]

_POD_SPEC: Obj = {
    "restartPolicy": "Never",
    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
}
_TEMPLATE: Obj = {"metadata": {"labels": {"sample": "yes"}}, "spec": _POD_SPEC}
_ALWAYS: Obj = {**_TEMPLATE, "spec": {**_POD_SPEC, "restartPolicy": "Always"}}
_SELECTOR: Obj = {"matchLabels": {"sample": "yes"}}
_NOW = "2026-01-01T00:00:00Z"
_NOW_MICRO = "2026-01-01T00:00:00.000000Z"
_REGARDING: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}

_VIEW_ROLE: Obj = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}

BODIES: dict[tuple[str, str], Obj] = {
    ("", "pods"): {"spec": _POD_SPEC},
    ("", "configmaps"): {"data": {"k": "v"}},
    ("", "secrets"): {"stringData": {"k": "v"}},
    ("", "events"): {
        "involvedObject": _REGARDING,
        "reason": "Sample",
        "message": "a sample event",
        "type": "Normal",
        "firstTimestamp": _NOW,
        "lastTimestamp": _NOW,
        "count": 1,
    },
    ("events.k8s.io", "events"): {
        "eventTime": _NOW_MICRO,
        "reportingController": "example.com/sample",
        "reportingInstance": "sample-1",
        "action": "Sample",
        "reason": "Sample",
        "regarding": _REGARDING,
        "type": "Normal",
    },
    ("", "services"): {"spec": {"ports": [{"port": 80}]}},
    ("", "replicationcontrollers"): {"spec": {"replicas": 0, "template": _ALWAYS}},
    ("", "persistentvolumes"): {
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/sample"},
        }
    },
    ("networking.k8s.io", "ingresses"): {
        "spec": {"defaultBackend": {"service": {"name": "sample", "port": {"number": 80}}}}
    },
    ("networking.k8s.io", "ingressclasses"): {"spec": {"controller": "example.com/sample"}},
    ("coordination.k8s.io", "leases"): {"spec": {"holderIdentity": "sample"}},
    ("rbac.authorization.k8s.io", "rolebindings"): {"roleRef": _VIEW_ROLE},
    ("rbac.authorization.k8s.io", "clusterrolebindings"): {"roleRef": _VIEW_ROLE},
    ("discovery.k8s.io", "endpointslices"): {"addressType": "IPv4"},
    ("apps", "deployments"): {"spec": {"replicas": 0, "selector": _SELECTOR, "template": _ALWAYS}},
    ("apps", "replicasets"): {"spec": {"replicas": 0, "selector": _SELECTOR, "template": _ALWAYS}},
    # selects no node, in case a DaemonSet controller runs
    ("apps", "daemonsets"): {
        "spec": {
            "selector": _SELECTOR,
            "template": {**_ALWAYS, "spec": {**_ALWAYS["spec"], "nodeSelector": {"no": "node"}}},
        }
    },
    ("apps", "statefulsets"): {"spec": {"replicas": 0, "selector": _SELECTOR, "template": _ALWAYS}},
    ("", "persistentvolumeclaims"): {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    },
    ("apps", "controllerrevisions"): {"data": {"sample": "yes"}, "revision": 1},
    ("batch", "jobs"): {"spec": {"suspend": True, "template": _TEMPLATE}},
    ("batch", "cronjobs"): {
        "spec": {
            "schedule": "0 0 1 1 *",
            "suspend": True,
            "jobTemplate": {"spec": {"template": _TEMPLATE}},
        }
    },
}


def sample(
    resource: Resource, name: str, namespace: str = "", *, owners: list[Obj] | None = None
) -> Obj:
    """A new object of ``resource`` named ``name`` (in ``namespace`` if it is namespaced),
    owned by ``owners`` if given."""
    meta: Obj = {"name": name}
    if resource.namespaced:
        meta["namespace"] = namespace
    if owners:
        meta["ownerReferences"] = owners
    body = copy.deepcopy(BODIES.get((resource.group, resource.plural), {}))
    for about in ("involvedObject", "regarding"):  # an event is about an object beside it
        if about in body:
            body[about]["namespace"] = namespace
    return {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": meta, **body}


def reference_to(resource: Resource, obj: Obj) -> Obj:
    """An ownerReference to ``obj`` (of ``resource``) that blocks its foreground deletion."""
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
