"""The everyday kubectl workflow against a real setpoint server."""

from __future__ import annotations

import json

import pytest

from tests.support import Kubectl, Server, collect_lines, wait_for

pytestmark = pytest.mark.e2e

DEPLOYMENT = """
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
"""

CONFIGMAPS = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: one
  labels: {tier: fe}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: two
  labels: {tier: be}
data: {b: "2"}
"""


def test_get_namespaces_shows_the_initial_namespaces(server: Server) -> None:
    out = Kubectl(server)("get", "ns", "-o", "name").stdout.split()
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{name}" in out


def test_api_resources_lists_kinds_with_short_names(server: Server) -> None:
    out = Kubectl(server)("api-resources", "--no-headers").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert "po" in rows["pods"]
    assert "deploy" in rows["deployments"]
    assert "rs" in rows["replicasets"]
    assert "ns" in rows["namespaces"]
    assert "no" in rows["nodes"]
    assert "cm" in rows["configmaps"]
    assert "jobs" in rows and "cronjobs" in rows and "leases" in rows


def test_api_versions_lists_served_groups(server: Server) -> None:
    out = Kubectl(server)("api-versions").stdout.split()
    for gv in ("v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1", "events.k8s.io/v1"):
        assert gv in out


def test_create_from_multi_document_file_and_get_by_selector(kubectl: Kubectl) -> None:
    out = kubectl("create", "-f", "-", input=CONFIGMAPS).stdout
    assert "configmap/one created" in out and "configmap/two created" in out
    names = kubectl("get", "cm", "-l", "tier in (fe)", "-o", "name").stdout.split()
    assert names == ["configmap/one"]


def test_get_renders_yaml_json_wide_and_jsonpath(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=DEPLOYMENT)
    as_yaml = kubectl("get", "deploy", "web", "-o", "yaml").yaml()
    assert as_yaml["spec"]["replicas"] == 2
    assert as_yaml["metadata"]["generation"] == 1
    assert as_yaml["metadata"]["uid"]
    as_json = kubectl("get", "deployment", "web", "-o", "json").json()
    assert as_json["kind"] == "Deployment" and as_json["apiVersion"] == "apps/v1"
    wide = kubectl("get", "deploy", "-o", "wide").stdout
    assert "web" in wide
    path = kubectl(
        "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    )
    assert path.stdout == "nginx:1.27"


def test_label_and_annotate_change_metadata(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=CONFIGMAPS)
    kubectl("label", "cm", "one", "color=blue")
    kubectl("annotate", "cm", "one", "note=hello")
    obj = kubectl("get", "cm", "one", "-o", "json").json()
    assert obj["metadata"]["labels"] == {"tier": "fe", "color": "blue"}
    assert obj["metadata"]["annotations"]["note"] == "hello"
    kubectl("label", "cm", "one", "color-")
    obj = kubectl("get", "cm", "one", "-o", "json").json()
    assert "color" not in obj["metadata"]["labels"]


def test_patch_merge_and_json(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=CONFIGMAPS)
    kubectl("patch", "cm", "one", "--type=merge", "-p", '{"data":{"x":"y","a":null}}')
    kubectl(
        "patch", "cm", "one", "--type=json", "-p", '[{"op":"add","path":"/data/z","value":"w"}]'
    )
    data = kubectl("get", "cm", "one", "-o", "jsonpath={.data}").stdout
    assert json.loads(data) == {"x": "y", "z": "w"}


def test_patch_that_makes_object_invalid_is_rejected_and_leaves_it(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=DEPLOYMENT)
    before = kubectl("get", "deploy", "web", "-o", "json").json()
    bad = kubectl(
        "patch", "deploy", "web", "--type=merge", "-p", '{"spec":{"replicas":-3}}', check=False
    )
    assert bad.returncode != 0
    assert "spec.replicas" in bad.stderr
    after = kubectl("get", "deploy", "web", "-o", "json").json()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_scale_changes_replicas_through_the_scale_subresource(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=DEPLOYMENT)
    kubectl("scale", "deploy", "web", "--replicas=5")
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "5"


def test_delete_removes_the_object(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=CONFIGMAPS)
    out = kubectl("delete", "cm", "one").stdout
    assert 'configmap "one" deleted' in out
    missing = kubectl("get", "cm", "one", check=False)
    assert missing.returncode != 0
    assert 'configmaps "one" not found' in missing.stderr


def test_delete_by_file_and_by_label(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=CONFIGMAPS)
    kubectl("delete", "cm", "-l", "tier=be")
    assert kubectl("get", "cm", "-o", "name").stdout.split() == ["configmap/one"]
    kubectl("delete", "-f", "-", input=CONFIGMAPS.split("---")[0])
    assert kubectl("get", "cm", "-o", "name").stdout.strip() == ""


def test_get_all_lists_workload_kinds(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=DEPLOYMENT)
    out = kubectl("get", "all").stdout
    assert "deployment.apps/web" in out


def test_get_watch_streams_changes(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=CONFIGMAPS)
    watch = kubectl.popen("get", "cm", "-w", "-o", "name")
    lines = collect_lines(watch)
    try:
        wait_for(lambda: len(lines) >= 2, what="the initial list")
        kubectl("label", "cm", "one", "seen=yes")
        wait_for(lambda: lines.count("configmap/one") >= 2, what="the watch to show the label")
        kubectl("delete", "cm", "two")
        wait_for(lambda: lines.count("configmap/two") >= 2, what="the watch to show the delete")
    finally:
        watch.kill()
        watch.wait()


def test_unknown_field_is_rejected_by_strict_validation(kubectl: Kubectl) -> None:
    bad = CONFIGMAPS.split("---")[0].replace("data:", "bogus: 1\ndata:")
    result = kubectl("create", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert 'unknown field "bogus"' in result.stderr


def test_invalid_object_reports_field_causes(kubectl: Kubectl) -> None:
    bad = DEPLOYMENT.replace("matchLabels: {app: web}", "matchLabels: {app: other}")
    result = kubectl("create", "-f", "-", input=bad, check=False)
    assert result.returncode != 0
    assert 'The Deployment "web" is invalid' in result.stderr
    assert "spec.template.metadata.labels" in result.stderr


def test_explain_describes_fields_from_openapi(server: Server) -> None:
    out = Kubectl(server)("explain", "deployment.spec.strategy").stdout
    assert "rollingUpdate" in out
    assert "DeploymentStrategy" in out
    recursive = Kubectl(server)("explain", "deployment.spec.strategy", "--recursive").stdout
    assert "maxSurge" in recursive and "maxUnavailable" in recursive


def test_dry_run_server_does_not_persist(kubectl: Kubectl) -> None:
    out = kubectl("create", "-f", "-", "--dry-run=server", input=DEPLOYMENT).stdout
    assert "(server dry run)" in out
    assert kubectl("get", "deploy", "-o", "name").stdout.strip() == ""


def test_create_generators_work(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "lit", "--from-literal=a=1", "--from-literal=b=2")
    kubectl("create", "secret", "generic", "pw", "--from-literal=password=s3cret")
    kubectl("create", "deployment", "gen", "--image=nginx", "--replicas=3", "--", "sleep", "9")
    kubectl("create", "job", "once", "--image=busybox", "--", "echo", "hi")
    kubectl("create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--", "date")
    kubectl("create", "serviceaccount", "robot")
    assert kubectl("get", "cm", "lit", "-o", "jsonpath={.data.b}").stdout == "2"
    assert kubectl("get", "secret", "pw", "-o", "jsonpath={.data.password}").stdout == ("czNjcmV0")
    dep = kubectl("get", "deploy", "gen", "-o", "json").json()
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["command"] == ["sleep", "9"]
    assert kubectl("get", "cronjob", "tick", "-o", "jsonpath={.spec.schedule}").stdout == (
        "*/5 * * * *"
    )
    kubectl("create", "job", "manual", "--from=cronjob/tick")
    assert kubectl("get", "job", "manual", "-o", "name").stdout.strip() == "job.batch/manual"


def test_create_namespace_and_get_it(server: Server) -> None:
    k = Kubectl(server)
    k("create", "namespace", "made-by-kubectl")
    assert k("get", "ns", "made-by-kubectl", "-o", "jsonpath={.status.phase}").stdout == "Active"
