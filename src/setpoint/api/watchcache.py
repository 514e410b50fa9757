"""The watch cache: one store watch per resource type, served to every client from memory.

For each served resource type the API server keeps a ``WatchCache``: the current objects
(decoded once, serialised once), a bounded history of recent changes, and the set of client
watches. It follows the store with a single watch, so a hundred ``kubectl get -w`` or
informers cost one store watch, and each change is encoded once and fanned out to every
watcher whose namespace and selectors it matches — as ADDED/MODIFIED/DELETED from that
watcher's point of view, so an object that stops matching a selector is DELETED for it.

Memory is bounded by bytes and age, not by counts. The history keeps what happened in the
last 75 s (kube-apiserver's ``eventFreshDuration``) and at most a byte budget of encoded
objects, as bytes only: a watch that resumes from an older resourceVersion decodes the events
it replays, so a superseded version costs its JSON and nothing more, and the sweep that
drops old events gives the freed memory back to the system. A watch that resumes from before
the history gets 410 Expired and re-lists. A client that does not read its watch is closed
once its backlog passes a byte budget and its last write has been stuck for a while (or at
once past a hard budget), as kube-apiserver terminates unresponsive watchers; its informer
re-lists.

Reads are served here too. A consistent read (no resourceVersion) first waits until the
cache has caught up with the store's current revision (the store sends progress
notifications, so this is immediate in the common case) — the same approach as Kubernetes'
consistent reads from cache.

A stored value that does not decode is kept out of the objects and remembered in
``corrupt`` (key -> error), so everything else is still served and the requests that touch
that key can say which it is (see ``corrupt``). A value that turns corrupt under running
watches ends those whose namespace holds it, with an ERROR event naming it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ctypes
import ctypes.util
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from setpoint.api.corrupt import CorruptObjectError, key_namespace, list_error
from setpoint.api.encryption import PLAIN, TransformError, ValueTransformer
from setpoint.resources.registry import ResourceType
from setpoint.store.interface import (
    BackendError,
    CompactedError,
    EventType,
    KeyValue,
    Store,
    WatchEvent,
    prefix_end,
)

log = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"

MIB = 1024 * 1024


@dataclass(frozen=True)
class HistoryLimits:
    """How much change history a cache keeps for watches that resume from the past."""

    window: float = 75.0  # seconds; kube-apiserver's eventFreshDuration
    max_bytes: int = 32 * MIB  # encoded bytes of the events kept (shared versions counted once)
    max_events: int = 100_000


@dataclass(frozen=True)
class BacklogLimits:
    """How far a watcher may fall behind before it is closed (its client re-lists)."""

    stuck_bytes: int = 1 * MIB  # waiting while a write to the client has not finished...
    stuck_seconds: float = 1.0  # ...for this long
    max_bytes: int = 64 * MIB  # waiting, whatever its writes are doing
    write_slice: int = 256 * 1024  # bytes handed to the connection per write


# once a sweep has let go of this much, hand freed heap pages back to the system
_TRIM_AFTER_BYTES = 8 * MIB
_SWEEP_INTERVAL = 5.0


@dataclass(slots=True, eq=False)
class CachedObject:
    key: str
    obj: dict[str, Any]  # never mutated once cached; copy before changing
    raw: bytes  # JSON of ``obj``
    rv: int
    # read with anything but the first encryption provider: an update rewrites it even when
    # nothing changed (so rotating keys can re-encrypt everything; see ``encryption``)
    stale: bool = False

    def copy(self) -> dict[str, Any]:
        """A deep copy of ``obj`` to change: decoded from ``raw``, ~8x faster than
        ``copy.deepcopy`` for a pod."""
        copied: dict[str, Any] = orjson.loads(self.raw)
        return copied

    @property
    def namespace(self) -> str:
        ns: str = self.obj["metadata"].get("namespace", "")
        return ns

    @property
    def name(self) -> str:
        name: str = self.obj["metadata"]["name"]
        return name


def decode_object(
    kv: KeyValue, *, revision: int | None = None, transformer: ValueTransformer = PLAIN
) -> CachedObject:
    """Turn stored bytes into a cached object whose resourceVersion is its revision; raises
    CorruptObjectError for bytes that ``transformer`` cannot read (decrypt) or that are not
    an object with a name."""
    try:
        read = transformer.from_storage(kv.value, kv.key)
    except TransformError as exc:
        # upstream's words; the cause never holds the value
        cause = f"unable to transform key {kv.key!r}: {exc}"
        raise CorruptObjectError(kv.key, kv.mod_revision, cause) from None
    try:
        obj = orjson.loads(read.data)
    except orjson.JSONDecodeError as exc:
        raise CorruptObjectError(kv.key, kv.mod_revision, str(exc)) from None
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise CorruptObjectError(kv.key, kv.mod_revision, "not an object with metadata.name")
    rv = revision if revision is not None else kv.mod_revision
    obj["metadata"]["resourceVersion"] = str(rv)
    # orjson returns bytes with spare capacity (several KiB); a cache of 100k objects would
    # hold that slack forever, so keep an exact-size copy.
    return CachedObject(kv.key, obj, bytes(memoryview(orjson.dumps(obj))), rv, read.stale)


def _at_revision(cached: CachedObject, revision: int) -> CachedObject:
    obj = cached.copy()
    obj["metadata"]["resourceVersion"] = str(revision)
    return CachedObject(cached.key, obj, orjson.dumps(obj), revision)


@dataclass(slots=True)
class CacheEvent:
    type: str
    obj: CachedObject  # the new state; for DELETED the last state, at the deletion revision
    prev: CachedObject | None
    rv: int


@dataclass(slots=True)
class HistoryEvent:
    """A change as the history keeps it: encoded bytes only (``raw`` and ``prev_raw`` are the
    very bytes objects of the cached versions, so a version is held once however many events
    name it)."""

    type: str
    key: str
    raw: bytes
    prev_raw: bytes | None
    rv: int
    recorded: float  # clock time it was added

    def decoded(self) -> CacheEvent:
        obj = CachedObject(self.key, orjson.loads(self.raw), self.raw, self.rv)
        prev = None
        if self.prev_raw is not None:
            prev = CachedObject(self.key, orjson.loads(self.prev_raw), self.prev_raw, 0)
        return CacheEvent(self.type, obj, prev, self.rv)


Matcher = Callable[[CachedObject], bool]
Encoder = Callable[[str, CachedObject], bytes]


@dataclass(eq=False)
class CacheWatcher:
    """One client watch: its filter, its encoder, and what waits to be written to it.

    Nothing is encoded before it is written: what the watch starts with (the initial
    objects, or the history it resumes from) waits as references in its *prelude*, and live
    events as references to the cached versions, which every watcher shares — so a watch of
    100,000 pods holds no second copy of them, and twenty slow watchers behind the same
    events hold those events once.

    A watcher that falls behind a client that stopped reading is closed, as kube-apiserver
    terminates unresponsive watchers, and its connection aborted (the client re-lists): when
    more than ``stuck_bytes`` wait behind a write that has not finished for
    ``stuck_seconds``, or more than ``max_bytes`` wait at all. A burst that a reading client
    is draining never waits behind a stuck write.
    """

    matches: Matcher
    encode: Encoder
    limits: BacklogLimits = field(default_factory=BacklogLimits)
    abort: Callable[[], None] | None = None
    pending: deque[tuple[str, CachedObject] | bytes] = field(default_factory=deque)
    pending_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    overflowed: bool = False
    write_overdue: bool = False  # a write has been blocked for stuck_seconds
    namespace: str | None = None  # the watch's scope (None: all), set by WatchCache.watch
    _prelude: deque[CachedObject | HistoryEvent] = field(default_factory=deque)

    def start_with(self, items: Iterable[CachedObject | HistoryEvent]) -> None:
        """Queue what the watch begins with, ahead of every live event: cached objects are
        sent as ADDED, history events as they looked to this watcher."""
        self._prelude.extend(items)
        if self._prelude:
            self.wake.set()

    def send(self, event_type: str, obj: CachedObject) -> None:
        self._queue((event_type, obj), len(obj.raw))

    def push(self, data: bytes) -> None:
        """Queue already encoded bytes (a bookmark) for the client."""
        self._queue(data, len(data))

    def _queue(self, item: tuple[str, CachedObject] | bytes, size: int) -> None:
        if self.closed:
            return
        self.pending.append(item)
        self.pending_bytes += size
        self.wake.set()
        if self.pending_bytes > self.limits.max_bytes or (
            self.write_overdue and self.pending_bytes > self.limits.stuck_bytes
        ):
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed = True
        self.close()
        if self.abort is not None:
            self.abort()

    def _changes(self, event: CacheEvent) -> tuple[str, CachedObject] | None:
        """What ``event`` is to this watcher: an object that starts or stops matching its
        selector is ADDED or DELETED for it."""
        new_match = event.type != DELETED and self.matches(event.obj)
        old_match = event.prev is not None and self.matches(event.prev)
        if new_match:
            return (MODIFIED if old_match else ADDED), event.obj
        if old_match:
            return DELETED, event.obj
        return None

    def deliver(self, event: CacheEvent) -> None:
        change = self._changes(event)
        if change is not None:
            self.send(*change)

    @property
    def has_output(self) -> bool:
        return bool(self._prelude or self.pending)

    def take(self) -> bytes:
        """The next bytes to write, about one write slice: the prelude first, then live
        events in the order they came, encoded now."""
        limit = self.limits.write_slice
        parts: list[bytes] = []
        size = 0
        prelude, pending = self._prelude, self.pending
        while prelude and size < limit:
            item = prelude.popleft()
            if isinstance(item, CachedObject):
                data = self.encode(ADDED, item)
            else:
                change = self._changes(item.decoded())
                data = self.encode(*change) if change is not None else b""
            parts.append(data)
            size += len(data)
        while not prelude and pending and size < limit:
            entry = pending.popleft()
            if isinstance(entry, bytes):
                data = entry
                self.pending_bytes -= len(data)
            else:
                data = self.encode(*entry)
                self.pending_bytes -= len(entry[1].raw)
            parts.append(data)
            size += len(data)
        if not self.has_output:
            self.wake.clear()
        return b"".join(parts)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around each write to the client (inside the event loop): a write still blocked
        after ``stuck_seconds`` marks a client that stopped reading."""
        timer = asyncio.get_running_loop().call_later(
            self.limits.stuck_seconds, self._write_is_overdue
        )
        try:
            yield
        finally:
            timer.cancel()
            self.write_overdue = False

    def _write_is_overdue(self) -> None:
        self.write_overdue = True
        if self.pending_bytes > self.limits.stuck_bytes and not self.closed:
            self._overflow()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class TooOldResourceVersion(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


def _libc_malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``: freed pages inside the heap go back to the system (a
    heap does not shrink by itself below a block still in use); a no-op elsewhere."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is None:
        return lambda: None
    return lambda: trim(0)


release_free_memory = _libc_malloc_trim()


class CacheListener(Protocol):
    """Told of every change a cache applies, synchronously and in order (an index kept
    beside the cache, such as the Node authorizer's graph)."""

    def replaced(self, objects: Iterable[CachedObject]) -> None:
        """The cache (re)loaded: ``objects`` is everything it now holds."""
        ...

    def changed(self, key: str, cached: CachedObject | None) -> None:
        """``key`` now holds ``cached`` (None: deleted)."""
        ...


class WatchCache:
    def __init__(
        self,
        rtype: ResourceType,
        store: Store,
        *,
        history: HistoryLimits | None = None,
        backlog: BacklogLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        transformer: ValueTransformer = PLAIN,
    ) -> None:
        self.rtype = rtype
        self._store = store
        self.transformer = transformer  # between the store's bytes and JSON (encryption)
        self.objects: dict[str, CachedObject] = {}
        self._by_namespace: dict[str, dict[str, CachedObject]] = {}
        # every key in order, for lists; keys added since it was last put in order
        self._sorted_keys: list[str] = []
        self._keys_added: set[str] = set()
        self._keys_removed = False
        # lists of objects in key order as last returned, until anything changes
        self._sorted_lists: dict[str | None, list[CachedObject]] = {}
        self.history_limits = history or HistoryLimits()
        self.backlog_limits = backlog or BacklogLimits()
        self._clock = clock
        self._history: deque[HistoryEvent] = deque()
        self.history_bytes = 0
        self._history_floor = 0  # watches may resume from any rv >= this
        self.revision = 0
        self._advanced = asyncio.Event()
        self._watchers: set[CacheWatcher] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        self.corrupt: dict[str, CorruptObjectError] = {}  # keys whose values do not decode
        self.listeners: list[CacheListener] = []
        # goes up whenever the objects change: readers that derive an index from them (the
        # RBAC authorizer) rebuild it when it moved, at the cost of one comparison per read
        self.generation = 0

    def decode(self, kv: KeyValue, *, revision: int | None = None) -> CachedObject:
        """``decode_object`` through this kind's transformer."""
        return decode_object(kv, revision=revision, transformer=self.transformer)

    def encode(self, key: str, data: bytes) -> bytes:
        """The bytes to store under ``key`` for the JSON ``data``."""
        return self.transformer.to_storage(data, key)

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self._relist()
        name = self.rtype.plural
        self._tasks = [
            asyncio.create_task(self._follow(), name=f"watchcache-{name}"),
            asyncio.create_task(self._sweep_history(), name=f"watchcache-{name}-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for watcher in list(self._watchers):
            watcher.close()

    async def _relist(self) -> None:
        listing = await self._store.scan(self.rtype.store_prefix)
        self.generation += 1
        self.objects.clear()
        self._by_namespace.clear()
        self.corrupt.clear()
        for kv in listing.items:
            try:
                self._put(self.decode(kv))
            except CorruptObjectError as exc:
                self._remember_corrupt(exc)
        self._sorted_keys = sorted(self.objects)
        self._keys_added.clear()
        self._keys_removed = False
        self._sorted_lists.clear()
        self._history.clear()
        self.history_bytes = 0
        self._history_floor = listing.revision
        for listener in self.listeners:
            listener.replaced(self.objects.values())
        self._advance(listing.revision)
        self.ready.set()

    async def _follow(self) -> None:
        while True:
            try:
                async for batch in self._store.watch(
                    self.rtype.store_prefix, after_revision=self.revision
                ):
                    for event in batch.events:
                        self._apply(event)
                    self._advance(batch.revision)
            except CompactedError:
                log.warning("%s: watch history compacted; relisting", self.rtype.plural)
                for watcher in list(self._watchers):
                    watcher.close()
                await self._relist()
            except asyncio.CancelledError:
                raise
            except BackendError as exc:  # the database failed (and says why): retry calmly
                log.warning("%s: store watch failed: %s; re-watching", self.rtype.plural, exc)
                await asyncio.sleep(1.0)
            except Exception:  # keep the cache alive; the store watch is re-established
                log.exception("%s: store watch failed; re-watching", self.rtype.plural)
                await asyncio.sleep(0.1)

    async def _sweep_history(self) -> None:
        """Drop events older than the window even when nothing new arrives."""
        while True:
            await asyncio.sleep(min(_SWEEP_INTERVAL, self.history_limits.window))
            if self.trim_history() >= _TRIM_AFTER_BYTES:
                release_free_memory()

    # ------------------------------------------------------------- updates

    def _put(self, cached: CachedObject) -> CachedObject | None:
        prev = self.objects.get(cached.key)
        self.objects[cached.key] = cached
        self._by_namespace.setdefault(cached.namespace, {})[cached.key] = cached
        if prev is None:
            self._keys_added.add(cached.key)
        return prev

    def _remove(self, key: str) -> CachedObject | None:
        prev = self.objects.pop(key, None)
        self._keys_removed = True
        if prev is not None:
            bucket = self._by_namespace.get(prev.namespace)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self._by_namespace[prev.namespace]
        return prev

    def _remember_corrupt(self, error: CorruptObjectError) -> None:
        log.warning("%s: %s", self.rtype.plural, error.storage_error)
        self.corrupt[error.key] = error

    def _apply(self, event: WatchEvent) -> None:
        rv = event.revision
        self.generation += 1
        self._sorted_lists.clear()
        if event.type is EventType.PUT:
            self.corrupt.pop(event.kv.key, None)
            try:
                cached = self.decode(event.kv)
            except CorruptObjectError as exc:
                self._remove(event.kv.key)
                for listener in self.listeners:
                    listener.changed(event.kv.key, None)
                self._remember_corrupt(exc)
                self._end_watches_over(exc)
                # nor can a watch resume from before: its client might hold the old value
                # and would never hear of it again; 410 makes it re-list (as upstream)
                self._history_floor = max(self._history_floor, rv)
                return
            prev = self._put(cached)
            change = CacheEvent(MODIFIED if prev else ADDED, cached, prev, rv)
        else:
            prev = self._remove(event.kv.key)
            try:
                last = self.decode(event.kv, revision=rv)
            except CorruptObjectError:
                self.corrupt.pop(event.kv.key, None)
                if prev is None:
                    return  # a corrupt object went away: no watcher was ever sent it
                last = _at_revision(prev, rv)  # its last value turned corrupt in the store
            change = CacheEvent(DELETED, last, prev or last, rv)
        for listener in self.listeners:
            listener.changed(change.obj.key, None if change.type == DELETED else change.obj)
        self._remember(change)
        for watcher in self._watchers:
            watcher.deliver(change)
        dead = [w for w in self._watchers if w.closed]
        for watcher in dead:
            self._watchers.discard(watcher)
            if watcher.overflowed:
                log.info(
                    "%s: closed a watch that fell %d bytes behind (its client re-lists)",
                    self.rtype.plural,
                    watcher.pending_bytes,
                )

    def _remember(self, change: CacheEvent) -> None:
        prev = change.prev
        self._history.append(
            HistoryEvent(
                change.type,
                change.obj.key,
                change.obj.raw,
                prev.raw if prev is not None else None,
                change.rv,
                self._clock(),
            )
        )
        self.history_bytes += len(change.obj.raw)
        self.trim_history()

    def trim_history(self) -> int:
        """Forget events past the window or beyond the budgets; returns the bytes let go.
        A watch may then resume only from the newest forgotten revision on."""
        limits, history = self.history_limits, self._history
        oldest_kept = self._clock() - limits.window
        freed = 0
        while history and (
            history[0].recorded < oldest_kept
            or self.history_bytes > limits.max_bytes
            or len(history) > limits.max_events
        ):
            event = history.popleft()
            self.history_bytes -= len(event.raw)
            freed += len(event.raw)
            self._history_floor = event.rv
        return freed

    def _end_watches_over(self, error: CorruptObjectError) -> None:
        """A value turned corrupt under running watches: those that may have been sent the
        object (their namespace holds the key) cannot be told what became of it, so they end
        with an ERROR naming it and their clients re-list (the upstream cacher ends all)."""
        namespace = self.key_namespace(error.key)
        line = orjson.dumps({"type": ERROR, "object": list_error(self.rtype, [error]).status()})
        for watcher in list(self._watchers):
            if watcher.namespace is None or watcher.namespace == namespace:
                watcher.push(line + b"\n")
                watcher.close()
                self._watchers.discard(watcher)

    def key_namespace(self, key: str) -> str:
        return key_namespace(key, self.rtype.store_prefix, namespaced=self.rtype.namespaced)

    def corruption(self, namespace: str | None) -> list[CorruptObjectError]:
        """The corrupt objects in ``namespace`` (None or "": all of them)."""
        if not self.corrupt:
            return []
        return [
            error
            for key, error in self.corrupt.items()
            if not namespace or self.key_namespace(key) == namespace
        ]

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
            self._advanced.set()
            self._advanced = asyncio.Event()

    async def wait_fresh(self, revision: int, *, timeout: float = 3.0) -> bool:
        """Wait until the cache reflects ``revision``; False if it did not within timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.revision < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                return False
        return True

    # --------------------------------------------------------------- reads

    def get(self, key: str) -> CachedObject | None:
        return self.objects.get(key)

    def items(self, namespace: str | None) -> Iterable[CachedObject]:
        if namespace:
            return self._by_namespace.get(namespace, {}).values()
        return self.objects.values()

    def sorted_items(self, namespace: str | None) -> list[CachedObject]:
        """The objects (of one namespace, or all) in key order, as lists return them.

        The order is kept as a list of keys that is put right again only when a list needs
        it after objects came or went (two sorted runs, which Python's sort merges in linear
        time), so a list of an unchanged set sorts nothing; and while nothing changes at all,
        the same list is handed out again (callers must not change it)."""
        listed = self._sorted_lists.get(namespace)
        if listed is not None:
            return listed
        keys = self._ordered_keys()
        if namespace:
            prefix = f"{self.rtype.store_prefix}{namespace}/"
            low = bisect.bisect_left(keys, prefix)
            high = bisect.bisect_left(keys, prefix_end(prefix), low)
            keys = keys[low:high]
        objects = self.objects
        listed = self._sorted_lists[namespace] = [objects[key] for key in keys]
        return listed

    def _ordered_keys(self) -> list[str]:
        added, objects = self._keys_added, self.objects
        if added or self._keys_removed:
            kept = [k for k in self._sorted_keys if k in objects and k not in added]
            kept += sorted(k for k in added if k in objects)
            kept.sort()
            self._sorted_keys = kept
            added.clear()
            self._keys_removed = False
        return self._sorted_keys

    def namespace_count(self, namespace: str) -> int:
        return len(self._by_namespace.get(namespace, {}))

    # ------------------------------------------------------------- watches

    def watch(
        self,
        watcher: CacheWatcher,
        *,
        namespace: str | None,
        resource_version: int | None,
        initial_objects: bool,
    ) -> None:
        """Register ``watcher``; queue its initial events synchronously so none are missed.

        ``resource_version`` None means "from now" (after the initial objects if asked);
        otherwise replay history after it (raises TooOldResourceVersion if gone).
        """
        watcher.namespace = namespace or None
        if resource_version is not None and resource_version < self._history_floor:
            raise TooOldResourceVersion(resource_version, self._history_floor + 1)
        if initial_objects:
            watcher.start_with([c for c in self.items(namespace) if watcher.matches(c)])
        if resource_version is not None and resource_version < self.revision:
            watcher.start_with(list(self._events_after(resource_version)))
        self._watchers.add(watcher)

    def _events_after(self, rv: int) -> Iterator[HistoryEvent]:
        history = self._history
        if not history or history[-1].rv <= rv:
            return iter(())
        # binary search over the deque's revisions
        low, high = 0, len(history)
        while low < high:
            mid = (low + high) // 2
            if history[mid].rv <= rv:
                low = mid + 1
            else:
                high = mid
        return (history[i] for i in range(low, len(history)))

    def close_watchers(self) -> None:
        for watcher in list(self._watchers):
            watcher.close()
        self._watchers.clear()

    def unwatch(self, watcher: CacheWatcher) -> None:
        watcher.closed = True
        self._watchers.discard(watcher)

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)
