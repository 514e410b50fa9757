"""ServiceAccount tokens: signed JWTs the API server issues and verifies itself.

A ServiceAccount token is a JSON Web Token signed with the cluster's service-account key
(ES256, an EC P-256 key made at the server's first start beside the CA, ``tls/sa.key``, 0600),
as kube-apiserver signs with ``--service-account-signing-key-file``. Its claims are
upstream's (``pkg/serviceaccount/claims.go``):

- ``iss`` the issuer (``--service-account-issuer``, by default
  ``https://kubernetes.default.svc.cluster.local``), ``sub``
  ``system:serviceaccount:<ns>:<name>``, ``aud`` the audiences asked for (default: the API
  server's own, which is the issuer), ``iat``, ``nbf``, ``exp`` and ``jti`` (the credential
  id audit and SelfSubjectReview show);
- ``kubernetes.io``: the namespace, the ServiceAccount's name and uid and, for a token bound
  to an object, that Pod or Secret (name and uid) and a bound pod's Node.

:class:`TokenIssuer` signs claims and publishes what a relying party needs to verify them
without asking the API server (the OIDC discovery document and the JWKS, served at
``/.well-known/openid-configuration`` and ``/openid/v1/jwks``); :func:`verify` checks a token's
signature, issuer, audience and times. Whether the ServiceAccount and the bound object still
exist is the authenticator's business (:mod:`setpoint.api.auth.serviceaccount`).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from setpoint.meta.privatefiles import private_dir, write_private_file

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SIGNING_KEY_FILE = "sa.key"
ALGORITHM = "ES256"
KUBERNETES_CLAIM = "kubernetes.io"
SERVICE_ACCOUNT_SUBJECT = "system:serviceaccount:"
# clocks of a cluster's machines disagree a little: kube-apiserver allows a minute either way
LEEWAY_SECONDS = 60
VERIFIED_CACHE_SIZE = 4096


class TokenError(Exception):
    """A token that is not (or no longer) valid; ``str()`` says why."""


@dataclass(frozen=True)
class BoundObject:
    """What a token is bound to: a Pod or Secret (name, uid), and a pod's node."""

    kind: str
    name: str
    uid: str
    node_name: str = ""
    node_uid: str = ""


@dataclass(frozen=True)
class ServiceAccountClaims:
    """The claims a verified token carries about its ServiceAccount and bound object."""

    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    expires: int
    credential_id: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    secret_name: str = ""
    secret_uid: str = ""
    node_name: str = ""
    node_uid: str = ""


def load_or_create_signing_key(tls_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The service-account signing key in ``tls_dir`` (made, 0600, on first use)."""
    private_dir(tls_dir)
    path = tls_dir / SIGNING_KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: the service-account key must be an EC P-256 key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """Upstream's ``keyIDFromPublicKey``: unpadded base64url of the SHA-256 of the DER key."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


class TokenIssuer:
    """Signs ServiceAccount tokens with one key, and verifies them."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        issuer: str = DEFAULT_ISSUER,
        audiences: Sequence[str] = (),
    ) -> None:
        self._key = key
        self.public_key = key.public_key()
        self.issuer = issuer
        # the API server's own audiences (``--api-audiences``): by default the issuer
        self.audiences: tuple[str, ...] = tuple(audiences) or (issuer,)
        self.key_id = key_id(self.public_key)
        # verified tokens: checking a signature costs ~0.1-1 ms, and a client sends the same
        # token with every request; an entry is used only until the token expires
        self._verified: OrderedDict[tuple[str, tuple[str, ...]], ServiceAccountClaims] = (
            OrderedDict()
        )

    def issue(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound: BoundObject | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A signed token for ServiceAccount ``namespace/name`` (uid ``uid``) and when it
        expires (Unix seconds)."""
        issued = int(now if now is not None else time.time())
        expires = issued + expiration_seconds
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        }
        if bound is not None:
            key = "pod" if bound.kind == "Pod" else "secret"
            private[key] = {"name": bound.name, "uid": bound.uid}
            if bound.node_name:
                private["node"] = {"name": bound.node_name, "uid": bound.node_uid}
        claims = {
            "iss": self.issuer,
            "sub": f"{SERVICE_ACCOUNT_SUBJECT}{namespace}:{name}",
            "aud": list(audiences),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "jti": str(uuid.uuid4()),
            KUBERNETES_CLAIM: private,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})
        return token, expires

    def verify(self, token: str, audiences: Sequence[str] = ()) -> ServiceAccountClaims | None:
        key = (token, tuple(audiences))
        cached = self._verified.get(key)
        if cached is not None and time.time() < cached.expires:
            self._verified.move_to_end(key)
            return cached
        claims = self._verify(token, audiences)
        if claims is not None:
            self._verified[key] = claims
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str, audiences: Sequence[str]) -> ServiceAccountClaims | None:
        """The claims of ``token`` if this issuer signed it for one of ``audiences`` (default:
        the API server's) and it is within its lifetime. None: not one of this issuer's
        tokens (another authenticator may know it). :class:`TokenError`: it is ours (by
        its ``iss``) but invalid — tampered, expired, for another audience, malformed."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None  # not a JWT at all
        if not isinstance(unverified, dict) or unverified.get("iss") != self.issuer:
            return None
        wanted = list(audiences or self.audiences)
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                audience=wanted,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "aud"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("service account token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token audiences is invalid for the target audiences") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid service account token: {exc}") from None
        return _service_account_claims(claims, wanted)

    def openid_configuration(self, jwks_uri: str) -> dict[str, Any]:
        """The OIDC discovery document (``/.well-known/openid-configuration``)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
        }

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set (``/openid/v1/jwks``)."""
        jwk = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {"keys": [{"use": "sig", "kid": self.key_id, "alg": ALGORITHM, **jwk}]}


def _service_account_claims(claims: dict[str, Any], wanted: Sequence[str]) -> ServiceAccountClaims:
    """The ``kubernetes.io`` claims checked against ``sub`` (upstream's ``validator``)."""
    private = claims.get(KUBERNETES_CLAIM)
    if not isinstance(private, dict):
        raise TokenError("service account token has no kubernetes.io claims")
    namespace = private.get("namespace")
    account = private.get("serviceaccount") or {}
    if not isinstance(namespace, str) or not isinstance(account, dict):
        raise TokenError("service account token claims are malformed")
    name, uid = account.get("name"), account.get("uid")
    if not namespace or not isinstance(name, str) or not name or not isinstance(uid, str):
        raise TokenError("service account token does not name a service account")
    if claims.get("sub") != f"{SERVICE_ACCOUNT_SUBJECT}{namespace}:{name}":
        raise TokenError("service account token subject does not match its claims")
    aud = claims.get("aud")
    token_audiences = [aud] if isinstance(aud, str) else list(aud or [])
    pod = _ref(private, "pod")
    secret = _ref(private, "secret")
    node = _ref(private, "node")
    return ServiceAccountClaims(
        namespace=namespace,
        name=name,
        uid=uid,
        audiences=tuple(a for a in token_audiences if a in wanted),
        expires=int(claims["exp"]),
        credential_id=str(claims.get("jti") or ""),
        pod_name=pod[0],
        pod_uid=pod[1],
        secret_name=secret[0],
        secret_uid=secret[1],
        node_name=node[0],
        node_uid=node[1],
    )


def _ref(private: dict[str, Any], key: str) -> tuple[str, str]:
    ref = private.get(key)
    if ref is None:
        return "", ""
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        raise TokenError(f"service account token's {key} claim is malformed")
    return ref["name"], str(ref.get("uid") or "")
