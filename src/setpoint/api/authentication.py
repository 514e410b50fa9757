"""The ``authentication.k8s.io`` API as the API server answers it: TokenRequest (the
``serviceaccounts/token`` subresource), TokenReview, SelfSubjectReview, and the service-account
issuer's discovery documents.

- ``POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`` with a TokenRequest
  (``kubectl create token``) answers 201 with the same TokenRequest and a signed token in
  its status, as ``pkg/registry/core/serviceaccount/storage/token.go`` does: audiences default
  to the API server's, ``expirationSeconds`` to 3600 and must lie between 600 (10 minutes)
  and 2^32 (422 otherwise); a ``boundObjectRef`` names a Pod or Secret of the namespace that
  must exist (404) with the uid given, if one is (409); a pod bound to a node binds the token
  to that node too. Any other kind to bind to is a 400.
- ``POST /apis/authentication.k8s.io/v1/tokenreviews`` says what a token proves: every token
  authenticator is asked, with the review's audiences (default: the API server's).
- ``POST /apis/authentication.k8s.io/v1/selfsubjectreviews`` (``kubectl auth whoami``)
  answers who the caller is.
- ``GET /.well-known/openid-configuration`` and ``GET /openid/v1/jwks`` publish the issuer
  and its public key, so that others can verify the tokens without calling the API server.

None of these objects is stored. They go through authentication and authorization like any
other request (kube-apiserver's ``system:service-account-issuer-discovery`` role is what
grants the two discovery paths there).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from setpoint.api import errors, negotiation
from setpoint.api.admission import CREATE, AdmissionRequest
from setpoint.api.auth.authn import AuthenticatorChain
from setpoint.api.auth.tokens import BoundObject, TokenIssuer
from setpoint.api.auth.user import request_user
from setpoint.api.bodies import read_body
from setpoint.api.storage import ResourceStorage
from setpoint.meta.timestamps import rfc3339
from setpoint.resources.fielderrors import invalid_value, required
from setpoint.resources.registry import Obj
from setpoint.resources.schema import DecodeError, SchemaSet

GROUP_VERSION = "authentication.k8s.io/v1"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600  # MinTokenAgeSec: 10 minutes
MAX_EXPIRATION_SECONDS = 1 << 32  # MaxTokenAgeSec


@functools.cache
def _schemas() -> SchemaSet:
    return SchemaSet()


def decode_review(body: Any, kind: str) -> Obj:
    """An ``authentication.k8s.io/v1`` object of ``kind`` from a request body, checked
    against its schema: 400 for a body that is not one."""
    if isinstance(body, dict):
        version, given = body.get("apiVersion"), body.get("kind")
        if version not in (None, "", GROUP_VERSION):
            raise errors.bad_request(
                f"the API version in the data ({version}) does not match the expected API "
                f"version ({GROUP_VERSION})"
            )
        if given not in (None, "", kind):
            raise errors.bad_request(
                f"the kind in the data ({given}) does not match the expected kind ({kind})"
            )
    decoder = _schemas().decoder(f"io.k8s.api.authentication.v1.{kind}", kind, GROUP_VERSION)
    try:
        obj = decoder.decode(body).obj
    except DecodeError as exc:
        raise errors.bad_request(str(exc)) from None
    obj["apiVersion"], obj["kind"] = GROUP_VERSION, kind
    return obj


def _answer(obj: Obj, status: int = 201) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=negotiation.JSON)


def _metadata(obj: Obj) -> Obj:
    meta = dict(obj.get("metadata") or {})
    meta["creationTimestamp"] = None
    return meta


class Reviews:
    """TokenReview and SelfSubjectReview."""

    def __init__(self, authenticator: AuthenticatorChain | None) -> None:
        self.authenticator = authenticator

    async def self_subject_review(
        self, request: web.BaseRequest, namespace: str | None = None
    ) -> web.Response:
        review = decode_review(await read_body(request), "SelfSubjectReview")
        user = request_user(request)
        assert user is not None  # reviews are authenticated requests
        review["metadata"] = _metadata(review)
        review["status"] = {"userInfo": user.as_user_info()}
        return _answer(review)

    async def token_review(
        self, request: web.BaseRequest, namespace: str | None = None
    ) -> web.Response:
        """``TokenReview``: a review without a token is 422, as upstream's validation says."""
        review = decode_review(await read_body(request), "TokenReview")
        spec = review.get("spec") or {}
        token = str(spec.get("token") or "")
        if not token:
            raise errors.invalid_kind(
                "TokenReview", "authentication.k8s.io", "", [required("spec.token")]
            )
        audiences = [str(a) for a in spec.get("audiences") or []]
        result = None
        if self.authenticator is not None:
            result = await self.authenticator.authenticate_token(token, audiences)
        status: Obj = {"user": {}}
        if result is not None and result.user is not None:
            status = {"authenticated": True, "user": result.user.as_user_info()}
            if result.audiences:
                status["audiences"] = list(result.audiences)
        elif result is not None or audiences:
            status["error"] = "[invalid bearer token, token lookup failed]"
        review["metadata"] = _metadata(review)
        review["status"] = status
        return _answer(review)


class TokenRequests:
    """``serviceaccounts/token``: tokens for a ServiceAccount, signed by ``issuer``."""

    def __init__(
        self,
        issuer: TokenIssuer,
        *,
        service_accounts: ResourceStorage,
        pods: ResourceStorage,
        secrets: ResourceStorage,
        nodes: ResourceStorage,
        validate: Callable[[AdmissionRequest], Awaitable[None]] | None = None,
    ) -> None:
        self.issuer = issuer
        # NodeRestriction's check of a node's request (bound to a pod of its own)
        self.validate = validate
        self.service_accounts = service_accounts
        self.pods = pods
        self.secrets = secrets
        self.nodes = nodes

    async def serve(self, request: web.BaseRequest, namespace: str, name: str) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed(request.method)
        token_request = decode_review(await read_body(request), "TokenRequest")
        meta = token_request.get("metadata") or {}
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        spec = token_request.setdefault("spec", {})
        expiration = spec.get("expirationSeconds")
        if expiration is None:
            expiration = spec["expirationSeconds"] = DEFAULT_EXPIRATION_SECONDS
        problems = []
        if expiration < MIN_EXPIRATION_SECONDS:
            problems.append(
                invalid_value(
                    "spec.expirationSeconds",
                    expiration,
                    "may not specify a duration less than 10 minutes",
                )
            )
        if expiration > MAX_EXPIRATION_SECONDS:
            problems.append(
                invalid_value(
                    "spec.expirationSeconds",
                    expiration,
                    "may not specify a duration larger than 2^32 seconds",
                )
            )
        if problems:
            raise errors.invalid_kind("TokenRequest", "authentication.k8s.io", "", problems)
        account = (await self.service_accounts.get(namespace, name)).obj
        if self.validate is not None:
            await self.validate(
                AdmissionRequest(
                    CREATE,
                    self.service_accounts.rtype,
                    namespace,
                    name,
                    request_user(request),
                    obj=token_request,
                    subresource="token",
                )
            )
        bound = await self._bound_object(namespace, spec.get("boundObjectRef"))
        audiences = [str(a) for a in spec.get("audiences") or []] or list(self.issuer.audiences)
        spec["audiences"] = audiences
        token, expires = self.issuer.issue(
            namespace=namespace,
            name=name,
            uid=str(account["metadata"].get("uid") or ""),
            audiences=audiences,
            expiration_seconds=int(expiration),
            bound=bound,
        )
        token_request["metadata"] = {
            **meta,
            "name": name,
            "namespace": namespace,
            "creationTimestamp": rfc3339(expires - int(expiration)),
        }
        token_request["status"] = {"token": token, "expirationTimestamp": rfc3339(expires)}
        return _answer(token_request)

    async def _bound_object(self, namespace: str, ref: Obj | None) -> BoundObject | None:
        if not ref:
            return None
        kind, version = str(ref.get("kind") or ""), str(ref.get("apiVersion") or "")
        name, uid = str(ref.get("name") or ""), str(ref.get("uid") or "")
        group = version.rpartition("/")[0] if "/" in version else ""
        if group or kind not in ("Pod", "Secret"):
            shown = f"{group}/{version.rpartition('/')[2]}, Kind={kind}"
            raise errors.bad_request(f"cannot bind token to object of type {shown}")
        if not name:
            raise errors.invalid_kind(
                "TokenRequest", "authentication.k8s.io", "", [required("spec.boundObjectRef.name")]
            )
        storage = self.pods if kind == "Pod" else self.secrets
        obj = (await storage.get(namespace, name)).obj
        actual = str(obj["metadata"].get("uid") or "")
        if uid and uid != actual:
            raise errors.APIError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind} "{name}": the UID in the bound object '
                f"reference ({uid}) does not match the UID in record. The object might have "
                "been deleted and then recreated",
                details={"name": name, "kind": kind},
            )
        node_name = node_uid = ""
        if kind == "Pod":
            node_name = str((obj.get("spec") or {}).get("nodeName") or "")
            if node_name:
                node = self.nodes.cache.get(self.nodes.key(None, node_name))
                node_uid = str(node.obj["metadata"].get("uid") or "") if node else ""
        return BoundObject(kind, name, actual, node_name=node_name, node_uid=node_uid)


class IssuerDiscovery:
    """The issuer's OIDC discovery document and key set."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer
        self.configuration = orjson.dumps(
            issuer.openid_configuration(issuer.issuer.rstrip("/") + JWKS_PATH)
        )
        self.jwks = orjson.dumps(issuer.jwks())

    def serve(self, request: web.BaseRequest) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(request.method)
        if request.path == OPENID_CONFIGURATION_PATH:
            body, content_type = self.configuration, negotiation.JSON
        else:
            body, content_type = self.jwks, "application/jwk-set+json"
        return web.Response(
            body=body,
            headers={"Content-Type": content_type, "Cache-Control": "public, max-age=3600"},
        )
