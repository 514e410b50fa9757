"""The story issue 14 promises, as a new user types it, on one real node:

    kubectl create deployment web --image=python --replicas=3 -- python3 -m http.server 8080
    kubectl expose deployment web --port=80 --target-port=8080
    kubectl run client ... -- curl http://web.default.svc.cluster.local

Three replicas of the same server on port 8080 on one node, each in a network of its own; a
client pod reaches all of them in turn through the Service's name (cluster DNS) and cluster
IP (the node proxy); a replica that stops being ready leaves the rotation; deleting it all
leaves the node's network as it was. Needs root, network namespaces and ``nft``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.agent.network import node_key
from tests.cluster import Cluster, ClusterNode, can_make_network_namespaces, running_cluster
from tests.support import Kubectl, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("cluster"),
    pytest.mark.skipif(
        not can_make_network_namespaces(),
        reason="pod networks and the node proxy need root, iproute2 and network namespaces",
    ),
    pytest.mark.skipif(
        not shutil.which("nft"), reason="nft is not installed (make installs Debian's nftables)"
    ),
]

URL = "http://web.default.svc.cluster.local"
REQUEST_LINE = re.compile(r'"GET / HTTP/1\.1" 200')


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster(1) as running:
        yield running
        assert not running.tracebacks(), running.tracebacks()


def node_network(node: ClusterNode) -> dict[str, list[str]]:
    """What the node's network holds: links, addresses, routes and the network namespaces
    of its pods (by their names, which carry the node's key)."""
    prefix = f"sp-{node_key(node.data_dir)}-"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    pods = sorted(line.split()[0] for line in netns.splitlines() if line.startswith(prefix))
    return {
        "links": sorted(
            line.split(":")[1].strip().split("@")[0]
            for line in node.in_netns("ip", "-o", "link", "show").splitlines()
        ),
        "addresses": sorted(
            " ".join(line.split()[1:4])
            for line in node.in_netns("ip", "-o", "addr", "show").splitlines()
        ),
        "routes": sorted(node.in_netns("ip", "route", "show").splitlines()),
        "pod namespaces": pods,
    }


def curl_from_a_pod(k: Kubectl, name: str, count: int) -> list[str]:
    """Run a client pod that GETs the Service by name ``count`` times; its status codes."""
    script = f'for i in $(seq {count}); do curl -s -o /dev/null -w "%{{http_code}}\\n" {URL}; done'
    k("run", name, "--image=curl", "--restart=Never", "--", "sh", "-c", script)

    def finished() -> str | None:
        phase = k("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
        return phase if phase in ("Succeeded", "Failed") else None

    wait_for(finished, timeout=90, what=f"client pod {name} to finish")
    codes = k("logs", name).stdout.split()
    k("delete", "pod", name, "--wait=false")
    return codes


def requests_served(k: Kubectl, pods: list[str]) -> dict[str, int]:
    """How many GETs each replica has logged (python's http.server logs each on stderr)."""
    return {pod: len(REQUEST_LINE.findall(k("logs", pod).stdout)) for pod in pods}


def web_pods(k: Kubectl) -> list[str]:
    items = k("get", "pods", "-l", "app=web", "-o", "json").json()["items"]
    return sorted(
        p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")
    )


def test_three_replicas_on_one_port_one_name_and_nothing_left_behind(
    cluster: Cluster, shared_dir: Path
) -> None:
    (node,) = cluster.nodes
    k = cluster.kubectl("default")
    wait_for(lambda: "nat-prerouting" in node.in_netns("nft", "list", "ruleset"), what="proxy")
    # as on a machine nobody prepared (the harness turns forwarding on for its own routes):
    # the agent must turn it on itself, or a pod calling a Service whose endpoint is a pod
    # of the same node is DNATed and then dropped (seen with setpoint server)
    node.in_netns("sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
    before = node_network(node)

    k(
        "create",
        "deployment",
        "web",
        "--image=python",
        "--replicas=3",
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
    )
    k("expose", "deployment", "web", "--port=80", "--target-port=8080")
    k("rollout", "status", "deployment/web", "--timeout=90s")
    pods = k("get", "pods", "-l", "app=web", "-o", "json").json()["items"]
    assert len({p["status"]["podIP"] for p in pods}) == 3  # three addresses, one node
    assert {p["spec"]["nodeName"] for p in pods} == {node.name}
    names = web_pods(k)
    # each binds 8080 in its own namespace: none crash-loops on "Address already in use"
    for pod in pods:
        url = f"http://{pod['status']['podIP']}:8080/"
        wait_for(
            lambda url=url: (
                node.in_netns(
                    "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url, check=False
                )
                == "200"
            ),
            timeout=30,
            what=f"the server at {url}",
        )
    assert all(
        p["status"]["containerStatuses"][0]["restartCount"] == 0
        for p in k("get", "pods", "-l", "app=web", "-o", "json").json()["items"]
    )
    baseline = requests_served(k, names)  # the probes of the node just above

    assert curl_from_a_pod(k, "client", 30) == ["200"] * 30
    served = {n: count - baseline[n] for n, count in requests_served(k, names).items()}
    assert sum(served.values()) == 30 and all(served.values()), served  # every replica, in turn

    # a replica that is not ready leaves the rotation: a readiness probe that fails while a
    # mark file names the pod
    marks = shared_dir / "unready"  # (the probe runs as the pod's user)
    marks.mkdir()
    marks.chmod(0o755)
    probe = {
        "exec": {
            "command": [
                "bash",
                "-c",
                f'test ! -e "{marks}/$POD_NAME" && exec 3<>/dev/tcp/127.0.0.1/8080',
            ]
        },
        "periodSeconds": 1,
        "failureThreshold": 1,
        "timeoutSeconds": 10,
    }
    pod_name = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    patch = [
        {"op": "add", "path": "/spec/template/spec/containers/0/readinessProbe", "value": probe},
        {"op": "add", "path": "/spec/template/spec/containers/0/env", "value": [pod_name]},
    ]
    k("patch", "deployment", "web", "--type=json", "-p", json.dumps(patch))
    k("rollout", "status", "deployment/web", "--timeout=90s")
    wait_for(lambda: len(web_pods(k)) == 3, timeout=60, what="the old replicas gone")
    names = web_pods(k)
    victim = names[0]
    (marks / victim).touch()
    wait_for(
        lambda: (
            k("get", "pod", victim, "-o", "jsonpath={.status.containerStatuses[0].ready}").stdout
            == "false"
        ),
        timeout=30,
        what="the victim not ready",
    )
    wait_for(
        lambda: (
            victim
            not in k(
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                "jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}"
                "{.targetRef.name} {end}",
            ).stdout
        ),
        timeout=30,
        what="the victim out of the Service's ready endpoints",
    )
    before_victim = requests_served(k, names)
    assert curl_from_a_pod(k, "client-2", 30) == ["200"] * 30
    after_victim = requests_served(k, names)
    assert after_victim[victim] == before_victim[victim], (before_victim, after_victim)
    others = [n for n in names if n != victim]
    assert all(after_victim[n] > before_victim[n] for n in others), (before_victim, after_victim)

    # deleting it all leaves the node's network as it was, but for the node's bridge (made
    # with the first pod and kept for the next, as a CNI bridge plugin keeps cni0)
    k("delete", "service", "web")
    k("delete", "deployment", "web")
    wait_for(
        lambda: not k("get", "pods", "-o", "name").stdout.strip(), timeout=90, what="pods gone"
    )
    bridge = f"spbr{node_key(node.data_dir)}"

    def without_bridge() -> dict[str, list[str]]:
        return {
            key: [entry for entry in entries if bridge not in entry]
            for key, entries in node_network(node).items()
        }

    wait_for(lambda: without_bridge() == before, timeout=30, what="the node's network as before")
