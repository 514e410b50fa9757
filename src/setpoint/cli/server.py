"""``setpoint server``: bring up the control plane on the embedded store and serve it.

Start-up order: the (private) data dir, the SQLite store, credentials (CA, serving
certificate, tokens), the API server's watch caches, the HTTPS listener, and last the admin
kubeconfig, so that a kubeconfig on disk means a server that answers. The store opens before
the credentials are made because whether the cluster already existed — its CA and tokens are
on disk — decides whether a missing database may be created empty (see ``store.sqlite``);
opening it first means a first start that dies half-way never looks like a lost database.

Anything that stops start-up — a full or read-only disk, a corrupt database, a data dir
another server holds, a port in use — is :class:`CannotStart`: one line on stderr and exit
status :data:`~setpoint.cli.process.EXIT_CANNOT_START`, never a traceback. SIGTERM and SIGINT
stop a running server cleanly: the listener first, then the caches, then the store (which
finishes its queued writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from setpoint.api.admission import AdmissionChain
from setpoint.api.admission_plugins import core_storages, default_plugins
from setpoint.api.auth.authn import AuthenticatorChain, StaticTokens, token_file_users
from setpoint.api.auth.bootstraptokens import (
    BOOTSTRAP_USER_PREFIX,
    BOOTSTRAPPERS_GROUP,
    BootstrapTokens,
)
from setpoint.api.auth.nodecredentials import KEY_FILE as NODE_KEY_FILE
from setpoint.api.auth.nodecredentials import NodeCredentials, ensure_key
from setpoint.api.auth.serviceaccount import ServiceAccountTokens
from setpoint.api.auth.tokens import DEFAULT_ISSUER, TokenIssuer, load_or_create_signing_key
from setpoint.api.auth.user import CONTROLLER_MANAGER_USER, SCHEDULER_USER, UserInfo
from setpoint.api.auth.x509 import ClientCertificates
from setpoint.api.inflight import InflightLimits
from setpoint.api.kubelet import KUBELET_CLIENT_COMMON_NAME
from setpoint.api.server import APIServer
from setpoint.api.serverbootstrap import ServerBootstrap
from setpoint.api.services import ServiceNetwork, identity
from setpoint.api.serving import ServingLimits, TLSSite, raise_descriptor_limit
from setpoint.cli.bootstrapdata import BootstrapDataError
from setpoint.cli.clusterjoin import JoinError, JoinSettings, establish
from setpoint.cli.controllermanager import (
    ManagerConfig,
    NodeIPAMSettings,
    node_ipam_args,
    node_lifecycle_args,
)
from setpoint.cli.flags import parse_duration
from setpoint.cli.localnode import NodeNameInUse, claim_node_name
from setpoint.cli.process import PARENT_PID_ENV, tune_gc
from setpoint.cli.security import (
    SecurityConfig,
    SecuritySetupError,
    auditor,
    encryption_config,
)
from setpoint.controllers.nodelifecycle import NodeLifecycleSettings
from setpoint.controllers.podgc.controller import DEFAULT_TERMINATED_POD_THRESHOLD
from setpoint.meta.privatefiles import private_dir, tighten
from setpoint.pki import (
    ADMIN_TOKEN_FILE,
    CA_CERT_FILE,
    TLS_DIR,
    PKIError,
    ServerCredentials,
    ca_hash,
    ensure_client_certificate,
    ensure_server_credentials,
    parse_join_token,
    write_kubeconfig,
)
from setpoint.resources.catalog import default_registry
from setpoint.resources.core import DEFAULT_TOLERATION_SECONDS, DefaultTolerationSeconds
from setpoint.store.endpoint import (
    SQLITE,
    EndpointError,
    EtcdTLS,
    default_endpoint,
    open_store,
    parse_endpoint,
)
from setpoint.store.interface import BackendError

log = logging.getLogger(__name__)

CHILD_STOP_SECONDS = 10.0  # a SIGTERMed child is SIGKILLed after this long


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
    kubelet_args: tuple[str, ...] = ()  # "flag=value" for the local agent, as k3s takes them
    serving: ServingLimits = field(default_factory=ServingLimits)
    inflight: InflightLimits = field(default_factory=InflightLimits)
    cluster_reset: bool = False  # start over if the database is missing, empty or corrupt
    datastore_endpoint: str | None = None  # default: the SQLite file in the data dir
    datastore_tls: EtcdTLS | None = None  # etcds://: --datastore-cafile/-certfile/-keyfile
    tolerations: DefaultTolerationSeconds = DEFAULT_TOLERATION_SECONDS
    node_lifecycle: NodeLifecycleSettings = field(default_factory=NodeLifecycleSettings)
    terminated_pod_gc_threshold: int = DEFAULT_TERMINATED_POD_THRESHOLD
    node_ipam: NodeIPAMSettings | None = field(default_factory=NodeIPAMSettings)
    services: ServiceNetwork = field(default_factory=ServiceNetwork)
    advertise_address: str | None = None  # default: see advertised_host()
    identity_lease_duration_seconds: int = identity.DEFAULT_DURATION_SECONDS
    proxy_mode: str = "auto"  # the local agent's node proxy
    token_auth_file: Path | None = None  # more users, as kube-apiserver's --token-auth-file
    service_account_issuer: str = DEFAULT_ISSUER
    security: SecurityConfig = field(default_factory=SecurityConfig)
    join: JoinSettings = field(default_factory=JoinSettings)  # --server, --token-file

    @property
    def local_node_name(self) -> str:
        """The local agent's node name (lower case, as the agent takes it)."""
        return (self.node_name or socket.gethostname()).lower()

    @property
    def kubeconfig_path(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def controller_kubeconfig_path(self) -> Path:
        """The controller manager's own kubeconfig (its own certificate and identity)."""
        return self.data_dir / "controller-manager.kubeconfig"

    @property
    def scheduler_kubeconfig_path(self) -> Path:
        """The scheduler's own kubeconfig (it runs in the controller manager's process)."""
        return self.data_dir / "scheduler.kubeconfig"

    @property
    def endpoint(self) -> str:
        """The store to open (``--datastore-endpoint``, k3s-style)."""
        return self.datastore_endpoint or default_endpoint(self.data_dir)


class CannotStart(Exception):
    """The server cannot start; ``str()`` is the one line that says why."""


def cluster_exists(data_dir: Path) -> bool:
    """A cluster lived here before: its CA or admin token is on disk."""
    return (data_dir / TLS_DIR / CA_CERT_FILE).exists() or (data_dir / ADMIN_TOKEN_FILE).exists()


def cannot_start(exc: BaseException) -> CannotStart:
    """What stopped start-up, in one line, with the file or address involved."""
    if isinstance(exc, BackendError):
        named = not exc.path or exc.path in str(exc)
        return CannotStart(str(exc) if named else f"{exc} ({exc.path})")
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return CannotStart(f"address already in use: {exc.strerror or exc}")
        cause = (exc.strerror or str(exc)).lower()
        return CannotStart(f"{cause} ({exc.filename})" if exc.filename else cause)
    return CannotStart(str(exc))


def client_host(bind_address: str) -> str:
    """The address local clients should use to reach a listener on ``bind_address``."""
    if bind_address in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind_address == "::":
        return "[::1]"
    return f"[{bind_address}]" if ":" in bind_address else bind_address


def advertised_host(config: ServerConfig) -> str:
    """The address the ``kubernetes`` Service's endpoints name: ``--advertise-address``, else
    the bind address, else (bound to every address) the one this machine would send from
    (a UDP socket's ``connect`` picks it from the routing table without sending anything),
    else loopback."""
    if config.advertise_address:
        return config.advertise_address
    if config.bind_address not in ("0.0.0.0", "::", ""):
        return config.bind_address
    family = socket.AF_INET6 if config.bind_address == "::" else socket.AF_INET
    probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"  # documentation nets
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))
            return str(sock.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


async def run_server(config: ServerConfig) -> None:
    """Start the control plane, serve until SIGTERM/SIGINT, stop. Raises CannotStart if it
    could not start (anything it had started is stopped again)."""
    async with contextlib.AsyncExitStack() as running:
        try:
            url = await _start(config, running)
        except (
            BackendError,
            EndpointError,
            PKIError,
            OSError,
            SecuritySetupError,
            JoinError,
            BootstrapDataError,
            NodeNameInUse,
        ) as exc:
            raise cannot_start(exc) from None
        print(
            f"setpoint API server listening on {url}\n"
            f"Point kubectl at it:\n"
            f"  export KUBECONFIG={config.kubeconfig_path}\n"
            f"  kubectl get nodes\n"
            f"Agents join with the token in {config.data_dir / 'node-token'}\n"
            f"Servers join with the token in {config.data_dir / 'server-token'}",
            flush=True,
        )
        # Child processes: they get the machine's other core, and a crash in one cannot take
        # the API server down (it is restarted).
        children: list[asyncio.Task[None]] = []
        if config.run_controllers or config.run_scheduler:
            children.append(
                asyncio.create_task(
                    supervise_child("controller manager", controller_manager_args(config)),
                    name="controller-manager",
                )
            )
        if not config.disable_agent:
            children.append(
                asyncio.create_task(
                    supervise_child(
                        "node agent",
                        agent_args(config, url),
                        stop_seconds=agent_stop_seconds(config.kubelet_args),
                    ),
                    name="agent",
                )
            )
        # start-up made many long-lived objects (schemas, OpenAPI, caches)
        tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            for task in children:
                task.cancel()
            for task in children:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def in_cluster_names(config: ServerConfig) -> list[str]:
    """What pods call the API server by, for its serving certificate: the ``kubernetes``
    Service's cluster IP (the first of the range, as kube-apiserver adds it) and its full
    DNS name."""
    return [
        str(config.services.cluster_ips.value(0)),
        "kubernetes.default.svc.cluster.local",
    ]


def static_tokens(
    credentials: ServerCredentials, extra: Sequence[tuple[str, UserInfo]] = ()
) -> StaticTokens:
    """The tokens the server writes at bootstrap: the admin's (``system:masters``), the node
    join token's (a bootstrap identity: it may only join, see ``api.auth.nodecredentials``)
    and the controller manager's; then those of ``--token-auth-file``."""
    return StaticTokens(
        [
            StaticTokens.admin(credentials.admin_token),
            (credentials.node_token, UserInfo(JOIN_TOKEN_USER, (BOOTSTRAPPERS_GROUP,))),
            (credentials.controller_token, UserInfo(CONTROLLER_MANAGER_USER)),
            *extra,
        ]
    )


JOIN_TOKEN_USER = BOOTSTRAP_USER_PREFIX + "server"  # k3s's node token names the user "server"
CONTROLLER_MANAGER_CERT = "controller-manager-client"
SCHEDULER_CERT = "scheduler-client"
KUBELET_CLIENT_CERT = "apiserver-kubelet-client"


def authenticators(
    credentials: ServerCredentials,
    *,
    extra_tokens: Sequence[tuple[str, UserInfo]],
    service_accounts: ServiceAccountTokens,
    nodes: NodeCredentials,
    api: Callable[[], APIServer],
) -> AuthenticatorChain:
    """Client certificates of the cluster CA (first, as kube-apiserver asks its x509
    authenticator first), static tokens, ServiceAccount tokens, node credentials, bootstrap
    tokens (their Secrets read through the API server ``api()``)."""

    async def read_secret(namespace: str, name: str) -> dict[str, Any] | None:
        return await api().read("secrets", namespace, name)

    return AuthenticatorChain(
        [
            ClientCertificates(),
            static_tokens(credentials, extra_tokens),
            service_accounts,
            nodes,
            BootstrapTokens(read_secret),
        ]
    )


def _token_file(config: ServerConfig) -> list[tuple[str, UserInfo]]:
    if config.token_auth_file is None:
        return []
    try:
        return token_file_users(config.token_auth_file.read_text())
    except (OSError, ValueError) as exc:
        raise PKIError(f"--token-auth-file {config.token_auth_file}: {exc}") from exc


async def _start(config: ServerConfig, running: contextlib.AsyncExitStack) -> str:
    """Bring everything up in order, registering how to stop each part on ``running`` (which
    stops them in reverse: listener, caches, store). Returns the URL clients use."""
    private_dir(config.data_dir)
    # a bad flag's file stops start-up before anything is opened
    audit = auditor(config.security)
    if config.join.server and parse_endpoint(config.endpoint).scheme == SQLITE:
        raise CannotStart(
            "a joining server must use the cluster's datastore: pass --datastore-endpoint "
            "etcd://..."
        )
    # a previous run's socket; the controller manager replaces it with a private one
    tighten(config.data_dir / CONTROLLER_METRICS_SOCKET, 0o600)
    existed = cluster_exists(config.data_dir)
    store = await open_store(
        config.endpoint,
        expect_data=existed,
        reset=config.cluster_reset,
        purpose="setpoint server",
        etcd_tls=config.datastore_tls,
    )
    running.push_async_callback(store.close)
    # the cluster's shared secrets, joined or made, before anything is made from them
    await establish(config.data_dir, store, config.join, security=config.security)
    encryption = encryption_config(config.security, config.data_dir)
    credentials = ensure_server_credentials(
        config.data_dir, hosts=[config.bind_address, *config.tls_sans, *in_cluster_names(config)]
    )
    if not config.disable_agent:
        cluster = ca_hash(credentials.ca_pem())
        running.enter_context(claim_node_name(cluster, config.local_node_name))
    registry = default_registry(tolerations=config.tolerations)
    issuer = TokenIssuer(
        load_or_create_signing_key(config.data_dir / TLS_DIR),
        issuer=config.service_account_issuer,
    )
    service_account_tokens = ServiceAccountTokens(issuer)
    admission = AdmissionChain()
    node_credentials = NodeCredentials(ensure_key(credentials.ca_cert.parent / NODE_KEY_FILE))
    api = APIServer(
        store,
        registry,
        authenticator=authenticators(
            credentials,
            extra_tokens=_token_file(config),
            service_accounts=service_account_tokens,
            nodes=node_credentials,
            api=lambda: api,
        ),
        token_issuer=issuer,
        admission=admission,
        node_credentials=node_credentials,
        kubelet_client_cert=ensure_client_certificate(
            credentials, name=KUBELET_CLIENT_CERT, common_name=KUBELET_CLIENT_COMMON_NAME
        ),
        event_ttl=config.event_ttl,
        metrics_sockets=[config.data_dir / CONTROLLER_METRICS_SOCKET],
        inflight=config.inflight,
        services=config.services,
        encryption=encryption,
        auditor=audit,
        client_limits=config.security.client_limits,
        server_bootstrap=ServerBootstrap(
            store,
            password=parse_join_token(credentials.server_token).password,
            ca_pem=credentials.ca_pem(),
        ),
    )
    service_account_tokens.objects = api
    # Without the controller manager nothing makes the `default` ServiceAccounts and the
    # kube-root-ca.crt ConfigMaps, and every pod would be refused: the plugin is then off.
    service_accounts = api if config.run_controllers else None
    for plugin in default_plugins(
        core_storages(api.storages, registry), service_accounts=service_accounts
    ):
        admission.add(plugin)
    running.push_async_callback(api.stop)
    await api.start()
    limits = replace(
        config.serving, max_connections=raise_descriptor_limit(config.serving.max_connections)
    )
    if limits.max_connections < config.serving.max_connections:
        log.warning(
            "serving at most %d connections (--max-connections %d does not fit the open-file "
            "limit)",
            limits.max_connections,
            config.serving.max_connections,
        )
    runner = web.ServerRunner(api.http_server(limits), handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    running.push_async_callback(runner.cleanup)
    # open watches end now instead of holding shutdown open
    running.callback(api.close_watches)
    site = TLSSite(
        runner,
        config.bind_address,
        config.port,
        ssl_context=credentials.ssl_context(),
        handshake_timeout=limits.tls_handshake_timeout,
    )
    await site.start()
    running.push_async_callback(site.stop)
    port = site.port
    await api.publish_endpoint(
        advertised_host(config),
        port,
        lease_duration_seconds=config.identity_lease_duration_seconds,
    )
    url = f"https://{client_host(config.bind_address)}:{port}"
    # the controller manager and the scheduler in it log in with client certificates of
    # their own, each allowed what its role grants
    for path, cert_name, user in (
        (config.controller_kubeconfig_path, CONTROLLER_MANAGER_CERT, CONTROLLER_MANAGER_USER),
        (config.scheduler_kubeconfig_path, SCHEDULER_CERT, SCHEDULER_USER),
    ):
        cert, key = ensure_client_certificate(credentials, name=cert_name, common_name=user)
        write_kubeconfig(
            path,
            server_url=url,
            ca_pem=credentials.ca_pem(),
            client_cert_pem=cert.read_bytes(),
            client_key_pem=key.read_bytes(),
            user_name=user,
        )
    config.kubeconfig_path.unlink(missing_ok=True)
    write_kubeconfig(
        config.kubeconfig_path,
        server_url=url,
        ca_pem=credentials.ca_pem(),
        token=credentials.admin_token,
    )
    return url


def controller_manager_args(config: ServerConfig) -> list[str]:
    args = ["controller-manager", "--kubeconfig", str(config.controller_kubeconfig_path)]
    args += ["--scheduler-kubeconfig", str(config.scheduler_kubeconfig_path)]
    args += node_lifecycle_args(config.node_lifecycle, config.terminated_pod_gc_threshold)
    args += node_ipam_args(config.node_ipam)
    if not config.run_controllers:
        args.append("--disable-controllers")
    if not config.run_scheduler:
        args.append("--disable-scheduler")
    return args


def agent_args(config: ServerConfig, url: str) -> list[str]:
    """The local node agent joins like any other: with the node token, not the admin's."""
    return [
        "agent",
        "--server",
        url,
        "--token-file",
        str(config.data_dir / "node-token"),
        "--ca-file",
        str(config.data_dir / "tls" / "ca.crt"),
        "--node-name",
        config.local_node_name,
        "--data-dir",
        str(config.data_dir / "agent"),
        "--kubelet-port",  # any free port: several servers and agents share a machine
        "0",
        "--proxy-mode",
        config.proxy_mode,
        # the server's data dir (its tokens, CA key and store) is hidden from every pod
        "--masked-path",
        str(config.data_dir),
        *kubelet_arg_flags(config.kubelet_args),
    ]


def kubelet_arg_flags(kubelet_args: tuple[str, ...]) -> list[str]:
    """k3s's ``--kubelet-arg max-container-restart-period=30s`` as the agent's own flags."""
    flags: list[str] = []
    for arg in kubelet_args:
        name, _, value = arg.lstrip("-").partition("=")
        flags += [f"--{name}", value]
    return flags


def agent_stop_seconds(kubelet_args: tuple[str, ...]) -> float:
    """How long the local agent may take to stop once SIGTERMed: a graceful node shutdown
    (``--kubelet-arg shutdown-grace-period=D``) takes up to D, and the API server must
    outlive it, since the agent reports its pods' and node's status through it."""
    grace = 0.0
    for arg in kubelet_args:
        name, _, value = arg.lstrip("-").partition("=")
        if name == "shutdown-grace-period":
            grace = parse_duration(value)
    return CHILD_STOP_SECONDS + grace


async def supervise_child(
    name: str, args: list[str], *, stop_seconds: float = CHILD_STOP_SECONDS
) -> None:
    """Run ``setpoint <args>`` as a child process; restart it with backoff if it exits;
    stop it with SIGTERM (then SIGKILL after ``stop_seconds``) when cancelled."""
    argv = [sys.executable, "-m", "setpoint.cli.main"]
    if log.isEnabledFor(logging.INFO):
        argv.append("-v")
    argv += args
    backoff = 0.5
    while True:
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
        )
        try:
            code = await child.wait()
        except asyncio.CancelledError:
            if child.returncode is None:
                child.terminate()
                try:
                    await asyncio.wait_for(child.wait(), stop_seconds)
                except TimeoutError:
                    child.kill()
                    await child.wait()
            raise
        log.warning("%s exited with %s; restarting in %.1fs", name, code, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


async def run_controller_manager(
    kubeconfig: Path, config: ManagerConfig, *, scheduler_kubeconfig: Path | None = None
) -> None:
    """``setpoint controller-manager``: reconcile until SIGTERM/SIGINT, then give up the
    leader lease so a successor takes over at once. The scheduler speaks as
    ``scheduler_kubeconfig``'s user when given, else as the controller manager."""
    from setpoint.cli.controllermanager import ControllerManager
    from setpoint.client.api import ClientConfig

    manager = ControllerManager(
        ClientConfig.from_kubeconfig(kubeconfig, user_agent="setpoint-controller-manager"),
        config,
        scheduler_client_config=ClientConfig.from_kubeconfig(
            scheduler_kubeconfig, user_agent="setpoint-scheduler"
        )
        if scheduler_kubeconfig is not None
        else None,
    )
    task = asyncio.create_task(manager.run(), name="controller-manager")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    metrics = await serve_metrics_on_socket(kubeconfig.parent / CONTROLLER_METRICS_SOCKET)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await metrics.cleanup()


CONTROLLER_METRICS_SOCKET = "controller-manager.sock"
_OWN_METRIC_PREFIXES = ("workqueue_", "setpoint_")


def _own_metrics(text: bytes) -> bytes:
    """Only the families this process adds (the API server already reports its own
    python_/process_ families; merged output must not name a family twice)."""
    kept = []
    for line in text.splitlines(keepends=True):
        name = line.split(b" ")[2] if line.startswith(b"# ") else line
        if name.decode(errors="replace").startswith(_OWN_METRIC_PREFIXES):
            kept.append(line)
    return b"".join(kept)


async def serve_metrics_on_socket(path: Path) -> web.AppRunner:
    """Prometheus text on a Unix socket in the (private) data dir; the API server merges it
    into its authenticated ``/metrics``, so nothing listens unauthenticated on the network."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=_own_metrics(generate_latest()), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    path.unlink(missing_ok=True)
    # private from birth: bind() makes the socket with the umask's mode, and a chmod after
    # it would leave a moment when it is not (this process creates no other files meanwhile)
    umask = os.umask(0o177)
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(umask)
    return runner
