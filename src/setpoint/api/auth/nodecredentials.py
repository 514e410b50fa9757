"""Node credentials: how a node trades a bootstrap token for an identity of its own.

A node joins with a bootstrap token (:mod:`setpoint.api.auth.bootstraptokens`, or the server's
static join token), which may do one thing: ``POST`` :data:`JOIN_PATH` with
``{"nodeName": "<name>"}``. The answer is a bearer token that authenticates as
``system:node:<name>`` in ``system:nodes`` from then on; the agent keeps it in its data dir
and never needs the join token again. A node may ask again for its own name (to recover a
lost file), never for another's.

Kubernetes does the same with a CertificateSigningRequest that the controller manager
auto-approves for ``system:bootstrappers`` and signs with the kubelet client signer, and the
kubelet then presents a client certificate. setpoint keeps the shape (bootstrap identity,
then ``system:node:<name>``) but issues a token, because:

- one API client connection pool can then carry many node identities, one Authorization
  header per request: ``setpoint sim`` plays thousands of hollow nodes over 32 connections,
  which per-node client certificates would turn into thousands of TLS connections;
- a token is checked with one HMAC and needs no state: the credential is
  ``spnode.<node name>.<HMAC-SHA256 of the name under the server's key>``, the key being
  ``tls/node-credential.key`` in the server's data dir (servers sharing a store share it,
  as they share the CA). Removing the key revokes every node credential at once; nodes then
  join again with a bootstrap token.

Client certificates still work for people and components (:mod:`setpoint.api.auth.x509`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from setpoint.api import errors
from setpoint.api.auth.attributes import RequestAttributes
from setpoint.api.auth.authn import bearer_token
from setpoint.api.auth.authorizer import Decision
from setpoint.api.auth.bootstraptokens import BOOTSTRAPPERS_GROUP
from setpoint.api.auth.user import (
    NODE_USER_PREFIX,
    NODES_GROUP,
    SYSTEM_MASTERS,
    UserInfo,
    node_name_of,
)
from setpoint.api.bodies import read_body
from setpoint.meta.privatefiles import write_private_file
from setpoint.meta.validation import dns1123_subdomain_errors

JOIN_PATH = "/setpoint/v1/join"
MAX_NODES_PER_JOIN = 5000
TOKEN_PREFIX = "spnode."
KEY_FILE = "node-credential.key"
_DOMAIN = b"setpoint node credential\x00"


def ensure_key(path: Path) -> bytes:
    """The HMAC key at ``path``, made (32 random bytes, mode 0600) if missing."""
    if path.exists():
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        if len(key) >= 32:
            return key
    key = secrets.token_bytes(32)
    write_private_file(path, (key.hex() + "\n").encode("ascii"))
    return key


class NodeCredentials:
    """Issues and checks ``system:node:<name>`` bearer tokens under one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, node_name: str) -> str:
        return hmac.new(self._key, _DOMAIN + node_name.encode(), hashlib.sha256).hexdigest()

    def issue(self, node_name: str) -> str:
        return f"{TOKEN_PREFIX}{node_name}.{self._mac(node_name)}"

    def node_of(self, token: str) -> str | None:
        """The node ``token`` is the credential of, else None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        name, sep, mac = token[len(TOKEN_PREFIX) :].rpartition(".")
        if not sep or not name or not hmac.compare_digest(mac, self._mac(name)):
            return None
        return name

    async def authenticate(self, request: web.BaseRequest) -> UserInfo | None:
        name = self.node_of(bearer_token(request))
        if name is None:
            return None
        return UserInfo(NODE_USER_PREFIX + name, (NODES_GROUP,))

    async def serve_join(self, request: web.BaseRequest, user: UserInfo) -> web.Response:
        """``POST`` :data:`JOIN_PATH`: a credential for the node named in the body
        (``{"nodeName": ...}``), or one for each of up to :data:`MAX_NODES_PER_JOIN` nodes
        (``{"nodeNames": [...]}``, as ``setpoint sim`` joins its hollow nodes: one request,
        not thousands counted against the join token's rate limit)."""
        if request.method != "POST":
            raise errors.method_not_allowed(request.method)
        body: Any = await read_body(request)
        if not isinstance(body, dict) or ("nodeName" in body) == ("nodeNames" in body):
            raise errors.bad_request(
                'the join request must name the node: {"nodeName": ...} or {"nodeNames": [...]}'
            )
        names = [body["nodeName"]] if "nodeName" in body else body["nodeNames"]
        if not isinstance(names, list) or not names or len(names) > MAX_NODES_PER_JOIN:
            raise errors.bad_request(f"nodeNames must list 1 to {MAX_NODES_PER_JOIN} node names")
        for name in names:
            if not isinstance(name, str) or not name:
                raise errors.bad_request("a node name must be a non-empty string")
            problems = dns1123_subdomain_errors(name)
            if problems:
                raise errors.bad_request(f'invalid node name "{name}": {"; ".join(problems)}')
        own = node_name_of(user)
        may_join = BOOTSTRAPPERS_GROUP in user.groups or SYSTEM_MASTERS in user.groups
        for name in names:
            if not may_join and own != name:
                raise errors.forbidden(
                    f'User "{user.name}" cannot get a credential for node "{name}": a node '
                    "may only renew its own"
                )
        items = [
            {
                "apiVersion": "setpoint.dev/v1",
                "kind": "NodeCredential",
                "nodeName": name,
                "user": NODE_USER_PREFIX + name,
                "token": self.issue(name),
            }
            for name in names
        ]
        if "nodeName" in body:
            return web.json_response(items[0])
        return web.json_response(
            {"apiVersion": "setpoint.dev/v1", "kind": "NodeCredentialList", "items": items}
        )


class JoinAuthorizer:
    """Bootstrappers and nodes may ``POST`` :data:`JOIN_PATH` (what they may ask for is the
    join handler's check); nothing else is decided here."""

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.resource_request or attrs.path != JOIN_PATH or attrs.verb != "post":
            return Decision.NO_OPINION, ""
        groups = attrs.user.groups
        if BOOTSTRAPPERS_GROUP in groups or node_name_of(attrs.user) is not None:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""
