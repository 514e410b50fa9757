"""How the API server reaches a node's agent: its address, its credentials, its errors.

Some subresources of a pod are served by the node that runs it, as kube-apiserver asks the
kubelet for them: ``pods/log`` (:mod:`setpoint.api.podlogs`), ``pods/exec``, ``pods/attach``
and ``pods/portforward`` (:mod:`setpoint.api.podstreams`). They share what
:class:`KubeletClient` holds:

- the agent's address is the Node's ``InternalIP`` (then ``ExternalIP``, then
  ``Hostname``; setpoint agents name the node after the host but the name need not
  resolve) and the port it publishes in ``status.daemonEndpoints.kubeletEndpoint.Port``;
- the API server authenticates with a client certificate signed by the cluster CA, with
  ``CN=kube-apiserver-kubelet-client`` (kube-apiserver's ``--kubelet-client-certificate``,
  as kubeadm names it); the agent accepts that certificate and nothing else: not a node's
  credential, not an admin's token, not a pod's (see :mod:`setpoint.agent.server`);
- the agent's certificate is self-signed and is not verified, as kube-apiserver without
  ``--kubelet-certificate-authority`` does not verify a kubelet's: the TLS protects the
  traffic from passive observers, and the client certificate, which the agent checks,
  keeps everyone but the API server out;
- a failure the agent reports comes back as a Status with the same code and the agent's
  words, as ``GenericHttpResponseChecker`` makes it;
- the container a request names is checked here first (``validateContainer``): the only
  one, or the one named.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp

from setpoint.api import errors
from setpoint.api.errors import APIError
from setpoint.api.storage import ResourceStorage

KUBELET_CLIENT_COMMON_NAME = "kube-apiserver-kubelet-client"
DEFAULT_KUBELET_PORT = 10250  # kube-apiserver's --kubelet-port, for a Node that names none
ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
CONNECT_TIMEOUT = 10.0
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def pick_container(pod: dict[str, Any], container: str) -> str:
    """``validateContainer``: the named container must exist; without a name, the pod
    must have exactly one (app) container."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    apps = spec.get("containers") or []
    every = [*(spec.get("initContainers") or []), *apps, *(spec.get("ephemeralContainers") or [])]
    if container:
        if not any(c.get("name") == container for c in every):
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return container
    if len(apps) == 1:
        return str(apps[0]["name"])
    if not apps:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    names = " ".join(str(c.get("name")) for c in every)
    raise errors.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{names}]"
    )


def kubelet_address(node: dict[str, Any]) -> tuple[str, int]:
    """Where a Node's agent listens: its preferred address and published port."""
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = next((addresses[t] for t in ADDRESS_TYPES if addresses.get(t)), None)
    if host is None:
        raise errors.internal(f'no preferred addresses found for node "{node["metadata"]["name"]}"')
    endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    port = int(endpoint.get("Port") or 0) or DEFAULT_KUBELET_PORT
    return host, port


def upstream_error(code: int, body: str) -> APIError:
    """A kubelet failure as kube-apiserver's ``GenericHttpResponseChecker`` returns it."""
    message = body.strip()
    if code == 500:
        return errors.internal(message)
    if code == 400:
        return errors.bad_request(message)
    reason = _REASONS.get(code, "InternalError")
    return APIError(code, reason, message or f"the server responded with status {code}")


class KubeletClient:
    """Reaches the agents of the nodes ``nodes`` holds. :meth:`close` it with the server."""

    def __init__(
        self,
        *,
        nodes: ResourceStorage | None,
        client_cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.nodes = nodes
        self.client_cert = client_cert
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # TLS without verification: the agent's certificate is self-signed (see above).
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            if self.client_cert is not None:
                context.load_cert_chain(certfile=self.client_cert[0], keyfile=self.client_cert[1])
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def base_url(self, node_name: str) -> str:
        """``https://<address>:<port>`` of the node's agent."""
        if self.nodes is None:
            raise errors.internal("this server serves no nodes")
        host, port = kubelet_address((await self.nodes.get(None, node_name)).obj)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"https://{netloc}"
