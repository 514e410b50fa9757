"""RBAC over the API with real, non-privileged bearer tokens (the API server runs in this
test's event loop with extra static-token users): a 403 is Kubernetes' Status, bad access
reviews are 400/422 (never 500), a user who may not impersonate is refused, and escalation
is refused for a real user just as for an impersonated one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from setpoint.api.auth.authn import StaticTokens
from setpoint.api.auth.user import UserInfo
from setpoint.api.server import APIServer
from setpoint.api.serving import ServingLimits, TLSSite
from setpoint.pki import client_ssl_context, ensure_server_credentials
from setpoint.resources.catalog import default_registry
from setpoint.store.sqlite import SQLiteStore

ALICE = "alice-token-0123456789"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
REVIEWS = "/apis/authorization.k8s.io/v1"


@dataclass
class Served:
    url: str
    admin: str
    ca_pem: bytes

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=client_ssl_context(self.ca_pem))
            ) as session,
            session.request(
                method,
                self.url + path,
                json=body,
                headers={"Authorization": f"Bearer {token or self.admin}", **(headers or {})},
            ) as response,
        ):
            return response.status, await response.json(content_type=None)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    credentials = ensure_server_credentials(tmp_path, hosts=["127.0.0.1"])
    store = await SQLiteStore.open(tmp_path / "db" / "state.db")
    api = APIServer(
        store,
        default_registry(),
        authenticator=StaticTokens(
            [
                StaticTokens.admin(credentials.admin_token),
                (ALICE, UserInfo("alice", ("devs", "system:authenticated"))),
            ]
        ),
    )
    await api.start()
    runner = web.ServerRunner(api.http_server(ServingLimits()), handle_signals=False)
    await runner.setup()
    site = TLSSite(
        runner, "127.0.0.1", 0, ssl_context=credentials.ssl_context(), handshake_timeout=10
    )
    await site.start()
    try:
        yield Served(
            f"https://127.0.0.1:{site.port}", credentials.admin_token, credentials.ca_pem()
        )
    finally:
        api.close_watches()
        await runner.cleanup()
        await api.stop()
        await store.close()


def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name},
        "rules": rules,
    }


def binding(name: str, kind: str, role_name: str, user: str = "alice") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}],
    }


async def test_a_user_without_roles_gets_kubernetes_403(served: Served) -> None:
    status, body = await served.call("GET", "/api/v1/namespaces/default/pods", token=ALICE)
    assert status == 403
    assert body["kind"] == "Status" and body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the '
        'namespace "default"'
    )
    status, _ = await served.call("GET", "/apis", token=ALICE)  # system:discovery
    assert status == 200


async def test_a_role_binding_takes_effect_when_its_create_returns(served: Served) -> None:
    pods = role("pods", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    assert (await served.call("POST", f"{RBAC}/namespaces/default/roles", pods))[0] == 201
    rb = binding("alice-pods", "Role", "pods")
    assert (await served.call("POST", f"{RBAC}/namespaces/default/rolebindings", rb))[0] == 201
    status, _ = await served.call("GET", "/api/v1/namespaces/default/pods", token=ALICE)
    assert status == 200
    status, _ = await served.call("GET", "/api/v1/namespaces/kube-system/pods", token=ALICE)
    assert status == 403


async def test_escalation_is_refused_for_a_real_user(served: Served) -> None:
    writer = role(
        "role-writer",
        [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["roles", "rolebindings"],
                "verbs": ["create"],
            }
        ],
    )
    await served.call("POST", f"{RBAC}/namespaces/default/roles", writer)
    await served.call(
        "POST",
        f"{RBAC}/namespaces/default/rolebindings",
        binding("alice-writer", "Role", "role-writer"),
    )
    wider = role("wider", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    status, body = await served.call("POST", f"{RBAC}/namespaces/default/roles", wider, token=ALICE)
    assert status == 403
    assert body["message"] == (
        'roles.rbac.authorization.k8s.io "wider" is forbidden: user "alice" '
        '(groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
    )
    # a role within what she holds is fine
    same = role(
        "same",
        [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]}],
    )
    status, _ = await served.call("POST", f"{RBAC}/namespaces/default/roles", same, token=ALICE)
    assert status == 201
    # binding a role that does not exist is 400, one she does not hold 403
    status, body = await served.call(
        "POST",
        f"{RBAC}/namespaces/default/rolebindings",
        binding("x", "ClusterRole", "missing"),
        token=ALICE,
    )
    assert (status, body["reason"]) == (400, "BadRequest")
    status, _ = await served.call(
        "POST",
        f"{RBAC}/namespaces/default/rolebindings",
        binding("y", "ClusterRole", "cluster-admin"),
        token=ALICE,
    )
    assert status == 403


async def test_impersonation_needs_the_impersonate_verb(served: Served) -> None:
    status, body = await served.call(
        "GET", "/api/v1/namespaces/default/pods", token=ALICE, headers={"Impersonate-User": "root"}
    )
    assert status == 403
    assert body["message"] == (
        'users "root" is forbidden: User "alice" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    )
    status, body = await served.call(
        "GET", "/api/v1/namespaces/default/pods", headers={"Impersonate-Group": "devs"}
    )
    assert (status, body["reason"]) == (400, "BadRequest")
    status, body = await served.call(
        "POST",
        f"{REVIEWS}/selfsubjectrulesreviews",
        {"kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}},
        headers={"Impersonate-User": "system:serviceaccount:default:robot"},
    )
    assert status == 201
    assert body["status"]["incomplete"] is False


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (f"{REVIEWS}/subjectaccessreviews", {"spec": {"user": "bob"}}, 422),
        (
            f"{REVIEWS}/subjectaccessreviews",
            {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}},
            422,
        ),
        (
            f"{REVIEWS}/subjectaccessreviews",
            {"spec": {"user": "b", "resourceAttributes": {}, "nonResourceAttributes": {}}},
            422,
        ),
        (
            f"{REVIEWS}/namespaces/default/localsubjectaccessreviews",
            {"spec": {"user": "b", "resourceAttributes": {"namespace": "other", "verb": "get"}}},
            400,
        ),
        (f"{REVIEWS}/selfsubjectaccessreviews", [1, 2], 400),
        (f"{REVIEWS}/selfsubjectaccessreviews", {"kind": "Pod"}, 400),
    ],
)
async def test_bad_access_reviews_are_client_errors(
    served: Served, path: str, body: Any, code: int
) -> None:
    status, answer = await served.call("POST", path, body)
    assert status == code, answer
    assert answer["kind"] == "Status"


async def test_subject_access_review_answers_for_another_user(served: Served) -> None:
    review = {
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "carol",
            "groups": ["system:masters"],
            "resourceAttributes": {"verb": "delete", "resource": "nodes"},
        },
    }
    status, body = await served.call("POST", f"{REVIEWS}/subjectaccessreviews", review)
    assert (status, body["status"]["allowed"]) == (201, True)
    review["spec"]["groups"] = []
    status, body = await served.call("POST", f"{REVIEWS}/subjectaccessreviews", review)
    assert (status, body["status"]["allowed"]) == (201, False)
    # asking about others takes create on subjectaccessreviews, which alice lacks
    status, _ = await served.call("POST", f"{REVIEWS}/subjectaccessreviews", review, token=ALICE)
    assert status == 403
    status, _ = await served.call("GET", f"{REVIEWS}/subjectaccessreviews")
    assert status == 405
