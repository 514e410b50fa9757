"""ReplicationControllers, Ingresses, IngressClasses and PersistentVolumes with the real
kubectl: created, listed with Kubernetes' columns and refused with Kubernetes' 422s (a
ReplicationController running its pods is in ``test_controllers.py``, which has controllers).
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests import objects
from tests.support import Kubectl

pytestmark = pytest.mark.e2e


def replication_controller(name: str, replicas: int) -> str:
    template = objects.pod_template(
        {"app": name}, containers=[objects.container("c", command=["sleep", "3600"])]
    )
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "template": template},
    }
    return yaml.safe_dump(rc)


def test_replication_controller_that_selects_nothing_of_its_template_is_refused(
    kubectl: Kubectl,
) -> None:
    manifest = yaml.safe_load(replication_controller("bad", 1))
    manifest["spec"]["selector"] = {"app": "other"}
    refused = kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert refused.returncode == 1
    assert 'The ReplicationController "bad" is invalid' in refused.stderr
    assert "spec.template.metadata.labels: Invalid value" in refused.stderr
    assert "`selector` does not match template `labels`" in refused.stderr


def test_ingress_from_kubectl_create_and_its_table(kubectl: Kubectl) -> None:
    created = kubectl(
        "create", "ingress", "web", "--class=default", "--rule=foo.example.com/api*=web:80"
    )
    assert created.stdout.strip() == "ingress.networking.k8s.io/web created"
    row = kubectl("get", "ingress", "web", "--no-headers").stdout.split()
    assert row[:4] == ["web", "default", "foo.example.com", "80"]
    header = kubectl("get", "ing").stdout.splitlines()[0].split()
    assert header == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    ingress = json.loads(kubectl("get", "ing", "web", "-o", "json").stdout)
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path == {
        "path": "/api",
        "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}},
    }


def test_ingress_with_an_ip_for_a_host_is_refused(kubectl: Kubectl) -> None:
    refused = kubectl("create", "ingress", "bad", "--rule=10.0.0.1/=web:80", check=False)
    assert refused.returncode == 1
    assert 'Ingress.networking.k8s.io "bad" is invalid' in refused.stderr
    assert (
        'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address'
        in refused.stderr
    )


def test_ingress_class_is_cluster_scoped_and_keeps_its_controller(kubectl: Kubectl) -> None:
    name = f"ic-{kubectl.namespace}"
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name},
        "spec": {"controller": "example.com/ingress"},
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    try:
        row = kubectl("get", "ingressclass", name, "--no-headers").stdout.split()
        assert row[:3] == [name, "example.com/ingress", "<none>"]
        manifest["spec"]["controller"] = "example.com/other"
        refused = kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
        assert refused.returncode == 1
        assert "spec.controller: Invalid value" in refused.stderr
        assert "field is immutable" in refused.stderr
    finally:
        kubectl("delete", "ingressclass", name)


def test_persistent_volume_is_listed_pending_and_checked(kubectl: Kubectl) -> None:
    name = f"pv-{kubectl.namespace}"
    manifest = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "hostPath": {"path": "/tmp/pv"},
            "storageClassName": "manual",
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    try:
        row = kubectl("get", "pv", name, "--no-headers").stdout.split()
        assert row[:7] == [name, "1Gi", "RWO,ROX", "Retain", "Pending", "manual", "<unset>"]
        bad = {**manifest, "metadata": {"name": f"{name}-bad"}, "spec": {"accessModes": []}}
        refused = kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
        assert refused.returncode == 1
        for problem in (
            "spec.accessModes: Required value",
            "spec.capacity: Required value",
            "spec: Required value: must specify a volume type",
        ):
            assert problem in refused.stderr
    finally:
        kubectl("delete", "pv", name)
