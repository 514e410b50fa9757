"""The Eviction subresource of pods against a real server (no controllers: each test writes
the PodDisruptionBudget status the disruption controller would)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests import objects
from tests.support import Server

Obj = dict[str, Any]
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def pods_path(namespace: str, name: str = "", sub: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/pods"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def pdb_path(namespace: str, name: str = "", sub: str = "") -> str:
    path = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def eviction(name: str, **delete_options: Any) -> Obj:
    body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


def running_pod(server: Server, namespace: str, name: str, *, ready: bool = True) -> Obj:
    """A pod bound to a node (that nobody runs) and reported Running, Ready or not."""
    pod = objects.pod(name, labels={"app": "web"})
    status, _, _ = server.request("POST", pods_path(namespace), pod)
    assert status == 201
    status, _, _ = server.request(
        "POST", pods_path(namespace, name, "binding"), objects.binding(name, "node-a")
    )
    assert status == 201
    _, current, _ = server.request("GET", pods_path(namespace, name))
    current["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    status, written, _ = server.request("PUT", pods_path(namespace, name, "status"), current)
    assert status == 200, written
    return written


def budget(server: Server, namespace: str, name: str = "web", **status: Any) -> Obj:
    """A budget over ``app: web`` with ``minAvailable: 2`` and the given status, as the
    disruption controller would have written it."""
    pdb = objects.pod_disruption_budget(name, match_labels={"app": "web"}, minAvailable=2)
    code, created, _ = server.request("POST", pdb_path(namespace), pdb)
    assert code == 201, created
    created["status"] = {"observedGeneration": 1, **status}
    code, written, _ = server.request("PUT", pdb_path(namespace, name, "status"), created)
    assert code == 200, written
    return written


def evict(server: Server, namespace: str, body: Obj, name: str = "") -> tuple[int, Any, Any]:
    name = name or body["metadata"]["name"]
    return server.request("POST", pods_path(namespace, name, "eviction"), body)


def get(server: Server, path: str) -> Obj:
    status, body, _ = server.request("GET", path)
    assert status == 200, body
    return body


def condition(pod: Obj, kind: str) -> Obj | None:
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == kind), None)


def test_discovery_names_pods_eviction_as_policy_v1_eviction(server: Server) -> None:
    resources = get(server, "/api/v1")["resources"]
    entry = next(r for r in resources if r["name"] == "pods/eviction")
    assert entry == {
        "name": "pods/eviction",
        "singularName": "",
        "namespaced": True,
        "group": "policy",
        "version": "v1",
        "kind": "Eviction",
        "verbs": ["create"],
    }


def test_a_pod_without_a_budget_is_evicted_at_once(server: Server, namespace: str) -> None:
    running_pod(server, namespace, "a")
    status, body, _ = evict(server, namespace, eviction("a", gracePeriodSeconds=7))
    assert status == 201
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    }
    pod = get(server, pods_path(namespace, "a"))
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 7
    target = condition(pod, "DisruptionTarget")
    assert target is not None
    assert (target["status"], target["reason"], target["message"]) == (
        "True",
        "EvictionByEvictionAPI",
        "Eviction API: evicting",
    )


def test_an_allowed_eviction_spends_the_budget_and_records_the_pod(
    server: Server, namespace: str
) -> None:
    running_pod(server, namespace, "a")
    running_pod(server, namespace, "b")
    budget(server, namespace, disruptionsAllowed=1, currentHealthy=3, desiredHealthy=2)
    status, _, _ = evict(server, namespace, eviction("a"))
    assert status == 201
    spent = get(server, pdb_path(namespace, "web"))["status"]
    assert spent["disruptionsAllowed"] == 0
    assert list(spent["disruptedPods"]) == ["a"]
    assert spent["conditions"][0]["reason"] == "InsufficientPods"

    status, refused, headers = evict(server, namespace, eviction("b"))
    assert status == 429
    assert refused == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": VIOLATION,
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web needs 2 healthy pods and has 3 currently",
                }
            ]
        },
        "code": 429,
    }
    assert "Retry-After" not in headers
    assert "deletionTimestamp" not in get(server, pods_path(namespace, "b"))["metadata"]


def test_a_budget_not_yet_seen_by_the_controller_says_retry_after_10(
    server: Server, namespace: str
) -> None:
    running_pod(server, namespace, "a")
    pdb = objects.pod_disruption_budget("web", match_labels={"app": "web"}, minAvailable=1)
    server.request("POST", pdb_path(namespace), pdb)
    status, body, headers = evict(server, namespace, eviction("a"))
    assert status == 429
    assert headers["Retry-After"] == "10"
    assert body["details"]["causes"][0]["message"] == (
        "The disruption budget web is still being processed by the server."
    )


def test_a_pod_of_two_budgets_is_500(server: Server, namespace: str) -> None:
    running_pod(server, namespace, "a")
    budget(server, namespace, "one", disruptionsAllowed=1)
    budget(server, namespace, "two", disruptionsAllowed=1)
    status, body, _ = evict(server, namespace, eviction("a"))
    assert status == 500
    assert body["message"] == (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
        "not support."
    )


def test_an_unready_pod_goes_without_spending_while_the_application_is_whole(
    server: Server, namespace: str
) -> None:
    running_pod(server, namespace, "sick", ready=False)
    budget(server, namespace, disruptionsAllowed=1, currentHealthy=2, desiredHealthy=2)
    status, _, _ = evict(server, namespace, eviction("sick"))
    assert status == 201
    assert get(server, pdb_path(namespace, "web"))["status"]["disruptionsAllowed"] == 1
    assert get(server, pods_path(namespace, "sick"))["metadata"]["deletionTimestamp"]


def test_always_allow_evicts_unready_pods_of_a_disrupted_application(
    server: Server, namespace: str
) -> None:
    running_pod(server, namespace, "sick", ready=False)
    budget(server, namespace, disruptionsAllowed=0, currentHealthy=1, desiredHealthy=2)
    assert evict(server, namespace, eviction("sick"))[0] == 429
    pdb = get(server, pdb_path(namespace, "web"))
    pdb["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    assert server.request("PUT", pdb_path(namespace, "web"), pdb)[0] == 200
    # the spec changed: the budget counts again once the controller has seen it
    pdb = get(server, pdb_path(namespace, "web"))
    pdb["status"]["observedGeneration"] = pdb["metadata"]["generation"]
    assert server.request("PUT", pdb_path(namespace, "web", "status"), pdb)[0] == 200
    assert evict(server, namespace, eviction("sick"))[0] == 201


def test_a_pending_pod_is_deleted_whatever_its_budget_says(server: Server, namespace: str) -> None:
    pod = objects.pod("waiting", labels={"app": "web"})
    server.request("POST", pods_path(namespace), pod)
    budget(server, namespace, disruptionsAllowed=0)
    assert evict(server, namespace, eviction("waiting"))[0] == 201
    assert server.request("GET", pods_path(namespace, "waiting"))[0] == 404


def test_a_dry_run_eviction_spends_and_deletes_nothing(server: Server, namespace: str) -> None:
    running_pod(server, namespace, "a")
    budget(server, namespace, disruptionsAllowed=1)
    path = pods_path(namespace, "a", "eviction") + "?dryRun=All"
    assert server.request("POST", path, eviction("a"))[0] == 201
    assert get(server, pdb_path(namespace, "web"))["status"]["disruptionsAllowed"] == 1
    pod = get(server, pods_path(namespace, "a"))
    assert "deletionTimestamp" not in pod["metadata"]
    assert condition(pod, "DisruptionTarget") is None


def test_a_stale_resource_version_precondition_is_409(server: Server, namespace: str) -> None:
    running_pod(server, namespace, "a")
    status, body, _ = evict(
        server, namespace, eviction("a", preconditions={"resourceVersion": "1"})
    )
    assert status == 409, body
    assert "deletionTimestamp" not in get(server, pods_path(namespace, "a"))["metadata"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (eviction("other"), 400),
        ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a"}, "x": 1}, 201),
        ({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": 5}}, 400),
        ({"apiVersion": "apps/v1", "kind": "Eviction", "metadata": {"name": "a"}}, 400),
        ({"kind": "Eviction", "metadata": {"name": "a"}, "deleteOptions": {"dryRun": ["x"]}}, 400),
    ],
)
def test_eviction_bodies_are_checked(server: Server, namespace: str, body: Obj, code: int) -> None:
    running_pod(server, namespace, "a")
    status, answer, _ = evict(server, namespace, body, name="a")
    assert status == code, answer
    if code >= 400:
        assert answer["kind"] == "Status"


def test_only_post_is_served_and_a_missing_pod_is_404(server: Server, namespace: str) -> None:
    running_pod(server, namespace, "a")
    assert server.request("GET", pods_path(namespace, "a", "eviction"))[0] == 405
    status, body, _ = evict(server, namespace, eviction("ghost"))
    assert (status, body["reason"]) == (404, "NotFound")


# --- the official Python client -------------------------------------------------------------


def test_python_client_evicts_and_sees_the_429(
    server: Server, namespace: str, core: client.CoreV1Api
) -> None:
    running_pod(server, namespace, "a")
    running_pod(server, namespace, "b")
    budget(server, namespace, disruptionsAllowed=1, currentHealthy=2, desiredHealthy=1)

    def body(name: str) -> client.V1Eviction:
        return client.V1Eviction(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace),
            delete_options=client.V1DeleteOptions(grace_period_seconds=5),
        )

    core.create_namespaced_pod_eviction("a", namespace, body("a"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod_eviction("b", namespace, body("b"))
    assert caught.value.status == 429
    assert caught.value.reason == "Too Many Requests"
    policy = client.PolicyV1Api(core.api_client)
    pdb = policy.read_namespaced_pod_disruption_budget("web", namespace)
    assert pdb.status.disruptions_allowed == 0
    assert list(pdb.status.disrupted_pods) == ["a"]
