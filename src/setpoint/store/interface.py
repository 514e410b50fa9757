"""The Store protocol: a revisioned key-value store with watch.

The API server keeps every object in a Store as opaque bytes under keys such as
``/registry/apps/deployments/default/web``. The store owns exactly four ideas, the ones etcd
gives Kubernetes:

* one global revision, bumped by every write, that becomes each object's ``resourceVersion``;
* compare-and-swap writes: create only if absent, update/delete only if the key is still at
  the revision the caller read (optimistic concurrency);
* range reads over a key prefix, paged, at the current or an earlier revision;
* watches that replay every change after a given revision, then follow live changes, until
  old history is compacted away (then :class:`CompactedError`, which the API turns into
  410 Gone).

A write is acknowledged only once it is durable. When the backend itself fails — a full disk,
a read-only file system, a corrupt database file — it raises :class:`BackendError`, whose
message names the cause in plain words, so the API can pass it on to clients and operators.
The backends are ``sqlite.SQLiteStore``, the embedded default, and ``etcd.EtcdStore``;
``endpoint.open_store`` picks one by the URL scheme of ``--datastore-endpoint``, and every
backend must pass ``tests/unit/test_store_conformance.py``, the contract they are held to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For DELETE, ``kv`` holds the last value with the deletion's revision.

    Previous values are not carried: consumers (the watch cache) remember what they saw.
    """

    type: EventType
    kv: KeyValue

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events committed together, and the store revision the watcher has now caught up to.

    A batch with no events is a progress notification: nothing under the watched prefix
    changed up to ``revision``. Consumers use it to know their view is current.
    """

    events: list[WatchEvent]
    revision: int


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the revision the list reflects
    more: bool  # more keys follow the last item under the prefix


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class StoreError(Exception):
    """Base of every error a Store raises on purpose."""


class BackendError(StoreError):
    """The backend failed, not the request: disk full, read-only file system, corrupt database
    file, I/O error. ``str()`` is the cause in words fit for a client ("database or disk is
    full"); ``path`` names the file involved, for operators (empty if none)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class ValueTooLargeError(StoreError):
    """The store refuses a value this large (etcd's ``--max-request-bytes``, 1.5 MiB by
    default): the request's fault, not the backend's; the API answers 413."""

    def __init__(self, key: str, size: int, detail: str) -> None:
        super().__init__(
            f"the object is {size} bytes, more than the store takes ({detail}); "
            "store less in it, or raise etcd's --max-request-bytes"
        )
        self.key = key
        self.size = size


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key} already exists")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key} not found")
        self.key = key


class RevisionConflictError(StoreError):
    """The key is no longer at the revision the caller expected."""

    def __init__(self, key: str, current: KeyValue | None) -> None:
        super().__init__(f"key {key} was modified")
        self.key = key
        self.current = current


class CompactedError(StoreError):
    """The requested revision is older than the oldest history the store still holds."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"required revision {requested} has been compacted (oldest available {compacted + 1})"
        )
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """The requested revision is newer than anything the store has written."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"required revision {requested} is a future revision (current {current})")
        self.requested = requested
        self.current = current


class Store(Protocol):
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Write ``key`` only if absent; raises KeyExistsError."""
        ...

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        """Replace ``key`` if its mod revision is ``expected_revision`` (0 = any)."""
        ...

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        """Remove ``key`` (revision-checked unless 0); returns the removed value with the
        deletion's revision as ``mod_revision``."""
        ...

    async def get(self, key: str) -> KeyValue | None: ...

    async def scan(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> ListResult:
        """Keys under ``prefix`` in key order, after ``start_after``, at ``revision``
        (0 = current). ``limit`` 0 means all."""
        ...

    async def count(self, prefix: str) -> int: ...

    async def current_revision(self) -> int: ...

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[WatchBatch]:
        """Batches of events with revision > ``after_revision`` under ``prefix``, replayed
        from history, then live, with progress notifications (empty batches) as the store
        revision moves on. Raises CompactedError if that history is gone."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision`` (the latest value of each key is kept)."""
        ...

    async def check_readable(self) -> None:
        """Raise BackendError if the store cannot answer reads now."""
        ...

    async def check_writable(self) -> None:
        """Raise BackendError if the store cannot take writes now. Cheap enough for every
        health probe: answered from the outcome of recent writes, with a real write of its
        own only when there were none lately."""
        ...

    async def close(self) -> None: ...
