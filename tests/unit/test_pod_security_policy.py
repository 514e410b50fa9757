"""The Pod Security Standards checks, table-driven from upstream's own test cases
(``staging/src/k8s.io/pod-security-admission/policy/check_*_test.go``): the same pods must
give the same reasons and details, word for word."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.api.admission import AdmissionRequest
from setpoint.api.admission_plugins import podsecurity_policy as policy
from setpoint.api.admission_plugins.podsecurity import (
    PodSecurity,
    policy_of,
    significant_pod_update,
)
from setpoint.api.auth.user import UserInfo
from setpoint.resources.catalog import default_registry


def c(name: str, **context: Any) -> dict[str, Any]:
    """A container with a security context (or none when no fields are given)."""
    container: dict[str, Any] = {"name": name}
    if context:
        container["securityContext"] = context
    return container


CASES = [
    # check_runAsNonRoot_test.go
    (
        "runAsNonRoot",
        {"containers": [c("a")]},
        "runAsNonRoot != true",
        'pod or container "a" must set securityContext.runAsNonRoot=true',
    ),
    (
        "runAsNonRoot",
        {"securityContext": {"runAsNonRoot": False}, "containers": [c("a")]},
        "runAsNonRoot != true",
        "pod must not set securityContext.runAsNonRoot=false",
    ),
    (
        "runAsNonRoot",
        {
            "securityContext": {"runAsNonRoot": True},
            "containers": [
                c("a"),
                {"name": "b", "securityContext": {}},
                c("c", runAsNonRoot=False),
                c("d", runAsNonRoot=False),
                c("e", runAsNonRoot=True),
                c("f", runAsNonRoot=True),
            ],
        },
        "runAsNonRoot != true",
        'containers "c", "d" must not set securityContext.runAsNonRoot=false',
    ),
    (
        "runAsNonRoot",
        {
            "containers": [
                c("a"),
                {"name": "b", "securityContext": {}},
                c("d", runAsNonRoot=True),
                c("e", runAsNonRoot=True),
            ]
        },
        "runAsNonRoot != true",
        'pod or containers "a", "b" must set securityContext.runAsNonRoot=true',
    ),
    # check_capabilities_restricted_test.go
    (
        "capabilities_restricted",
        {
            "containers": [
                c("a", capabilities={"add": ["FOO", "BAR"]}),
                c("b", capabilities={"add": ["BAR", "BAZ"]}),
                c("c", capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL", "FOO"]}),
            ]
        },
        "unrestricted capabilities",
        'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; '
        'containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in '
        "securityContext.capabilities.add",
    ),
    # check_seccompProfile_restricted_test.go
    (
        "seccompProfile_restricted",
        {"containers": [c("a")]},
        "seccompProfile",
        'pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost"',
    ),
    (
        "seccompProfile_restricted",
        {"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [c("a")]},
        "seccompProfile",
        'pod must not set securityContext.seccompProfile.type to "Unconfined"',
    ),
    (
        "seccompProfile_restricted",
        {
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                c("a"),
                {"name": "b", "securityContext": {}},
                c("c", seccompProfile={"type": "Unconfined"}),
                c("d", seccompProfile={"type": "Unconfined"}),
                c("e", seccompProfile={"type": "RuntimeDefault"}),
            ],
        },
        "seccompProfile",
        'containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined"',
    ),
    # check_hostPorts_test.go
    (
        "hostPorts",
        {
            "containers": [
                {"name": "a", "ports": [{"hostPort": 0}]},
                {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 20}]},
            ]
        },
        "hostPort",
        'container "b" uses hostPort 20',
    ),
    (
        "hostPorts",
        {
            "containers": [
                {"name": "a", "ports": [{"hostPort": 0}]},
                {"name": "b", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 20}]},
                {"name": "c", "ports": [{"hostPort": 0}, {"hostPort": 10}, {"hostPort": 30}]},
            ]
        },
        "hostPort",
        'containers "b", "c" use hostPorts 10, 20, 30',
    ),
    # check_seLinuxOptions_test.go
    (
        "seLinuxOptions",
        {
            "securityContext": {"seLinuxOptions": {"type": "foo", "user": "bar", "role": "baz"}},
            "containers": [
                c("a", seLinuxOptions={"type": "container_t"}),
                c("b", seLinuxOptions={"type": "container_init_t"}),
                c("c", seLinuxOptions={"type": "container_kvm_t"}),
                c("d", seLinuxOptions={"type": "container_engine_t"}),
                c("e", seLinuxOptions={"type": "bar"}),
                c("f", seLinuxOptions={"user": "bar"}),
                c("g", seLinuxOptions={"role": "baz"}),
            ],
        },
        "seLinuxOptions",
        'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
        'types "bar", "foo"; user may not be set; role may not be set',
    ),
    (
        "seLinuxOptions",
        {"securityContext": {"seLinuxOptions": {"user": "bad"}}},
        "seLinuxOptions",
        "pod set forbidden securityContext.seLinuxOptions: user may not be set",
    ),
    # check_appArmorProfile_test.go
    (
        "appArmorProfile",
        {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
        "forbidden AppArmor profile",
        'pod must not set AppArmor profile type to "Unconfined"',
    ),
    (
        "appArmorProfile",
        {
            "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "foo"}],
            "initContainers": [c("bar", appArmorProfile={"type": "Unconfined"})],
        },
        "forbidden AppArmor profile",
        'container "bar" must not set AppArmor profile type to "Unconfined"',
    ),
    # the other checks, worded as their sources
    (
        "hostNamespaces",
        {"hostNetwork": True, "hostPID": True},
        "host namespaces",
        "hostNetwork=true, hostPID=true",
    ),
    (
        "privileged",
        {"containers": [c("a", privileged=True), c("b", privileged=False)]},
        "privileged",
        'container "a" must not set securityContext.privileged=true',
    ),
    (
        "capabilities_baseline",
        {"containers": [c("a", capabilities={"add": ["NET_ADMIN", "CHOWN"]})]},
        "non-default capabilities",
        'container "a" must not include "NET_ADMIN" in securityContext.capabilities.add',
    ),
    (
        "hostPathVolumes",
        {"volumes": [{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "emptyDir": {}}]},
        "hostPath volumes",
        'volume "a"',
    ),
    (
        "restrictedVolumes",
        {
            "volumes": [
                {"name": "a", "hostPath": {"path": "/"}},
                {"name": "b", "emptyDir": {}},
                {"name": "c", "nfs": {"server": "x", "path": "/"}},
            ]
        },
        "restricted volume types",
        'volumes "a", "c" use restricted volume types "hostPath", "nfs"',
    ),
    (
        "allowPrivilegeEscalation",
        {"containers": [c("a"), c("b", allowPrivilegeEscalation=False)]},
        "allowPrivilegeEscalation != false",
        'container "a" must set securityContext.allowPrivilegeEscalation=false',
    ),
    (
        "runAsUser",
        {"securityContext": {"runAsUser": 0}, "containers": [c("a", runAsUser=0), c("b")]},
        "runAsUser=0",
        'pod and container "a" must not set runAsUser=0',
    ),
    (
        "procMount",
        {"containers": [c("a", procMount="Unmasked")]},
        "procMount",
        'container "a" must not set securityContext.procMount to "Unmasked"',
    ),
    (
        "sysctls",
        {
            "securityContext": {
                "sysctls": [{"name": "kernel.msgmax"}, {"name": "net.ipv4.tcp_rmem"}]
            }
        },
        "forbidden sysctls",
        "kernel.msgmax",
    ),
]


@pytest.mark.parametrize(("check", "spec", "reason", "detail"), CASES)
def test_check_reason_and_detail_match_upstream(
    check: str, spec: dict[str, Any], reason: str, detail: str
) -> None:
    result = policy.CHECKS_BY_ID[check].fn({}, spec)
    assert not result.allowed
    assert (result.reason, result.detail) == (reason, detail)


def test_app_armor_annotations_are_listed_sorted() -> None:
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    meta = {
        "annotations": {
            prefix: "bogus",
            f"{prefix}a": "",
            f"{prefix}b": "runtime/default",
            f"{prefix}c": "localhost/",
            f"{prefix}d": "localhost/foo",
            f"{prefix}e": "unconfined",
            f"{prefix}f": "unknown",
        }
    }
    result = policy.app_armor_profile(meta, {})
    assert result.reason == "forbidden AppArmor profiles"
    assert result.detail == "annotations must not set AppArmor profile type to " + ", ".join(
        [f'"{prefix}="bogus""', f'"{prefix}e="unconfined""', f'"{prefix}f="unknown""']
    )


def test_user_namespaced_pods_may_run_as_root() -> None:
    spec = {"hostUsers": False, "containers": [c("a", runAsUser=0)]}
    assert policy.run_as_non_root({}, spec).allowed
    assert policy.run_as_user({}, spec).allowed


def restricted_pod() -> dict[str, Any]:
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            c("a", allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}),
        ],
    }


def test_a_pod_written_for_restricted_passes_every_level() -> None:
    for level in policy.LEVELS:
        assert policy.evaluate(level, {}, restricted_pod()) == []


def test_privileged_allows_anything() -> None:
    assert policy.evaluate(policy.PRIVILEGED, {}, {"hostNetwork": True}) == []


def test_baseline_allows_root_but_not_host_namespaces() -> None:
    spec = {"containers": [c("a", runAsUser=0)]}
    assert policy.evaluate(policy.BASELINE, {}, spec) == []
    spec["hostPID"] = True
    assert [check for check, _ in policy.evaluate(policy.BASELINE, {}, spec)] == ["hostNamespaces"]


def test_restricted_lists_baseline_violations_first_as_kube_apiserver() -> None:
    meta = {"annotations": {"container.apparmor.security.beta.kubernetes.io/a": "unconfined"}}
    spec = {"hostNetwork": True, "hostPID": True, "containers": [c("a")]}
    reason = policy.forbidden_reason(policy.evaluate(policy.RESTRICTED, meta, spec))
    assert reason.startswith(
        "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
        '"container.apparmor.security.beta.kubernetes.io/a="unconfined""), '
        "host namespaces (hostNetwork=true, hostPID=true), "
        'allowPrivilegeEscalation != false (container "a" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities"
    )


def test_baseline_lists_violations_by_check_id_as_kube_apiserver() -> None:
    spec = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [c("a", privileged=True, capabilities={"add": ["NET_ADMIN"]})],
    }
    reasons = [result.reason for _, result in policy.evaluate(policy.BASELINE, {}, spec)]
    assert reasons == [
        "non-default capabilities",
        "host namespaces",
        "hostPath volumes",
        "privileged",
    ]


def test_restricted_replaces_the_overlapping_baseline_checks() -> None:
    spec = {"volumes": [{"name": "h", "hostPath": {"path": "/"}}], **restricted_pod()}
    checks = [check for check, _ in policy.evaluate(policy.RESTRICTED, {}, spec)]
    assert checks == ["restrictedVolumes"]
    checks = [check for check, _ in policy.evaluate(policy.BASELINE, {}, spec)]
    assert checks == ["hostPathVolumes"]


def test_namespace_labels_give_the_policy_and_invalid_ones_fail_closed() -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "v1.30",
        "pod-security.kubernetes.io/warn": "bogus",
    }
    found, problems = policy_of(labels)
    assert str(found.enforce) == "baseline:v1.30"
    assert str(found.warn) == "restricted:latest"
    assert str(found.audit) == "privileged:latest"
    assert [p.message for p in problems] == [
        'Invalid value: "bogus": must be one of privileged, baseline, restricted'
    ]
    assert problems[0].field == "metadata.labels[pod-security.kubernetes.io/warn]"


def test_bad_version_label_is_reported() -> None:
    _, problems = policy_of({"pod-security.kubernetes.io/enforce-version": "1.30"})
    assert [p.message for p in problems] == ['Invalid value: "1.30": must be "latest" or "v1.x"']


def test_status_and_label_updates_of_a_pod_are_not_reevaluated() -> None:
    old = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"image": "x"}]}}
    new = {"metadata": {"labels": {"a": "2"}}, "spec": {"containers": [{"image": "x"}]}}
    assert not significant_pod_update(new, old)
    new["spec"]["containers"][0]["image"] = "y"
    assert significant_pod_update(new, old)


class _Cached:
    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj


class _Namespaces:
    """Just enough of a namespace storage for the plugin: one namespace, from its cache."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.cache = self
        self.namespace = {"metadata": {"name": "ns", "labels": labels}}

    def key(self, namespace: str | None, name: str) -> str:
        return name

    def get(self, key: str) -> _Cached | None:
        return _Cached(self.namespace) if key == "ns" else None


async def test_audit_mode_annotates_the_request_and_admits() -> None:
    namespaces = _Namespaces({"pod-security.kubernetes.io/audit": "baseline"})
    plugin = PodSecurity(lambda plural: namespaces if plural == "namespaces" else None)
    rtype = default_registry().lookup("", "v1", "pods")
    assert rtype is not None
    pod = {"metadata": {"name": "p"}, "spec": {"hostPID": True, "containers": [c("a")]}}
    request = AdmissionRequest("CREATE", rtype, "ns", "p", UserInfo("alice"), obj=pod)
    await plugin.validate(request)
    assert request.warnings == []
    assert request.audit_annotations == {
        "pod-security.kubernetes.io/enforce-policy": "privileged:latest",
        "pod-security.kubernetes.io/audit-violations": (
            'would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)'
        ),
    }
