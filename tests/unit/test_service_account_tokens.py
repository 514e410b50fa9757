"""ServiceAccount tokens as the API server signs and verifies them: upstream's claims, and
every way a token stops proving anything (expired, another audience, tampered, another
issuer or key)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from setpoint.api.admission_plugins.serviceaccount import (
    MOUNT_PATH,
    mount_service_account_token,
    should_automount,
)
from setpoint.api.auth.serviceaccount import service_account_user
from setpoint.api.auth.tokens import BoundObject, TokenError, TokenIssuer

ISSUER = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer(ec.generate_private_key(ec.SECP256R1()))


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def issue(issuer: TokenIssuer, **kwargs: object) -> str:
    args: dict[str, object] = {
        "namespace": "shop",
        "name": "robot",
        "uid": "sa-uid",
        "audiences": [ISSUER],
        "expiration_seconds": 3600,
    }
    args.update(kwargs)
    token, _ = issuer.issue(**args)  # type: ignore[arg-type]
    return token


def test_claims_are_upstreams(issuer: TokenIssuer) -> None:
    bound = BoundObject("Pod", "web", "pod-uid", node_name="n1", node_uid="node-uid")
    token = issue(issuer, bound=bound, now=1000)
    claims = claims_of(token)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "system:serviceaccount:shop:robot"
    assert claims["aud"] == [ISSUER]
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (1000, 1000, 4600)
    assert claims["kubernetes.io"] == {
        "namespace": "shop",
        "serviceaccount": {"name": "robot", "uid": "sa-uid"},
        "pod": {"name": "web", "uid": "pod-uid"},
        "node": {"name": "n1", "uid": "node-uid"},
    }
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES256" and header["kid"] == issuer.key_id


def test_a_valid_token_proves_its_service_account_and_pod(issuer: TokenIssuer) -> None:
    token = issue(issuer, bound=BoundObject("Pod", "web", "pod-uid", "n1", "node-uid"))
    claims = issuer.verify(token)
    assert claims is not None
    user = service_account_user(claims)
    assert user.name == "system:serviceaccount:shop:robot"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:shop")
    assert user.uid == "sa-uid"
    extra = user.extra_dict()
    assert extra["authentication.kubernetes.io/pod-name"] == ["web"]
    assert extra["authentication.kubernetes.io/pod-uid"] == ["pod-uid"]
    assert extra["authentication.kubernetes.io/node-name"] == ["n1"]


def test_expired_token_is_refused(issuer: TokenIssuer) -> None:
    token = issue(issuer, expiration_seconds=600, now=time.time() - 3600)
    with pytest.raises(TokenError, match="expired"):
        issuer.verify(token)


def test_token_for_another_audience_is_refused(issuer: TokenIssuer) -> None:
    token = issue(issuer, audiences=["vault"])
    with pytest.raises(TokenError, match="audience"):
        issuer.verify(token)
    assert issuer.verify(token, ["vault"]) is not None


def test_tampered_token_is_refused(issuer: TokenIssuer) -> None:
    header, payload, signature = issue(issuer).split(".")
    claims = claims_of(f"{header}.{payload}.{signature}")
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(TokenError):
        issuer.verify(f"{header}.{forged}.{signature}")


def test_token_signed_by_another_key_is_refused(issuer: TokenIssuer) -> None:
    other = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(TokenError):
        issuer.verify(issue(other))


def test_token_of_another_issuer_or_no_jwt_is_not_ours(issuer: TokenIssuer) -> None:
    other = TokenIssuer(ec.generate_private_key(ec.SECP256R1()), issuer="https://elsewhere")
    assert issuer.verify(issue(other)) is None
    assert issuer.verify("0123456789abcdef") is None


def test_jwks_publishes_the_signing_key(issuer: TokenIssuer) -> None:
    (key,) = issuer.jwks()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"] == issuer.key_id


def test_token_volume_is_mounted_in_every_container() -> None:
    spec = {
        "initContainers": [{"name": "init"}],
        "containers": [
            {"name": "app"},
            {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
        ],
    }
    mount_service_account_token(spec)
    (volume,) = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert volume["projected"]["sources"][0] == {
        "serviceAccountToken": {"path": "token", "expirationSeconds": 3607}
    }
    mount = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT_PATH}]


def test_the_pods_automount_choice_wins_over_the_service_accounts() -> None:
    assert should_automount({}, {})
    assert not should_automount({"automountServiceAccountToken": False}, {})
    assert should_automount(
        {"automountServiceAccountToken": False}, {"automountServiceAccountToken": True}
    )
