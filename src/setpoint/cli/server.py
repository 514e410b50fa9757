"""``setpoint server``: bring up the control plane on the embedded store and serve it.

Start-up order: credentials (CA, serving certificate, tokens) in the data dir, the SQLite
store, the API server's watch caches, the HTTPS listener, and last the admin kubeconfig, so
that a kubeconfig on disk means a server that answers. SIGTERM and SIGINT stop it cleanly:
the listener first, then the caches, then the store (which finishes its queued writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from setpoint.api.discovery import KUBERNETES_VERSION
from setpoint.api.openapi import build_openapi
from setpoint.api.server import APIServer, TokenAuthenticator
from setpoint.client.api import ClientConfig
from setpoint.controllers.manager import ControllerManager, ManagerConfig
from setpoint.pki import ensure_server_credentials, write_kubeconfig
from setpoint.resources.catalog import default_registry
from setpoint.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    bind_address: str = "127.0.0.1"
    port: int = 6443
    disable_agent: bool = False
    node_name: str | None = None
    tls_sans: tuple[str, ...] = ()
    run_controllers: bool = True
    run_scheduler: bool = True
    event_ttl: float = 3600.0

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"


def client_host(bind_address: str) -> str:
    """The address local clients should use to reach a listener on ``bind_address``."""
    if bind_address in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind_address == "::":
        return "[::1]"
    return f"[{bind_address}]" if ":" in bind_address else bind_address


async def run_server(config: ServerConfig) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    credentials = ensure_server_credentials(
        config.data_dir, hosts=[config.bind_address, *config.tls_sans]
    )
    store = await SQLiteStore.open(config.data_dir / "db" / "state.db")
    registry = default_registry()
    api = APIServer(
        store,
        registry,
        authenticator=TokenAuthenticator(
            admin_token=credentials.admin_token, node_token=credentials.node_token
        ),
        openapi=build_openapi(registry, server_version=KUBERNETES_VERSION["gitVersion"]),
        event_ttl=config.event_ttl,
    )
    await api.start()
    # handler_cancellation: a client that disconnects ends its watch at once
    runner = web.AppRunner(
        api.application(),
        access_log=None,
        handle_signals=False,
        handler_cancellation=True,
        shutdown_timeout=5.0,
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.bind_address,
        config.port,
        ssl_context=credentials.ssl_context(),
        reuse_address=True,
    )
    await site.start()
    port = _bound_port(site) or config.port
    url = f"https://{client_host(config.bind_address)}:{port}"
    config.kubeconfig_path.unlink(missing_ok=True)
    write_kubeconfig(
        config.kubeconfig_path,
        server_url=url,
        ca_pem=credentials.ca_pem(),
        token=credentials.admin_token,
    )
    if not config.disable_agent:
        log.warning("the node agent is not available yet; running without a local node")
    print(
        f"setpoint API server listening on {url}\n"
        f"Point kubectl at it:\n"
        f"  export KUBECONFIG={config.kubeconfig_path}\n"
        f"  kubectl get nodes\n"
        f"Agents join with the token in {config.data_dir / 'node-token'}",
        flush=True,
    )
    manager_task = None
    if config.run_controllers or config.run_scheduler:
        manager = ControllerManager(
            ClientConfig(
                url,
                credentials.admin_token,
                credentials.ca_pem(),
                user_agent="setpoint-controller-manager",
            ),
            ManagerConfig(
                run_controllers=config.run_controllers, run_scheduler=config.run_scheduler
            ),
        )
        manager_task = asyncio.create_task(manager.run(), name="controller-manager")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if manager_task is not None:
            manager_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await manager_task
        await site.stop()
        api.close_watches()  # open watches end now instead of holding shutdown open
        await runner.cleanup()
        await api.stop()
        await store.close()


def _bound_port(site: web.TCPSite) -> int | None:
    server = site._server  # aiohttp keeps the asyncio server here
    sockets = getattr(server, "sockets", None) or []
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(sock.getsockname()[1])
    return None
