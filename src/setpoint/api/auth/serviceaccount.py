"""The ServiceAccount token authenticator (kube-apiserver's ``--service-account-*`` one).

A bearer token that the cluster's :class:`~setpoint.api.auth.tokens.TokenIssuer` signed is
checked (signature, issuer, audience, lifetime), and then against what the API server holds
now, as upstream's ``legacy``/``validator`` does: the ServiceAccount must still exist with the
uid the token names and not be being deleted, and so must the Pod or Secret the token is
bound to (a pod whose graceful deletion has run out counts as gone). The identity is
``system:serviceaccount:<ns>:<name>`` in ``system:serviceaccounts`` and
``system:serviceaccounts:<ns>``, with the ServiceAccount's uid, and for a pod-bound token the
extra attributes ``authentication.kubernetes.io/pod-name``, ``pod-uid``, ``node-name``,
``node-uid``; every token also carries its ``credential-id``.

A token the issuer did not sign is none of this authenticator's business (the next one may
know it); one that it signed but that is no longer valid proves nothing, so the request is
401 whatever else might know the token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from setpoint.api.auth.authn import TokenResult, bearer_token
from setpoint.api.auth.tokens import ServiceAccountClaims, TokenError, TokenIssuer
from setpoint.api.auth.user import SERVICE_ACCOUNT_PREFIX, SERVICE_ACCOUNTS_GROUP, UserInfo
from setpoint.meta.timestamps import parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]

POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"


class ObjectGetter(Protocol):
    async def get_object(self, plural: str, namespace: str, name: str) -> Obj | None:
        """The core/v1 object ``plural`` ``namespace/name`` as stored now (None: absent)."""
        ...


def service_account_user(claims: ServiceAccountClaims) -> UserInfo:
    """The identity a valid token proves (``serviceaccount.UserInfo``)."""
    extra: list[tuple[str, tuple[str, ...]]] = []
    if claims.credential_id:
        extra.append((CREDENTIAL_ID_KEY, (f"JTI={claims.credential_id}",)))
    if claims.node_name:
        extra.append((NODE_NAME_KEY, (claims.node_name,)))
        if claims.node_uid:
            extra.append((NODE_UID_KEY, (claims.node_uid,)))
    if claims.pod_name:
        extra.append((POD_NAME_KEY, (claims.pod_name,)))
        extra.append((POD_UID_KEY, (claims.pod_uid,)))
    return UserInfo(
        f"{SERVICE_ACCOUNT_PREFIX}{claims.namespace}:{claims.name}",
        (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{claims.namespace}"),
        claims.uid,
        tuple(sorted(extra)),
    )


def _past(timestamp: str | None, now: datetime) -> bool:
    moment = parse_time(timestamp)
    return moment is not None and moment < now


class ServiceAccountTokens:
    """Authenticates the tokens ``issuer`` signed. ``objects`` is set once the API server
    that holds the ServiceAccounts exists (until then such tokens prove nothing)."""

    def __init__(self, issuer: TokenIssuer, objects: ObjectGetter | None = None) -> None:
        self.issuer = issuer
        self.objects = objects

    async def authenticate(self, request: web.BaseRequest) -> UserInfo | None:
        token = bearer_token(request)
        if not token or token.count(".") != 2:
            return None
        result = await self.authenticate_token(token, ())
        return result.user if result is not None else None

    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        try:
            claims = self.issuer.verify(token, audiences)
            if claims is None:
                return None
            await self._check_objects(claims)
        except TokenError as exc:
            log.info("service account token rejected: %s", exc)
            # ours but invalid: nothing else may accept it
            return TokenResult(None, ())
        return TokenResult(service_account_user(claims), claims.audiences)

    async def _check_objects(self, claims: ServiceAccountClaims) -> None:
        """Upstream's ``validator.Validate``: the objects the token names still exist."""
        if self.objects is None:
            raise TokenError("service accounts cannot be looked up yet")
        now = datetime.now().astimezone()
        account = await self.objects.get_object("serviceaccounts", claims.namespace, claims.name)
        if account is None:
            raise TokenError(f'serviceaccounts "{claims.name}" not found')
        meta = account["metadata"]
        if meta.get("uid") != claims.uid:
            raise TokenError(
                f"service account UID ({meta.get('uid')}) does not match claim ({claims.uid})"
            )
        if meta.get("deletionTimestamp"):
            raise TokenError(f"service account {claims.namespace}/{claims.name} is being deleted")
        for plural, name, uid in (
            ("pods", claims.pod_name, claims.pod_uid),
            ("secrets", claims.secret_name, claims.secret_uid),
        ):
            if not name:
                continue
            bound = await self.objects.get_object(plural, claims.namespace, name)
            if bound is None:
                raise TokenError(f'{plural} "{name}" not found')
            if bound["metadata"].get("uid") != uid:
                raise TokenError(
                    f"{plural} {name} UID ({bound['metadata'].get('uid')}) does not match "
                    f"claim ({uid})"
                )
            if _past(bound["metadata"].get("deletionTimestamp"), now):
                raise TokenError(f"{plural} {claims.namespace}/{name} has been deleted")
