"""Allocation records in the store: one key per allocated cluster IP or node port.

Kubernetes keeps its node-port allocations as one bitmap object in etcd, updated by
compare-and-swap, and (since 1.33) its cluster IPs as one ``IPAddress`` object per address.
setpoint does the latter for both: allocating ``10.96.0.10`` is *creating*
``/registry/setpoint/serviceips/10.96.0.10``, which the store does only if the key is absent,
so two API servers (or two requests on one) can never hand out the same value, and nothing
needs a lock or a leader. The record names its owner (the Service's namespace, name and
uid); releasing a value deletes the record only if it still names that owner, at the
revision read. The records live under ``/registry/setpoint/``, outside every kind's prefix,
so no list or watch sees them; a snapshot of the store carries them with the Services.

Allocations survive restarts because they are in the store. Each allocator also keeps the
set of values it believes taken, loaded from the records at start and after any surprise (a
value found taken, or the range looking full), so that choosing a free value does not read
the store; being wrong about it costs one more try, never a duplicate.

A record and its Service are two writes, so a crash between them can leave a record with no
Service (a leak) or a Service with no record; :mod:`setpoint.api.services.repair` finds and
mends both, as Kubernetes' repair controllers do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from setpoint.api.services.ranges import Range, candidates
from setpoint.store.interface import (
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    Store,
)

RECORD_PREFIX = "/registry/setpoint/"


@dataclass(frozen=True)
class Owner:
    """The Service a value is allocated to."""

    namespace: str
    name: str
    uid: str

    def encode(self) -> bytes:
        return orjson.dumps({"namespace": self.namespace, "name": self.name, "uid": self.uid})

    @classmethod
    def decode(cls, data: bytes) -> Owner:
        try:
            raw = orjson.loads(data)
            return cls(str(raw["namespace"]), str(raw["name"]), str(raw["uid"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return cls("", "", "")  # unreadable: owned by nobody, so repair reclaims it

    @classmethod
    def of(cls, obj: dict[str, object]) -> Owner:
        meta = obj.get("metadata")
        assert isinstance(meta, dict)
        return cls(str(meta.get("namespace", "")), str(meta["name"]), str(meta.get("uid", "")))


@dataclass(frozen=True)
class Record:
    value: str
    owner: Owner
    revision: int


class AllocationError(Exception):
    """A value cannot be allocated; ``str()`` is Kubernetes' wording."""


class NotInRange(AllocationError):
    pass


class AlreadyAllocated(AllocationError):
    pass


class RangeFull(AllocationError):
    def __init__(self) -> None:
        super().__init__("range is full")


class RecordAllocator:
    """Values of one range (``what``: ``IP`` or ``port``, for messages), recorded under
    ``RECORD_PREFIX + name + "/"``."""

    def __init__(
        self,
        store: Store,
        name: str,
        allocatable: Range,
        *,
        what: str,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.range = allocatable
        self.prefix = f"{RECORD_PREFIX}{name}/"
        self.what = what
        self._rng = rng or random.Random()
        self._taken: set[str] = set()

    def key(self, value: str) -> str:
        return self.prefix + value

    async def records(self) -> list[Record]:
        """Every record in the store now."""
        listed = await self.store.scan(self.prefix)
        return [
            Record(kv.key[len(self.prefix) :], Owner.decode(kv.value), kv.mod_revision)
            for kv in listed.items
        ]

    async def load(self) -> None:
        """Learn which values are taken from the store."""
        self._taken = {record.value for record in await self.records()}

    def _check_in_range(self, value: str) -> None:
        if self.range.offset(value) is None:
            plural = "IPs" if self.what == "IP" else "ports"
            raise NotInRange(
                f"provided {self.what} is not in the valid range. The range of valid {plural} "
                f"is {self.range}"
            )

    async def allocate(self, value: str, owner: Owner, *, dry_run: bool = False) -> None:
        """Take ``value`` for ``owner``: NotInRange, AlreadyAllocated."""
        self._check_in_range(value)
        if dry_run:
            if await self.store.get(self.key(value)) is not None:
                raise AlreadyAllocated(f"provided {self.what} is already allocated")
            return
        try:
            await self.store.create(self.key(value), owner.encode())
        except KeyExistsError:
            self._taken.add(value)
            raise AlreadyAllocated(f"provided {self.what} is already allocated") from None
        self._taken.add(value)

    async def allocate_next(self, owner: Owner, *, dry_run: bool = False) -> str:
        """Take a free value for ``owner``: RangeFull when there is none."""
        for reloaded in (False, True):
            if reloaded:
                await self.load()  # the range looked full: look at the store itself
            for offset in candidates(self.range, self._rng):
                value = self.range.value(offset)
                if value in self._taken:
                    continue
                if dry_run:
                    if await self.store.get(self.key(value)) is None:
                        return value
                    self._taken.add(value)
                    continue
                try:
                    await self.store.create(self.key(value), owner.encode())
                except KeyExistsError:
                    self._taken.add(value)  # another server took it meanwhile
                    continue
                self._taken.add(value)
                return value
        raise RangeFull()

    async def release(self, value: str, owner: Owner) -> None:
        """Give ``value`` back if ``owner`` still holds it (a no-op otherwise)."""
        kv = await self.store.get(self.key(value))
        if kv is None:
            self._taken.discard(value)
            return
        held_by = Owner.decode(kv.value)
        if held_by.uid != owner.uid:
            return
        await self.forget(Record(value, held_by, kv.mod_revision))

    async def forget(self, record: Record) -> bool:
        """Delete ``record`` if it is still at its revision (repair's release of a leak)."""
        try:
            await self.store.delete(self.key(record.value), expected_revision=record.revision)
        except KeyNotFoundError:
            self._taken.discard(record.value)
            return False
        except RevisionConflictError:
            return False
        self._taken.discard(record.value)
        return True

    async def restore(self, value: str, owner: Owner) -> Owner | None:
        """Record ``value`` for ``owner`` if nobody holds it; returns who holds it when
        someone else does (repair's re-recording of a Service's value)."""
        try:
            await self.store.create(self.key(value), owner.encode())
        except KeyExistsError:
            kv = await self.store.get(self.key(value))
            if kv is not None:
                held_by = Owner.decode(kv.value)
                return None if held_by.uid == owner.uid else held_by
        self._taken.add(value)
        return None
