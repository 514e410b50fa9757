"""``GET /api/v1/namespaces/{ns}/pods/{name}/log``: a container's log, from its node's agent.

The API server holds no logs. As kube-apiserver does (pkg/registry/core/pod/rest/log.go and
``LogLocation`` in pkg/registry/core/pod/strategy.go), it reads the pod, checks the request
(``PodLogOptions``: a negative ``tailLines``, a ``limitBytes`` or ``sinceSeconds`` below 1,
or both ``sinceTime`` and ``sinceSeconds`` are 422 Invalid), picks the container (the only
one, or the one named by ``container``: a pod with several needs a name, 400 ``a container
name must be specified for pod web, choose one of: [init app sidecar]``; an unknown name is
400 ``container nope is not valid for pod web``), and streams what the node's agent answers
at ``https://<node InternalIP>:<status.daemonEndpoints.kubeletEndpoint.Port>/containerLogs/
<ns>/<pod>/<container>`` (the kubelet's API, see :mod:`setpoint.agent.server`). A pod not
bound to a node yet has no logs: the answer is empty, as Kubernetes' empty location gives.

The answer is passed on chunk by chunk as it arrives (``kubectl logs -f`` shows each line
when it is written), and the upstream request ends when the client goes away. A failure
the agent reports (``container "app" in pod "web" is waiting to start: ContainerCreating``,
``previous terminated container "app" in pod "web" not found``) comes back as a Status
with the same code and the agent's words, as ``GenericHttpResponseChecker`` makes it.

How the agent is reached, and how its failures become Statuses: :mod:`setpoint.api.kubelet`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from setpoint.api import errors
from setpoint.api.bodies import read_limited
from setpoint.api.errors import APIError
from setpoint.api.handlers import int_param
from setpoint.api.kubelet import KubeletClient, pick_container, upstream_error
from setpoint.api.storage import ResourceStorage
from setpoint.meta.timestamps import format_time, parse_time
from setpoint.resources.fielderrors import FieldError, forbidden, invalid, not_supported

log = logging.getLogger(__name__)

MAX_ERROR_BYTES = 50_000  # GenericHttpResponseChecker's maxReadLength
_BOOL = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False, "": False}


def _bool(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "")
    try:
        return _BOOL[value.lower()]
    except KeyError:
        raise errors.bad_request(f'invalid value "{value}" for query parameter {name}') from None


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    parsed = parse_time(raw)
    if parsed is None:
        raise errors.bad_request(f'invalid value "{raw}" for query parameter {name}')
    return parsed


def kubelet_query(query: Mapping[str, str], name: str) -> dict[str, str]:
    """The kubelet's query for a ``pods/log`` request, after ``ValidatePodLogOptions``
    (422 Invalid on ``PodLogOptions``, as kube-apiserver answers)."""
    tail_lines = int_param(query, "tailLines")
    limit_bytes = int_param(query, "limitBytes")
    since_seconds = int_param(query, "sinceSeconds")
    since_time = _time(query, "sinceTime")
    stream = query.get("stream")
    _bool(query, "insecureSkipTLSVerifyBackend")  # accepted; see the module docstring
    problems: list[FieldError] = []
    if tail_lines is not None and tail_lines < 0:
        problems.append(invalid("tailLines", tail_lines, "must be greater than or equal to 0"))
    if limit_bytes is not None and limit_bytes < 1:
        problems.append(invalid("limitBytes", limit_bytes, "must be greater than 0"))
    if since_seconds is not None and since_time is not None:
        problems.append(
            forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified")
        )
    elif since_seconds is not None and since_seconds < 1:
        problems.append(invalid("sinceSeconds", since_seconds, "must be greater than 0"))
    if stream is not None:
        if stream not in ("Stdout", "Stderr", "All"):
            problems.append(not_supported("stream", stream, ("Stdout", "Stderr", "All")))
        elif stream != "All" and tail_lines is not None:
            problems.append(
                forbidden("", "`tailLines` and specific `stream` are mutually exclusive for now")
            )
    if problems:
        raise invalid_options(name, problems)
    params: dict[str, str] = {}
    for flag in ("follow", "previous", "timestamps"):
        if _bool(query, flag):
            params[flag] = "true"
    if since_seconds is not None:
        params["sinceSeconds"] = str(since_seconds)
    if since_time is not None:
        params["sinceTime"] = format_time(since_time)
    if tail_lines is not None:
        params["tailLines"] = str(tail_lines)
    if limit_bytes is not None:
        params["limitBytes"] = str(limit_bytes)
    if stream is not None:
        params["stream"] = stream
    return params


def invalid_options(name: str, problems: list[FieldError]) -> APIError:
    causes = [{"reason": p.type, "message": p.message, "field": p.field} for p in problems]
    summary = ", ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
    if len(problems) > 1:
        summary = f"[{summary}]"
    return APIError(
        422,
        "Invalid",
        f'PodLogOptions "{name}" is invalid: {summary}',
        details={"name": name, "group": "", "kind": "PodLogOptions", "causes": causes},
    )


class PodLogs:
    """The ``pods/log`` subresource."""

    def __init__(self, *, pods: ResourceStorage | None, kubelet: KubeletClient) -> None:
        self.pods = pods
        self.kubelet = kubelet

    async def serve(
        self, request: web.BaseRequest, namespace: str, name: str
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed(request.method)
        if self.pods is None or self.kubelet.nodes is None:  # serves no pods or nodes
            raise errors.resource_not_found(request.path)
        params = kubelet_query(request.query, name)
        pod = (await self.pods.get(namespace, name)).obj
        container = pick_container(pod, request.query.get("container", ""))
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return web.Response(body=b"", content_type="text/plain")
        path = "/".join(quote(p, safe="") for p in ("containerLogs", namespace, name, container))
        url = f"{await self.kubelet.base_url(node_name)}/{path}"
        url += f"?{urlencode(params)}" if params else ""
        try:
            upstream = await self.kubelet.session().get(url)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise errors.internal(f'Get "{url}": {exc}') from None
        try:
            if not 200 <= upstream.status <= 206:
                body = await read_limited(upstream.content, MAX_ERROR_BYTES, truncate=True)
                raise upstream_error(upstream.status, body.decode(errors="replace"))
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            # each chunk is written as it comes: `kubectl logs -f` sees lines at once; an
            # agent that goes away mid-stream ends the log where it broke off
            with contextlib.suppress(aiohttp.ClientPayloadError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            upstream.close()  # also when the client went away (the handler is cancelled)
