"""What a request does, derived from its method, path and query as kube-apiserver's
``RequestInfoFactory`` derives it: the verb (``get``, ``list``, ``watch``, ``create``,
``update``, ``patch``, ``delete``, ``deletecollection``), the API group and version, the
resource, subresource, namespace and name — or, outside ``/api`` and ``/apis/<g>/<v>``, a
non-resource path with the method as its verb. Authorization and audit both read these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from setpoint.api.auth.user import UserInfo

_VERB_OF_METHOD = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# a pod's streams: opening one is ``create`` whatever the method (WebSocket upgrades are GETs)
POD_STREAMS = frozenset({"exec", "attach", "portforward"})
# subresources of a namespace itself: /api/v1/namespaces/NAME/status is the namespace's
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class RequestAttributes:
    """One request as authorizers see it (kube-apiserver's ``authorizer.Attributes``)."""

    user: UserInfo
    verb: str
    path: str = ""
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def resource_and_subresource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def request_attributes(
    user: UserInfo, method: str, path: str, query: Mapping[str, str]
) -> RequestAttributes:
    """The attributes of ``method path?query`` made by ``user``."""
    parts = [part for part in path.split("/") if part]
    non_resource = RequestAttributes(user, method.lower(), path=path)
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    if parts[0] == "api":
        if len(parts) < 3:
            return non_resource  # /api and /api/v1 are discovery
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return non_resource  # /apis, /apis/<g>, /apis/<g>/<v> are discovery
        group, version, rest = parts[1], parts[2], parts[3:]
    verb = _VERB_OF_METHOD.get(method.upper(), method.lower())
    if rest[0] == "watch":  # the deprecated /api/v1/watch/... paths
        verb, rest = "watch", rest[1:]
        if not rest:
            return non_resource
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if name and resource == "pods" and subresource in POD_STREAMS and group == "":
        verb = "create"  # a WebSocket upgrade (GET) opens a stream as a POST would
    if not name:
        if verb == "get":
            verb = "list"
        elif verb == "delete":
            verb = "deletecollection"
    if verb in ("list", "watch") or (verb == "get" and not name):
        if query.get("watch", "").lower() in ("1", "true"):
            verb = "watch"
        name = name or _name_from_field_selector(query.get("fieldSelector", ""))
    return RequestAttributes(
        user,
        verb,
        path=path,
        resource_request=True,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _name_from_field_selector(selector: str) -> str:
    """The name a list or watch is confined to by ``fieldSelector=metadata.name=NAME``
    (as Kubernetes lets a kubelet watch only its own Node), else ``""``."""
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        key = key.strip()
        if sep and key == "metadata.name" and not value.startswith("="):
            return value.strip()
        if key == "metadata.name" and value.startswith("="):
            return value[1:].strip()
    return ""
