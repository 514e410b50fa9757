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
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import orjson

from setpoint.client.api import Obj

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
