"""What a controller keeps of its pod template's past: the template hash and ControllerRevisions.

A workload controller names what it derives from one pod template by a hash of that
template (:func:`compute_hash`, upstream's ``controller.ComputeHash``): the Deployment's
``pod-template-hash`` on its ReplicaSets, the DaemonSet's ``controller-revision-hash`` on its
pods and revisions. A ``collisionCount`` from the owner's status goes into the hash, so that
when two templates hash alike the owner bumps it and gets a fresh name.

A ControllerRevision is an immutable snapshot of an owner's state (``data``) with a
``revision`` number; an owner's revisions are its history, numbered from 1, the highest
being the current one (``pkg/controller/history/controller_history.go``). They are named
``<owner>-<hash>`` (:func:`revision_name`) and carry the owner's controller reference, so the
garbage collector removes them with it.

The DaemonSet and StatefulSet controllers keep the same history
(``pkg/controller/history``): a revision's ``data`` is the strategic merge patch that brings
the owner's pod template back (``{"spec":{"template":{..., "$patch":"replace"}}}``,
:func:`revision_patch`), which is what ``kubectl rollout undo`` applies; its labels are the
template's plus ``controller-revision-hash``; it carries the owner's annotations. Creating
one whose name is taken by a revision with other data is a hash collision: the owner's
``status.collisionCount`` goes up (:func:`create_revision`) and the next attempt hashes anew.
Old revisions beyond ``revisionHistoryLimit`` that no live pod still runs are deleted,
oldest first (:func:`revisions_to_clean_up`). How each controller picks its current
revision from the history is its own business.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from setpoint.client.api import CONTROLLERREVISIONS, ApiClient, ApiError, Obj, Resource
from setpoint.controllers.util import ownerrefs
from setpoint.meta import gofmt

HASH_LABEL = "controller-revision-hash"


@dataclass(frozen=True)
class HistoryOwner:
    """The kind whose history it is: where its objects live and how a reference names it."""

    resource: Resource
    api_version: str
    kind: str


_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_PREFIX = 223  # a name is at most 253 characters; leaves room for "-" and the hash


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """The template hash: FNV-1a (32 bit) of the template's canonical JSON, plus the
    collision count when set, spelled in Kubernetes' vowel-free alphabet
    (``controller.ComputeHash`` hashes Go's deep printing instead; the values differ from
    Kubernetes' but are just as stable)."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += struct.pack("<Q", collision_count & 0xFFFFFFFF)
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(value))


def revision_name(prefix: str, hash_value: str) -> str:
    """``ControllerRevisionName``: ``<prefix>-<hash>``, the prefix cut to 223 characters."""
    return f"{prefix[:_MAX_PREFIX]}-{hash_value}"


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def max_revision(revisions: Iterable[Obj]) -> int:
    """The highest revision number among ``revisions`` (0 for none)."""
    return max((revision_number(r) for r in revisions), default=0)


def by_revision(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first (``historiesByRevision``), ties by name for a stable order."""
    return sorted(revisions, key=lambda r: (revision_number(r), r["metadata"].get("name", "")))


def revision_hash(revision: Obj) -> str:
    """The ``controller-revision-hash`` label ("" without one)."""
    return str((revision["metadata"].get("labels") or {}).get(HASH_LABEL, ""))


def revision_patch(owner: Obj) -> Obj:
    """``getPatch``: the patch that restores the owner's pod template."""
    template = copy.deepcopy(owner["spec"].get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_template(revision: Obj) -> Obj:
    """The pod template a revision holds (``ApplyRevision`` of its patch)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template"))
    if not isinstance(template, dict):
        return {}
    template.pop("$patch", None)
    return template


def revision_matches(owner: Obj, revision: Obj) -> bool:
    """``Match`` / ``EqualRevision``: the revision holds the owner's current template.
    Compared as Go's ``json.Marshal`` would write both (keys sorted), so that kubectl, which
    compares bytes the same way, agrees."""
    return gofmt.json_marshal(revision.get("data")) == gofmt.json_marshal(revision_patch(owner))


def new_revision(obj: Obj, number: int, owner: HistoryOwner) -> Obj:
    """The ControllerRevision for ``obj``'s current template (``NewControllerRevision``)."""
    collision_count = (obj.get("status") or {}).get("collisionCount")
    hash_value = compute_hash(obj["spec"].get("template") or {}, collision_count)
    template_labels = ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels")
    meta: Obj = {
        "name": revision_name(obj["metadata"]["name"], hash_value),
        "namespace": obj["metadata"]["namespace"],
        "labels": {**(template_labels or {}), HASH_LABEL: hash_value},
        "ownerReferences": [ownerrefs.new_controller_ref(obj, owner.api_version, owner.kind)],
    }
    if obj["metadata"].get("annotations"):
        meta["annotations"] = dict(obj["metadata"]["annotations"])
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": meta,
        "data": revision_patch(obj),
        "revision": number,
    }


def revisions_to_clean_up(obj: Obj, old: list[Obj], live_hashes: set[str]) -> list[Obj]:
    """``cleanupHistory`` / ``truncateHistory``'s victims: the oldest of ``old`` beyond
    ``revisionHistoryLimit`` whose hash (or name) no live pod carries."""
    limit = int(obj["spec"].get("revisionHistoryLimit", 10))
    excess = len(old) - limit
    victims: list[Obj] = []
    for revision in by_revision(old):
        if len(victims) >= excess:
            break
        if revision_hash(revision) in live_hashes or revision["metadata"]["name"] in live_hashes:
            continue
        victims.append(revision)
    return victims


async def create_revision(client: ApiClient, owner: HistoryOwner, obj: Obj, number: int) -> Obj:
    """Create the revision of ``obj``'s current template numbered ``number``; an existing
    one with the same data is returned. A name taken by other data raises AlreadyExists
    after raising the owner's ``status.collisionCount`` (unless our copy was stale)."""
    revision = new_revision(obj, number, owner)
    name, namespace = revision["metadata"]["name"], revision["metadata"]["namespace"]
    try:
        return await client.create(CONTROLLERREVISIONS, revision)
    except ApiError as exc:
        if not exc.is_already_exists:
            raise
        existing = await client.get(CONTROLLERREVISIONS, name, namespace)
        if revision_matches(obj, existing):
            return existing
        fresh = await client.get(owner.resource, obj["metadata"]["name"], namespace)
        seen = (obj.get("status") or {}).get("collisionCount")
        if (fresh.get("status") or {}).get("collisionCount") != seen:
            raise  # our copy was stale: the next attempt hashes with the new count
        status = fresh.setdefault("status", {})
        status["collisionCount"] = int(seen or 0) + 1
        await client.update_status(owner.resource, fresh)
        raise


async def renumber_revision(client: ApiClient, revision: Obj, number: int) -> Obj:
    """``UpdateControllerRevision``: give ``revision`` the number ``number``."""
    updated = copy.deepcopy(revision)
    updated["revision"] = number
    return await client.update(CONTROLLERREVISIONS, updated)


async def label_unhashed(client: ApiClient, revision: Obj) -> Obj:
    """A revision from elsewhere, without a hash label: its name stands for its hash."""
    if HASH_LABEL in (revision["metadata"].get("labels") or {}):
        return revision
    updated = copy.deepcopy(revision)
    labels = revision["metadata"].get("labels") or {}
    updated["metadata"]["labels"] = {**labels, HASH_LABEL: revision["metadata"]["name"]}
    return await client.update(CONTROLLERREVISIONS, updated)


async def delete_revision(client: ApiClient, revision: Obj) -> None:
    meta = revision["metadata"]
    try:
        await client.delete(CONTROLLERREVISIONS, meta["name"], meta["namespace"])
    except ApiError as exc:
        if not exc.is_not_found:
            raise
