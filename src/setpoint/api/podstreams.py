"""``pods/exec``, ``pods/attach`` and ``pods/portforward``: streams to a pod, through its node.

kubectl 1.37 opens these as WebSockets: ``GET .../pods/web/exec?command=...&stdout=true``
offering ``v5.channel.k8s.io`` (``exec``, ``attach``), and ``GET .../pods/web/portforward``
offering ``SPDY/3.1+portforward.k8s.io`` (a SPDY session tunnelled in the WebSocket); the
official Python client offers ``v5``/``v4.channel.k8s.io`` for both. As kube-apiserver's
``ExecLocation``/``AttachLocation``/``PortForwardLocation`` (pkg/registry/core/pod/
strategy.go) do, the API server reads the pod (404), checks the container (the only one, or
the one named: 400 ``container nope is not valid for pod web``) and that the pod has a node
(400 ``pod web does not have a host assigned``), then opens the same WebSocket to the
node's agent (``/exec/{namespace}/{pod}/{container}``, ``/attach/...``,
``/portForward/{namespace}/{pod}``: the kubelet's paths, with its query) offering the
client's subprotocols, and answers the client's upgrade with the subprotocol the agent
chose. From then on it relays messages both ways until either side closes, and closes the
other with the same code: the agent speaks every protocol (:mod:`setpoint.agent.
remotecommand`, :mod:`setpoint.agent.portforward`), the API server only authenticates,
authorizes and relays, as an upgrade-aware proxy does.

A refused upgrade comes back as the agent's status and words in a Status (404 ``pod does
not exist``, 500 ``container not found ("app")`` for a container that is not running, 400
for bad options). kubectl retries any refused WebSocket over SPDY (``POST`` with
``Upgrade: SPDY/3.1``), which setpoint does not speak: it answers that retry with the
refusal the WebSocket got (remembered for ``REFUSAL_MEMORY_SECONDS`` per user and request),
so the user sees the real reason; a SPDY request with no such refusal gets 400 saying that
setpoint streams over WebSockets only (kubectl 1.30 and later use them by default).

Who may open these streams is the authorizers' business (``auth``): opening one is the verb
``create`` on ``pods/exec``, ``pods/attach`` or ``pods/portforward`` whatever the method, as
kube-apiserver authorizes WebSocket upgrades; a denied user gets 403 ``pods "web" is
forbidden: User "..." cannot create resource "pods/exec" ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from urllib.parse import quote, unquote, urlencode

import aiohttp
from aiohttp import web

from setpoint.api import errors
from setpoint.api.errors import APIError
from setpoint.api.kubelet import KubeletClient, pick_container, upstream_error
from setpoint.api.storage import ResourceStorage

STREAM_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
AGENT_PATHS = {"exec": "exec", "attach": "attach", "portforward": "portForward"}
ERROR_HEADER = "X-Setpoint-Error"  # the agent's refusal, percent-encoded (agent/server.py)
REFUSAL_MEMORY_SECONDS = 30.0
REFUSAL_MEMORY_ENTRIES = 1024
CLOSE_TIMEOUT = 5.0
# the query the kubelet reads: exec/attach options and port-forward ports
_PASSED_ON = ("command", "stdin", "stdout", "stderr", "tty", "ports")
_TRUE = ("1", "true", "True", "t")
_ENDED = (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
_NOT_SENT = (1005, 1006, 1015)  # RFC 6455: codes that must never be sent in a close frame


def agent_query(subresource: str, request: web.BaseRequest) -> list[tuple[str, str]]:
    """The kubelet's query: kube-apiserver passes exec and attach booleans as ``1``."""
    params: list[tuple[str, str]] = []
    for key in _PASSED_ON:
        for value in request.query.getall(key, []):
            if key in ("stdin", "stdout", "stderr", "tty"):
                if value in _TRUE:
                    params.append((key, "1"))
            elif key != "command" or subresource == "exec":
                params.append((key, value))
    return params


def is_websocket(request: web.BaseRequest) -> bool:
    connection = request.headers.get("Connection", "").lower()
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in connection


def offered_protocols(request: web.BaseRequest) -> list[str]:
    header = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in header.split(",") if p.strip()]


class PodStreams:
    """The three streaming subresources of pods, relayed to the node's agent."""

    def __init__(self, *, pods: ResourceStorage | None, kubelet: KubeletClient) -> None:
        self.pods = pods
        self.kubelet = kubelet
        self._refusals: OrderedDict[str, tuple[float, APIError]] = OrderedDict()

    async def serve(
        self, request: web.BaseRequest, subresource: str, namespace: str, name: str
    ) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(request.method)
        if self.pods is None or self.kubelet.nodes is None:
            raise errors.resource_not_found(request.path)
        pod = (await self.pods.get(namespace, name)).obj
        parts = [AGENT_PATHS[subresource], namespace, name]
        if subresource != "portforward":
            parts.append(pick_container(pod, request.query.get("container", "")))
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        key = f"{request.headers.get('Authorization', '')}\n{request.path_qs}"
        if not is_websocket(request):
            raise self._recalled(key) or errors.bad_request(
                f"setpoint streams pods/{subresource} over WebSockets only (kubectl 1.30 and "
                "later use them by default); it does not speak SPDY"
            )
        params = agent_query(subresource, request)
        url = f"{await self.kubelet.base_url(node_name)}/" + "/".join(
            quote(p, safe="") for p in parts
        )
        url += f"?{urlencode(params)}" if params else ""
        try:
            upstream = await self.kubelet.session().ws_connect(
                url,
                protocols=offered_protocols(request),
                autoping=True,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
            )
        except aiohttp.WSServerHandshakeError as exc:
            said = exc.headers.get(ERROR_HEADER, "") if exc.headers is not None else ""
            message = unquote(str(said)) or exc.message
            refusal = upstream_error(exc.status, message)
            self._remember(key, refusal)
            raise refusal from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise errors.internal(f'error dialing backend: "{url}": {exc}') from None
        try:
            protocols = (upstream.protocol,) if upstream.protocol else ()
            client = web.WebSocketResponse(protocols=protocols, autoping=True, max_msg_size=0)
            await client.prepare(request)
            await relay(client, upstream)
            return client
        finally:
            await upstream.close()

    def _remember(self, key: str, refusal: APIError) -> None:
        self._refusals[key] = (time.monotonic() + REFUSAL_MEMORY_SECONDS, refusal)
        self._refusals.move_to_end(key)
        while len(self._refusals) > REFUSAL_MEMORY_ENTRIES:
            self._refusals.popitem(last=False)

    def _recalled(self, key: str) -> APIError | None:
        entry = self._refusals.pop(key, None)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]


async def _pass_on(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    """Messages from ``source`` to ``sink`` until ``source`` closes; then close ``sink``
    with the code ``source`` was closed with (1011, internal error, if it went away
    without one: a close code that only reports a broken connection is not sent)."""
    while True:
        message = await source.receive()
        if message.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.CLOSE:
            code = int(message.data)
            break
        elif message.type in _ENDED:
            code = aiohttp.WSCloseCode.INTERNAL_ERROR
            break
    if code in _NOT_SENT:
        code = aiohttp.WSCloseCode.INTERNAL_ERROR
    with contextlib.suppress(ConnectionError, RuntimeError):
        await sink.close(code=code)


async def relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Relay until either side is done (then the other is closed too)."""
    tasks = [
        asyncio.create_task(_pass_on(client, upstream)),
        asyncio.create_task(_pass_on(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await client.close()
