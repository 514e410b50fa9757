"""A pod with a network of its own authenticates as its ServiceAccount through the
``kubernetes`` Service's cluster IP, as in Kubernetes: a cluster of the test harness
(:mod:`tests.cluster`), whose API server listens on an address the pods can route to and
whose node runs the node proxy."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import objects
from tests.cluster import Cluster, can_make_network_namespaces, running_cluster
from tests.etcd import running_etcd
from tests.ha import join_flags
from tests.support import Kubectl, create_namespace, start_server, wait_for

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
        # root: this test's interpreter (with the official client) may live where only
        # root can reach it (a pyenv under /root), and pods run as users of their own
        securityContext={"runAsUser": 0},
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


LOOP = """
import time
import kubernetes.client as c, kubernetes.config as cfg
cfg.load_incluster_config()
api = c.AuthenticationV1Api()
while True:
    try:
        review = api.create_self_subject_review(c.V1SelfSubjectReview())
        print("ok " + review.status.user_info.username, time.time(), flush=True)
    except Exception as exc:
        print("failed", type(exc).__name__, time.time(), flush=True)
    time.sleep(0.5)
"""


def test_pods_reach_the_surviving_api_server_through_the_service_ip(tmp_path: Path) -> None:
    """Two API servers on one address (different ports): the cluster IP leads to both,
    and to the survivor alone once the other died and its identity Lease expired."""
    with running_etcd(tmp_path / "etcd") as etcd:
        flags = ["--datastore-endpoint", etcd.endpoint, "--identity-lease-duration-seconds", "3"]
        with running_cluster(1, server_flags=flags) as cluster:
            first = cluster.server
            second = start_server(
                tmp_path / "second", extra=[*flags, *join_flags(first)], bind_address=first.host
            )
            try:
                ns = create_namespace(first, "twoapi")
                k = cluster.kubectl(ns)
                wait_for(
                    lambda: k.run("get", "sa", "default", check=False).returncode == 0,
                    timeout=10,
                    what="the default ServiceAccount",
                )
                pod = objects.pod(
                    "looping",
                    securityContext={"runAsUser": 0},
                    containers=[
                        {"name": "app", "image": "python", "command": [sys.executable, "-c", LOOP]}
                    ],
                )
                k("create", "-f", "-", input=json.dumps(pod))
                wait_for(
                    lambda: "ok " in k.run("logs", "looping", check=False).stdout,
                    timeout=90,
                    what="the pod to reach the API server",
                )
                slices = (
                    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
                    "?labelSelector=kubernetes.io/service-name=kubernetes"
                )

                def slice_ports() -> list[int]:
                    items = second.request("GET", slices)[1]["items"]
                    return sorted(p["port"] for s in items for p in s["ports"])

                both = sorted([first.port, second.port])
                wait_for(lambda: slice_ports() == both, what="a slice for each server")
                first.stop(signal.SIGKILL)
                killed = time.time()
                k = Kubectl(second, ns)

                def reached_after_kill() -> bool:
                    lines = k.run("logs", "looping", check=False).stdout.splitlines()
                    return any(
                        line.startswith("ok ") and float(line.split()[-1]) > killed + 1
                        for line in lines
                    )

                wait_for(reached_after_kill, timeout=60, what="the pod to reach the survivor")
                logs = k("logs", "looping").stdout
                assert f"ok system:serviceaccount:{ns}:default" in logs
                wait_for(
                    lambda: slice_ports() == [second.port], what="the dead server's slice gone"
                )
            finally:
                second.stop(signal.SIGKILL)
