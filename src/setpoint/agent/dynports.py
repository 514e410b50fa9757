"""Per-pod port assignment for pods in the node's network (Nomad's dynamic ports).

A pod with a network namespace of its own binds its ``containerPorts`` on its own IP. One
that runs in the node's network only because the agent has no pod network (not root,
``--pod-network=host``, no ``spec.podCIDR``; never a ``hostNetwork: true`` pod, which asked
for the node's ports) would bind them on the node, where two replicas collide. So the agent
gives each of its TCP containerPorts a free node port, chosen by binding port 0 on the node
address, and tells every container of the pod through its environment:

- ``PORT_<containerPort>`` (``PORT_8080``) for each,
- ``PORT_<NAME>`` for a named port (upper-cased, ``-`` as ``_``: ``PORT_METRICS_HTTP``),
- ``PORT``, the first declared port's,

unless the container sets those names itself (its own ``env`` wins). The app must listen on
``$PORT``. UDP and SCTP ports are not assigned (they stay shared with the node).

:class:`PortAssignments` keeps the assignments: in memory, by pod uid, and in
``<pod dir>/assigned-ports.json``, so an agent restart gives a pod the ports it had (and
hands none of them to another pod); they are released when the pod's sandbox goes. The
mapping is also written on the pod (:mod:`setpoint.meta.assignedports`) for Services.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from setpoint.client.api import Obj
from setpoint.meta.assignedports import port_key

log = logging.getLogger(__name__)

FILE_NAME = "assigned-ports.json"


@dataclass(frozen=True)
class DeclaredPort:
    """One containerPort of a pod."""

    port: int
    protocol: str
    name: str = ""

    @property
    def key(self) -> str:
        return port_key(self.port, self.protocol)


def declared_ports(pod: Obj) -> list[DeclaredPort]:
    """The pod's containerPorts, app containers first, each (port, protocol) once."""
    spec = pod.get("spec") or {}
    seen: dict[str, DeclaredPort] = {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for port in container.get("ports") or []:
            with contextlib.suppress(TypeError, ValueError):
                declared = DeclaredPort(
                    int(port["containerPort"]),
                    str(port.get("protocol") or "TCP"),
                    str(port.get("name") or ""),
                )
                seen.setdefault(declared.key, declared)
    return list(seen.values())


def env_name(name: str) -> str:
    return "PORT_" + name.upper().replace("-", "_")


def port_env(declared: Iterable[DeclaredPort], assigned: Mapping[str, int]) -> dict[str, str]:
    """The variables that tell a container its assigned ports (see the module doc)."""
    env: dict[str, str] = {}
    for port in declared:
        number = assigned.get(port.key)
        if number is None:
            continue
        env.setdefault("PORT", str(number))
        env[env_name(str(port.port))] = str(number)
        if port.name:
            env[env_name(port.name)] = str(number)
    return env


def env_names(port: DeclaredPort, *, first: bool) -> list[str]:
    """The variables naming one assigned port, for the event that explains them."""
    names = [env_name(str(port.port))]
    if port.name:
        names.append(env_name(port.name))
    if first:
        names.append("PORT")
    return names


def free_port(host: str) -> int:
    """A port nothing on ``host`` listens on now (the kernel's pick for port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PortAssignments:
    """The node ports assigned to pods, by pod uid, kept beside each pod's sandbox."""

    def __init__(
        self,
        root: Path,
        *,
        host: str,
        pick: Callable[[str], int] = free_port,
    ) -> None:
        self.root = root  # <data dir>/pods: one directory per pod uid
        self.host = host
        self.pick = pick
        self._pods: dict[str, dict[str, int]] = {}
        self._loaded = False

    def path(self, uid: str) -> Path:
        return self.root / uid / FILE_NAME

    def get(self, uid: str) -> dict[str, int]:
        self._load()
        return dict(self._pods.get(uid, {}))

    def assign(self, uid: str, ports: Iterable[DeclaredPort]) -> dict[str, int]:
        """The pod's assignments, each TCP port given one if it had none. The pod's
        directory must exist."""
        self._load()
        current = dict(self._pods.get(uid, {}))
        wanted = [p for p in ports if p.protocol == "TCP" and p.key not in current]
        if not wanted:
            return current
        taken = {n for pod in self._pods.values() for n in pod.values()}
        for port in wanted:
            number = self.pick(self.host)
            for _ in range(100):  # free now, but perhaps another pod's while it restarts
                if number not in taken:
                    break
                number = self.pick(self.host)
            else:
                raise OSError(f"no free port on {self.host} for containerPort {port.key}")
            current[port.key] = number
            taken.add(number)
        self._pods[uid] = current
        _write_json(self.path(uid), current)
        return current

    def release(self, uid: str) -> None:
        self._pods.pop(uid, None)

    def _load(self) -> None:
        """Read every pod's file once, so that no port of a pod from before an agent
        restart is handed to another."""
        if self._loaded:
            return
        self._loaded = True
        with contextlib.suppress(FileNotFoundError):
            for path in self.root.glob(f"*/{FILE_NAME}"):
                try:
                    value = json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    log.warning("assigned ports: cannot read %s: %s", path, exc)
                    continue
                if isinstance(value, dict):
                    ports = {str(k): v for k, v in value.items() if isinstance(v, int)}
                    self._pods.setdefault(path.parent.name, ports)


def _write_json(path: Path, value: Mapping[str, int]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(dict(value), sort_keys=True))
    os.replace(temporary, path)
