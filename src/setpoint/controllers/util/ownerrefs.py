"""Controller references: who controls an object, and how a controller claims what it selects.

An object has at most one ``ownerReference`` with ``controller: true``: its controller
(:func:`controller_ref`, upstream's ``GetControllerOf``). A controller writes that reference
into what it creates (:func:`new_controller_ref`, ``NewControllerRef``) and *claims* the
objects its selector matches (``ClaimObject`` in ``pkg/controller/controller_ref_manager.go``):
it keeps what it already owns and still matches, adopts orphans that match (adding its
controller reference), and releases what it owns that no longer matches (removing the
reference). Objects controlled by someone else are never touched, and a controller that is
being deleted adopts and releases nothing.

:func:`classify_claims` makes that decision without I/O; :func:`claim` carries it out.
Adoption and release are merge patches pinned to the object's resourceVersion
(:func:`adoption_patch` / :func:`release_patch`), so a concurrent change makes them fail with
a conflict instead of clobbering someone else's reference. Before the first adoption the
controller re-reads itself from the API (:func:`recheck_deletion`, upstream's
``RecheckDeletionTimestamp``): a cached owner may already be deleted, or replaced by a new one
of the same name, and must not adopt anything then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from setpoint.client.api import ApiClient, ApiError, Obj, Resource
from setpoint.client.informer import Informer, object_key
from setpoint.controllers.util.pods import is_terminating
from setpoint.meta.labels import Selector


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any (``GetControllerOf``)."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controller_uid(obj: Obj) -> str | None:
    """The uid its controller reference names, if it has one."""
    ref = controller_ref(obj)
    return None if ref is None else str(ref.get("uid", ""))


def new_controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """``NewControllerRef``: a controller reference that blocks the owner's foreground
    deletion until this object is gone."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def resolve_controller_ref(obj: Obj, kind: str, owners: Informer) -> str | None:
    """``resolveControllerRef``: the key of the cached owner of ``kind`` that controls
    ``obj``, if its uid is the one the reference names (a namesake is not the owner)."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    key = f"{obj['metadata'].get('namespace')}/{ref.get('name')}"
    owner = owners.get(key)
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return key


def selecting_owners(
    obj: Obj, owners: Informer, selector_of: Callable[[Obj], Selector]
) -> list[str]:
    """The keys of the cached owners in ``obj``'s namespace whose selector matches it: who
    might adopt an orphan (owners indexed ``namespace``)."""
    labels = obj["metadata"].get("labels") or {}
    namespace = obj["metadata"].get("namespace", "")
    return [
        object_key(owner)
        for owner in owners.by_index("namespace", namespace)
        if selector_of(owner).matches(labels)
    ]


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


# ------------------------------------------------------------------------- claiming


@dataclass
class Claims:
    """What a controller does with the candidates in its namespace."""

    owned: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def classify_claims(owner: Obj, selector: Selector, candidates: Iterable[Obj]) -> Claims:
    """``ClaimObject`` for every candidate, as a decision (no API calls)."""
    claims = Claims()
    owner_uid = owner["metadata"].get("uid")
    owner_deleting = is_terminating(owner)
    owner_ns = owner["metadata"].get("namespace")
    for obj in candidates:
        matches = selector.matches(obj["metadata"].get("labels") or {})
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches:
                claims.owned.append(obj)
            elif not owner_deleting:
                claims.release.append(obj)
            continue
        if owner_deleting or not matches or is_terminating(obj):
            continue
        if owner_ns and obj["metadata"].get("namespace") != owner_ns:
            continue
        claims.adopt.append(obj)
    return claims


def adoption_patch(obj: Obj, ref: Obj) -> Obj:
    """A merge patch adding controller ``ref`` to ``obj``'s ownerReferences."""
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
    return {
        "metadata": {
            "ownerReferences": [*refs, ref],
            "resourceVersion": obj["metadata"].get("resourceVersion"),
        }
    }


def release_patch(obj: Obj, owner_uid: str) -> Obj:
    """A merge patch removing the reference to ``owner_uid`` from ``obj``."""
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
    return {
        "metadata": {
            "ownerReferences": refs or None,
            "resourceVersion": obj["metadata"].get("resourceVersion"),
        }
    }


async def recheck_deletion(client: ApiClient, resource: Resource, owner: Obj) -> bool:
    """``RecheckDeletionTimestamp``: read the owner fresh before adopting; it may adopt only
    if it still exists with the same uid and is not being deleted."""
    meta = owner["metadata"]
    try:
        fresh = await client.get(resource, meta["name"], meta.get("namespace"))
    except ApiError as exc:
        if exc.is_not_found:
            return False
        raise
    return fresh["metadata"].get("uid") == meta["uid"] and not is_terminating(fresh)


@dataclass(frozen=True)
class ClaimTarget:
    """Who claims and what: the owner (with its resource, apiVersion and kind, for the
    controller reference and the fresh re-read) and the resource of the objects it claims."""

    owner: Obj
    owner_resource: Resource
    api_version: str
    kind: str
    resource: Resource


async def claim(
    client: ApiClient, target: ClaimTarget, selector: Selector, candidates: Iterable[Obj]
) -> list[Obj]:
    """``ClaimPods`` / ``ClaimReplicaSets``: adopt matching orphans (after
    :func:`recheck_deletion`), release owned objects that stopped matching, and return what
    the owner now owns. An object that vanished meanwhile is skipped; a release refused as
    invalid (the reference is already gone, or the object was recreated) is ignored, as
    upstream's ``ReleasePod`` does; any other error is raised."""
    owner = target.owner
    claims = classify_claims(owner, selector, candidates)
    owned = list(claims.owned)
    if claims.adopt and await recheck_deletion(client, target.owner_resource, owner):
        ref = new_controller_ref(owner, target.api_version, target.kind)
        for obj in claims.adopt:
            meta = obj["metadata"]
            try:
                adopted = await client.patch(
                    target.resource, meta["name"], adoption_patch(obj, ref), meta["namespace"]
                )
            except ApiError as exc:
                if exc.is_not_found:
                    continue
                raise
            owned.append(adopted)
    for obj in claims.release:
        meta = obj["metadata"]
        try:
            await client.patch(
                target.resource,
                meta["name"],
                release_patch(obj, owner["metadata"]["uid"]),
                meta["namespace"],
            )
        except ApiError as exc:
            if not (exc.is_not_found or exc.code == 422):
                raise
    return owned
