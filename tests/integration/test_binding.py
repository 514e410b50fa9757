"""``pods/binding``: how the scheduler (or anyone) assigns a pod to a node."""

from __future__ import annotations

from typing import Any

from tests import objects
from tests.support import Server


def _pod(name: str, **meta: Any) -> dict[str, Any]:
    """A pod with more ``meta``data, that the session's scheduler leaves alone."""
    return objects.pod(
        name,
        metadata=meta,
        containers=[objects.container("c", command=["sleep", "9"])],
        schedulerName="nobody",
    )


def test_binding_sets_the_node_and_the_scheduled_condition(server: Server, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    status, created, _ = server.request("POST", pods, _pod("p"))
    assert status == 201
    status, body, _ = server.request("POST", f"{pods}/p/binding", objects.binding("p", "node-a"))
    assert (status, body["status"], body["code"]) == (201, "Success", 201)
    status, bound, _ = server.request("GET", f"{pods}/p")
    assert bound["spec"]["nodeName"] == "node-a"
    scheduled = [c for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert len(scheduled) == 1 and scheduled[0]["status"] == "True"
    assert int(bound["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    # as in Kubernetes, a binding is not a field manager's write
    assert bound["metadata"]["managedFields"] == created["metadata"]["managedFields"]

    status, body, _ = server.request("POST", f"{pods}/p/binding", objects.binding("p", "node-b"))
    assert (status, body["reason"]) == (409, "Conflict")
    assert 'pod p is already assigned to node "node-a"' in body["message"]
    status, again, _ = server.request("GET", f"{pods}/p")
    assert again["spec"]["nodeName"] == "node-a"


def test_binding_bad_requests(server: Server, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    status, body, _ = server.request(
        "POST", f"{pods}/missing/binding", objects.binding("missing", "node-a")
    )
    assert (status, body["reason"]) == (404, "NotFound")
    server.request("POST", pods, _pod("q"))
    nameless = objects.binding("q", "node-a")
    del nameless["target"]["name"]
    status, body, _ = server.request("POST", f"{pods}/q/binding", nameless)
    assert (status, body["reason"]) == (422, "Invalid")
    assert "target.name: Required value" in body["message"]
    status, body, _ = server.request("POST", f"{pods}/q/binding", ["not", "an", "object"])
    assert status == 400


def test_a_pod_being_deleted_cannot_be_bound(server: Server, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    server.request("POST", pods, _pod("r", finalizers=["example.com/hold"]))
    status, _, _ = server.request("DELETE", f"{pods}/r")
    assert status == 200
    status, body, _ = server.request("POST", f"{pods}/r/binding", objects.binding("r", "node-a"))
    assert (status, body["reason"]) == (409, "Conflict")
    assert "being deleted" in body["message"]
    merge = {"Content-Type": "application/merge-patch+json"}
    server.request("PATCH", f"{pods}/r", {"metadata": {"finalizers": None}}, headers=merge)


def test_binding_checks_its_target_and_adds_its_annotations(server: Server, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    server.request("POST", pods, _pod("s", annotations={"kept": "yes"}))
    wrong_kind = objects.binding("s", "node-a")
    wrong_kind["target"]["kind"] = "Pod"
    status, body, _ = server.request("POST", f"{pods}/s/binding", wrong_kind)
    assert (status, body["reason"]) == (422, "Invalid")
    assert (
        'target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>"'
        in (body["message"])
    )
    status, body, _ = server.request("POST", f"{pods}/s/binding", {"target": "node-a"})
    assert status == 400
    bad_value = {
        **objects.binding("s", "node-a"),
        "metadata": {"name": "s", "annotations": {"a": 1}},
    }
    status, body, _ = server.request("POST", f"{pods}/s/binding", bad_value)
    assert status == 400
    bad_key = {
        **objects.binding("s", "node-a"),
        "metadata": {"name": "s", "annotations": {"no pe": "x"}},
    }
    status, body, _ = server.request("POST", f"{pods}/s/binding", bad_key)
    assert (status, body["reason"]) == (422, "Invalid")
    status, pod, _ = server.request("GET", f"{pods}/s")
    assert not pod["spec"].get("nodeName")  # nothing was written

    good = {
        **objects.binding("s", "node-a"),
        "metadata": {"name": "s", "annotations": {"placed-by": "me"}},
    }
    status, _, _ = server.request("POST", f"{pods}/s/binding", good)
    assert status == 201
    status, pod, _ = server.request("GET", f"{pods}/s")
    assert pod["spec"]["nodeName"] == "node-a"
    assert pod["metadata"]["annotations"] == {"kept": "yes", "placed-by": "me"}
