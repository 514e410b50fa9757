"""The PodSecurity admission plugin (``staging/src/k8s.io/pod-security-admission``): each
namespace says, in labels, which Pod Security Standard its pods must meet.

``pod-security.kubernetes.io/<mode>: <level>`` with mode ``enforce``, ``warn`` or ``audit``
and level ``privileged`` (anything goes, the default), ``baseline`` or ``restricted``;
``pod-security.kubernetes.io/<mode>-version: v1.x | latest`` pins the policy version (setpoint
evaluates every version with the newest checks; see
:mod:`~setpoint.api.admission_plugins.podsecurity_policy`).

* **enforce**: a pod (created, or updated in a way that matters: images, containers) that
  violates the level is refused with 403: ``pods "x" is forbidden: violates PodSecurity
  "restricted:latest": allowPrivilegeEscalation != false (container "c" must set
  securityContext.allowPrivilegeEscalation=false), ...``. Workload objects (Deployments,
  Jobs, ...) are not refused: their pods will be.
* **warn**: the client gets a ``Warning`` header, ``would violate PodSecurity
  "restricted:latest": ...``, for a violating pod and for a workload whose pod template
  violates.
* **audit**: the violations go into the request's audit annotations
  (``pod-security.kubernetes.io/audit-violations``; ``.../enforce-policy`` names the level
  enforced), as upstream annotates the audit event; nothing records them until the API server
  writes an audit log.

Namespace labels are validated on create and on update when they change (422, as upstream);
an invalid label on a namespace that already has one fails closed (``restricted:latest``).
Tightening ``enforce`` answers with warnings naming the existing pods that would now be
refused. Writes without a user (the API server's own) pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from setpoint.api import errors
from setpoint.api.admission import CREATE, UPDATE, AdmissionRequest
from setpoint.api.admission_plugins import StorageLookup
from setpoint.api.admission_plugins import podsecurity_policy as policy
from setpoint.api.admission_plugins.podsecurity_policy import LevelVersion
from setpoint.resources.fielderrors import FieldError, invalid_value

Obj = dict[str, Any]
LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE, AUDIT, WARN = "enforce", "audit", "warn"
MODES = (ENFORCE, AUDIT, WARN)
# the audit annotations upstream adds to a request's audit event
ENFORCE_POLICY_ANNOTATION = "pod-security.kubernetes.io/enforce-policy"
AUDIT_VIOLATIONS_ANNOTATION = "pod-security.kubernetes.io/audit-violations"
DEFAULT = LevelVersion(policy.PRIVILEGED)
FAIL_CLOSED = LevelVersion(policy.RESTRICTED)
# where each workload kind keeps its pod template (``DefaultPodSpecExtractor``)
_TEMPLATES: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "podtemplates"): ("template",),
    ("", "replicationcontrollers"): ("spec", "template"),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class NamespacePolicy:
    enforce: LevelVersion = DEFAULT
    audit: LevelVersion = DEFAULT
    warn: LevelVersion = DEFAULT


def policy_of(labels: dict[str, Any] | None) -> tuple[NamespacePolicy, list[FieldError]]:
    """``PolicyToEvaluate``: the namespace's policy and its label problems (a mode with an
    invalid label is evaluated as ``restricted:latest``)."""
    labels = labels or {}
    found: dict[str, LevelVersion] = {}
    problems: list[FieldError] = []
    for mode in MODES:
        level_key, version_key = f"{LABEL_PREFIX}{mode}", f"{LABEL_PREFIX}{mode}-version"
        level, version = policy.PRIVILEGED, policy.LATEST
        invalid = False
        if level_key in labels:
            try:
                level = policy.parse_level(str(labels[level_key]))
            except ValueError as exc:
                problems.append(_label_error(level_key, labels[level_key], str(exc)))
                invalid = True
        if version_key in labels:
            try:
                version = policy.parse_version(str(labels[version_key]))
            except ValueError as exc:
                problems.append(_label_error(version_key, labels[version_key], str(exc)))
                invalid = True
        found[mode] = FAIL_CLOSED if invalid else LevelVersion(level, version)
    return NamespacePolicy(found[ENFORCE], found[AUDIT], found[WARN]), problems


def _label_error(key: str, value: Any, detail: str) -> FieldError:
    return invalid_value(f"metadata.labels[{key}]", str(value), detail)


def violations(level: LevelVersion, meta: Obj, spec: Obj) -> str:
    """The forbidden reason for a pod, '' when it meets ``level``."""
    return policy.forbidden_reason(policy.evaluate(level.level, meta, spec))


class PodSecurity:
    def __init__(self, storages: StorageLookup) -> None:
        self._storages = storages

    async def admit(self, request: AdmissionRequest) -> None:
        return None

    async def validate(self, request: AdmissionRequest) -> None:
        if request.user is None or request.obj is None:
            return
        if request.operation not in (CREATE, UPDATE):
            return
        resource = request.resource
        if resource == ("", "namespaces") and not request.subresource:
            self._validate_namespace(request)
        elif resource == ("", "pods"):
            self._validate_pod(request)
        elif resource in _TEMPLATES and not request.subresource:
            self._validate_workload(request, _TEMPLATES[resource])

    def _namespace_policy(self, namespace: str | None) -> NamespacePolicy:
        storage = self._storages("namespaces")
        if storage is None or not namespace:
            return NamespacePolicy()
        cached = storage.cache.get(storage.key(None, namespace))
        if cached is None:
            return NamespacePolicy()
        return policy_of(cached.obj["metadata"].get("labels"))[0]

    # ----------------------------------------------------------------------- pods

    def _validate_pod(self, request: AdmissionRequest) -> None:
        assert request.obj is not None
        if request.subresource not in ("", "ephemeralcontainers"):
            return
        updating = request.operation == UPDATE and request.old is not None
        if updating and not significant_pod_update(request.obj, request.old or {}):
            return
        ns_policy = self._namespace_policy(request.namespace)
        meta, spec = request.obj.get("metadata") or {}, request.obj.get("spec") or {}
        request.audit_annotations[ENFORCE_POLICY_ANNOTATION] = str(ns_policy.enforce)
        self._audit(request, ns_policy, meta, spec)
        if ns_policy.enforce.level != policy.PRIVILEGED:
            reason = violations(ns_policy.enforce, meta, spec)
            if reason:
                why = f'violates PodSecurity "{ns_policy.enforce}": {reason}'
                raise errors.forbidden_object(request.rtype, request.name, why)
        self._warn(request, ns_policy, meta, spec)

    def _audit(
        self, request: AdmissionRequest, ns_policy: NamespacePolicy, meta: Obj, spec: Obj
    ) -> None:
        if ns_policy.audit.level == policy.PRIVILEGED:
            return
        reason = violations(ns_policy.audit, meta, spec)
        if reason:
            violation = f'would violate PodSecurity "{ns_policy.audit}": {reason}'
            request.audit_annotations[AUDIT_VIOLATIONS_ANNOTATION] = violation

    def _warn(
        self, request: AdmissionRequest, ns_policy: NamespacePolicy, meta: Obj, spec: Obj
    ) -> None:
        if ns_policy.warn.level == policy.PRIVILEGED:
            return
        reason = violations(ns_policy.warn, meta, spec)
        if reason:
            request.warnings.append(f'would violate PodSecurity "{ns_policy.warn}": {reason}')

    # ------------------------------------------------------------------ workloads

    def _validate_workload(self, request: AdmissionRequest, path: tuple[str, ...]) -> None:
        template = _dig(request.obj, path)
        if not isinstance(template, dict):
            return
        if request.operation == UPDATE and template == _dig(request.old, path):
            return  # the pod template did not change
        ns_policy = self._namespace_policy(request.namespace)
        meta, spec = template.get("metadata") or {}, template.get("spec") or {}
        self._audit(request, ns_policy, meta, spec)
        self._warn(request, ns_policy, meta, spec)

    # ----------------------------------------------------------------- namespaces

    def _validate_namespace(self, request: AdmissionRequest) -> None:
        assert request.obj is not None
        labels = request.obj["metadata"].get("labels") or {}
        new_policy, problems = policy_of(labels)
        old_labels = (request.old or {}).get("metadata", {}).get("labels") or {}
        unchanged = _pod_security_labels(labels) == _pod_security_labels(old_labels)
        if request.operation == UPDATE and unchanged:
            return
        if problems:
            raise errors.invalid(request.rtype, request.name, problems)
        if request.operation != UPDATE:
            return
        old_policy, _ = policy_of(old_labels)
        if (
            new_policy.enforce == old_policy.enforce
            or new_policy.enforce.level == policy.PRIVILEGED
        ):
            return
        request.warnings += self._existing_pod_warnings(request.name, new_policy.enforce)

    def _existing_pod_warnings(self, namespace: str, enforce: LevelVersion) -> list[str]:
        """``EvaluatePodsInNamespace``: pods grouped by the reasons they fail, each group
        named by its first pod (``web-1 (and 2 other pods): host namespaces, ...``)."""
        storage = self._storages("pods")
        if storage is None:
            return []
        groups: dict[str, list[str]] = {}
        for cached in storage.cache.sorted_items(namespace):
            pod = cached.obj
            failed = policy.evaluate(enforce.level, pod["metadata"], pod.get("spec") or {})
            if failed:
                reasons = ", ".join(dict.fromkeys(result.reason for _, result in failed))
                groups.setdefault(reasons, []).append(pod["metadata"]["name"])
        if not groups:
            return []
        warnings = [
            f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce '
            f'level "{enforce}"'
        ]
        for reasons, names in groups.items():
            who = names[0]
            if len(names) > 1:
                others = len(names) - 1
                who += f" (and {others} other {'pod' if others == 1 else 'pods'})"
            warnings.append(f"{who}: {reasons}")
        return warnings


def _pod_security_labels(labels: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}


def _dig(obj: Obj | None, path: tuple[str, ...]) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def significant_pod_update(new: Obj, old: Obj) -> bool:
    """``isSignificantPodUpdate``: a pod update that can change what the policy sees (its
    containers, their images, its seccomp annotations); status and label changes are not."""
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        new_containers, old_containers = new_spec.get(kind) or [], old_spec.get(kind) or []
        if len(new_containers) != len(old_containers):
            return True
        for a, b in zip(new_containers, old_containers, strict=True):
            if a.get("image") != b.get("image"):
                return True
    seccomp = "seccomp.security.alpha.kubernetes.io/"
    container_apparmor = "container.apparmor.security.beta.kubernetes.io/"

    def watched(obj: Obj) -> dict[str, Any]:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return {k: v for k, v in annotations.items() if k.startswith((seccomp, container_apparmor))}

    return watched(new) != watched(old)
