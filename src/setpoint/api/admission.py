"""Admission: the plugins a write passes after it is decoded and before it is stored, as
kube-apiserver's admission chain runs them.

A write becomes an :class:`AdmissionRequest` (operation, kind, namespace, name, subresource,
the new and the old object, who asks, dry run). Every plugin's ``admit`` runs first, in order,
and may change the new object (defaults from a LimitRange, a pod's ServiceAccount); then the
object is validated; then every plugin's ``validate`` runs and may only refuse, raising an
:class:`~setpoint.api.errors.APIError` (a quota exceeded, a node writing another node's pod),
or add ``warnings`` the client receives as ``Warning`` headers (a pod that a namespace's Pod
Security level would refuse).
Writes the API server makes itself carry no user; plugins let those through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from setpoint.api.auth.user import UserInfo
from setpoint.resources.registry import ResourceType

Obj = dict[str, Any]

CREATE = "CREATE"
UPDATE = "UPDATE"
DELETE = "DELETE"
CONNECT = "CONNECT"


@dataclass
class AdmissionRequest:
    operation: str
    rtype: ResourceType
    namespace: str | None
    name: str
    user: UserInfo | None
    obj: Obj | None = None  # the object as it will be stored (None for DELETE)
    old: Obj | None = None  # the stored object (None for CREATE)
    subresource: str = ""
    dry_run: bool = False
    # Warning headers for the client (Pod Security ``warn``), in the order plugins add them
    warnings: list[str] = field(default_factory=list)
    # annotations for this request's audit event (Pod Security ``audit``: upstream's
    # ``pod-security.kubernetes.io/audit-violations``); nothing records them yet
    audit_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def resource(self) -> tuple[str, str]:
        """(API group, plural) of the kind written."""
        return self.rtype.group, self.rtype.plural


class AdmissionPlugin(Protocol):
    async def admit(self, request: AdmissionRequest) -> None:
        """Mutate ``request.obj`` if this plugin has something to add (or refuse)."""
        ...

    async def validate(self, request: AdmissionRequest) -> None:
        """Refuse ``request`` with an APIError; never change it."""
        ...


class AdmissionChain:
    """The plugins every write passes, in order."""

    def __init__(self, plugins: Sequence[AdmissionPlugin] = ()) -> None:
        self.plugins = list(plugins)

    def add(self, plugin: AdmissionPlugin) -> None:
        self.plugins.append(plugin)

    async def admit(self, request: AdmissionRequest) -> None:
        for plugin in self.plugins:
            await plugin.admit(request)

    async def validate(self, request: AdmissionRequest) -> None:
        for plugin in self.plugins:
            await plugin.validate(request)
