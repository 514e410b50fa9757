"""Who sent a request: the authenticators the API server asks in turn.

Each :class:`Authenticator` looks at a request's credentials (a bearer token, a client
certificate) and answers the identity they prove, or None when they prove nothing to it;
:class:`AuthenticatorChain` answers the first identity any of them finds, as
kube-apiserver's union authenticator does. Every authenticated identity is also in
``system:authenticated``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from aiohttp import web

from setpoint.api.auth.user import AUTHENTICATED, SYSTEM_MASTERS, UserInfo
from setpoint.pki import tokens_equal


class Authenticator(Protocol):
    async def authenticate(self, request: web.BaseRequest) -> UserInfo | None:
        """The identity ``request``'s credentials prove to this authenticator, else None."""
        ...


@dataclass(frozen=True)
class TokenResult:
    """What a token proves (a TokenReview's answer): the identity (None: the token is
    known to this authenticator but invalid) and the audiences it is valid for."""

    user: UserInfo | None
    audiences: tuple[str, ...] = ()


@runtime_checkable
class TokenAuthenticator(Protocol):
    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        """What ``token`` proves for ``audiences`` (empty: the API server's), None when this
        authenticator does not know it (TokenReview asks every such authenticator)."""
        ...


def bearer_token(request: web.BaseRequest) -> str:
    """The bearer token of ``request``'s Authorization header, ``""`` when it has none."""
    # the scheme is case-insensitive, as kube-apiserver's bearertoken reads it: the Python
    # client's in-cluster config sends "bearer <token>"
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def with_authenticated(user: UserInfo) -> UserInfo:
    """``user`` in ``system:authenticated`` as well, as every authenticated identity is."""
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, (*user.groups, AUTHENTICATED), user.uid, user.extra)


class AuthenticatorChain:
    """The first identity any authenticator finds."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self.authenticators = list(authenticators)

    async def authenticate(self, request: web.BaseRequest) -> UserInfo | None:
        for authenticator in self.authenticators:
            user = await authenticator.authenticate(request)
            if user is not None:
                return with_authenticated(user)
        return None

    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        """What ``token`` proves to the first token authenticator that knows it."""
        for authenticator in self.authenticators:
            if isinstance(authenticator, TokenAuthenticator):
                result = await authenticator.authenticate_token(token, audiences)
                if result is not None:
                    if result.user is None:
                        return result
                    return TokenResult(with_authenticated(result.user), result.audiences)
        return None


class StaticTokens:
    """Bearer tokens fixed at start-up, each naming one identity (kube-apiserver's
    ``--token-auth-file``): the admin's token is ``system:masters``. Compared in constant
    time."""

    def __init__(self, tokens: Sequence[tuple[str, UserInfo]]) -> None:
        self._tokens = [(token, user) for token, user in tokens if token]

    @classmethod
    def admin(cls, token: str) -> tuple[str, UserInfo]:
        return token, UserInfo("admin", (SYSTEM_MASTERS,))

    async def authenticate(self, request: web.BaseRequest) -> UserInfo | None:
        token = bearer_token(request)
        return self._find(token) if token else None

    async def authenticate_token(self, token: str, audiences: Sequence[str]) -> TokenResult | None:
        """Static tokens know no audience: valid for whatever the API server is asked."""
        user = self._find(token)
        return TokenResult(user, tuple(audiences)) if user is not None else None

    def _find(self, token: str) -> UserInfo | None:
        found: UserInfo | None = None
        for known, user in self._tokens:
            if tokens_equal(token, known) and found is None:
                found = user
        return found


def token_file_users(text: str) -> list[tuple[str, UserInfo]]:
    """kube-apiserver's ``--token-auth-file``: a CSV of ``token,user,uid`` and optionally a
    quoted, comma-separated list of groups (``"group1,group2"``); blank lines and lines
    starting with ``#`` are skipped. A line without token and user is a ValueError."""
    users = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3 or not row[0].strip() or not row[1].strip():
            raise ValueError(f'line {number}: want token,user,uid[,"group1,group2"]')
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        users.append((row[0].strip(), UserInfo(row[1].strip(), groups, row[2].strip())))
    return users
