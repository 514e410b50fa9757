"""``hostPort``: a node port that reaches a pod in its own network namespace.

Kubernetes maps a container's ``hostPort`` with kernel rules (the CNI ``portmap`` plugin's
DNAT); the agent forwards in userspace (:class:`~setpoint.agent.relay.Relay`): for each TCP
``hostPort`` of a pod with a network of its own it listens on ``hostIP`` (every address when
unset) and relays each connection to ``podIP:containerPort``. The client's address is not
preserved (the pod sees the node's bridge address), and the listeners live in the agent:
while it restarts, new connections are refused (established ones to the pod's own IP are
not affected). A ``UDP`` or ``SCTP`` hostPort, and one that cannot be bound, is a
``HostPortNotMapped`` Warning.
"""

from __future__ import annotations

import logging

from setpoint.agent.relay import Relay
from setpoint.client.api import Obj

log = logging.getLogger(__name__)


def host_ports(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return [
        port
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        for port in c.get("ports") or []
        if port.get("hostPort")
    ]


class HostPorts:
    """The hostPort listeners of one node's pods, by pod uid (each pod's a :class:`Relay`)."""

    def __init__(self) -> None:
        self._pods: dict[str, Relay] = {}

    def mapped(self, uid: str) -> bool:
        return uid in self._pods

    async def open(self, pod: Obj, pod_ip: str) -> list[str]:
        """Listen for the pod's hostPorts; returns what could not be mapped, in words."""
        uid = pod["metadata"]["uid"]
        relay = self._pods.setdefault(uid, Relay())
        problems = []
        for port in host_ports(pod):
            protocol = port.get("protocol") or "TCP"
            where = f"{port.get('hostIP') or '0.0.0.0'}:{port['hostPort']}/{protocol}"
            if protocol != "TCP":
                problems.append(f"{where}: only TCP hostPorts are forwarded")
                continue
            target = (pod_ip, int(port["containerPort"]))
            try:
                await relay.listen(port.get("hostIP") or None, int(port["hostPort"]), target)
            except OSError as exc:
                problems.append(f"{where}: {exc.strerror or exc}")
        return problems

    async def close(self, uid: str) -> None:
        relay = self._pods.pop(uid, None)
        if relay is not None:
            await relay.close()

    async def close_all(self) -> None:
        for uid in list(self._pods):
            await self.close(uid)
