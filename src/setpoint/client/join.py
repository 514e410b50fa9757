"""Joining a cluster: trade the join (bootstrap) token for the node's own credential.

A node agent starts with a join token (``--token-file``): the server's node token or a
bootstrap token from ``setpoint token create``. That token may do nothing but ``POST``
:data:`JOIN_PATH` with the node's name; the answer is a credential for
``system:node:<name>`` (see the API server's ``api.auth.nodecredentials``). The agent keeps
it in ``<data dir>/node-credential`` (mode 0600) and uses only it from then on, so a
restarted agent needs no join token, and the join token may expire or be deleted once the
node has joined. A credential made for another node name is not reused: the agent joins
again, and so does one the server no longer accepts (401: its key was replaced), when the
agent still has a join token to do it with.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from setpoint.client.api import (
    NODES,
    ApiClient,
    ApiError,
    ClientConfig,
    retry_while_unavailable,
)
from setpoint.client.servers import ServerList
from setpoint.meta.privatefiles import private_dir, write_private_file

log = logging.getLogger(__name__)

JOIN_PATH = "/setpoint/v1/join"  # api.auth.nodecredentials.JOIN_PATH (client/ imports no api/)
CREDENTIAL_FILE = "node-credential"


async def request_node_credential(client: ApiClient, node_name: str) -> str:
    """A new credential for ``node_name`` (the client's identity must be allowed to join)."""
    answer = await client.request("POST", JOIN_PATH, body={"nodeName": node_name})
    token = answer.get("token")
    if not isinstance(token, str) or not token:
        raise ValueError(f"the join answer for node {node_name} carries no credential")
    return token


async def request_node_credentials(client: ApiClient, node_names: list[str]) -> dict[str, str]:
    """New credentials for many nodes in one request (hollow nodes): name -> credential."""
    answer = await client.request("POST", JOIN_PATH, body={"nodeNames": node_names})
    found = {
        item.get("nodeName"): item.get("token")
        for item in answer.get("items") or ()
        if isinstance(item, dict)
    }
    missing = [name for name in node_names if not found.get(name)]
    if missing:
        raise ValueError(f"the join answer carries no credential for {', '.join(missing[:5])}")
    return {name: str(found[name]) for name in node_names}


def stored_credential(data_dir: Path, node_name: str) -> str | None:
    """The credential kept in ``data_dir`` for ``node_name``, if any."""
    path = data_dir / CREDENTIAL_FILE
    try:
        name, _, token = path.read_text(encoding="utf-8").strip().partition("\n")
    except FileNotFoundError:
        return None
    return token.strip() if name.strip() == node_name and token.strip() else None


async def accepted(
    config: ClientConfig, node_name: str, *, servers: ServerList | None = None
) -> bool:
    """Whether the server still takes ``config``'s credential (anything but a 401 counts
    as yes: a server that cannot be reached now is no reason to forget a credential)."""
    try:
        async with ApiClient(config, connections=1, servers=servers) as client:
            await client.get(NODES, node_name)
    except ApiError as exc:
        return exc.code != 401
    except (OSError, TimeoutError):
        return True
    return True


async def join(
    config: ClientConfig, *, node_name: str, data_dir: Path, servers: ServerList | None = None
) -> ClientConfig:
    """``config`` as node ``node_name``'s own identity: the stored credential, or a new one
    got with ``config``'s (join) credentials and stored. ``servers``: the API servers to
    use and fail over between (by default ``config``'s)."""
    token = stored_credential(data_dir, node_name)
    can_rejoin = bool(config.token or config.client_cert_pem) and config.token != token
    if (
        token is not None
        and can_rejoin
        and not await accepted(_as_node(config, token), node_name, servers=servers)
    ):
        token = None  # refused: join again with the join token
    if token is None:
        async with ApiClient(config, servers=servers) as client:
            token = await retry_while_unavailable(
                lambda: request_node_credential(client, node_name),
                what=f"join as node {node_name}",
                log=log,
            )
        private_dir(data_dir)
        write_private_file(data_dir / CREDENTIAL_FILE, f"{node_name}\n{token}\n".encode())
    return _as_node(config, token)


def _as_node(config: ClientConfig, token: str) -> ClientConfig:
    return replace(config, token=token, client_cert_pem=b"", client_key_pem=b"")
