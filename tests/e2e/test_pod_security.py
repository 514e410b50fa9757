"""Pod Security Admission with the real kubectl: ``kubectl label ns`` sets a namespace's
level; ``enforce`` refuses violating pods with Kubernetes' 403, ``warn`` prints kubectl's
``Warning:`` lines (for pods and for workloads' pod templates), invalid labels are refused,
and tightening ``enforce`` warns about the pods already there."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support import Kubectl

pytestmark = pytest.mark.e2e

ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"


def pod(name: str, **spec: Any) -> str:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }
    return yaml.safe_dump(manifest)


RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "c",
            "image": "busybox",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}


def label(kubectl: Kubectl, *labels: str) -> str:
    assert kubectl.namespace is not None
    result = kubectl("label", "ns", kubectl.namespace, "--overwrite", *labels, namespaced=False)
    return result.stderr


def test_enforce_refuses_a_violating_pod_with_kubernetes_message(kubectl: Kubectl) -> None:
    label(kubectl, f"{ENFORCE}=restricted")
    refused = kubectl("apply", "-f", "-", input=pod("root"), check=False)
    assert refused.returncode == 1
    assert (
        'pods "root" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "c" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "
        '"c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
        'container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
        'container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
        '"Localhost")'
    ) in refused.stderr
    kubectl("apply", "-f", "-", input=pod("ok", **RESTRICTED_POD))


def test_enforce_baseline_refuses_run_as_root_only_under_restricted(kubectl: Kubectl) -> None:
    label(kubectl, f"{ENFORCE}=baseline", f"{ENFORCE}-version=v1.30")
    root = pod("root", securityContext={"runAsUser": 0})
    kubectl("apply", "-f", "-", input=root)
    refused = kubectl("apply", "-f", "-", input=pod("net", hostNetwork=True), check=False)
    assert (
        'pods "net" is forbidden: violates PodSecurity "baseline:v1.30": host namespaces '
        "(hostNetwork=true)"
    ) in refused.stderr


def test_warn_prints_warnings_and_admits(kubectl: Kubectl) -> None:
    label(kubectl, f"{WARN}=restricted")
    created = kubectl("apply", "-f", "-", input=pod("loose"))
    assert created.stdout.strip() == "pod/loose created"
    assert 'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation' in (
        created.stderr
    )


def test_warn_covers_workload_pod_templates(kubectl: Kubectl) -> None:
    label(kubectl, f"{WARN}=baseline", f"{ENFORCE}=baseline")
    deployment = kubectl(
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--dry-run=client",
        "-o",
        "yaml",
    ).yaml()
    deployment["spec"]["template"]["spec"]["hostPID"] = True
    created = kubectl("apply", "-f", "-", input=yaml.safe_dump(deployment))
    assert "deployment.apps/web created" in created.stdout
    assert (
        'Warning: would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)'
    ) in created.stderr


def test_invalid_level_label_is_refused(kubectl: Kubectl) -> None:
    assert kubectl.namespace is not None
    refused = kubectl(
        "label", "ns", kubectl.namespace, f"{ENFORCE}=strict", namespaced=False, check=False
    )
    assert refused.returncode == 1
    assert (
        f'The Namespace "{kubectl.namespace}" is invalid: metadata.labels[{ENFORCE}]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    ) in refused.stderr


def test_tightening_enforce_warns_about_existing_pods(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=pod("a", hostIPC=True))
    kubectl("apply", "-f", "-", input=pod("b", hostIPC=True))
    kubectl("apply", "-f", "-", input=pod("fine", **RESTRICTED_POD))
    warnings = label(kubectl, f"{ENFORCE}=baseline")
    assert (
        f'Warning: existing pods in namespace "{kubectl.namespace}" violate the new '
        'PodSecurity enforce level "baseline:latest"'
    ) in warnings
    assert "Warning: a (and 1 other pod): host namespaces" in warnings
    assert "fine" not in warnings
