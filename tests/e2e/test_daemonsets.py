"""DaemonSets end to end: `setpoint server` with its controllers, scheduler and local node agent
(the ``node_server`` fixture) running the daemon's real process, driven by the real kubectl:
apply, ``rollout status``, a new image rolled out, ``rollout history``, ``rollout undo``,
``rollout restart``."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client, config

from tests import objects
from tests.support import Kubectl, Server, create_namespace, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

NODE = "node-server-node"


@pytest.fixture
def k(node_server: Server) -> Kubectl:
    return Kubectl(node_server, create_namespace(node_server, "ds"))


def manifest(image: str) -> str:
    """A DaemonSet running ``sleep`` on the local node (other tests' Node objects may come
    and go in this cluster, so it selects the local node by name)."""
    containers = [objects.container("agent", image, command=["sleep", "3600"])]
    ds = objects.daemon_set("agent", containers=containers)
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": NODE}
    return yaml.safe_dump(ds)


def rollout_status(k: Kubectl) -> str:
    return k("rollout", "status", "ds/agent", "--timeout=90s", timeout=120).stdout


def images(k: Kubectl) -> set[str]:
    pods = k("get", "pods", "-o", "json").json()["items"]
    return {
        p["spec"]["containers"][0]["image"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }


def test_rollout_status_history_undo_and_restart(k: Kubectl) -> None:
    k("apply", "-f", "-", input=manifest("busybox:1.36"))
    assert 'daemon set "agent" successfully rolled out' in rollout_status(k)
    row = k("get", "ds", "agent", "--no-headers").stdout.split()
    assert row[:6] == ["agent", "1", "1", "1", "1", "1"]
    assert row[6] == f"kubernetes.io/hostname={NODE}"
    described = k("describe", "ds", "agent").stdout
    assert "Desired Number of Nodes Scheduled: 1" in described
    assert "Pods Status:  1 Running / 0 Waiting / 0 Succeeded / 0 Failed" in described
    pod = k("get", "pods", "-o", "json").json()["items"][0]
    assert pod["spec"]["nodeName"] == NODE
    assert pod["status"]["phase"] == "Running"

    k("set", "image", "ds/agent", "agent=busybox:1.37")
    assert "successfully rolled out" in rollout_status(k)
    wait_for(lambda: images(k) == {"busybox:1.37"}, timeout=60, what="the new image")

    history = k("rollout", "history", "ds/agent").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    first = k("rollout", "history", "ds/agent", "--revision=1").stdout
    assert "busybox:1.36" in first
    revisions = k("get", "controllerrevisions", "--no-headers").stdout.splitlines()
    assert sorted(line.split()[1] for line in revisions) == ["daemonset.apps/agent"] * 2

    assert "rolled back" in k("rollout", "undo", "ds/agent").stdout
    assert "successfully rolled out" in rollout_status(k)
    wait_for(lambda: images(k) == {"busybox:1.36"}, timeout=60, what="the old image back")
    history = k("rollout", "history", "ds/agent").stdout
    # the undone template is revision 1 renumbered: Kubernetes' history then reads 2, 3
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]

    before = {p["metadata"]["uid"] for p in k("get", "pods", "-o", "json").json()["items"]}
    k("rollout", "restart", "ds/agent")
    assert "successfully rolled out" in rollout_status(k)

    def replaced() -> bool:
        pods = k("get", "pods", "-o", "json").json()["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 1 and live[0]["metadata"]["uid"] not in before

    wait_for(replaced, timeout=60, what="the restarted pod")
    k("delete", "ds", "agent")
    wait_for(
        lambda: not k("get", "pods,controllerrevisions", "-o", "name").stdout.strip(),
        timeout=60,
        what="pods and revisions to go with the DaemonSet",
    )


def test_python_client_reads_daemon_sets_and_their_revisions(node_server: Server) -> None:
    """The official client validates what it reads against its models: a strict check of
    the shapes (status counts Go always writes, a revision's number and data)."""
    namespace = create_namespace(node_server, "dspy")
    api = config.new_client_from_config(config_file=str(node_server.kubeconfig))
    try:
        apps = client.AppsV1Api(api)
        body = yaml.safe_load(manifest("busybox:1.36"))
        created = apps.create_namespaced_daemon_set(namespace, body)
        assert created.spec.update_strategy.rolling_update.max_unavailable == 1
        assert created.spec.revision_history_limit == 10

        def available() -> client.V1DaemonSet | None:
            ds = apps.read_namespaced_daemon_set("agent", namespace)
            return ds if ds.status.number_available == 1 else None

        ds = wait_for(available, timeout=60, what="the daemon pod available")
        assert ds.status.desired_number_scheduled == 1
        assert ds.status.number_misscheduled == 0
        (revision,) = apps.list_namespaced_controller_revision(namespace).items
        assert revision.revision == 1
        assert revision.data["spec"]["template"]["$patch"] == "replace"
        apps.delete_namespaced_daemon_set("agent", namespace)
    finally:
        api.close()
