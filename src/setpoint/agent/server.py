"""The agent's own HTTPS endpoint: the part of the kubelet API that ``kubectl logs``,
``exec``, ``attach``, ``cp`` and ``port-forward`` need.

``kubectl logs`` asks the API server (``pods/{name}/log``), and the API server asks the
node's agent, exactly as kube-apiserver asks a kubelet: ``GET
/containerLogs/{namespace}/{pod}/{container}`` on the port the Node publishes in
``status.daemonEndpoints.kubeletEndpoint.Port``, with kubelet's query parameters
(``follow``, ``previous``, ``tailLines``, ``sinceSeconds``, ``sinceTime``, ``timestamps``,
``limitBytes``, ``stream``). The answer is the plain log text, streamed chunk by chunk; a
failure is a plain-text message with kubelet's status code and wording (404 for a pod or
container the agent does not run, 400 ``container "app" in pod "web" is waiting to start:
ContainerCreating`` and ``previous terminated container "app" in pod "web" not found``),
which the API server turns into a Kubernetes Status.

Only the API server may call it. Every request must come over TLS with a client
certificate signed by the cluster CA (the CA the agent trusts the API server by) whose
subject is ``CN=kube-apiserver-kubelet-client``: the certificate kube-apiserver presents to
kubelets (``--kubelet-client-certificate``). No certificate is 401 ``Unauthorized``; a
certificate of the cluster CA naming anyone else (a node's, an admin's) is 403. Bearer
tokens count for nothing here, so neither a node's credential nor a pod's ServiceAccount
token nor an admin token opens a shell in a pod by going around the API server's
authorization. The endpoint's own certificate is one the agent makes itself on first start
(``<data dir>/pki/kubelet.crt``, signed by a CA of its own), as a kubelet does without
``--tls-cert-file``; the API server does not verify it (kube-apiserver without
``--kubelet-certificate-authority`` does not either).

The streaming endpoints are WebSockets, as the kubelet serves them to WebSocket clients:
``/exec/{namespace}/{pod}/{container}`` and ``/attach/...`` (:mod:`setpoint.agent.
remotecommand`) and ``/portForward/{namespace}/{pod}`` (:mod:`setpoint.agent.portforward`).
The API server relays the client's WebSocket to them. A pod the agent does not run is 404
``pod does not exist``; a container that is not running (not started yet, exited, waiting
to restart) is the runtime's 500 ``container not found ("app")``, as a kubelet answers.

Which file is read: the instance (restart) of the container that the pod's status shows,
by kubelet's rules (``validateContainerLogStatus``): the running instance, else the last
terminated one; ``previous`` asks for the one in ``lastState.terminated``. Following ends
when that instance is no longer running.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from setpoint.agent import logs, portforward, remotecommand
from setpoint.agent import pods as podspec
from setpoint.agent.channels import (
    PORT_FORWARD_PROTOCOLS,
    REMOTE_COMMAND_PROTOCOLS,
    Channels,
    protocol_named,
)
from setpoint.agent.remotecommand import AttachTarget, ContainerContext, StreamRequestError
from setpoint.agent.runtime import ContainerState
from setpoint.meta import queryparams
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.timestamps import parse_epoch
from setpoint.pki import certificate_user, ensure_self_signed_serving

log = logging.getLogger(__name__)

API_SERVER_CLIENT_NAME = "kube-apiserver-kubelet-client"  # the only caller allowed

Obj = dict[str, Any]
DEFAULT_KUBELET_PORT = 10250  # kubelet's --port
ERROR_HEADER = "X-Setpoint-Error"  # a refusal's message, percent-encoded
_TRUE = ("1", "t", "true", "yes")  # Go's strconv.ParseBool, and kubectl's "true"
_FALSE = ("0", "f", "false", "no", "")


class KubeletPortInUse(Exception):
    """The agent's endpoint cannot listen: its port is taken; ``str()`` says what to do."""


class RequestError(Exception):
    """A request the endpoint answers with ``code`` and a plain-text ``message``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ------------------------------------------------------------------ who calls


@functools.lru_cache(maxsize=64)
def _client_name(der: bytes) -> str | None:
    try:
        cert = x509.load_der_x509_certificate(der)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return None
    return certificate_user(cert)[0] or None


def client_certificate_name(request: web.BaseRequest) -> str | None:
    """The CN of the verified client certificate ``request`` came with, else None."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return _client_name(der) if der else None


# ------------------------------------------------------------------ which instance


def log_instance(
    pod: Obj,
    container: Obj,
    state: ContainerState | None,
    *,
    config_error: str = "",
    init: bool = False,
    initialized: bool = True,
    previous: bool = False,
) -> int:
    """The restart count of the instance whose log to read, by kubelet's
    ``validateContainerLogStatus`` over the status the agent reports for the container;
    raises :class:`RequestError` (400) with kubelet's message when there is none."""
    status = podspec.container_status(
        pod, container, state, config_error, init=init, initialized=initialized
    )
    name, pod_name = container["name"], pod["metadata"]["name"]
    current = status.get("state") or {}
    last_terminated = (status.get("lastState") or {}).get("terminated")
    last_exit = state.last_exit if state is not None else None
    if previous:
        prior = podspec.last_state_exit(state)  # the instance lastState reports
        if not last_terminated or prior is None:
            raise RequestError(
                400, f'previous terminated container "{name}" in pod "{pod_name}" not found'
            )
        return prior.restart_count
    if "running" in current and state is not None:
        return state.restart_count
    if "terminated" in current or last_terminated:
        if last_exit is None:
            raise RequestError(400, f'container "{name}" in pod "{pod_name}" is terminated')
        return last_exit.restart_count
    reason = (current.get("waiting") or {}).get("reason")
    if reason:
        raise RequestError(
            400, f'container "{name}" in pod "{pod_name}" is waiting to start: {reason}'
        )
    raise RequestError(
        400, f'container "{name}" in pod "{pod_name}" is waiting to start - no logs yet'
    )


# ------------------------------------------------------------------ query parameters


def _bool(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RequestError(400, f'invalid value "{query[name]}" for query parameter {name}')


def _int(query: Mapping[str, str], name: str) -> int | None:
    try:
        return queryparams.int_param(query, name)
    except queryparams.QueryParamError as exc:
        raise RequestError(400, str(exc)) from None


def parse_time(raw: str) -> float:
    """An RFC3339 time (as ``sinceTime`` carries it) in epoch seconds."""
    since = parse_epoch(raw)
    if since is None:
        raise RequestError(400, f'invalid value "{raw}" for query parameter sinceTime')
    return since


def log_options(query: Mapping[str, str], *, now: float) -> tuple[logs.LogOptions, bool]:
    """Kubelet's ``PodLogOptions`` from the query (``ValidatePodLogOptions`` failures are
    422, as the kubelet answers them), as (options, previous)."""
    tail = query.get("tail")  # kubelet's backwards-compatible spelling of tailLines
    if tail is not None and "tailLines" not in query:
        query = {**query, "tailLines": "" if tail == "all" else tail}
    tail_lines = _int(query, "tailLines")
    limit_bytes = _int(query, "limitBytes")
    since_seconds = _int(query, "sinceSeconds")
    since_time = parse_time(query["sinceTime"]) if query.get("sinceTime") else None
    stream = query.get("stream") or "All"
    problems = []
    if tail_lines is not None and tail_lines < 0:
        problems.append("tailLines must be greater than or equal to 0")
    if limit_bytes is not None and limit_bytes < 1:
        problems.append("limitBytes must be greater than 0")
    if since_seconds is not None and since_time is not None:
        problems.append("at most one of `sinceTime` or `sinceSeconds` may be specified")
    if since_seconds is not None and since_seconds < 1:
        problems.append("sinceSeconds must be greater than 0")
    if stream not in ("All", "Stdout", "Stderr"):
        problems.append(f'stream "{stream}" is not one of "All", "Stdout", "Stderr"')
    elif stream != "All" and tail_lines is not None:
        problems.append("`tailLines` and specific `stream` are mutually exclusive for now")
    if problems:
        raise RequestError(422, f"Invalid request: {'; '.join(problems)}")
    since: float | None = None
    if since_seconds is not None:
        since = now - since_seconds
    if since_time is not None:
        since = since_time
    options = logs.LogOptions(
        tail_lines=tail_lines,
        since_ns=int(since * 1_000_000_000) if since is not None else None,
        timestamps=_bool(query, "timestamps"),
        limit_bytes=limit_bytes,
        follow=_bool(query, "follow"),
        streams=logs.STREAMS if stream == "All" else frozenset({stream.lower()}),
    )
    return options, _bool(query, "previous")


# ------------------------------------------------------------------ the endpoint


@dataclass(frozen=True)
class PodView:
    """What the endpoint reads of the agent, all live views owned by the agent: pods by
    ``namespace/name`` key, container states and configuration errors by container id."""

    pod: Callable[[str], Obj | None]
    states: Mapping[str, ContainerState]
    config_errors: Mapping[str, str]
    data_dir: Path
    # where a process joining a container runs (exec), and a container's stdin FIFO (attach)
    context: Callable[[Obj, Obj], Awaitable[ContainerContext]]
    stdin_fifo: Callable[[str], Path]
    netns: Callable[[Obj], Path | None]  # the pod's network namespace (port-forward)


class KubeletServer:
    """The HTTPS listener; :meth:`start` it (it picks a free port for ``port=0``) and
    :meth:`stop` it. Its owner (the NodeAgent) publishes :attr:`port` on the Node."""

    def __init__(
        self,
        view: PodView,
        *,
        client_ca_pem: bytes,
        host: str = "127.0.0.1",
        port: int = DEFAULT_KUBELET_PORT,
        cert_dir: Path,
        node_name: str = "",
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.view = view
        self.clock = clock
        self.client_ca_pem = client_ca_pem
        self.host = host
        self.port = port
        self.cert_dir = cert_dir
        self.node_name = node_name
        self._runner: web.AppRunner | None = None

    def ssl_context(self) -> ssl.SSLContext:
        hosts = sorted({self.host, "127.0.0.1", "localhost", self.node_name} - {""})
        cert, key = ensure_self_signed_serving(
            self.cert_dir,
            hosts=hosts,
            name="kubelet",
            common_name=self.node_name or "kubelet",
            clock=self.clock,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=cert, keyfile=key)
        # a client certificate is asked for, and verified against the cluster CA if sent
        context.load_verify_locations(cadata=self.client_ca_pem.decode("ascii"))
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get(
            "/containerLogs/{namespace}/{pod}/{container}", self._authenticated(self.logs)
        )
        for method in ("GET", "POST"):  # WebSocket upgrades are GETs; SPDY's were POSTs
            app.router.add_route(
                method, "/exec/{namespace}/{pod}/{container}", self._authenticated(self.exec)
            )
            app.router.add_route(
                method, "/attach/{namespace}/{pod}/{container}", self._authenticated(self.attach)
            )
            app.router.add_route(
                method, "/portForward/{namespace}/{pod}", self._authenticated(self.port_forward)
            )
        return app

    async def start(self) -> int:
        # handler_cancellation: a follower whose client went away stops reading at once
        runner = web.AppRunner(
            self.application(), access_log=None, handle_signals=False, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context())
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise KubeletPortInUse(
                    f"the agent's port {self.host}:{self.port} is in use (another agent on this "
                    "machine?): pass --kubelet-port PORT, or 0 for any free one"
                ) from None
            raise
        self._runner = runner
        server = site._server  # aiohttp keeps the asyncio server here
        for sock in getattr(server, "sockets", None) or []:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.port = int(sock.getsockname()[1])
                break
        log.info("kubelet endpoint listening on https://%s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authenticated(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def check(request: web.Request) -> web.StreamResponse:
            caller = client_certificate_name(request)
            if caller is None:
                return web.Response(status=401, text="Unauthorized")
            if caller != API_SERVER_CLIENT_NAME:
                return web.Response(
                    status=403, text=f"Forbidden (user={caller}, path={request.path})"
                )
            try:
                response: web.StreamResponse = await handler(request)
            except (RequestError, StreamRequestError) as exc:
                # the message in a header too: a WebSocket client (the API server) sees the
                # status and headers of a refused upgrade, not its body
                return web.Response(
                    status=exc.code,
                    text=exc.message,
                    headers={ERROR_HEADER: quote(exc.message, safe=" ")},
                )
            except ConnectionResetError:
                if request.transport is not None and not request.transport.is_closing():
                    raise
                return web.Response(status=499)  # the reader went away mid-log: nothing wrong
            return response

        return check

    async def logs(self, request: web.Request) -> web.StreamResponse:
        """``GET /containerLogs/{namespace}/{pod}/{container}``."""
        namespace = request.match_info["namespace"]
        pod_name = request.match_info["pod"]
        name = request.match_info["container"]
        options, previous = log_options(request.query, now=self.clock.time())
        pod = self.view.pod(f"{namespace}/{pod_name}")
        if pod is None:
            raise RequestError(404, f'pod "{pod_name}" does not exist')
        spec = pod.get("spec") or {}
        inits = spec.get("initContainers") or []
        every = [*inits, *(spec.get("containers") or []), *(spec.get("ephemeralContainers") or [])]
        container = next((c for c in every if c.get("name") == name), None)
        if container is None:
            raise RequestError(404, f'container "{name}" not found in pod "{pod_name}"')
        uid = pod["metadata"].get("uid", "")
        cid = podspec.container_id(uid, name)
        states = self.view.states
        instance = log_instance(
            pod,
            container,
            states.get(cid),
            config_error=self.view.config_errors.get(cid, ""),
            init=container in inits,
            initialized=all(
                podspec.init_succeeded(states.get(podspec.container_id(uid, c["name"])))
                for c in inits
            ),
            previous=previous,
        )
        log_dir = podspec.pod_log_dir(self.view.data_dir, pod) / name

        def is_active() -> bool:
            state = states.get(cid)
            return (
                state is not None and state.state == "running" and (state.restart_count == instance)
            )

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in logs.read_log(
            lambda: logs.instance_files(log_dir, instance), options, is_active=is_active
        ):
            await response.write(chunk)
        await response.write_eof()
        return response

    # ------------------------------------------------------------- streaming

    def _pod(self, request: web.Request) -> Obj:
        namespace, name = request.match_info["namespace"], request.match_info["pod"]
        pod = self.view.pod(f"{namespace}/{name}")
        if pod is None:
            raise RequestError(404, "pod does not exist")
        return pod

    def _running(self, request: web.Request) -> tuple[Obj, Obj, ContainerState]:
        """The pod, the container and its running instance (``findContainer``)."""
        pod = self._pod(request)
        name = request.match_info["container"]
        container = next((c for c in podspec.all_containers(pod) if c.get("name") == name), None)
        state = self.view.states.get(podspec.container_id(pod["metadata"]["uid"], name))
        if container is None or state is None or state.state != "running":
            raise RequestError(500, f'container not found ("{name}")')
        return pod, container, state

    async def exec(self, request: web.Request) -> web.StreamResponse:
        """``/exec/{namespace}/{pod}/{container}?command=...&stdin=1...``."""
        options = remotecommand.stream_options(request.query)
        command = request.query.getall("command", [])
        pod, container, _ = self._running(request)
        if not command:
            raise RequestError(400, "you must specify at least one command for the container")
        context = await self.view.context(pod, container)
        ws, protocol = await remotecommand.accept(request, REMOTE_COMMAND_PROTOCOLS)
        channels = Channels(ws, protocol_named(protocol))
        await remotecommand.run_exec(channels, options, context, command)
        return ws

    async def attach(self, request: web.Request) -> web.StreamResponse:
        """``/attach/{namespace}/{pod}/{container}?stdin=1&stdout=1...``."""
        options = remotecommand.stream_options(request.query)
        pod, container, state = self._running(request)
        log_dir = podspec.pod_log_dir(self.view.data_dir, pod) / container["name"]
        instance = state.restart_count

        def is_active() -> bool:
            now = self.view.states.get(state.id)
            return now is not None and now.state == "running" and now.restart_count == instance

        def output(stream: str) -> AsyncIterator[bytes]:
            options = logs.LogOptions(tail_lines=0, follow=True, streams=frozenset({stream}))
            return logs.read_log(
                lambda: logs.instance_files(log_dir, instance), options, is_active=is_active
            )

        fifo = self.view.stdin_fifo(state.id) if container.get("stdin") else None
        ws, protocol = await remotecommand.accept(request, REMOTE_COMMAND_PROTOCOLS)
        channels = Channels(ws, protocol_named(protocol))
        await remotecommand.run_attach(channels, options, AttachTarget(output, fifo))
        return ws

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """``/portForward/{namespace}/{pod}``: kubectl's SPDY tunnel, or the channel
        protocol with ``?ports=...``."""
        pod = self._pod(request)
        meta = pod["metadata"]
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        tunnel = portforward.SPDY_TUNNEL in offered
        ports = [] if tunnel else portforward.query_ports(request.query.getall("ports", []))
        protocols = (portforward.SPDY_TUNNEL,) if tunnel else PORT_FORWARD_PROTOCOLS
        dial = functools.partial(portforward.dial, netns=self.view.netns(pod))
        ws, _ = await remotecommand.accept(request, protocols)
        if tunnel:
            await portforward.serve_spdy(ws, dial, pod=meta["name"], uid=meta.get("uid", ""))
        else:
            await portforward.serve_channels(
                ws, dial, ports, pod=meta["name"], uid=meta.get("uid", "")
            )
        return ws
