"""What the real ``kubectl get`` prints: the server's table columns and cells, per kind.

Objects get their status the way controllers and kubelets set it, through the status
subresource (``kubectl patch --subresource=status``); nodes are created with one. The output
is read as kubectl's aligned columns (separated by at least three spaces).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import Kubectl, wait_for

pytestmark = pytest.mark.e2e

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: app, image: nginx:1.27}
  - {name: side, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: setup}
spec:
  initContainers:
  - {name: init, image: busybox}
  containers:
  - {name: app, image: busybox}
"""

WORKLOADS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}, {name: log, image: busybox}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-rs}
spec:
  replicas: 3
  selector:
    matchLabels: {app: rs}
    matchExpressions: [{key: tier, operator: In, values: [fe, be]}]
  template:
    metadata: {labels: {app: rs, tier: fe}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: pi}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: pi, image: perl}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/5 * * * *"
  timeZone: Etc/UTC
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: tick, image: busybox}]
"""

CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: "1", b: "2"}
binaryData: {c: "AA=="}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {user: me, pass: hunter2}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot}
secrets: [{name: creds}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader}
spec: {holderIdentity: node-a}
"""

EVENT = """
apiVersion: v1
kind: Event
metadata: {{name: web.1}}
involvedObject:
  {{kind: Pod, name: web, namespace: {namespace}, fieldPath: "spec.containers{{app}}"}}
reason: Pulled
message: "Pulled image nginx:1.27"
type: Normal
source: {{component: kubelet, host: node-a}}
firstTimestamp: "{first}"
lastTimestamp: "{last}"
count: 4
"""


def timestamp(**before: float) -> str:
    return (datetime.now(UTC) - timedelta(**before)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tables(output: str) -> list[list[dict[str, str]]]:
    """kubectl's output, one table per kind: rows as {HEADER: value}."""
    result: list[list[dict[str, str]]] = []
    for block in output.strip().split("\n\n"):
        lines = block.splitlines()
        header = re.split(r"\s{3,}", lines[0].strip())
        result.append(
            [
                dict(zip(header, re.split(r"\s{3,}", line.strip()), strict=True))
                for line in lines[1:]
            ]
        )
    return result


def rows(kubectl: Kubectl, *args: str, **kwargs: Any) -> dict[str, dict[str, str]]:
    """One kind's ``kubectl get`` rows by NAME."""
    (table,) = tables(kubectl("get", *args, **kwargs).stdout)
    return {row["NAME"]: row for row in table}


def patch_status(kubectl: Kubectl, kind: str, name: str, status: dict[str, Any]) -> None:
    body = json.dumps({"status": status})
    kubectl("patch", kind, name, "--subresource=status", "--type=merge", "-p", body)


def headers(output: str) -> list[list[str]]:
    return [list(table[0]) for table in tables(output) if table]


def start_pods(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=PODS)
    restarted = {
        "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": timestamp(minutes=30)}
    }
    patch_status(
        kubectl,
        "pod",
        "web",
        {
            "phase": "Running",
            "podIP": "10.1.0.7",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {
                    "name": "app",
                    "image": "nginx:1.27",
                    "imageID": "",
                    "ready": True,
                    "restartCount": 3,
                    "state": {"running": {"startedAt": timestamp(minutes=29)}},
                    "lastState": restarted,
                },
                {
                    "name": "side",
                    "image": "busybox",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    )
    patch_status(
        kubectl,
        "pod",
        "setup",
        {
            "phase": "Pending",
            "initContainerStatuses": [
                {
                    "name": "init",
                    "image": "busybox",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1}},
                }
            ],
        },
    )


def test_get_pods_prints_ready_status_and_restarts(kubectl: Kubectl) -> None:
    start_pods(kubectl)
    out = kubectl("get", "pods").stdout
    assert headers(out) == [["NAME", "READY", "STATUS", "RESTARTS", "AGE"]]
    pods = rows(kubectl, "pods")
    assert (pods["web"]["READY"], pods["web"]["STATUS"]) == ("1/2", "CrashLoopBackOff")
    assert pods["web"]["RESTARTS"] == "3 (30m ago)"
    assert (pods["setup"]["READY"], pods["setup"]["STATUS"]) == ("0/1", "Init:ExitCode:1")
    assert pods["setup"]["RESTARTS"] == "0"


def test_get_pods_wide_prints_ip_and_node(kubectl: Kubectl) -> None:
    start_pods(kubectl)
    pods = rows(kubectl, "pods", "-o", "wide")
    assert list(pods["web"]) == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ]
    assert pods["web"]["IP"] == "10.1.0.7"
    assert (pods["web"]["NODE"], pods["setup"]["IP"]) == ("<none>", "<none>")


def test_get_pod_shows_completed_and_terminating(kubectl: Kubectl) -> None:
    start_pods(kubectl)
    patch_status(
        kubectl,
        "pod",
        "setup",
        {
            "phase": "Succeeded",
            "initContainerStatuses": None,
            "containerStatuses": [
                {
                    "name": "app",
                    "image": "busybox",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                }
            ],
        },
    )
    kubectl(
        "patch",
        "pod",
        "web",
        "--type=merge",
        "-p",
        '{"metadata": {"finalizers": ["example.com/hold"]}}',
    )
    kubectl("delete", "pod", "web", "--wait=false")
    try:
        wait_for(
            lambda: rows(kubectl, "pods")["web"]["STATUS"] == "Terminating",
            what="the deleted pod to show as Terminating",
        )
        assert rows(kubectl, "pods")["setup"]["STATUS"] == "Completed"
    finally:
        kubectl("patch", "pod", "web", "--type=merge", "-p", '{"metadata": {"finalizers": null}}')


def test_get_nodes_prints_status_roles_and_version(kubectl: Kubectl) -> None:
    name = f"node-{uuid.uuid4().hex[:8]}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
            "nodeInfo": {
                "kubeletVersion": "v1.37.1",
                "osImage": "Debian GNU/Linux 13",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "containerd://2.0.0",
                "machineID": "m",
                "systemUUID": "s",
                "bootID": "b",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }
    kubectl("create", "-f", "-", input=json.dumps(node), namespaced=False)
    try:
        out = kubectl("get", "nodes", name, namespaced=False).stdout
        assert headers(out) == [["NAME", "STATUS", "ROLES", "AGE", "VERSION"]]
        row = rows(kubectl, "nodes", name, "-o", "wide", namespaced=False)[name]
        assert row["STATUS"] == "Ready,SchedulingDisabled"
        assert (row["ROLES"], row["VERSION"]) == ("control-plane", "v1.37.1")
        assert (row["INTERNAL-IP"], row["EXTERNAL-IP"]) == ("10.0.0.5", "<none>")
        assert (row["OS-IMAGE"], row["KERNEL-VERSION"]) == ("Debian GNU/Linux 13", "6.1.0")
        assert row["CONTAINER-RUNTIME"] == "containerd://2.0.0"
    finally:
        kubectl("delete", "node", name, namespaced=False)


def test_get_workloads_prints_their_columns(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=WORKLOADS)
    patch_status(
        kubectl,
        "deploy",
        "web",
        {"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1},
    )
    patch_status(kubectl, "rs", "web-rs", {"replicas": 3, "readyReplicas": 2})
    patch_status(kubectl, "job", "pi", {"startTime": timestamp(minutes=10), "active": 1})
    deploy, rs, job, cj = tables(kubectl("get", "deploy,rs,job,cj", "-o", "wide").stdout)
    assert list(deploy[0]) == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert deploy[0]["NAME"] == "deployment.apps/web"
    assert (deploy[0]["READY"], deploy[0]["UP-TO-DATE"], deploy[0]["AVAILABLE"]) == (
        "1/2",
        "2",
        "1",
    )
    assert (deploy[0]["CONTAINERS"], deploy[0]["IMAGES"]) == ("web,log", "nginx:1.27,busybox")
    assert deploy[0]["SELECTOR"] == "app=web"
    assert list(rs[0])[:5] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert (rs[0]["DESIRED"], rs[0]["CURRENT"], rs[0]["READY"]) == ("3", "3", "2")
    assert rs[0]["SELECTOR"] == "app=rs,tier in (be,fe)"
    assert list(job[0])[:5] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert (job[0]["STATUS"], job[0]["COMPLETIONS"], job[0]["DURATION"]) == (
        "Running",
        "0/1",
        "10m",
    )
    assert job[0]["SELECTOR"].startswith("batch.kubernetes.io/controller-uid=")
    assert list(cj[0])[:7] == [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "ACTIVE",
        "LAST SCHEDULE",
        "AGE",
    ]
    assert (cj[0]["SCHEDULE"], cj[0]["TIMEZONE"], cj[0]["SUSPEND"]) == (
        "*/5 * * * *",
        "Etc/UTC",
        "True",
    )
    assert (cj[0]["ACTIVE"], cj[0]["LAST SCHEDULE"], cj[0]["SELECTOR"]) == ("0", "<none>", "<none>")


def test_get_finished_job_prints_complete_and_duration(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=WORKLOADS)
    conditions = [
        {"type": kind, "status": "True", "reason": "CompletionsReached"}
        for kind in ("SuccessCriteriaMet", "Complete")
    ]
    patch_status(
        kubectl,
        "job",
        "pi",
        {
            "startTime": timestamp(minutes=7),
            "completionTime": timestamp(minutes=4),
            "succeeded": 1,
            "conditions": conditions,
        },
    )
    job = rows(kubectl, "jobs")["pi"]
    assert (job["STATUS"], job["COMPLETIONS"], job["DURATION"]) == ("Complete", "1/1", "3m")


def test_get_config_kinds_prints_their_counts(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=CONFIG)
    cm, secret, sa, lease = tables(
        kubectl("get", "cm/cfg", "secret/creds", "sa/robot", "lease/leader").stdout
    )
    assert list(cm[0]) == ["NAME", "DATA", "AGE"]
    assert (cm[0]["NAME"], cm[0]["DATA"]) == ("configmap/cfg", "3")
    assert list(secret[0]) == ["NAME", "TYPE", "DATA", "AGE"]
    assert (secret[0]["TYPE"], secret[0]["DATA"]) == ("Opaque", "2")
    assert list(sa[0]) == ["NAME", "SECRETS", "AGE"]
    assert sa[0]["SECRETS"] == "1"
    assert list(lease[0]) == ["NAME", "HOLDER", "AGE"]
    assert lease[0]["HOLDER"] == "node-a"


def test_get_events_prints_object_and_message(kubectl: Kubectl) -> None:
    assert kubectl.namespace is not None
    manifest = EVENT.format(
        namespace=kubectl.namespace, first=timestamp(hours=2), last=timestamp(minutes=30)
    )
    kubectl("create", "-f", "-", input=manifest)
    out = kubectl("get", "events").stdout
    assert headers(out) == [["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    (table,) = tables(kubectl("get", "events", "-o", "wide").stdout)
    assert table == [
        {
            "LAST SEEN": "30m",
            "TYPE": "Normal",
            "REASON": "Pulled",
            "OBJECT": "pod/web",
            "SUBOBJECT": "spec.containers{app}",
            "SOURCE": "kubelet, node-a",
            "MESSAGE": "Pulled image nginx:1.27",
            "FIRST SEEN": "120m",
            "COUNT": "4",
            "NAME": "web.1",
        }
    ]


def test_get_watch_prints_rows_with_server_columns(kubectl: Kubectl) -> None:
    from tests.support import collect_lines, wait_for

    kubectl("create", "deployment", "watched", "--image=nginx", "--", "sleep", "9")
    watch = kubectl.popen("get", "deploy", "-w")
    lines = collect_lines(watch)
    try:
        wait_for(lambda: len(lines) >= 2, what="header and first row")
        assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert lines[1].split()[:2] == ["watched", "0/1"]
        kubectl("scale", "deploy", "watched", "--replicas=3")
        wait_for(
            lambda: any(line.split()[:2] == ["watched", "0/3"] for line in lines),
            what="the scaled row",
        )
    finally:
        watch.kill()
        watch.wait()


def test_unknown_field_with_validate_warn_is_dropped_with_a_warning(kubectl: Kubectl) -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: warned}\nbogus: 1\n"
    result = kubectl("create", "--validate=warn", "-f", "-", input=manifest)
    assert 'unknown field "bogus"' in result.stderr
    assert "bogus" not in kubectl("get", "cm", "warned", "-o", "json").stdout
