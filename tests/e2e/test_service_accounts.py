"""ServiceAccounts end to end on a whole single-machine cluster (the ``node_server``
fixture): the ``default`` ServiceAccount and ``kube-root-ca.crt`` in every new namespace,
``kubectl create token`` and ``kubectl auth whoami`` with the real kubectl, the tokens the
API server refuses, and a pod that finds its token where in-cluster clients look and
authenticates as its ServiceAccount."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import pytest
from kubernetes import client, config

from setpoint.api.auth.tokens import TokenIssuer, load_or_create_signing_key
from tests import objects
from tests.support import Kubectl, Server, create_namespace, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

Obj = dict[str, Any]
ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture
def ns(node_server: Server) -> str:
    return create_namespace(node_server, "sa")


@pytest.fixture
def k(node_server: Server, ns: str) -> Kubectl:
    wait_for(
        lambda: (
            node_server.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200
        ),
        timeout=10,
        what="the default ServiceAccount",
    )
    return Kubectl(node_server, ns)


def whoami(k: Kubectl, token: str) -> Obj:
    result = k.run("--token", token, "auth", "whoami", "-o", "json", check=False)
    return {"rc": result.returncode, "out": result.stdout, "err": result.stderr}


def test_default_service_account_and_root_ca_appear_in_a_new_namespace(
    node_server: Server, k: Kubectl
) -> None:
    """Within a second, once the controller manager runs (the ``k`` fixture waited for
    that in a namespace of its own)."""

    def found(path: str) -> Any:
        status, body, _ = node_server.request("GET", path)
        return body if status == 200 else None

    ns = create_namespace(node_server, "fresh")
    started = time.monotonic()
    wait_for(
        lambda: found(f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
        timeout=5,
        what="the default ServiceAccount",
    )
    assert time.monotonic() - started < 1.0
    cm = wait_for(
        lambda: found(f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt"),
        timeout=5,
        what="kube-root-ca.crt",
    )
    assert cm["data"]["ca.crt"] == node_server.ca_file.read_text()


def test_deleted_default_service_account_comes_back(node_server: Server, k: Kubectl) -> None:
    uid = k("get", "sa", "default", "-o", "json").json()["metadata"]["uid"]
    k("delete", "sa", "default")
    wait_for(
        lambda: (
            k("get", "sa", "default", "-o", "json", check=False).returncode == 0
            and k("get", "sa", "default", "-o", "json").json()["metadata"]["uid"] != uid
        ),
        timeout=10,
        what="a new default ServiceAccount",
    )


def test_create_token_and_whoami_as_the_service_account(k: Kubectl, ns: str) -> None:
    k("create", "serviceaccount", "robot")
    token = k("create", "token", "robot").stdout.strip()
    result = whoami(k, token)
    assert result["rc"] == 0, result
    info = json.loads(result["out"])["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{ns}:robot"
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    ]
    assert info["uid"] == k("get", "sa", "robot", "-o", "json").json()["metadata"]["uid"]


def test_token_for_another_audience_is_refused(k: Kubectl) -> None:
    token = k("create", "token", "default", "--audience=vault").stdout.strip()
    assert "Unauthorized" in whoami(k, token)["err"]


def test_tampered_token_is_refused(k: Kubectl) -> None:
    token = k("create", "token", "default").stdout.strip()
    header, payload, signature = token.split(".")
    forged = ".".join(
        (header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB"))
    )
    assert "Unauthorized" in whoami(k, forged)["err"]


def test_token_of_a_deleted_service_account_is_refused(k: Kubectl) -> None:
    k("create", "serviceaccount", "doomed")
    token = k("create", "token", "doomed").stdout.strip()
    assert whoami(k, token)["rc"] == 0
    k("delete", "serviceaccount", "doomed")
    assert "Unauthorized" in whoami(k, token)["err"]


def test_too_short_a_duration_is_invalid(k: Kubectl) -> None:
    result = k.run("create", "token", "default", "--duration=5m", check=False)
    assert "may not specify a duration less than 10 minutes" in result.stderr


def test_token_of_a_missing_service_account_is_not_found(k: Kubectl) -> None:
    result = k.run("create", "token", "nobody", check=False)
    assert 'serviceaccounts "nobody" not found' in result.stderr


def test_pod_with_a_missing_service_account_is_refused(k: Kubectl, ns: str) -> None:
    pod = objects.pod("lost", serviceAccountName="ghost")
    result = k.run("create", "-f", "-", input=json.dumps(pod), check=False)
    assert (
        f'error looking up service account {ns}/ghost: serviceaccount "ghost" not found'
        in result.stderr
    )


def test_pod_gets_the_token_volume_and_authenticates_as_its_service_account(
    k: Kubectl, ns: str
) -> None:
    script = (
        "import kubernetes.client as c, kubernetes.config as cfg;"
        "cfg.load_incluster_config();"
        "r=c.AuthenticationV1Api().create_self_subject_review(c.V1SelfSubjectReview());"
        "print('user=' + r.status.user_info.username, flush=True);"
        "import time; time.sleep(3600)"
    )
    # in the node's network: the node_server fixture's API server listens on loopback only,
    # which a pod with a network namespace of its own cannot reach (see the docs)
    pod = objects.pod(
        "incluster",
        hostNetwork=True,
        containers=[{"name": "app", "image": "python", "command": [sys.executable, "-c", script]}],
    )
    k("create", "-f", "-", input=json.dumps(pod))
    created = k("get", "pod", "incluster", "-o", "json").json()
    spec = created["spec"]
    assert spec["serviceAccountName"] == "default"
    (volume,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert [sorted(s) for s in volume["projected"]["sources"]] == [
        ["serviceAccountToken"],
        ["configMap"],
        ["downwardAPI"],
    ]
    assert spec["containers"][0]["volumeMounts"] == [
        {
            "name": volume["name"],
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
    ]
    logs = wait_for(
        lambda: "user=" in (out := k.run("logs", "incluster", check=False).stdout) and out,
        timeout=60,
        what="the pod to authenticate",
    )
    assert f"user=system:serviceaccount:{ns}:default" in logs


def test_token_bound_to_a_deleted_pod_is_refused(k: Kubectl) -> None:
    pod = objects.pod(
        "bound", containers=[{"name": "app", "image": "x", "command": ["sleep", "3600"]}]
    )
    k("create", "-f", "-", input=json.dumps(pod))
    token = k(
        "create", "token", "default", "--bound-object-kind=Pod", "--bound-object-name=bound"
    ).stdout.strip()
    result = whoami(k, token)
    assert result["rc"] == 0, result
    extra = json.loads(result["out"])["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["bound"]
    k("delete", "pod", "bound", "--grace-period=0", "--force")
    wait_for(
        lambda: "Unauthorized" in whoami(k, token)["err"], timeout=20, what="the token refused"
    )


def test_pod_without_automount_gets_no_token_volume(k: Kubectl) -> None:
    pod = objects.pod("quiet", automountServiceAccountToken=False)
    k("create", "-f", "-", input=json.dumps(pod))
    spec = k("get", "pod", "quiet", "-o", "json").json()["spec"]
    assert not [v for v in spec.get("volumes") or [] if v["name"].startswith("kube-api-access-")]


def test_python_client_finds_the_default_service_account_of_a_new_namespace(
    node_server: Server, k: Kubectl
) -> None:
    """The official client's own e2e tests wait for it before they create pods (``k``:
    once the controller manager runs)."""
    api = config.new_client_from_config(config_file=str(node_server.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        name = f"pyc-{uuid.uuid4().hex[:8]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        account = wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=2,
            what="the default ServiceAccount",
        )
        assert account.metadata.name == "default"
        token = core.create_namespaced_service_account_token(
            "default",
            name,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        )
        assert token.status.token.count(".") == 2
        assert token.spec.expiration_seconds == 3600
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        assert review.status.user_info.username == "admin"
    finally:
        api.close()


def test_token_review_says_what_a_token_proves(node_server: Server, k: Kubectl, ns: str) -> None:
    token = k("create", "token", "default").stdout.strip()
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
    status, body, _ = node_server.request(
        "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {**review, "spec": {"token": token}}
    )
    assert status == 201, body
    assert body["status"]["authenticated"] is True
    assert body["status"]["user"]["username"] == f"system:serviceaccount:{ns}:default"
    assert body["status"]["audiences"] == [ISSUER]
    status, body, _ = node_server.request(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {**review, "spec": {"token": token, "audiences": ["vault"]}},
    )
    assert status == 201 and not body["status"].get("authenticated"), body
    status, body, _ = node_server.request(
        "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {**review, "spec": {}}
    )
    assert status == 422, body


def test_expired_token_is_refused(node_server: Server, k: Kubectl, ns: str) -> None:
    """Signed with the cluster's own key (TokenRequest never issues one this short)."""
    key = load_or_create_signing_key(node_server.data_dir / "tls")
    uid = k("get", "sa", "default", "-o", "json").json()["metadata"]["uid"]
    token, _ = TokenIssuer(key).issue(
        namespace=ns,
        name="default",
        uid=uid,
        audiences=[ISSUER],
        expiration_seconds=600,
        now=time.time() - 3600,
    )
    assert "Unauthorized" in whoami(k, token)["err"]
    fresh, _ = TokenIssuer(key).issue(
        namespace=ns, name="default", uid=uid, audiences=[ISSUER], expiration_seconds=600
    )
    assert whoami(k, fresh)["rc"] == 0


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"spec": {"expirationSeconds": "soon"}}, 400, "expirationSeconds"),
        ([1, 2], 400, ""),
        (
            {
                "spec": {
                    "boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "x"}
                }
            },
            400,
            "cannot bind token to object of type apps/v1, Kind=Deployment",
        ),
        (
            {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "nope"}}},
            404,
            'pods "nope" not found',
        ),
        ({"spec": {"expirationSeconds": 1 << 33}}, 422, "larger than 2^32 seconds"),
        ({"apiVersion": "v1", "kind": "Pod"}, 400, "does not match the expected"),
    ],
)
def test_bad_token_requests_get_a_status(
    node_server: Server, k: Kubectl, ns: str, body: Any, code: int, message: str
) -> None:
    status, answer, _ = node_server.request(
        "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token", body
    )
    assert status == code, answer
    assert answer["kind"] == "Status" and message in answer["message"], answer


def test_token_bound_to_a_recreated_pod_uid_is_a_conflict(
    node_server: Server, k: Kubectl, ns: str
) -> None:
    pod = objects.pod(
        "rebound", containers=[{"name": "app", "image": "x", "command": ["sleep", "3600"]}]
    )
    k("create", "-f", "-", input=json.dumps(pod))
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "rebound", "uid": str(uuid.uuid4())}
    status, answer, _ = node_server.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/default/token",
        {"spec": {"boundObjectRef": ref}},
    )
    assert status == 409 and "does not match the UID in record" in answer["message"], answer


def test_issuer_discovery_documents(node_server: Server) -> None:
    status, body, _ = node_server.request("GET", "/.well-known/openid-configuration")
    assert status == 200 and body["issuer"] == ISSUER, body
    assert body["jwks_uri"] == f"{ISSUER}/openid/v1/jwks"
    status, body, _ = node_server.request("GET", "/openid/v1/jwks")
    assert status == 200 and body["keys"][0]["alg"] == "ES256", body
    status, body, _ = node_server.request("GET", "/openid/v1/jwks", token=None)
    assert status == 401, body


def test_reviews_are_only_created(node_server: Server) -> None:
    for method, path in (
        ("GET", "/apis/authentication.k8s.io/v1/tokenreviews"),
        ("DELETE", "/apis/authentication.k8s.io/v1/selfsubjectreviews"),
        ("GET", "/apis/authentication.k8s.io/v1/selfsubjectreviews/mine"),
    ):
        status, body, _ = node_server.request(method, path)
        assert status == 405 and body["kind"] == "Status", (method, path, body)
    status, body, _ = node_server.request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {"kind": "TokenReview"}
    )
    assert status == 400 and "does not match the expected kind" in body["message"], body
