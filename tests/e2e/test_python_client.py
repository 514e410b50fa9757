"""The official Kubernetes Python client against a real setpoint server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.support import Server, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(server: Server) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(server.kubeconfig))
    yield api_client
    api_client.close()


def configmap(name: str, labels: dict[str, str] | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}), data={"k": name}
    )


def test_create_and_read_back(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, configmap("a"))
    assert created.metadata.uid and created.metadata.resource_version
    read = core.read_namespaced_config_map("a", namespace)
    assert read.data == {"k": "a"}
    assert read.metadata.creation_timestamp is not None


def test_list_with_label_and_field_selectors(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(6):
        core.create_namespaced_config_map(
            namespace, configmap(f"cm{i}", {"parity": "even" if i % 2 == 0 else "odd"})
        )
    even = core.list_namespaced_config_map(namespace, label_selector="parity=even")
    assert sorted(cm.metadata.name for cm in even.items) == ["cm0", "cm2", "cm4"]
    notodd = core.list_namespaced_config_map(namespace, label_selector="parity notin (odd)")
    assert len(notodd.items) == 3
    by_name = core.list_namespaced_config_map(namespace, field_selector="metadata.name=cm3")
    assert [cm.metadata.name for cm in by_name.items] == ["cm3"]


def test_paging_with_limit_and_continue_returns_everything_once(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    for i in range(25):
        core.create_namespaced_config_map(namespace, configmap(f"p{i:02d}"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(namespace, limit=10, _continue=token)
        pages += 1
        seen += [cm.metadata.name for cm in page.items]
        token = page.metadata._continue
        if not token:
            break
        # writes between pages do not disturb the snapshot the pages come from
        core.create_namespaced_config_map(namespace, configmap(f"late{pages}"))
    assert pages == 3
    assert seen == [f"p{i:02d}" for i in range(25)]


def test_update_with_stale_resource_version_conflicts(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, configmap("c"))
    first = core.read_namespaced_config_map("c", namespace)
    second = core.read_namespaced_config_map("c", namespace)
    first.data = {"k": "first"}
    core.replace_namespaced_config_map("c", namespace, first)
    second.data = {"k": "second"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("c", namespace, second)
    assert caught.value.status == 409
    assert "the object has been modified" in caught.value.body
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "first"}


def test_watch_streams_events_and_resumes_from_resource_version(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    listing = core.list_namespaced_config_map(namespace)
    start_rv = listing.metadata.resource_version
    events: list[tuple[str, str]] = []

    def follow() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=start_rv,
            timeout_seconds=20,
        ):
            events.append((event["type"], event["object"].metadata.name))
            if len(events) >= 3:
                w.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    core.create_namespaced_config_map(namespace, configmap("w1"))
    core.patch_namespaced_config_map(
        "w1", namespace, {"data": {"k": "changed"}}, _content_type="application/merge-patch+json"
    )
    core.delete_namespaced_config_map("w1", namespace)
    thread.join(timeout=20)
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]

    # resuming from the list's resourceVersion replays the same history
    replay: list[str] = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, namespace, resource_version=start_rv, timeout_seconds=5
    ):
        replay.append(event["type"])
        if len(replay) == 3:
            w.stop()
    assert replay == ["ADDED", "MODIFIED", "DELETED"]


def test_apps_and_batch_objects_round_trip(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": "x"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="x", image="busybox", command=["sleep", "60"])]
        ),
    )
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="x"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "x"}),
            template=template,
        ),
    )
    created = apps.create_namespaced_deployment(namespace, dep)
    assert created.metadata.generation == 1
    created.spec.replicas = 3
    updated = apps.replace_namespaced_deployment("x", namespace, created)
    assert updated.metadata.generation == 2
    scale = apps.read_namespaced_deployment_scale("x", namespace)
    assert scale.spec.replicas == 3
    batch = client.BatchV1Api(api)
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="j"),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="j", image="busybox", command=["true"])],
                )
            )
        ),
    )
    batch.create_namespaced_job(namespace, job)
    wait_for(lambda: batch.read_namespaced_job("j", namespace), what="the job")
    deleted = apps.delete_namespaced_deployment("x", namespace)
    assert deleted["status"] == "Success"  # this client returns delete answers as dicts


def test_discovery_through_get_api_versions(api: client.ApiClient, server: Server) -> None:
    """The client validates APIVersions: serverAddressByClientCIDRs must be a list."""
    versions = client.CoreApi(api).get_api_versions()
    assert versions.versions == ["v1"]
    [address] = versions.server_address_by_client_cidrs
    assert address.client_cidr == "0.0.0.0/0"
    assert address.server_address == f"127.0.0.1:{server.port}"


def test_new_objects_carry_the_structs_go_always_encodes(
    api: client.ApiClient, namespace: str
) -> None:
    """``job.status.succeeded`` must be readable on a Job nothing has run yet, as on
    Kubernetes, where an empty status is still ``"status": {}``."""
    apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)
    pod_spec = client.V1PodSpec(
        restart_policy="Never",
        containers=[client.V1Container(name="c", image="busybox", command=["true"])],
    )
    job = batch.create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="j"),
            spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=pod_spec)),
        ),
    )
    assert job.status is not None and job.status.succeeded is None
    assert job.spec.template.metadata is not None
    assert batch.read_namespaced_job_status("j", namespace).status is not None
    cronjob = batch.create_namespaced_cron_job(
        namespace,
        client.V1CronJob(
            metadata=client.V1ObjectMeta(name="cj"),
            spec=client.V1CronJobSpec(
                schedule="0 0 1 1 *",
                job_template=client.V1JobTemplateSpec(
                    spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=pod_spec))
                ),
            ),
        ),
    )
    assert cronjob.status is not None and cronjob.status.last_schedule_time is None
    assert cronjob.spec.job_template.metadata is not None
    selector = client.V1LabelSelector(match_labels={"app": "s"})
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": "s"}), spec=pod_spec
    )
    template.spec.restart_policy = "Always"
    deployment = apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="d"),
            spec=client.V1DeploymentSpec(replicas=0, selector=selector, template=template),
        ),
    )
    assert deployment.status is not None and deployment.status.ready_replicas is None
    replica_set = apps.create_namespaced_replica_set(
        namespace,
        client.V1ReplicaSet(
            metadata=client.V1ObjectMeta(name="rs"),
            spec=client.V1ReplicaSetSpec(replicas=0, selector=selector, template=template),
        ),
    )
    assert replica_set.status is not None
    listed = apps.list_namespaced_replica_set(namespace)
    assert all(item.status is not None for item in listed.items)
    lease = client.CoordinationV1Api(api).create_namespaced_lease(
        namespace, client.V1Lease(metadata=client.V1ObjectMeta(name="l"))
    )
    assert lease.spec is not None and lease.spec.holder_identity is None
