"""``pods/ephemeralcontainers`` against a real server (no node): what it reads, what a write
through it may change, and the 422s for what it may not, in Kubernetes' words."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests import objects
from tests.support import Server

Obj = dict[str, Any]
SMP = {"Content-Type": "application/strategic-merge-patch+json"}
DEBUGGER = objects.container("debugger", command=["sh", "-c", "echo hi"])


def pods_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")


@pytest.fixture
def web(server: Server, namespace: str) -> str:
    """The pod ``web`` (container ``app``, an emptyDir ``scratch``); its path."""
    pod = objects.pod(
        "web",
        containers=[objects.container("app", command=["sleep", "1000"])],
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    status, body, _ = server.request("POST", pods_path(namespace), pod)
    assert status == 201, body
    return pods_path(namespace, "web")


def add(server: Server, path: str, *containers: Obj) -> tuple[int, Any]:
    """Patch ``containers`` into the pod's ephemeral containers, as kubectl debug does."""
    patch = {"spec": {"ephemeralContainers": list(containers)}}
    status, body, _ = server.request("PATCH", f"{path}/ephemeralcontainers", patch, headers=SMP)
    return status, body


def causes(body: Obj) -> list[str]:
    return [f"{c['field']}: {c['message']}" for c in body["details"]["causes"]]


def test_get_answers_the_pod(server: Server, web: str) -> None:
    status, body, _ = server.request("GET", f"{web}/ephemeralcontainers")
    assert status == 200
    assert body["kind"] == "Pod" and body["metadata"]["name"] == "web"


def test_strategic_merge_patch_adds_a_defaulted_ephemeral_container(
    server: Server, web: str
) -> None:
    _, before, _ = server.request("GET", web)
    status, body = add(server, web, DEBUGGER)
    assert status == 200, body
    [added] = body["spec"]["ephemeralContainers"]
    assert added["name"] == "debugger" and added["command"] == ["sh", "-c", "echo hi"]
    assert added["terminationMessagePolicy"] == "File"  # defaulted as any container
    assert added["imagePullPolicy"] == "Always"
    assert body["metadata"]["generation"] == before["metadata"]["generation"] + 1
    managers = {(f["manager"], f.get("subresource")) for f in body["metadata"]["managedFields"]}
    assert any(sub == "ephemeralcontainers" for _, sub in managers)
    status, second = add(server, web, objects.container("other", command=["true"]))
    assert status == 200, second
    assert sorted(c["name"] for c in second["spec"]["ephemeralContainers"]) == ["debugger", "other"]


def test_a_write_through_it_changes_nothing_but_ephemeral_containers(
    server: Server, web: str
) -> None:
    patch = {
        "metadata": {"labels": {"sneaky": "yes"}},
        "spec": {
            "activeDeadlineSeconds": 5,
            "containers": [{"name": "app", "image": "nginx"}],
            "ephemeralContainers": [DEBUGGER],
        },
    }
    status, body, _ = server.request("PATCH", f"{web}/ephemeralcontainers", patch, headers=SMP)
    assert status == 200, body
    assert "sneaky" not in (body["metadata"].get("labels") or {})
    assert "activeDeadlineSeconds" not in body["spec"]
    assert body["spec"]["containers"][0]["image"] == "busybox"
    assert [c["name"] for c in body["spec"]["ephemeralContainers"]] == ["debugger"]


def test_put_replaces_the_pod_with_its_ephemeral_containers(server: Server, web: str) -> None:
    _, pod, _ = server.request("GET", web)
    pod["spec"]["ephemeralContainers"] = [DEBUGGER]
    status, body, _ = server.request("PUT", f"{web}/ephemeralcontainers", pod)
    assert status == 200, body
    assert [c["name"] for c in body["spec"]["ephemeralContainers"]] == ["debugger"]


def test_removing_one_is_422(server: Server, web: str) -> None:
    assert add(server, web, DEBUGGER)[0] == 200
    _, pod, _ = server.request("GET", web)
    pod["spec"]["ephemeralContainers"] = []
    status, body, _ = server.request("PUT", f"{web}/ephemeralcontainers", pod)
    assert status == 422, body
    assert body["reason"] == "Invalid"
    assert causes(body) == [
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may not '
        "be removed\n"
    ]
    assert body["message"].startswith('Pod "web" is invalid: spec.ephemeralContainers')


def test_changing_one_is_422(server: Server, web: str) -> None:
    assert add(server, web, DEBUGGER)[0] == 200
    status, body = add(server, web, {"name": "debugger", "command": ["sh"]})
    assert status == 422, body
    [cause] = causes(body)
    assert cause.startswith(
        'spec.ephemeralContainers: Forbidden: existing ephemeral containers "debugger" may '
        "not be changed\n"
    )


def test_fields_an_ephemeral_container_may_not_have_are_422(server: Server, web: str) -> None:
    bad = {
        **DEBUGGER,
        "ports": [{"containerPort": 80}],
        "readinessProbe": {"tcpSocket": {"port": 80}},
        "targetContainerName": "nope",
    }
    status, body = add(server, web, bad)
    assert status == 422, body
    assert causes(body) == [
        'spec.ephemeralContainers[0].targetContainerName: Not found: "nope"',
        "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
        "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral "
        "Container",
    ]


def test_a_name_taken_by_a_container_is_422(server: Server, web: str) -> None:
    status, body = add(server, web, {**DEBUGGER, "name": "app"})
    assert status == 422, body
    assert causes(body) == ['spec.ephemeralContainers[0].name: Duplicate value: "app"']


def test_the_pod_itself_cannot_get_them(server: Server, namespace: str, web: str) -> None:
    status, body, _ = server.request(
        "PATCH", web, {"spec": {"ephemeralContainers": [DEBUGGER]}}, headers=SMP
    )
    assert status == 422, body
    assert causes(body)[0].startswith("spec: Forbidden: pod updates may not change fields")
    pod = objects.pod("born-with", ephemeralContainers=[DEBUGGER])
    status, body, _ = server.request("POST", pods_path(namespace), pod)
    assert status == 422, body
    assert causes(body) == ["spec.ephemeralContainers: Forbidden: cannot be set on create"]


def test_delete_and_post_are_not_allowed(server: Server, web: str) -> None:
    status, _, _ = server.request("DELETE", f"{web}/ephemeralcontainers")
    assert status == 405
    status, _, _ = server.request("POST", f"{web}/ephemeralcontainers", {})
    assert status == 405


def test_missing_pod_is_404(server: Server, namespace: str) -> None:
    status, body = add(server, pods_path(namespace, "nope"), DEBUGGER)
    assert status == 404 and body["details"]["name"] == "nope"


def test_discovery_advertises_the_subresource(server: Server) -> None:
    status, body, _ = server.request("GET", "/api/v1")
    assert status == 200
    entry = next(r for r in body["resources"] if r["name"] == "pods/ephemeralcontainers")
    assert entry["kind"] == "Pod" and entry["verbs"] == ["get", "patch", "update"]


def test_official_client_adds_and_reads_them(
    core: client.CoreV1Api, namespace: str, web: str
) -> None:
    container = client.V1EphemeralContainer(
        name="debugger", image="busybox", command=["sh"], target_container_name="app"
    )
    body = core.api_client.sanitize_for_serialization(container)
    patched = core.patch_namespaced_pod_ephemeralcontainers(
        "web", namespace, {"spec": {"ephemeralContainers": [body]}}
    )
    assert [c.name for c in patched.spec.ephemeral_containers] == ["debugger"]
    read = core.read_namespaced_pod_ephemeralcontainers("web", namespace)
    assert read.spec.ephemeral_containers[0].target_container_name == "app"
