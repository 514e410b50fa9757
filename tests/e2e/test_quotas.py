"""ResourceQuota and LimitRange with the real kubectl against a server running its controllers
(the resource quota controller computes usage; no nodes: pods stay Pending, which is all a
quota needs): quotas from ``kubectl create quota``, pods refused with Kubernetes' messages,
usage that drops when pods are deleted or finish, LimitRange defaults and bounds, and
concurrent creates that cannot overspend a quota."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support import Kubectl, Server, create_namespace, start_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("quota")]


@pytest.fixture(scope="module")
def quota_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("quota") / "data", controllers=True)
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.log()
        # a quota refusing the ReplicaSet controller's pods is the API's answer: one line
        # each (a warning) and a retry, never a traceback
        assert " ERROR " not in server.log() and "Traceback" not in server.log(), server.log()


@pytest.fixture
def k(quota_server: Server) -> Kubectl:
    return Kubectl(quota_server, create_namespace(quota_server))


def pod_manifest(name: str, *, limits: dict[str, str] | None = None) -> str:
    container: dict[str, Any] = {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}
    if limits is not None:
        container["resources"] = {"limits": limits}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }
    return yaml.safe_dump(pod)


def used(k: Kubectl, name: str) -> dict[str, str]:
    quota = k("get", "quota", name, "-o", "json").json()
    return dict((quota.get("status") or {}).get("used") or {})


def create_quota(k: Kubectl, name: str, hard: str) -> None:
    k("create", "quota", name, f"--hard={hard}")
    wait_for(lambda: used(k, name), timeout=30, what=f"quota {name} to get its status")


def test_quota_from_kubectl_create_shows_used_and_hard(k: Kubectl) -> None:
    create_quota(k, "compute", "pods=4,requests.cpu=2,limits.memory=1Gi")
    header, row = k("get", "quota").stdout.splitlines()
    assert header.split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 0/4, requests.cpu: 0/2" in row
    assert "limits.memory: 0/1Gi" in row
    described = k("describe", "quota", "compute").stdout
    rows = [line.split() for line in described.splitlines()]
    assert ["Resource", "Used", "Hard"] in rows
    assert ["requests.cpu", "0", "2"] in rows


def test_pod_over_quota_is_refused_and_usage_drops_when_it_is_deleted(k: Kubectl) -> None:
    create_quota(k, "q", "pods=1")
    k("apply", "-f", "-", input=pod_manifest("first"))
    assert used(k, "q") == {"pods": "1"}
    refused = k("apply", "-f", "-", input=pod_manifest("second"), check=False)
    assert refused.returncode == 1
    assert (
        'pods "second" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, '
        "limited: pods=1"
    ) in refused.stderr
    k("delete", "pod", "first", "--wait=false")
    wait_for(lambda: used(k, "q") == {"pods": "0"}, timeout=30, what="usage to drop")
    rows = [line.split() for line in k("describe", "quota", "q").stdout.splitlines()]
    assert ["pods", "0", "1"] in rows
    k("apply", "-f", "-", input=pod_manifest("second"))


def test_finished_pods_give_their_quota_back(k: Kubectl) -> None:
    create_quota(k, "q", "pods=1")
    k("apply", "-f", "-", input=pod_manifest("job"))
    status = json.dumps({"status": {"phase": "Succeeded"}})
    k("patch", "pod", "job", "--subresource=status", "--type=merge", "-p", status)
    wait_for(lambda: used(k, "q") == {"pods": "0"}, timeout=30, what="usage to drop")


def test_compute_quota_requires_pods_to_declare_limits(k: Kubectl) -> None:
    create_quota(k, "q", "limits.cpu=1,limits.memory=1Gi")
    refused = k("apply", "-f", "-", input=pod_manifest("bare"), check=False)
    assert (
        'pods "bare" is forbidden: failed quota: q: must specify limits.cpu for: c; '
        "limits.memory for: c"
    ) in refused.stderr
    k("apply", "-f", "-", input=pod_manifest("sized", limits={"cpu": "600m", "memory": "256Mi"}))
    assert used(k, "q") == {"limits.cpu": "600m", "limits.memory": "256Mi"}
    refused = k(
        "apply",
        "-f",
        "-",
        input=pod_manifest("big", limits={"cpu": "600m", "memory": "1Mi"}),
        check=False,
    )
    assert (
        "exceeded quota: q, requested: limits.cpu=600m, used: limits.cpu=600m, "
        "limited: limits.cpu=1"
    ) in refused.stderr


def test_object_count_quota_on_another_group(k: Kubectl) -> None:
    create_quota(k, "q", "count/deployments.apps=1")
    k("create", "deployment", "one", "--image=busybox")
    refused = k("create", "deployment", "two", "--image=busybox", check=False)
    assert (
        'deployments.apps "two" is forbidden: exceeded quota: q, requested: '
        "count/deployments.apps=1, used: count/deployments.apps=1, "
        "limited: count/deployments.apps=1"
    ) in refused.stderr


def test_concurrent_creates_cannot_overspend_a_quota(k: Kubectl) -> None:
    create_quota(k, "q", "pods=3")
    procs = []
    for i in range(8):
        path = k.server.data_dir.parent / f"{k.namespace}-p{i}.yaml"
        path.write_text(pod_manifest(f"p{i}"))
        procs.append(k.popen("create", "-f", str(path)))
    results = [(p.wait(60), *p.communicate()) for p in procs]
    created = [out for code, out, _ in results if code == 0]
    refused = [err for code, _, err in results if code != 0]
    assert len(created) == 3, results
    assert all("exceeded quota: q" in err for err in refused), refused
    assert used(k, "q") == {"pods": "3"}
    assert len(k("get", "pods", "-o", "name").stdout.split()) == 3


# --------------------------------------------------------------------------- LimitRange

LIMIT_RANGE = """
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 200m, memory: 64Mi}
    defaultRequest: {cpu: 100m}
    min: {cpu: 50m}
    max: {cpu: "1"}
"""


def test_limit_range_fills_container_defaults(k: Kubectl) -> None:
    k("apply", "-f", "-", input=LIMIT_RANGE)
    assert k("get", "limits", "--no-headers").stdout.split()[0] == "limits"
    described = k("describe", "limits", "limits").stdout
    rows = [line.split() for line in described.splitlines()]
    assert ["Container", "cpu", "50m", "1", "100m", "200m", "-"] in rows
    k("apply", "-f", "-", input=pod_manifest("web"))
    pod = k("get", "pod", "web", "-o", "json").json()
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "200m", "memory": "64Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for "
        "container c"
    )
    assert pod["status"]["qosClass"] == "Burstable"


def test_limit_range_refuses_pods_outside_its_bounds(k: Kubectl) -> None:
    k("apply", "-f", "-", input=LIMIT_RANGE)
    refused = k("apply", "-f", "-", input=pod_manifest("huge", limits={"cpu": "2"}), check=False)
    assert refused.returncode == 1
    assert (
        'pods "huge" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    ) in refused.stderr


def test_invalid_limit_range_is_refused(k: Kubectl) -> None:
    bad = LIMIT_RANGE.replace('max: {cpu: "1"}', "max: {cpu: 10m}")
    refused = k("apply", "-f", "-", input=bad, check=False)
    assert 'The LimitRange "limits" is invalid' in refused.stderr
    assert "min value 50m is greater than max value 10m" in refused.stderr


def test_deployment_beyond_quota_gets_what_fits_and_the_rest_when_it_grows(k: Kubectl) -> None:
    create_quota(k, "q", "pods=2")
    k("create", "deployment", "web", "--image=busybox", "--replicas=3")

    def pods() -> int:
        return len(k("get", "pods", "-o", "name").stdout.split())

    wait_for(lambda: pods() == 2, timeout=30, what="two pods")

    def refused_event() -> bool:
        events = k("get", "events", "--field-selector", "reason=FailedCreate", "-o", "json")
        return any("exceeded quota: q" in e.get("message", "") for e in events.json()["items"])

    wait_for(refused_event, timeout=30, what="a FailedCreate event naming the quota")
    k("patch", "quota", "q", "--type=merge", "-p", json.dumps({"spec": {"hard": {"pods": "3"}}}))
    wait_for(lambda: pods() == 3, timeout=60, what="the third pod once the quota grew")
