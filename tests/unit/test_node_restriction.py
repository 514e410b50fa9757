"""NodeRestriction admission: a node's writes to objects not its own are refused."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.api.admission import CREATE, DELETE, UPDATE, AdmissionRequest
from setpoint.api.auth.user import UserInfo
from setpoint.api.errors import APIError
from setpoint.api.noderestriction import NodeRestriction, forbidden_labels
from setpoint.resources.catalog import default_registry

REGISTRY = default_registry()
N1 = UserInfo("system:node:n1", ("system:nodes",))
PODS: dict[tuple[str, str], dict[str, Any]] = {
    ("ns", "mine"): {"metadata": {"name": "mine", "uid": "u1"}, "spec": {"nodeName": "n1"}},
    ("ns", "theirs"): {"metadata": {"name": "theirs", "uid": "u2"}, "spec": {"nodeName": "n2"}},
}
plugin = NodeRestriction(lambda ns, name: PODS.get((ns, name)))


def rtype(group: str, plural: str) -> Any:
    found = next(t for t in REGISTRY.types if (t.group, t.plural) == (group, plural))
    return found


async def check(operation: str, group: str, plural: str, name: str, **kwargs: Any) -> None:
    request = AdmissionRequest(operation, rtype(group, plural), kwargs.pop("ns", None), name, N1)
    for key, value in kwargs.items():
        setattr(request, key, value)
    await plugin.validate(request)


async def refused(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(APIError) as caught:
        await check(*args, **kwargs)
    assert caught.value.code == 403
    return str(caught.value)


def node(labels: dict[str, str] | None = None, taints: list[Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "n1", "labels": labels or {}}, "spec": {"taints": taints or []}}


async def test_node_creates_and_updates_only_itself() -> None:
    await check(CREATE, "", "nodes", "n1", obj=node({"kubernetes.io/hostname": "n1"}))
    assert "not allowed to modify node" in await refused(CREATE, "", "nodes", "n2", obj=node())
    assert "not allowed to modify node" in await refused(
        UPDATE, "", "nodes", "n2", obj=node(), old=node()
    )


async def test_node_may_not_change_its_taints() -> None:
    tainted = node(taints=[{"key": "k", "effect": "NoSchedule"}])
    assert "taints" in await refused(UPDATE, "", "nodes", "n1", obj=node(), old=tainted)


def test_restricted_and_unknown_kubernetes_labels() -> None:
    assert forbidden_labels({"node-restriction.kubernetes.io/a": "1"}, {}) == [
        "node-restriction.kubernetes.io/a"
    ]
    assert forbidden_labels({"x.node-restriction.kubernetes.io/a": "1"}, {})
    assert forbidden_labels({"node-role.kubernetes.io/control-plane": ""}, {})
    assert not forbidden_labels({"kubernetes.io/hostname": "n1", "example.com/x": "y"}, {})
    assert not forbidden_labels({"node.kubernetes.io/instance-type": "big"}, {})


async def test_node_creates_no_pods() -> None:
    assert "can not create pods" in await refused(CREATE, "", "pods", "p", ns="ns", obj={})


async def test_node_updates_status_and_deletes_only_its_pods() -> None:
    mine, theirs = PODS[("ns", "mine")], PODS[("ns", "theirs")]
    await check(UPDATE, "", "pods", "mine", ns="ns", obj=mine, old=mine, subresource="status")
    assert "spec.nodeName set to itself" in await refused(
        UPDATE, "", "pods", "theirs", ns="ns", obj=theirs, old=theirs, subresource="status"
    )
    relabelled = {**mine, "metadata": {**mine["metadata"], "labels": {"a": "b"}}}
    assert "only update the status" in await refused(
        UPDATE, "", "pods", "mine", ns="ns", obj=relabelled, old=mine
    )
    await check(DELETE, "", "pods", "mine", ns="ns", old=mine)
    assert "delete pods" in await refused(DELETE, "", "pods", "theirs", ns="ns", old=theirs)


async def test_node_may_annotate_its_pods_assigned_ports_only() -> None:
    mine, theirs = PODS[("ns", "mine")], PODS[("ns", "theirs")]

    def annotated(pod: dict[str, Any]) -> dict[str, Any]:
        annotations = {"setpoint.io/assigned-ports": "{}"}
        return {**pod, "metadata": {**pod["metadata"], "annotations": annotations}}

    await check(UPDATE, "", "pods", "mine", ns="ns", obj=annotated(mine), old=mine)
    assert "spec.nodeName set to itself" in await refused(
        UPDATE, "", "pods", "theirs", ns="ns", obj=annotated(theirs), old=theirs
    )


async def test_node_lease_only_its_own() -> None:
    await check(CREATE, "coordination.k8s.io", "leases", "n1", ns="kube-node-lease", obj={})
    await refused(CREATE, "coordination.k8s.io", "leases", "n2", ns="kube-node-lease", obj={})
    await refused(CREATE, "coordination.k8s.io", "leases", "n1", ns="default", obj={})


async def test_token_request_must_bind_to_a_pod_on_the_node() -> None:
    def request(name: str, uid: str) -> dict[str, Any]:
        ref = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}
        return {"spec": {"boundObjectRef": ref}}

    args = (CREATE, "", "serviceaccounts", "sa")
    await check(*args, ns="ns", subresource="token", obj=request("mine", "u1"))
    assert "different node" in await refused(
        *args, ns="ns", subresource="token", obj=request("theirs", "u2")
    )
    assert "does not match" in await refused(
        *args, ns="ns", subresource="token", obj=request("mine", "old")
    )
    assert "not bound to a pod" in await refused(*args, ns="ns", subresource="token", obj={})


async def test_others_pass() -> None:
    request = AdmissionRequest(CREATE, rtype("", "pods"), "ns", "p", UserInfo("admin"), obj={})
    await plugin.validate(request)
    request.user = None
    await plugin.validate(request)
