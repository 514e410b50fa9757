"""A pod with a network of its own authenticates as its ServiceAccount through the
``kubernetes`` Service's cluster IP, as in Kubernetes: a cluster of the test harness
(:mod:`tests.cluster`), whose API server listens on an address the pods can route to and
whose node runs the node proxy."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests import objects
from tests.cluster import Cluster, can_make_network_namespaces, running_cluster
from tests.support import create_namespace, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("cluster"),
    pytest.mark.skipif(
        not can_make_network_namespaces(),
        reason="pod networks need root, iproute2 and network namespaces",
    ),
]

SCRIPT = """
import os, time
import kubernetes.client as c, kubernetes.config as cfg
print("host=" + os.environ["KUBERNETES_SERVICE_HOST"], flush=True)
cfg.load_incluster_config()
review = c.AuthenticationV1Api().create_self_subject_review(c.V1SelfSubjectReview())
print("user=" + review.status.user_info.username, flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster(1) as running:
        yield running
        assert not running.tracebacks(), running.tracebacks()


def test_pod_in_its_own_network_reaches_the_api_server_by_the_service_ip(
    cluster: Cluster,
) -> None:
    ns = create_namespace(cluster.server, "sapod")
    k = cluster.kubectl(ns)
    pod = objects.pod(
        "incluster",
        containers=[{"name": "app", "image": "python", "command": [sys.executable, "-c", SCRIPT]}],
    )
    wait_for(
        lambda: k.run("get", "sa", "default", check=False).returncode == 0,
        timeout=10,
        what="the default ServiceAccount",
    )
    k("create", "-f", "-", input=json.dumps(pod))
    logs = wait_for(
        lambda: "user=" in (out := k.run("logs", "incluster", check=False).stdout) and out,
        timeout=90,
        what="the pod to authenticate",
    )
    service_ip = k("get", "svc", "kubernetes", "-n", "default", "-o", "json").json()["spec"][
        "clusterIP"
    ]
    assert f"host={service_ip}" in logs
    assert f"user=system:serviceaccount:{ns}:default" in logs
