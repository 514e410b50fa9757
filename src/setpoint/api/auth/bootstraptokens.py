"""Bootstrap tokens: short-lived bearer tokens that let a new node join, and nothing else.

A bootstrap token is ``<token-id>.<token-secret>`` (6 and 16 characters of ``[a-z0-9]``),
kept as a Secret ``bootstrap-token-<token-id>`` of type ``bootstrap.kubernetes.io/token`` in
``kube-system``, exactly as kube-apiserver's bootstrap token authenticator
(``plugin/pkg/auth/authenticator/token/bootstrap``) reads it. The token authenticates as
``system:bootstrap:<token-id>`` in ``system:bootstrappers`` (and the groups the Secret's
``auth-extra-groups`` adds, each ``system:bootstrappers:...``) only while:

- the Secret exists, is not being deleted and has the type above;
- its ``token-secret`` matches (compared in constant time);
- its ``expiration`` (RFC 3339), if any, has not passed;
- its ``usage-bootstrap-authentication`` is ``"true"``.

Anything else is no identity at all, so the request is 401, as upstream answers. The token
may be given bare or in k3s's join-token form ``K10<sha256 of the CA>::<id>.<secret>``
(what ``setpoint token create`` prints): the prefix lets the joining node check the CA it
was given, and is ignored here.

What a bootstrapper may do is decided elsewhere: only ask for a node credential
(:mod:`setpoint.api.auth.nodecredentials`).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from setpoint.api.auth.authn import bearer_token
from setpoint.api.auth.user import UserInfo
from setpoint.meta.timestamps import parse_epoch
from setpoint.pki import tokens_equal

BOOTSTRAPPERS_GROUP = "system:bootstrappers"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"
TOKEN_RE = re.compile(r"^(?P<id>[a-z0-9]{6})\.(?P<secret>[a-z0-9]{16})$")
_JOIN_PREFIX_RE = re.compile(r"^K10[0-9a-f]{64}::")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

# how the authenticator reads a Secret: (namespace, name) -> the object, or None
SecretReader = Callable[[str, str], Awaitable[dict[str, Any] | None]]


def new_token() -> str:
    """A fresh random ``<id>.<secret>`` bootstrap token."""
    pick = secrets.choice
    return (
        "".join(pick(_ALPHABET) for _ in range(6))
        + "."
        + "".join(pick(_ALPHABET) for _ in range(16))
    )


def token_secret(token: str, *, expiration: str = "", description: str = "") -> dict[str, Any]:
    """The Secret that makes ``token`` a bootstrap token usable to authenticate (kubeadm's
    ``kubeadm token create`` writes the same shape)."""
    match = TOKEN_RE.match(token)
    if match is None:
        raise ValueError("a bootstrap token is <6 of [a-z0-9]>.<16 of [a-z0-9]>")
    data = {
        "token-id": match["id"],
        "token-secret": match["secret"],
        "usage-bootstrap-authentication": "true",
    }
    if expiration:
        data["expiration"] = expiration
    if description:
        data["description"] = description
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_PREFIX + match["id"], "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "stringData": data,
    }


def _field(secret: dict[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""


def user_of_secret(
    secret: dict[str, Any], token_id: str, token_secret_value: str, *, now: float
) -> UserInfo | None:
    """The bootstrap identity ``secret`` grants to ``<token_id>.<token_secret_value>``."""
    if (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if secret.get("type") != SECRET_TYPE:
        return None
    if not tokens_equal(_field(secret, "token-secret"), token_secret_value):
        return None
    if _field(secret, "token-id") not in ("", token_id):
        return None
    expiration = _field(secret, "expiration")
    if expiration:
        deadline = parse_epoch(expiration)
        if deadline is None or deadline <= now:
            return None
    if _field(secret, "usage-bootstrap-authentication") != "true":
        return None
    groups = [BOOTSTRAPPERS_GROUP]
    for extra in _field(secret, "auth-extra-groups").split(","):
        extra = extra.strip()
        if extra.startswith(BOOTSTRAPPERS_GROUP + ":") and extra not in groups:
            groups.append(extra)
    return UserInfo(BOOTSTRAP_USER_PREFIX + token_id, tuple(groups))


class BootstrapTokens:
    """Authenticates bootstrap tokens against their Secrets in ``kube-system``."""

    def __init__(self, read_secret: SecretReader, *, clock: Callable[[], float] = time.time):
        self._read_secret = read_secret
        self._clock = clock

    async def authenticate(self, request: web.BaseRequest) -> UserInfo | None:
        token = _JOIN_PREFIX_RE.sub("", bearer_token(request), count=1)
        match = TOKEN_RE.match(token)
        if match is None:
            return None
        secret = await self._read_secret(NAMESPACE, SECRET_PREFIX + match["id"])
        if secret is None:
            return None
        return user_of_secret(secret, match["id"], match["secret"], now=self._clock())
