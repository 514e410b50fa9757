"""Services end to end with the real kubectl and the official Python client: ``kubectl
expose``, ``get svc``, ``describe svc``, ``cluster-info``, ``apply --prune`` of a Deployment
with its Service, and the endpoints of real pods on the local node (``node_server``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests import objects
from tests.support import Kubectl, Server, create_namespace, wait_for

pytestmark = pytest.mark.e2e

PRUNE_ALLOWLIST = (
    "--prune-allowlist=core/v1/Service",
    "--prune-allowlist=core/v1/Endpoints",
    "--prune-allowlist=apps/v1/Deployment",
)


@pytest.fixture
def api(server: Server) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(server.kubeconfig))
    yield api_client
    api_client.close()


def test_get_svc_shows_kubernetes_columns(kubectl: Kubectl) -> None:
    kubectl("create", "service", "nodeport", "web", "--tcp=80:8080", "--node-port=30123")
    kubectl("create", "service", "clusterip", "headless", "--clusterip=None")
    lines = kubectl("get", "svc").stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = {line.split()[0]: line.split()[1:5] for line in lines[1:]}
    assert rows["headless"] == ["ClusterIP", "None", "<none>", "<none>"]
    kind, ip, external, ports = rows["web"]
    assert (kind, external, ports) == ("NodePort", "<none>", "80:30123/TCP")
    assert ip.startswith("10.96.")
    wide = kubectl("get", "svc", "web", "-o", "wide", "--no-headers").stdout.split()
    assert wide[-1] == "app=web"


def test_duplicate_node_port_is_refused(kubectl: Kubectl) -> None:
    kubectl("create", "service", "nodeport", "first", "--tcp=80", "--node-port=30124")
    result = kubectl(
        "create", "service", "nodeport", "second", "--tcp=80", "--node-port=30124", check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: failed to create NodePort service: Service "second" is invalid: '
        "spec.ports[0].nodePort: Invalid value: 30124: provided port is already allocated"
    )


def test_cluster_info_names_the_control_plane(kubectl: Kubectl, server: Server) -> None:
    out = kubectl("cluster-info", namespaced=False).stdout
    assert f"Kubernetes control plane is running at {server.url}" in out


def test_apply_prune_of_a_deployment_and_its_service(kubectl: Kubectl, tmp_path: Path) -> None:
    container = objects.container("web", command=["sleep", "3600"])
    deployment = objects.deployment(
        "demo", labels={"app": "demo"}, containers=[container], replicas=1
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo", "labels": {"app": "demo"}},
        "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "app.yaml").write_text(yaml.safe_dump_all([deployment, service]))
    applied = kubectl("apply", "--prune", "-l", "app=demo", *PRUNE_ALLOWLIST, "-f", f"{manifests}/")
    assert applied.stdout.splitlines() == ["deployment.apps/demo created", "service/demo created"]
    (manifests / "app.yaml").write_text(yaml.safe_dump(deployment))
    again = kubectl("apply", "--prune", "-l", "app=demo", *PRUNE_ALLOWLIST, "-f", f"{manifests}/")
    assert again.stdout.splitlines() == ["deployment.apps/demo unchanged", "service/demo pruned"]
    assert kubectl("get", "svc", "demo", check=False).returncode == 1


def test_apply_prune_with_kubectls_default_allow_list(kubectl: Kubectl, tmp_path: Path) -> None:
    """Without --prune-allowlist kubectl looks up every kind of its default list (ConfigMap,
    Endpoints, Namespace, PVC, PV, Pod, RC, Secret, Service, Job, CronJob, Ingress, DaemonSet,
    Deployment, ReplicaSet, StatefulSet) and fails if one is not served."""
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "labels": {"app": "pruned"}},
        "data": {"k": "v"},
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "front", "labels": {"app": "pruned"}},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    }
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "app.yaml").write_text(yaml.safe_dump_all([config_map, ingress]))
    applied = kubectl("apply", "--prune", "-l", "app=pruned", "-f", f"{manifests}/")
    assert applied.stdout.splitlines() == [
        "configmap/settings created",
        "ingress.networking.k8s.io/front created",
    ]
    (manifests / "app.yaml").write_text(yaml.safe_dump(config_map))
    again = kubectl("apply", "--prune", "-l", "app=pruned", "-f", f"{manifests}/")
    assert again.stdout.splitlines() == [
        "configmap/settings unchanged",
        "ingress.networking.k8s.io/front pruned",
    ]


def test_python_client_reads_services_endpoints_and_slices(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    body = client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(
            type="NodePort",
            selector={"app": "web"},
            ports=[client.V1ServicePort(port=80, target_port="http")],
        ),
    )
    created = core.create_namespaced_service(namespace, body)
    assert created.spec.cluster_ip.startswith("10.96.")
    assert created.spec.ip_families == ["IPv4"]
    assert created.spec.ports[0].protocol == "TCP"
    assert 30000 <= created.spec.ports[0].node_port <= 32767
    kubernetes = core.read_namespaced_endpoints("kubernetes", "default")
    assert kubernetes.subsets[0].ports[0].name == "https"
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes"
    )
    assert slices.items[0].endpoints[0].conditions.ready is True
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service(
            namespace,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="taken"),
                spec=client.V1ServiceSpec(
                    cluster_ip=created.spec.cluster_ip, ports=[client.V1ServicePort(port=80)]
                ),
            ),
        )
    assert caught.value.status == 422


@pytest.mark.xdist_group("node")
def test_expose_a_deployment_and_see_its_endpoints(node_server: Server) -> None:
    k = Kubectl(node_server, create_namespace(node_server, "svc"))
    k("create", "deployment", "web", "--replicas=2", "--image=busybox", "--", "sleep", "3600")
    assert k("expose", "deployment", "web", "--port=80", "--target-port=8080").stdout.strip() == (
        "service/web exposed"
    )

    def two_ready() -> bool:
        endpoints = k("get", "endpoints", "web", "-o", "json").json()
        subsets = endpoints.get("subsets") or []
        return sum(len(s.get("addresses") or []) for s in subsets) == 2

    wait_for(two_ready, timeout=60, what="two ready addresses in the Endpoints")
    described = k("describe", "svc", "web").stdout
    endpoints_line = next(line for line in described.splitlines() if line.startswith("Endpoints:"))
    assert endpoints_line.count(":8080") == 2
    slices = k("get", "endpointslices", "-l", "kubernetes.io/service-name=web").stdout
    assert slices.splitlines()[1].split()[1:3] == ["IPv4", "8080"]
    k("scale", "deployment", "web", "--replicas=1")

    def one_left() -> bool:
        endpoints = k("get", "endpoints", "web", "-o", "json").json()
        subsets = endpoints.get("subsets") or []
        return sum(len(s.get("addresses") or []) for s in subsets) == 1

    wait_for(one_left, timeout=60, what="the scaled-down replica to leave the Endpoints")
    k("delete", "deployment", "web")
