"""Discovery: which resources the API server serves, asked of the server itself.

A component that must act on "every namespaced kind" or "every kind that can own something"
(the namespace controller, the garbage collector) does not keep a list of kinds: it reads the
server's discovery documents, as kube-controller-manager does, so a kind added to the server
later (a new built-in, a custom resource) is covered without touching the component.

:func:`server_preferred_resources` is client-go's ``ServerPreferredResources`` over the
legacy documents: ``GET /api`` and ``GET /apis`` name the group versions, and one
``APIResourceList`` per group version (``/api/v1``, ``/apis/<group>/<version>``) names its
resources, whether they are namespaced, their kind and their verbs. Subresources
(``pods/status``) are left out, and a resource served in several versions of its group is
reported once, in the group's preferred version. A group version whose list cannot be read
is named in :attr:`Discovered.failed` and the rest is still returned (client-go's
``ErrGroupDiscoveryFailed``): callers decide whether partial knowledge is enough to act on.
If the group lists themselves cannot be read, the error is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from setpoint.client.api import ApiClient, Obj, Resource


class APIResource(NamedTuple):
    """One served resource and the verbs the server allows on it."""

    resource: Resource
    verbs: frozenset[str]

    def supports(self, verbs: Collection[str]) -> bool:
        """Every one of ``verbs`` is allowed (client-go's ``SupportsAllVerbs``)."""
        return all(verb in self.verbs for verb in verbs)


@dataclass(frozen=True)
class Discovered:
    """What one discovery pass found."""

    resources: tuple[APIResource, ...] = ()
    # group version ("apps/v1", "v1") -> why its resource list could not be read
    failed: Mapping[str, str] = field(default_factory=dict)

    def failure_message(self) -> str:
        """``ErrGroupDiscoveryFailed.Error()``: the failed group versions, sorted."""
        details = ", ".join(f"{gv}: {error}" for gv, error in sorted(self.failed.items()))
        return f"unable to retrieve the complete list of server APIs: {details}"


class GroupVersions(NamedTuple):
    """A group as ``/api`` or ``/apis`` lists it."""

    group: str
    versions: list[str]  # as the server lists them
    preferred: str


def group_versions(core: Obj, groups: Obj) -> list[GroupVersions]:
    """The group versions named by ``/api`` (the core group) and ``/apis``."""
    found = []
    core_versions = [str(v) for v in core.get("versions") or []]
    if core_versions:
        found.append(GroupVersions("", core_versions, core_versions[0]))
    for group in groups.get("groups") or []:
        versions = [str(v.get("version", "")) for v in group.get("versions") or []]
        preferred = str((group.get("preferredVersion") or {}).get("version") or "")
        if versions:
            found.append(GroupVersions(str(group.get("name", "")), versions, preferred))
    return found


def _path(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def preferred_resources(
    groups: list[GroupVersions], lists: Mapping[tuple[str, str], Obj]
) -> list[APIResource]:
    """Pick one version of every (group, resource) from the ``APIResourceList`` documents
    in ``lists`` (by group and version): the first listed, unless the group's preferred
    version lists it too (``ServerPreferredResources``)."""
    chosen: dict[tuple[str, str], APIResource] = {}
    for gv in groups:
        for version in gv.versions:
            listing = lists.get((gv.group, version))
            if listing is None:
                continue
            for entry in listing.get("resources") or []:
                name = str(entry.get("name", ""))
                if not name or "/" in name:
                    continue  # a subresource
                if (gv.group, name) in chosen and version != gv.preferred:
                    continue
                resource = Resource(
                    gv.group,
                    version,
                    name,
                    bool(entry.get("namespaced")),
                    str(entry.get("kind", "")),
                )
                verbs = frozenset(str(v) for v in entry.get("verbs") or [])
                chosen[(gv.group, name)] = APIResource(resource, verbs)
    return list(chosen.values())


async def server_preferred_resources(client: ApiClient) -> Discovered:
    """Every resource the server serves, in its group's preferred version, with its verbs."""
    core, groups = await asyncio.gather(
        client.request("GET", "/api"), client.request("GET", "/apis")
    )
    listed = group_versions(core, groups)
    wanted = [(gv.group, version) for gv in listed for version in gv.versions]
    answers = await asyncio.gather(
        *(client.request("GET", _path(group, version)) for group, version in wanted),
        return_exceptions=True,
    )
    lists: dict[tuple[str, str], Obj] = {}
    failed: dict[str, str] = {}
    for (group, version), answer in zip(wanted, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, Exception):
                raise answer  # cancelled: not a discovery failure
            failed[f"{group}/{version}" if group else version] = str(answer)
        else:
            lists[(group, version)] = answer
    return Discovered(tuple(preferred_resources(listed, lists)), failed)
