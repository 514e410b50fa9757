"""Deletion semantics: finalizers, propagation policies, preconditions, namespaces."""

from __future__ import annotations

from tests import objects
from tests.support import Server

CM = "/api/v1/namespaces/{ns}/configmaps"


def create_cm(server: Server, ns: str, name: str, finalizers: list[str] | None = None) -> dict:
    meta: dict[str, object] = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    status, body, _ = server.request("POST", CM.format(ns=ns), {"metadata": meta})
    assert status == 201, body
    return body


def test_object_with_finalizer_is_marked_not_removed(server: Server, namespace: str) -> None:
    create_cm(server, namespace, "held", ["example.com/hold"])
    status, body, _ = server.request("DELETE", CM.format(ns=namespace) + "/held")
    assert status == 200
    assert body["metadata"]["deletionTimestamp"]
    status, body, _ = server.request("GET", CM.format(ns=namespace) + "/held")
    assert status == 200 and body["metadata"]["deletionTimestamp"]


def test_removing_the_last_finalizer_removes_the_object(server: Server, namespace: str) -> None:
    create_cm(server, namespace, "held", ["example.com/hold"])
    server.request("DELETE", CM.format(ns=namespace) + "/held")
    status, _, _ = server.request(
        "PATCH",
        CM.format(ns=namespace) + "/held",
        raw=b'{"metadata":{"finalizers":null}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200
    status, _, _ = server.request("GET", CM.format(ns=namespace) + "/held")
    assert status == 404


def test_foreground_and_orphan_policies_add_their_finalizers(
    server: Server, namespace: str
) -> None:
    for name, policy, finalizer in (
        ("fg", "Foreground", "foregroundDeletion"),
        ("or", "Orphan", "orphan"),
    ):
        create_cm(server, namespace, name)
        status, body, _ = server.request(
            "DELETE",
            CM.format(ns=namespace) + f"/{name}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy},
        )
        assert status == 200
        assert body["metadata"]["finalizers"] == [finalizer]


def test_background_policy_removes_at_once(server: Server, namespace: str) -> None:
    create_cm(server, namespace, "bg")
    status, body, _ = server.request(
        "DELETE", CM.format(ns=namespace) + "/bg?propagationPolicy=Background"
    )
    assert status == 200 and body["status"] == "Success"
    status, _, _ = server.request("GET", CM.format(ns=namespace) + "/bg")
    assert status == 404


def test_failed_uid_precondition_is_409_and_keeps_the_object(
    server: Server, namespace: str
) -> None:
    create_cm(server, namespace, "pre")
    status, body, _ = server.request(
        "DELETE",
        CM.format(ns=namespace) + "/pre",
        {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "nope"}},
    )
    assert status == 409
    assert "Precondition failed" in body["message"]
    status, _, _ = server.request("GET", CM.format(ns=namespace) + "/pre")
    assert status == 200


def test_unscheduled_pod_is_deleted_at_once(server: Server, namespace: str) -> None:
    pod = objects.pod("p", containers=[objects.container("c", command=["sleep", "9"])])
    status, _, _ = server.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert status == 201
    status, body, _ = server.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/p")
    assert status == 200 and body["kind"] == "Pod"
    status, _, _ = server.request("GET", f"/api/v1/namespaces/{namespace}/pods/p")
    assert status == 404


def test_bound_pod_is_deleted_gracefully(server: Server, namespace: str) -> None:
    pod = objects.pod("p", containers=[objects.container("c", command=["sleep", "9"])])
    server.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    status, _, _ = server.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods/p/binding",
        objects.binding("p", "node-a"),
    )
    assert status == 201
    status, body, _ = server.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/p")
    assert status == 200
    assert body["metadata"]["deletionGracePeriodSeconds"] == 30
    assert body["metadata"]["deletionTimestamp"]
    status, body, _ = server.request(
        "DELETE",
        f"/api/v1/namespaces/{namespace}/pods/p",
        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
    )
    assert status == 200
    status, _, _ = server.request("GET", f"/api/v1/namespaces/{namespace}/pods/p")
    assert status == 404


def test_deleting_a_namespace_makes_it_terminating_and_closed(server: Server) -> None:
    server.request("POST", "/api/v1/namespaces", objects.namespace("doomed"))
    status, body, _ = server.request("DELETE", "/api/v1/namespaces/doomed")
    assert status == 200
    assert body["status"]["phase"] == "Terminating"
    status, body, _ = server.request("POST", CM.format(ns="doomed"), {"metadata": {"name": "x"}})
    assert status == 403
    # NamespaceLifecycle's answer, with the cause controllers recognise
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'configmaps "x" is forbidden: unable to create new content in namespace doomed '
        "because it is being terminated"
    )
    assert body["details"] == {
        "name": "x",
        "kind": "configmaps",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace doomed is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }
    # what the namespace controller does once the namespace is empty
    status, body, _ = server.request(
        "PUT",
        "/api/v1/namespaces/doomed/finalize",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "doomed"},
            "spec": {"finalizers": []},
        },
    )
    assert status == 200, body
    status, _, _ = server.request("GET", "/api/v1/namespaces/doomed")
    assert status == 404
