"""StatefulSets end to end: `setpoint server` with its controllers, scheduler and local node
agent (the ``node_server`` fixture) running the pods' real processes, driven by the real
kubectl: apply with a headless Service, pods up in order with their claims, ``get sts,pvc``,
scale down from the top, data kept per claim, a rolling update from the highest ordinal,
``rollout status/history/undo``, and bad input answered with 422 Statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests import objects
from tests.support import Kubectl, Server, create_namespace, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

NODE = "node-server-node"


@pytest.fixture
def k(node_server: Server) -> Kubectl:
    return Kubectl(node_server, create_namespace(node_server, "sts"))


def manifest(image: str = "busybox:1.36", replicas: int = 3, **spec: object) -> str:
    """A headless Service and a StatefulSet ``web`` whose pods note each start in their
    claim (``/data/starts``) and sleep."""
    command = ["sh", "-c", "date >> /data/starts; exec sleep 3600"]
    containers = [
        objects.container(
            "app", image, command=command, volumeMounts=[{"name": "data", "mountPath": "/data"}]
        )
    ]
    sts = objects.stateful_set(
        "web",
        containers=containers,
        replicas=replicas,
        serviceName="web",
        volumeClaimTemplates=[
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
        **spec,
    )
    sts["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": NODE}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    return yaml.safe_dump_all([service, sts])


def rollout_status(k: Kubectl) -> str:
    return k("rollout", "status", "sts/web", "--timeout=120s", timeout=150).stdout


def live_pods(k: Kubectl) -> dict[str, dict]:
    items = k("get", "pods", "-o", "json").json()["items"]
    return {p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")}


def events(k: Kubectl, reason: str) -> list[str]:
    """The messages of the StatefulSet's events of ``reason``, in the order they were last
    made (a repeated message counts up its event, which moves it to the end)."""
    items = k("get", "events", "--field-selector", f"reason={reason}", "-o", "json").json()
    ordered = sorted(items["items"], key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [e["message"] for e in ordered if e["involvedObject"]["kind"] == "StatefulSet"]


def settled(k: Kubectl, count: int) -> bool:
    sts = k("get", "sts", "web", "-o", "json").json()
    status = sts.get("status") or {}
    return (
        status.get("observedGeneration") == sts["metadata"]["generation"]
        and status.get("readyReplicas", 0) == count
        and status.get("updatedReplicas", 0) == count
        and status.get("currentRevision") == status.get("updateRevision")
        and len(live_pods(k)) == count
    )


def test_ordered_pods_claims_scaling_and_rolling_update(k: Kubectl, node_server: Server) -> None:
    k("apply", "-f", "-", input=manifest())
    assert "partitioned roll out complete: 3 new pods have been updated" in rollout_status(k)
    wait_for(lambda: settled(k, 3), timeout=60, what="3 ready pods")
    assert events(k, "SuccessfulCreate") == [
        message
        for i in range(3)
        for message in (
            f"create Claim data-web-{i} Pod web-{i} in StatefulSet web success",
            f"create Pod web-{i} in StatefulSet web successful",
        )
    ]
    pods = live_pods(k)
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    assert pods["web-1"]["spec"]["hostname"] == "web-1"
    assert pods["web-1"]["spec"]["subdomain"] == "web"

    table = k("get", "sts,pvc").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "AGE"]
    assert table[1].split()[:2] == ["statefulset.apps/web", "3/3"]
    assert table[3].split() == [
        "NAME",
        "STATUS",
        "VOLUME",
        "CAPACITY",
        "ACCESS",
        "MODES",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "AGE",
    ]
    claims = [line.split() for line in table[4:]]
    assert [c[:3] for c in claims] == [
        ["persistentvolumeclaim/data-web-0", "Pending", "<unset>"],
        ["persistentvolumeclaim/data-web-1", "Pending", "<unset>"],
        ["persistentvolumeclaim/data-web-2", "Pending", "<unset>"],
    ]

    described = k("describe", "sts", "web").stdout
    assert "3 Running / 0 Waiting / 0 Succeeded / 0 Failed" in described, described
    assert "create Pod web-2 in StatefulSet web successful" in described

    k("scale", "sts", "web", "--replicas=1")
    wait_for(lambda: settled(k, 1), timeout=90, what="one pod left")
    assert events(k, "SuccessfulDelete") == [
        "delete Pod web-2 in StatefulSet web successful",
        "delete Pod web-1 in StatefulSet web successful",
    ]
    # claims are retained (whenScaled: Retain), and a pod that comes back finds its data
    claim = k("get", "pvc", "data-web-1", "-o", "json").json()
    k("scale", "sts", "web", "--replicas=3")
    wait_for(lambda: settled(k, 3), timeout=90, what="3 pods again")
    starts = Path(node_server.data_dir) / "agent" / "claims" / claim["metadata"]["uid"] / "starts"
    wait_for(
        lambda: starts.exists() and len(starts.read_text().splitlines()) == 2,
        timeout=30,
        what="a second start noted in web-1's claim",
    )

    k("set", "image", "sts/web", "app=busybox:1.37")
    assert "partitioned roll out complete: 3 new pods have been updated" in rollout_status(k)
    wait_for(lambda: settled(k, 3), timeout=120, what="all pods updated")
    images = {p["spec"]["containers"][0]["image"] for p in live_pods(k).values()}
    assert images == {"busybox:1.37"}
    # web-2's and web-1's events of the scale-down are counted again (same message), so
    # their last change orders them
    assert events(k, "SuccessfulDelete") == [
        f"delete Pod web-{i} in StatefulSet web successful" for i in (2, 1, 0)
    ]

    history = k("rollout", "history", "sts/web").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    assert "rolled back" in k("rollout", "undo", "sts/web").stdout
    rollout_status(k)
    wait_for(lambda: settled(k, 3), timeout=120, what="the old image back")
    images = {p["spec"]["containers"][0]["image"] for p in live_pods(k).values()}
    assert images == {"busybox:1.36"}


def test_bad_stateful_sets_are_422s(k: Kubectl) -> None:
    bad = yaml.safe_load_all(manifest(replicas=0))
    sts = list(bad)[1]
    sts["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    result = k("apply", "-f", "-", input=yaml.safe_dump(sts), check=False)
    assert result.returncode != 0
    assert 'The StatefulSet "web" is invalid' in result.stderr
    assert "`selector` does not match template `labels`" in result.stderr

    result = k("apply", "-f", "-", input=manifest(replicas=-1), check=False)
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in result.stderr

    k("apply", "-f", "-", input=manifest(replicas=0))
    forbidden = "spec: Forbidden: updates to statefulset spec for fields other than"
    for change in (
        {"serviceName": "other"},
        {"selector": {"matchLabels": {"app": "web", "tier": "db"}}},
    ):
        sts = list(yaml.safe_load_all(manifest(replicas=0)))[1]
        sts["spec"].update(change)
        if "selector" in change:
            sts["spec"]["template"]["metadata"]["labels"]["tier"] = "db"
        result = k("apply", "-f", "-", input=yaml.safe_dump(sts), check=False)
        assert result.returncode != 0 and forbidden in result.stderr, result.stderr
    sts = list(yaml.safe_load_all(manifest(replicas=0)))[1]
    sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "2Gi"
    result = k("replace", "-f", "-", input=yaml.safe_dump(sts), check=False)
    assert forbidden in result.stderr


def test_python_client_reads_stateful_sets_and_claims(node_server: Server) -> None:
    """The official client validates what it reads against its models: a strict check of
    the shapes (the status fields Go always writes, a claim's phase, the scale)."""
    namespace = create_namespace(node_server, "stspy")
    api = config.new_client_from_config(config_file=str(node_server.kubeconfig))
    try:
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        body = list(yaml.safe_load_all(manifest(replicas=1)))[1]
        created = apps.create_namespaced_stateful_set(namespace, body)
        assert created.spec.pod_management_policy == "OrderedReady"
        assert created.spec.update_strategy.rolling_update.partition == 0
        assert created.spec.persistent_volume_claim_retention_policy.when_scaled == "Retain"
        assert created.spec.volume_claim_templates[0].status.phase == "Pending"

        def ready() -> client.V1StatefulSet | None:
            sts = apps.read_namespaced_stateful_set("web", namespace)
            return sts if sts.status.ready_replicas == 1 else None

        sts = wait_for(ready, timeout=60, what="web-0 ready")
        assert sts.status.current_revision == sts.status.update_revision
        (claim,) = core.list_namespaced_persistent_volume_claim(namespace).items
        assert claim.metadata.name == "data-web-0" and claim.status.phase == "Pending"
        scale = apps.read_namespaced_stateful_set_scale("web", namespace)
        assert scale.spec.replicas == 1 and scale.status.selector == "app=web"
        apps.delete_namespaced_stateful_set("web", namespace)
    finally:
        api.close()
