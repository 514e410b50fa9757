"""kubectl apply (client- and server-side), diff, edit and strategic patches."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.support import Kubectl

pytestmark = pytest.mark.e2e

MANIFESTS = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
  retries: "3"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        command: ["sleep", "1000"]
        env:
        - {name: A, value: "1"}
      - name: sidecar
        image: busybox
        command: ["sleep", "1000"]
"""


def test_client_side_apply_creates_then_unchanged_then_configured(kubectl: Kubectl) -> None:
    first = kubectl("apply", "-f", "-", input=MANIFESTS).stdout
    assert "configmap/settings created" in first
    assert "deployment.apps/web created" in first
    again = kubectl("apply", "-f", "-", input=MANIFESTS).stdout
    assert "configmap/settings unchanged" in again
    assert "deployment.apps/web unchanged" in again
    changed = MANIFESTS.replace('  retries: "3"\n', "").replace("replicas: 2", "replicas: 4")
    third = kubectl("apply", "-f", "-", input=changed).stdout
    assert "configmap/settings configured" in third
    assert "deployment.apps/web configured" in third
    data = kubectl("get", "cm", "settings", "-o", "json").json()["data"]
    assert data == {"mode": "fast"}  # the field removed from the file is pruned
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "4"
    annotations = kubectl("get", "cm", "settings", "-o", "json").json()["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations


def test_client_side_apply_changes_one_container_by_name(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFESTS)
    kubectl("apply", "-f", "-", input=MANIFESTS.replace("image: busybox", "image: busybox:1.36"))
    containers = kubectl("get", "deploy", "web", "-o", "json").json()["spec"]["template"]["spec"][
        "containers"
    ]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("web", "nginx:1.27"),
        ("sidecar", "busybox:1.36"),
    ]


def test_server_side_apply_is_idempotent(kubectl: Kubectl) -> None:
    out = kubectl("apply", "--server-side", "-f", "-", input=MANIFESTS).stdout
    assert "deployment.apps/web serverside-applied" in out
    rv = kubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    kubectl("apply", "--server-side", "-f", "-", input=MANIFESTS)
    again = kubectl("get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    assert again == rv
    managers = kubectl("get", "deploy", "web", "-o", "json", "--show-managed-fields").json()[
        "metadata"
    ]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in managers] == [("kubectl", "Apply")]


def test_server_side_apply_conflict_and_force(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "-f", "-", input=MANIFESTS)
    other = MANIFESTS.replace("replicas: 2", "replicas: 7")
    clash = kubectl(
        "apply", "--server-side", "--field-manager=other", "-f", "-", input=other, check=False
    )
    assert clash.returncode != 0
    assert 'conflict with "kubectl"' in clash.stderr
    assert ".spec.replicas" in clash.stderr
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    kubectl(
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        "-",
        input=other,
    )
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "7"


def test_diff_exit_code_says_whether_live_differs(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFESTS)
    same = kubectl("diff", "-f", "-", input=MANIFESTS, check=False)
    assert same.returncode == 0, same.stderr
    changed = kubectl(
        "diff", "-f", "-", input=MANIFESTS.replace("mode: fast", "mode: slow"), check=False
    )
    assert changed.returncode == 1, changed.stderr
    assert "mode: slow" in changed.stdout
    assert kubectl("get", "cm", "settings", "-o", "jsonpath={.data.mode}").stdout == "fast"


def test_apply_dry_run_server_changes_nothing(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFESTS)
    out = kubectl(
        "apply", "--dry-run=server", "-f", "-", input=MANIFESTS.replace("mode: fast", "mode: slow")
    ).stdout
    assert "(server dry run)" in out
    assert kubectl("get", "cm", "settings", "-o", "jsonpath={.data.mode}").stdout == "fast"


def test_edit_with_an_editor_script(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", "-", input=MANIFESTS)
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/mode: fast/mode: edited/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    kubectl("edit", "cm", "settings", env={"KUBE_EDITOR": str(editor)})
    assert kubectl("get", "cm", "settings", "-o", "jsonpath={.data.mode}").stdout == "edited"


def test_strategic_patch_on_containers_list(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFESTS)
    kubectl(
        "patch",
        "deploy",
        "web",
        "--type=strategic",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}',
    )
    containers = kubectl("get", "deploy", "web", "-o", "json").json()["spec"]["template"]["spec"][
        "containers"
    ]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("web", "nginx:1.28"),
        ("sidecar", "busybox"),
    ]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    kubectl(
        "patch",
        "deploy",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}',
    )
    containers = kubectl("get", "deploy", "web", "-o", "json").json()["spec"]["template"]["spec"][
        "containers"
    ]
    assert [c["name"] for c in containers] == ["web"]


def test_rollout_restart_sets_restarted_at(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=MANIFESTS)
    kubectl("rollout", "restart", "deploy/web")
    annotations = kubectl("get", "deploy", "web", "-o", "json").json()["spec"]["template"][
        "metadata"
    ]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations


def test_delete_cascade_modes_are_accepted(kubectl: Kubectl) -> None:
    for mode in ("background", "orphan", "foreground"):
        name = f"cm-{mode}"
        kubectl("create", "configmap", name, "--from-literal=a=1")
        kubectl("delete", "cm", name, f"--cascade={mode}", "--wait=false")
    # background is immediate; orphan and foreground wait for the garbage collector
    left = kubectl("get", "cm", "-o", "json").json()["items"]
    pending = {c["metadata"]["name"]: c["metadata"].get("finalizers") for c in left}
    assert "cm-background" not in pending
    assert pending["cm-orphan"] == ["orphan"]
    assert pending["cm-foreground"] == ["foregroundDeletion"]
