"""The server bootstrap endpoints: how a joining server gets the secrets every server of a
cluster shares.

Every server of a cluster must hold the same CA, ServiceAccount signing key, node credential
key, encryption config and tokens, or they would not accept each other's credentials. The
first server stores them, encrypted under its server token's secret, at :data:`BOOTSTRAP_KEY`
in the datastore (``cli.bootstrapdata`` owns the format, ``cli.clusterjoin`` the steps). A
joining server started with ``--server URL --token-file FILE`` fetches them here, as k3s's
agent-of-a-server does from ``/v1-k3s/server-bootstrap``:

* ``GET /cacerts`` answers the cluster CA without authentication (it is public), so the
  joiner can compare its SHA-256 with the hash in its ``K10<hash>::server:<secret>`` token
  before trusting it (k3s's ``/cacerts``);
* ``GET`` :data:`SERVER_BOOTSTRAP_PATH` answers the encrypted bootstrap data, exactly as
  stored, to a request with HTTP Basic ``server:<secret>`` of the *server* token. Anything
  else — no credentials, the node token (agents must never become servers), the admin
  token, a client certificate — gets a 401 Status: this endpoint is outside RBAC, since no
  Kubernetes identity, not even ``system:masters``, is the server token.

Both are answered before authentication (like the health endpoints): neither is a
Kubernetes API, and the bootstrap data's own credential is checked here.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from setpoint.api import errors
from setpoint.api.serving import status_response
from setpoint.pki import tokens_equal
from setpoint.store.interface import Store

SERVER_BOOTSTRAP_PATH = "/setpoint/v1/server-bootstrap"
CACERTS_PATH = "/cacerts"
BOOTSTRAP_KEY = "/setpoint/bootstrap"  # outside /registry/: no watch cache or list sees it
SERVER_USER = "server"  # the Basic user name, as k3s's


def basic_credentials(request: web.BaseRequest) -> tuple[str, str] | None:
    """(user, password) of ``request``'s Basic Authorization header, None without one."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = (
            base64.b64decode(value.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


class ServerBootstrap:
    """Answers :data:`CACERTS_PATH` and :data:`SERVER_BOOTSTRAP_PATH` for one server, whose
    server token's secret is ``password`` and whose CA is ``ca_pem``."""

    paths = (CACERTS_PATH, SERVER_BOOTSTRAP_PATH)

    def __init__(self, store: Store, *, password: str, ca_pem: bytes) -> None:
        self._store = store
        self._password = password
        self._ca_pem = ca_pem

    async def serve(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return status_response(errors.method_not_allowed(request.method))
        if request.path == CACERTS_PATH:
            return web.Response(body=self._ca_pem, content_type="application/x-pem-file")
        credentials = basic_credentials(request)
        if credentials is None or not (
            credentials[0] == SERVER_USER and tokens_equal(credentials[1], self._password)
        ):
            return status_response(errors.unauthorized())
        stored = await self._store.get(BOOTSTRAP_KEY)
        if stored is None:  # the server writes it before it listens; only a wiped store
            return status_response(
                errors.APIError(503, "ServiceUnavailable", "no bootstrap data in the datastore")
            )
        return web.Response(body=stored.value, content_type="application/octet-stream")
