"""SQLiteStore: the embedded, durable Store on the standard library's sqlite3.

Layout: ``kv`` holds the current value of every live key; ``log`` holds one row per revision
(the history that watches replay and that paged lists read at a fixed revision); ``meta``
keeps the current and the compacted revision. The database runs in WAL mode with
``synchronous=FULL``, so a commit is on disk before it returns.

Group commit: every write is queued to one writer thread, which takes all writes waiting at
that moment, applies them in one transaction (each its own revision, each checked on its
own, so one conflict does not fail its neighbours), commits once, and only then hands the
results and the watch events back to the event loop. Durability costs one fsync per batch,
not per write.

Reads (get, list) run on the event loop's thread on a separate read connection; WAL lets them
proceed while the writer commits. Watch events are dispatched on the loop thread in revision
order before the writers are answered, so a client that has its acknowledgement can rely on
every watcher having been handed the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.store.interface import (
    CompactedError,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionConflictError,
    StoreError,
    WatchBatch,
    WatchEvent,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log(key, rev);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# Bounded so one huge burst cannot hold the write lock (and the fsync) for long.
_MAX_BATCH = 2000


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@dataclass
class _Write:
    """A queued write; ``apply`` runs on the writer thread inside the batch transaction."""

    apply: Callable[[sqlite3.Connection, int], tuple[Any, WatchEvent | None, int]]
    future: asyncio.Future[Any]


@dataclass(eq=False)
class _Subscriber:
    prefix: str
    queue: asyncio.Queue[WatchBatch] = field(default_factory=asyncio.Queue)


class SQLiteStore:
    """The embedded Store. Create with :meth:`open`; call :meth:`close` when done."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self._path = path
        self._loop = loop
        self._reader = _connect(path)
        self._reader.executescript(_SCHEMA)
        meta = dict(self._reader.execute("SELECT name, value FROM meta").fetchall())
        self._revision: int = int(meta.get("rev", 0))  # committed and dispatched
        self._compacted: int = int(meta.get("compact_rev", 0))
        self._subscribers: set[_Subscriber] = set()
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._closed = False
        self._writer = threading.Thread(
            target=self._writer_main, name="sqlite-store-writer", daemon=True
        )
        self._writer.start()

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, asyncio.get_running_loop())

    # ----------------------------------------------------------------- writes

    async def create(self, key: str, value: bytes) -> KeyValue:
        def apply(conn: sqlite3.Connection, rev: int) -> tuple[Any, WatchEvent | None, int]:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO kv VALUES (?,?,?,?)", (key, rev, rev, value)
            )
            if inserted.rowcount == 0:
                raise KeyExistsError(key)
            conn.execute("INSERT INTO log VALUES (?,?,0,?,?)", (rev, key, rev, value))
            kv = KeyValue(key, value, rev, rev)
            return kv, WatchEvent(EventType.PUT, kv), rev

        result: KeyValue = await self._submit(apply)
        return result

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        def apply(conn: sqlite3.Connection, rev: int) -> tuple[Any, WatchEvent | None, int]:
            current = _current(conn, key)
            if current is None:
                raise KeyNotFoundError(key)
            if expected_revision and current.mod_revision != expected_revision:
                raise RevisionConflictError(key, current)
            conn.execute("UPDATE kv SET mod_rev=?, value=? WHERE key=?", (rev, value, key))
            conn.execute(
                "INSERT INTO log VALUES (?,?,0,?,?)", (rev, key, current.create_revision, value)
            )
            kv = KeyValue(key, value, current.create_revision, rev)
            return kv, WatchEvent(EventType.PUT, kv), rev

        result: KeyValue = await self._submit(apply)
        return result

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        def apply(conn: sqlite3.Connection, rev: int) -> tuple[Any, WatchEvent | None, int]:
            current = _current(conn, key)
            if current is None:
                raise KeyNotFoundError(key)
            if expected_revision and current.mod_revision != expected_revision:
                raise RevisionConflictError(key, current)
            conn.execute("DELETE FROM kv WHERE key=?", (key,))
            conn.execute(
                "INSERT INTO log VALUES (?,?,1,?,?)",
                (rev, key, current.create_revision, current.value),
            )
            kv = KeyValue(key, current.value, current.create_revision, rev)
            return kv, WatchEvent(EventType.DELETE, kv), rev

        result: KeyValue = await self._submit(apply)
        return result

    async def compact(self, revision: int) -> None:
        def apply(conn: sqlite3.Connection, rev: int) -> tuple[Any, WatchEvent | None, int]:
            target = min(revision, rev - 1)
            if target <= self._compacted:
                return None, None, rev - 1
            # Keep, for every key, its newest row at or before the target revision, unless
            # that row is a deletion; drop everything older.
            conn.execute(
                """DELETE FROM log WHERE rev <= ? AND (
                       deleted = 1 OR rev < (SELECT max(l2.rev) FROM log l2
                                             WHERE l2.key = log.key AND l2.rev <= ?))""",
                (target, target),
            )
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('compact_rev', ?)", (target,))
            self._compacted = target
            return None, None, rev - 1

        await self._submit(apply)

    async def _submit(
        self, apply: Callable[[sqlite3.Connection, int], tuple[Any, WatchEvent | None, int]]
    ) -> Any:
        if self._closed:
            raise StoreError("store is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._writes.put(_Write(apply, future))
        return await future

    def _writer_main(self) -> None:
        conn = _connect(self._path)
        next_rev = self._revision + 1
        try:
            while True:
                first = self._writes.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        item = self._writes.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                next_rev = self._run_batch(conn, batch, next_rev)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Write], next_rev: int) -> int:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        events: list[WatchEvent] = []
        start_rev = next_rev
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                # Each write checks before it changes anything, so a refused write has
                # written nothing and needs no savepoint to undo.
                try:
                    result, event, used_rev = write.apply(conn, next_rev)
                except StoreError as exc:
                    outcomes.append((write.future, None, exc))
                    continue
                if event is not None:
                    events.append(event)
                next_rev = used_rev + 1
                outcomes.append((write.future, result, None))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('rev', ?)", (next_rev - 1,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = StoreError(f"storage write failed: {exc}")
            outcomes = [(w.future, None, failure) for w in batch]
            events = []
            next_rev = start_rev
        self._loop.call_soon_threadsafe(self._complete, outcomes, events, next_rev - 1)
        return next_rev

    def _complete(
        self,
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        events: list[WatchEvent],
        revision: int,
    ) -> None:
        if revision > self._revision:
            self._revision = revision
            for sub in self._subscribers:
                matching = [e for e in events if e.kv.key.startswith(sub.prefix)]
                sub.queue.put_nowait(WatchBatch(matching, revision))
        for future, result, error in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> KeyValue | None:
        return _current(self._reader, key)

    async def scan(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> ListResult:
        if revision and revision > self._revision:
            raise FutureRevisionError(revision, self._revision)
        if revision and revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        low = max(prefix, start_after + "\x00") if start_after else prefix
        high = prefix_end(prefix)
        fetch = limit + 1 if limit else -1
        # One read transaction so the rows and the revision agree. The revision read here
        # may be a batch the loop has not dispatched yet; that is still a consistent view.
        self._reader.execute("BEGIN")
        try:
            row = self._reader.execute("SELECT value FROM meta WHERE name='rev'").fetchone()
            current = int(row[0]) if row else 0
            if not revision or revision >= current:
                at = current
                rows = self._reader.execute(
                    "SELECT key, value, create_rev, mod_rev FROM kv"
                    " WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
                    (low, high, fetch),
                ).fetchall()
            else:
                at = revision
                rows = self._history(low, high, at, fetch)
        finally:
            self._reader.execute("COMMIT")
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
        return ListResult([KeyValue(*row) for row in rows], at, more)

    def _history(self, low: str, high: str, at: int, fetch: int) -> list[Any]:
        return self._reader.execute(
            """SELECT l.key, l.value, l.create_rev, l.rev FROM log l
               WHERE l.key >= ? AND l.key < ? AND l.deleted = 0
                 AND l.rev = (SELECT max(l2.rev) FROM log l2
                              WHERE l2.key = l.key AND l2.rev <= ?)
               ORDER BY l.key LIMIT ?""",
            (low, high, at, fetch),
        ).fetchall()

    async def count(self, prefix: str) -> int:
        row = self._reader.execute(
            "SELECT count(*) FROM kv WHERE key >= ? AND key < ?", (prefix, prefix_end(prefix))
        ).fetchone()
        return int(row[0])

    async def current_revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    async def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[WatchBatch]:
        if after_revision < self._compacted:
            raise CompactedError(after_revision, self._compacted)
        subscriber = _Subscriber(prefix)
        # Registration and the history read happen with no await in between, on the thread
        # that dispatches live events, so nothing falls between history and live.
        self._subscribers.add(subscriber)
        try:
            last = after_revision
            upto = self._revision
            if after_revision < upto:
                history = self._read_log(prefix, after_revision, upto)
                last = upto
                yield WatchBatch(history, upto)
            while True:
                batch = await subscriber.queue.get()
                if batch.revision <= last:
                    continue
                fresh = [e for e in batch.events if e.revision > last]
                last = batch.revision
                yield WatchBatch(fresh, batch.revision)
        finally:
            self._subscribers.discard(subscriber)

    def _read_log(self, prefix: str, after: int, upto: int) -> list[WatchEvent]:
        rows = self._reader.execute(
            "SELECT rev, key, deleted, create_rev, value FROM log"
            " WHERE rev > ? AND rev <= ? AND key >= ? AND key < ? ORDER BY rev",
            (after, upto, prefix, prefix_end(prefix)),
        ).fetchall()
        return [
            WatchEvent(
                EventType.DELETE if deleted else EventType.PUT,
                KeyValue(key, value, create_rev, rev),
            )
            for rev, key, deleted, create_rev, value in rows
        ]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writes.put(None)
        await asyncio.to_thread(self._writer.join)
        self._reader.close()


def _current(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(
        "SELECT key, value, create_rev, mod_rev FROM kv WHERE key=?", (key,)
    ).fetchone()
    return KeyValue(*row) if row else None
