"""Cluster DNS on real nodes, driven with the real kubectl: each pod's /etc/resolv.conf
names its node's DNS server, and a plain ``socket.gethostbyname`` inside a pod resolves a
Service's name to its ClusterIP, a headless Service's name to its pods' IPs, and the short
name through the search path. Needs root (pod network namespaces; skipped without it).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent.clusterdns.resolvconf import parse_resolv_conf
from tests import objects
from tests.cluster import Cluster, ClusterNode, can_make_network_namespaces, running_cluster
from tests.support import Kubectl, create_namespace, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("cluster"),
    pytest.mark.skipif(
        not can_make_network_namespaces(),
        reason="pod networks need root, iproute2 and network namespaces",
    ),
]

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster(2) as running:
        yield running
        assert not running.tracebacks(), running.tracebacks()


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    return cluster.kubectl(create_namespace(cluster.server, "dns"))


def on_node(node: ClusterNode) -> Obj:
    return {"nodeSelector": {"kubernetes.io/hostname": node.name}}


def finished_logs(k: Kubectl, name: str) -> str:
    def done() -> str | None:
        phase = k("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(done, timeout=90, what=f"pod {name} to finish")
    logs = k("logs", name).stdout
    assert phase == "Succeeded", logs
    return logs


def run_once(k: Kubectl, name: str, argv: list[str], **spec: Any) -> str:
    body = objects.pod(
        name,
        containers=[objects.container("main", "python", command=argv)],
        restartPolicy="Never",
        **spec,
    )
    k("apply", "-f", "-", input=json.dumps(body))
    return finished_logs(k, name)


def test_a_pods_resolv_conf_names_its_nodes_dns(k: Kubectl, cluster: Cluster) -> None:
    node = cluster.nodes[0]
    gateway = ipaddress.ip_network(cluster.pod_cidr(node.name))[1]
    host = parse_resolv_conf(Path("/etc/resolv.conf").read_text())
    searches = [f"{k.namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    searches += [s for s in host.searches if s not in searches]
    expected = f"search {' '.join(searches)}\nnameserver {gateway}\noptions ndots:5\n"
    assert run_once(k, "show", ["cat", "/etc/resolv.conf"], **on_node(node)) == expected


def test_dns_policy_none_is_only_the_dns_config(k: Kubectl, cluster: Cluster) -> None:
    config = {
        "nameservers": ["192.0.2.1"],
        "searches": ["a.example"],
        "options": [{"name": "edns0"}],
    }
    logs = run_once(
        k,
        "custom",
        ["cat", "/etc/resolv.conf"],
        dnsPolicy="None",
        dnsConfig=config,
        **on_node(cluster.nodes[1]),
    )
    assert logs == "search a.example\nnameserver 192.0.2.1\noptions edns0\n"


def test_a_host_network_pod_keeps_the_nodes_file(k: Kubectl, cluster: Cluster) -> None:
    logs = run_once(
        k, "hostnet", ["cat", "/etc/resolv.conf"], hostNetwork=True, **on_node(cluster.nodes[0])
    )
    assert logs == Path("/etc/resolv.conf").read_text()


RESOLVE = """
import socket, sys, time
ns = sys.argv[1]
deadline = time.monotonic() + 30
while True:  # the node's DNS follows Services through a watch: give it a moment
    try:
        print(socket.gethostbyname(f"web.{ns}.svc.cluster.local"))
        print(socket.gethostbyname("web"))
        print(" ".join(sorted(socket.gethostbyname_ex(f"db.{ns}.svc.cluster.local")[2])))
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            raise
        print("retry:", exc, file=sys.stderr)
        time.sleep(0.5)
"""


def test_pods_resolve_services_by_name(k: Kubectl, cluster: Cluster) -> None:
    sleeper = objects.container("app", command=["sleep", "3600"])
    k("create", "service", "clusterip", "web", "--tcp=80:8080")
    db = objects.deployment("db", replicas=2, containers=[sleeper])
    k("apply", "-f", "-", input=json.dumps(db))
    k("create", "service", "clusterip", "db", "--clusterip=None", "--tcp=5432")
    k("patch", "service", "db", "-p", '{"spec":{"selector":{"app":"db"}}}')
    cluster_ip = k("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout

    def db_pod_ips() -> list[str] | None:
        pods = k("get", "pods", "-l", "app=db", "-o", "json").json()["items"]
        ips = sorted(p["status"].get("podIP", "") for p in pods)
        ready = all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
            for p in pods
        )
        return ips if len(ips) == 2 and all(ips) and ready else None

    ips = wait_for(db_pod_ips, timeout=90, what="two ready db pods")
    for index, node in enumerate(cluster.nodes):
        logs = run_once(
            k, f"client{index}", ["python3", "-c", RESOLVE, k.namespace], **on_node(node)
        )
        assert logs.splitlines() == [cluster_ip, cluster_ip, " ".join(ips)]


def test_an_invalid_dns_config_is_refused_with_422(k: Kubectl) -> None:
    body = objects.pod("bad", dnsPolicy="None", dnsConfig={"searches": ["a.example"]})
    result = k("apply", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        'Pod "bad" is invalid: spec.dnsConfig.nameservers: Required value: must provide at '
        "least one DNS nameserver when `dnsPolicy` is None"
    ), result.stderr


def test_a_pods_etc_hosts_names_it_and_its_aliases(k: Kubectl, cluster: Cluster) -> None:
    aliases = [{"ip": "192.0.2.7", "hostnames": ["foo.local"]}]
    logs = run_once(
        k,
        "hosts",
        ["cat", "/etc/hosts"],
        hostname="h",
        subdomain="sub",
        hostAliases=aliases,
        **on_node(cluster.nodes[0]),
    )
    ip = k("get", "pod", "hosts", "-o", "jsonpath={.status.podIP}").stdout
    assert logs.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert logs.endswith(
        f"{ip}\th.sub.{k.namespace}.svc.cluster.local\th\n\n"
        "# Entries added by HostAliases.\n192.0.2.7\tfoo.local\n"
    )
