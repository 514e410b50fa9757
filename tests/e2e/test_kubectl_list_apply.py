"""kubectl apply of a ``kind: List`` file, which kubectl validates on the client side.

The server cannot validate a List itself, so kubectl checks each item against the Swagger 2.0
document it fetches from ``/openapi/v2`` as gnostic protobuf (see
setpoint.api.discovery.openapi_pb).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.api.discovery.openapi_pb import PROTOBUF_MEDIA_TYPE, PROTOBUF_MEDIA_TYPE_DEPRECATED
from tests.support import Kubectl, Server

pytestmark = pytest.mark.e2e

LIST = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: settings
  data:
    mode: fast
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
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
"""

MISSPELLED = LIST.replace("    replicas: 2\n", "    replicas: 2\n    replicasss: 3\n")


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    return str(path)


def _names(kubectl: Kubectl, kind: str) -> list[str]:
    items = kubectl("get", kind, "-o", "json").json()["items"]
    return [item["metadata"]["name"] for item in items]


def test_apply_of_a_list_creates_every_item(kubectl: Kubectl, tmp_path: Path) -> None:
    out = kubectl("apply", "-f", _write(tmp_path, LIST)).stdout
    assert "configmap/settings created" in out
    assert "deployment.apps/web created" in out
    assert _names(kubectl, "configmaps") == ["settings"]
    assert _names(kubectl, "deployments") == ["web"]


def test_apply_of_a_list_rejects_an_unknown_field_as_kubernetes_kubectl_does(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    path = _write(tmp_path, MISSPELLED)
    result = kubectl("apply", "-f", path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f'error: error validating "{path}": error validating data: '
        'ValidationError(Deployment.spec): unknown field "replicasss" in '
        "io.k8s.api.apps.v1.DeploymentSpec; if you choose to ignore these errors, "
        "turn validation off with --validate=false"
    )
    assert _names(kubectl, "configmaps") == []
    assert _names(kubectl, "deployments") == []


def test_apply_of_a_list_without_validation_ignores_the_unknown_field(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    out = kubectl("apply", "--validate=false", "-f", _write(tmp_path, MISSPELLED)).stdout
    assert "deployment.apps/web created" in out
    spec = kubectl("get", "deployment", "web", "-o", "json").json()["spec"]
    assert spec["replicas"] == 2
    assert "replicasss" not in spec


def test_get_output_applies_back_unchanged(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", _write(tmp_path, LIST))
    exported = kubectl("get", "configmaps,deployments", "-o", "yaml").stdout
    assert exported.startswith("apiVersion: v1\nitems:\n")  # a kind: List
    out = kubectl("apply", "-f", _write(tmp_path, exported)).stdout
    assert "configmap/settings" in out
    assert "deployment.apps/web" in out


@pytest.mark.parametrize("accept", [PROTOBUF_MEDIA_TYPE_DEPRECATED, PROTOBUF_MEDIA_TYPE])
def test_openapi_v2_is_protobuf_when_asked_and_json_otherwise(server: Server, accept: str) -> None:
    status, _, headers = server.request("GET", "/openapi/v2", headers={"Accept": accept})
    assert status == 200
    assert headers["Content-Type"] == PROTOBUF_MEDIA_TYPE
    assert headers["Vary"] == "Accept"
    status, body, headers = server.request("GET", "/openapi/v2")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body["swagger"] == "2.0"
