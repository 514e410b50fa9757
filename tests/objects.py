"""Kubernetes objects for tests, in their JSON shape: small builders that take the fields a
test cares about as keywords and fill in the rest.

A builder returns a new object of one kind, with its ``apiVersion``, ``kind`` and
``metadata``, and a body the API server accepts as it is. Its keywords are of two sorts:

* lower_snake_case ones are the builder's own: ``namespace``, ``labels`` and
  ``annotations``; ``metadata`` for any other field of the metadata (``{"uid": ...}``);
  the parts it assembles, such as ``containers`` or a workload's ``pod_labels``; and
  ``status``, which an object has only when it is given;
* every other keyword is a field of the object's ``spec`` (of the object itself for a kind
  without a spec, such as ConfigMap), spelt as Kubernetes spells it and passed through as
  it is (``restartPolicy="Never"``, ``replicas=3``); it replaces whatever the builder
  would have filled in there.

Builders compose: ``deployment("web", containers=[container("web", "nginx:1.27")])``,
``cron_job(jobTemplate=job_template({"app": "tick"}))``. The values filled in are for tests
that do not care about them; a test whose assertion depends on a value reads best when it
passes that value itself. Dicts and lists a caller passes go into the object as they are
(not copied), except a workload's ``pod_labels``, which its selector and template each get
a copy of.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

READY: Obj = {"type": "Ready", "status": "True"}
"""The condition of a Ready node."""

NODE_RESOURCES: Obj = {"cpu": "4", "memory": "8Gi", "pods": "110"}
"""What a node built here offers unless told otherwise."""


def _meta(
    name: str,
    namespace: str | None,
    labels: dict[str, str] | None,
    annotations: dict[str, str] | None,
    metadata: Obj | None,
) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    meta.update(metadata or {})
    return meta


def _object(api_version: str, kind: str, meta: Obj, **body: Any) -> Obj:
    """The object, without the parts of ``body`` that are None."""
    obj: Obj = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    obj.update({key: value for key, value in body.items() if value is not None})
    return obj


# ------------------------------------------------------------------------ pods


def container(name: str = "app", image: str = "busybox", **fields: Any) -> Obj:
    """A container of a pod spec: ``name``, ``image`` and any other of its fields
    (``command``, ``env``, ``resources``...)."""
    return {"name": name, "image": image, **fields}


def _pod_spec(containers: list[Obj] | None, spec: Obj) -> Obj:
    return {"containers": [container()] if containers is None else containers, **spec}


def pod_template(
    labels: dict[str, str] | None = None,
    *,
    annotations: dict[str, str] | None = None,
    containers: list[Obj] | None = None,
    **spec: Any,
) -> Obj:
    """The pod template of a workload: the ``labels`` and ``annotations`` of its pods (no
    metadata without them) and their spec, by default one :func:`container`."""
    meta: Obj = {}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    template: Obj = {"metadata": meta} if meta else {}
    template["spec"] = _pod_spec(containers, spec)
    return template


def pod(
    name: str = "web",
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    containers: list[Obj] | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A Pod running ``containers`` (by default one :func:`container`)."""
    return _object(
        "v1",
        "Pod",
        _meta(name, namespace, labels, annotations, metadata),
        spec=_pod_spec(containers, spec),
        status=status,
    )


def binding(pod_name: str, node_name: str) -> Obj:
    """The body of ``pods/binding`` that assigns the pod ``pod_name`` to a node."""
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod_name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


# ------------------------------------------------------------------- workloads


def deployment(
    name: str = "web",
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    pod_labels: dict[str, str] | None = None,
    containers: list[Obj] | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A Deployment whose pods carry ``pod_labels`` (default ``app: <name>``), which its
    selector matches, and run ``containers``."""
    pods = {"app": name} if pod_labels is None else pod_labels
    body = {
        "selector": {"matchLabels": dict(pods)},
        "template": pod_template(dict(pods), containers=containers),
        **spec,
    }
    return _object(
        "apps/v1",
        "Deployment",
        _meta(name, namespace, labels, annotations, metadata),
        spec=body,
        status=status,
    )


def replica_set(name: str = "web", **fields: Any) -> Obj:
    """A ReplicaSet, from the same keywords as :func:`deployment` (whose spec is a
    ReplicaSet's, with more fields)."""
    return {**deployment(name, **fields), "kind": "ReplicaSet"}


def daemon_set(name: str = "agent", **fields: Any) -> Obj:
    """A DaemonSet, from the same keywords as :func:`deployment` (without ``replicas``)."""
    return {**deployment(name, **fields), "kind": "DaemonSet"}


def stateful_set(name: str = "web", **fields: Any) -> Obj:
    """A StatefulSet, from the same keywords as :func:`deployment` (``serviceName``,
    ``volumeClaimTemplates`` and the rest of its spec as keywords too)."""
    return {**deployment(name, **fields), "kind": "StatefulSet"}


def persistent_volume_claim(
    name: str = "data",
    *,
    namespace: str | None = None,
    storage: str | None = "1Gi",
    access_modes: list[str] | None = None,
    **spec: Any,
) -> Obj:
    """A PersistentVolumeClaim asking for ``storage`` (ReadWriteOnce unless told)."""
    body: Obj = {"accessModes": ["ReadWriteOnce"] if access_modes is None else access_modes}
    if storage is not None:
        body["resources"] = {"requests": {"storage": storage}}
    return _object(
        "v1",
        "PersistentVolumeClaim",
        _meta(name, namespace, None, None, None),
        spec={**body, **spec},
        status=None,
    )


def _job_spec(containers: list[Obj] | None, spec: Obj) -> Obj:
    return {"template": pod_template(containers=containers, restartPolicy="Never"), **spec}


def job(
    name: str = "pi",
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    containers: list[Obj] | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A Job whose pods run ``containers`` and never restart (the server picks its
    selector and labels the pods)."""
    return _object(
        "batch/v1",
        "Job",
        _meta(name, namespace, labels, annotations, metadata),
        spec=_job_spec(containers, spec),
        status=status,
    )


def job_template(
    labels: dict[str, str] | None = None,
    *,
    containers: list[Obj] | None = None,
    **spec: Any,
) -> Obj:
    """The ``jobTemplate`` of a CronJob: the ``labels`` of its Jobs (no metadata without
    them) and their spec, as :func:`job` fills it in."""
    template: Obj = {} if labels is None else {"metadata": {"labels": labels}}
    template["spec"] = _job_spec(containers, spec)
    return template


def cron_job(
    name: str = "tick",
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A CronJob, every five minutes unless a ``schedule`` is given, that creates Jobs from
    its ``jobTemplate`` (default: :func:`job_template`)."""
    body = {"schedule": "*/5 * * * *", "jobTemplate": job_template(), **spec}
    return _object(
        "batch/v1",
        "CronJob",
        _meta(name, namespace, labels, annotations, metadata),
        spec=body,
        status=status,
    )


# ---------------------------------------------------------------------- nodes


def node(
    name: str = "node-a",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    allocatable: dict[str, str] | None = None,
    conditions: list[Obj] | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A Node labelled with its hostname whose status reports ``allocatable`` resources,
    as its capacity too (default :data:`NODE_RESOURCES`), and ``conditions`` (default
    :data:`READY`), with any other ``status`` fields."""
    resources = NODE_RESOURCES if allocatable is None else allocatable
    node_status: Obj = {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": [dict(READY)] if conditions is None else conditions,
        **(status or {}),
    }
    hostname = {"kubernetes.io/hostname": name, **(labels or {})}
    return _object(
        "v1",
        "Node",
        _meta(name, None, hostname, annotations, metadata),
        spec=spec,
        status=node_status,
    )


# ----------------------------------------------------- namespaces, data, leases


def namespace(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A Namespace (a ``spec`` only when fields of it, such as ``finalizers``, are given)."""
    return _object(
        "v1",
        "Namespace",
        _meta(name, None, labels, annotations, metadata),
        spec=spec or None,
        status=status,
    )


def configmap(
    name: str,
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    **fields: Any,
) -> Obj:
    """A ConfigMap with the given fields (``data``, ``binaryData``, ``immutable``)."""
    return _object(
        "v1", "ConfigMap", _meta(name, namespace, labels, annotations, metadata), **fields
    )


def secret(
    name: str,
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    **fields: Any,
) -> Obj:
    """A Secret with the given fields (``data`` in base64, ``stringData``, ``type``)."""
    return _object("v1", "Secret", _meta(name, namespace, labels, annotations, metadata), **fields)


def lease(
    name: str,
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    metadata: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A Lease (``holderIdentity``, ``leaseDurationSeconds``... are its spec)."""
    return _object(
        "coordination.k8s.io/v1",
        "Lease",
        _meta(name, namespace, labels, annotations, metadata),
        spec=spec,
    )


def pod_disruption_budget(
    name: str = "web",
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    metadata: Obj | None = None,
    match_labels: dict[str, str] | None = None,
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    """A policy/v1 PodDisruptionBudget selecting ``match_labels`` (``minAvailable``,
    ``maxUnavailable``, ``unhealthyPodEvictionPolicy`` are its spec)."""
    if match_labels is not None:
        spec = {"selector": {"matchLabels": match_labels}, **spec}
    return _object(
        "policy/v1",
        "PodDisruptionBudget",
        _meta(name, namespace, labels, None, metadata),
        spec=spec,
        status=status,
    )


# a container's script: an HTTP server on port 8080 ($PORT when the agent assigned one) that
# answers every GET with the pod's name (from the POD_NAME env var: give it a fieldRef to
# metadata.name)
NAME_SERVER = """
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["POD_NAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
port = int(os.environ.get("PORT", "8080"))
http.server.ThreadingHTTPServer(("", port), Handler).serve_forever()
"""
