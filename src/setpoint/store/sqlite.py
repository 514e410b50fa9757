"""SQLiteStore: the embedded, durable Store on the standard library's sqlite3.

Layout: ``log`` holds one row per revision (the history that watches replay and that paged
lists read at a fixed revision); ``kv`` holds the current value of every live key and
``meta`` the current and the compacted revision. Writes only insert into ``log``: triggers
keep ``kv`` and the current revision in step, inside the same statement. The database runs
in WAL mode with ``synchronous=FULL``, so a commit is on disk before it returns.

Group commit: every write is queued to one writer thread, which takes all writes waiting at
that moment, applies them in one transaction (each its own revision, each checked on its
own, so one conflict does not fail its neighbours), commits once, and only then hands the
results and the watch events back to the event loop. Durability costs one fsync per batch,
not per write.

The writer decides a whole batch in Python first — against an in-memory index of every live
key's create and mod revision, which only the writer changes — and then writes it as one
multi-row INSERT, which is its own transaction. That matters more than the SQL itself: the
sqlite3 module lets go of the GIL around every statement, and while the event loop is busy
each re-acquisition can wait a whole switch interval (5 ms). Four statements per write (plus
BEGIN and COMMIT per batch) made the writer crawl exactly when the server was busiest; one
statement per batch does not.

Reads (get, list) run on the event loop's thread on a separate read connection; WAL lets them
proceed while the writer commits. Watch events are dispatched on the loop thread in revision
order before the writers are answered, so a client that has its acknowledgement can rely on
every watcher having been handed the change.

Files, privacy, the lock and the high-water mark are ``sqlite_files``'s; the database's
directory is the store's own. Opening checks what it finds: a database that is missing or
empty where a store existed is refused (:class:`DatabaseMissingError`), and a corrupt one too
(:class:`CorruptDatabaseError`), unless ``reset`` says to start over (a corrupt file is moved
aside); one older than the revisions this store already handed out (a copy put back by hand)
continues above them. Either way the new history starts at a revision no client has seen,
with everything before it compacted, so old watches end with 410 Gone and their clients
re-list — what etcd's ``snapshot restore --bump-revision --mark-compacted`` does for
Kubernetes.

Failures of the database or its files (full disk, read-only file system, corrupt pages) are
raised as :class:`BackendError` naming the cause. The store remembers how its last writes
went, so :meth:`SQLiteStore.check_writable` answers health probes without writing, except
when nothing was written lately.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.meta.privatefiles import create_private_file
from setpoint.store.interface import (
    BackendError,
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
    prefix_end,
)
from setpoint.store.sqlite_files import (
    MARK_BLOCK,
    CorruptDatabaseError,
    DatabaseMissingError,
    HighWaterMark,
    Mark,
    StoreLock,
    clock_floor,
    describe,
    make_private_dir,
    move_aside,
    sidecars,
)

log = logging.getLogger(__name__)

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
CREATE TRIGGER IF NOT EXISTS log_put AFTER INSERT ON log WHEN NEW.deleted = 0 BEGIN
    INSERT INTO kv VALUES (NEW.key, NEW.create_rev, NEW.rev, NEW.value) ON CONFLICT(key)
        DO UPDATE SET create_rev=excluded.create_rev, mod_rev=excluded.mod_rev,
                      value=excluded.value;
END;
CREATE TRIGGER IF NOT EXISTS log_delete AFTER INSERT ON log WHEN NEW.deleted = 1 BEGIN
    DELETE FROM kv WHERE key = NEW.key;
END;
CREATE TRIGGER IF NOT EXISTS log_rev AFTER INSERT ON log BEGIN
    INSERT OR REPLACE INTO meta VALUES ('rev', NEW.rev);
END;
"""

# Bounded so one huge burst cannot hold the write lock (and the fsync) for long, and so a
# batch is always one statement: 2,000 rows x 5 columns stays below SQLite's 32,766 variables.
_MAX_BATCH = 2000
# check_writable trusts the outcome of a write this recent; older, it writes a probe of its own
WRITE_OUTCOME_FRESH = 5.0
PROBE_TIMEOUT = 2.0


def _connect(path: Path) -> sqlite3.Connection:
    # a multi-row INSERT is prepared once per batch size: keep the sizes seen
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=512
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class _Op(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    COMPACT = "compact"
    PROBE = "probe"  # a write that changes no key: does the database take writes?


@dataclass(slots=True)
class _Write:
    """A queued write, decided and applied by the writer thread. For COMPACT,
    ``expected_revision`` is the revision to compact up to."""

    op: _Op
    key: str
    value: bytes
    expected_revision: int
    future: asyncio.Future[Any]


@dataclass(eq=False)
class _Subscriber:
    prefix: str
    queue: asyncio.Queue[WatchBatch] = field(default_factory=asyncio.Queue)


class SQLiteStore:
    """The embedded Store. Create with :meth:`open`; call :meth:`close` when done."""

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        expect_data: bool = False,
        reset: bool = False,
        purpose: str = "setpoint",
    ) -> None:
        self._path = path
        self._loop = loop
        directory = path.parent
        self._lock = StoreLock(directory)
        self._mark_file = HighWaterMark(directory)
        self._reader: sqlite3.Connection | None = None
        self._conn: sqlite3.Connection | None = None
        try:
            make_private_dir(directory)
            self._lock.acquire(purpose=purpose)
            mark = self._mark_file.read()
            had_database = path.exists() and path.stat().st_size > 0
            floor = _prepare_file(path, mark, expect_data=expect_data, reset=reset)
            try:
                self._open_connections(check=reset)
                if reset and had_database:
                    log.warning("store: %s is healthy; keeping it (nothing to reset)", path)
            except (sqlite3.DatabaseError, CorruptDatabaseError) as exc:
                failure = describe(exc, path)
                if not (reset and isinstance(failure, CorruptDatabaseError)):
                    raise failure from exc
                self._close_connections()
                aside = move_aside(path, "corrupt")
                log.warning("store: %s (%s); moved it to %s, starting over", failure, path, aside)
                create_private_file(path)
                floor = _lost_history_floor(mark, existed=True)
                self._open_connections(check=False)
            self._start(mark, floor)
        except BaseException as exc:
            self._close_connections()
            self._lock.release()
            if isinstance(exc, sqlite3.Error | OSError):
                raise describe(exc, path) from exc
            raise
        self._subscribers: set[_Subscriber] = set()
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._closed = False
        # (monotonic time, failure or None) of the last batch that wrote to the database
        self._last_write: tuple[float, BackendError | None] | None = None
        self._probe: asyncio.Future[Any] | None = None
        self._writer = threading.Thread(
            target=self._writer_main, name="sqlite-store-writer", daemon=True
        )
        self._writer.start()

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        expect_data: bool = False,
        reset: bool = False,
        purpose: str = "setpoint",
    ) -> SQLiteStore:
        """Open (or create) the store at ``path``, in a directory of its own (made private,
        with everything in it).

        ``expect_data``: the caller knows a store existed here (the server's data dir holds
        its cluster's CA and tokens), so a missing or empty database is refused with
        DatabaseMissingError — unless ``reset``, which starts over with an empty store above
        every revision handed out before (also moving a corrupt database aside; a healthy
        one is kept). ``purpose`` names the holder in the lock file.
        """
        return cls(
            path,
            asyncio.get_running_loop(),
            expect_data=expect_data,
            reset=reset,
            purpose=purpose,
        )

    def _open_connections(self, *, check: bool) -> None:
        """The reader (loop thread) and the writer's connection (writer thread), the schema,
        and the live index. Opened here rather than on the writer thread so that a database
        that cannot be opened fails the open, not every write after it."""
        self._reader = _connect(self._path)
        self._reader.executescript(_SCHEMA)
        if check:
            row = self._reader.execute("PRAGMA quick_check").fetchone()
            if row[0] != "ok":
                message = f"database file is corrupt: {row[0]}"
                raise CorruptDatabaseError(message, path=str(self._path))
        self._conn = _connect(self._path)
        meta = dict(self._reader.execute("SELECT name, value FROM meta").fetchall())
        self._revision: int = int(meta.get("rev", 0))  # committed and dispatched
        self._compacted: int = int(meta.get("compact_rev", 0))
        # (create revision, mod revision) of every live key; the writer thread's own
        self._live: dict[str, tuple[int, int]] = {
            key: (create_rev, mod_rev)
            for key, create_rev, mod_rev in self._reader.execute(
                "SELECT key, create_rev, mod_rev FROM kv"
            )
        }

    def _close_connections(self) -> None:
        for conn in (self._reader, self._conn):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._reader = self._conn = None

    def _start(self, mark: Mark | None, floor: int | None) -> None:
        """Continue above every revision handed out before, if the database does not reach
        them; then record where this store starts."""
        assert self._reader is not None
        if floor is None and mark is not None and self._revision < mark.committed:
            log.warning(
                "store: %s is at revision %d, but this store already committed revision %d "
                "(an older copy of the database?)",
                self._path,
                self._revision,
                mark.committed,
            )
            floor = mark.revision
        if floor is not None and floor > self._revision:
            log.warning(
                "store: continuing at revision %d; earlier revisions are compacted, so old "
                "watches get 410 Gone and their clients re-list",
                floor,
            )
            bump_revision(self._reader, floor)
            self._revision = self._compacted = floor
        self._written = self._revision  # the writer's: last revision it committed
        self._mark = Mark(max(mark.revision if mark else 0, self._revision + 1), self._revision)
        self._mark_file.write(self._mark)

    # ----------------------------------------------------------------- writes

    async def create(self, key: str, value: bytes) -> KeyValue:
        result: KeyValue = await self._submit(_Op.CREATE, key, value, 0)
        return result

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        result: KeyValue = await self._submit(_Op.UPDATE, key, value, expected_revision)
        return result

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        result: KeyValue = await self._submit(_Op.DELETE, key, b"", expected_revision)
        return result

    async def compact(self, revision: int) -> None:
        await self._submit(_Op.COMPACT, "", b"", revision)

    async def _submit(self, op: _Op, key: str, value: bytes, expected_revision: int) -> Any:
        if self._closed:
            raise StoreError("store is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._writes.put(_Write(op, key, value, expected_revision, future))
        return await future

    def _writer_main(self) -> None:
        conn = self._conn
        assert conn is not None
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
        """Decide every write of the batch against the live index (and the writes before
        it in the batch), then write the outcome in one transaction."""
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        events: list[WatchEvent] = []
        start_rev = next_rev
        compacted = self._compacted
        probe = False
        # the state each key touched by the batch is left in (None: deleted)
        staged: dict[str, KeyValue | None] = {}
        log_rows: list[tuple[int, str, int, int, bytes]] = []
        try:
            # read outside a transaction: nothing but this thread writes
            deleted_values = _values(conn, {w.key for w in batch if w.op is _Op.DELETE})
            for write in batch:
                if write.op is _Op.COMPACT:
                    # only committed history is compacted; this batch's rows are newer
                    compacted = max(compacted, min(write.expected_revision, start_rev - 1))
                    outcomes.append((write.future, None, None))
                    continue
                if write.op is _Op.PROBE:
                    probe = True
                    outcomes.append((write.future, None, None))
                    continue
                key = write.key
                if key in staged:
                    kv = staged[key]
                    current = (kv.create_revision, kv.mod_revision) if kv else None
                else:
                    current = self._live.get(key)
                try:
                    if write.op is _Op.CREATE:
                        if current is not None:
                            raise KeyExistsError(key)
                        result = KeyValue(key, write.value, next_rev, next_rev)
                    else:
                        if current is None:
                            raise KeyNotFoundError(key)
                        if write.expected_revision and current[1] != write.expected_revision:
                            raise RevisionConflictError(key, _staged_or_stored(conn, staged, key))
                        if write.op is _Op.UPDATE:
                            result = KeyValue(key, write.value, current[0], next_rev)
                        else:
                            old = staged.get(key)
                            value = old.value if old is not None else deleted_values[key]
                            result = KeyValue(key, value, current[0], next_rev)
                except StoreError as exc:
                    outcomes.append((write.future, None, exc))
                    continue
                deleted = write.op is _Op.DELETE
                staged[key] = None if deleted else result
                log_rows.append((next_rev, key, int(deleted), result.create_revision, result.value))
                events.append(WatchEvent(EventType.DELETE if deleted else EventType.PUT, result))
                outcomes.append((write.future, result, None))
                next_rev += 1
            if log_rows and next_rev - 1 >= self._mark.revision:
                # never commit a revision the high-water mark does not cover
                mark = Mark(next_rev - 1 + MARK_BLOCK, start_rev - 1)
                self._mark_file.write(mark)
                self._mark = mark
            compact_to = compacted if compacted > self._compacted else 0
            _write(conn, log_rows, compact_to, probe=probe)
        except Exception as exc:  # a failed batch fails its writers, never the writer thread
            failure: StoreError
            if isinstance(exc, sqlite3.Error | OSError):
                failure = describe(exc, self._path)
            else:
                failure = StoreError(f"storage write failed: {exc}")
            outcomes = [(w.future, None, failure) for w in batch]
            events = []
            next_rev = start_rev
            write_failure = failure if isinstance(failure, BackendError) else None
            wrote = write_failure is not None
        else:
            self._compacted = compacted
            self._written = next_rev - 1
            for key, kv in staged.items():
                if kv is None:
                    self._live.pop(key, None)
                else:
                    self._live[key] = (kv.create_revision, kv.mod_revision)
            write_failure = None
            wrote = bool(log_rows or compact_to or probe)
        self._loop.call_soon_threadsafe(
            self._complete, outcomes, events, next_rev - 1, wrote, write_failure
        )
        return next_rev

    def _complete(
        self,
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        events: list[WatchEvent],
        revision: int,
        wrote: bool,
        write_failure: BackendError | None,
    ) -> None:
        """On the loop thread: record how the database took the batch, dispatch its events,
        answer its writers."""
        if write_failure is not None:
            if self._last_write is None or self._last_write[1] is None:
                log.warning("store: writes are failing: %s (%s)", write_failure, write_failure.path)
            self._last_write = (time.monotonic(), write_failure)
        elif wrote:
            if self._last_write is not None and self._last_write[1] is not None:
                log.warning("store: writes work again")
            self._last_write = (time.monotonic(), None)
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

    # ------------------------------------------------------------------ health

    async def check_readable(self) -> None:
        if self._closed:
            raise StoreError("store is closed")
        with self._failures():
            self._db.execute("SELECT value FROM meta WHERE name='rev'").fetchone()

    async def check_writable(self) -> None:
        """Answered from the last write if it is recent (so a busy server never probes and a
        failing one reports its failure); otherwise with a probe — a one-row write that
        changes no key — coalesced across concurrent callers."""
        if self._closed:
            raise StoreError("store is closed")
        last = self._last_write
        if last is not None and time.monotonic() - last[0] < WRITE_OUTCOME_FRESH:
            if last[1] is not None:
                raise last[1]
            return
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._submit(_Op.PROBE, "", b"", 0))
            # a probe nobody waits for any more must not warn that its failure went unseen
            self._probe.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), PROBE_TIMEOUT)
        except TimeoutError:
            raise BackendError(f"no write completed within {PROBE_TIMEOUT:g}s") from None

    # ------------------------------------------------------------------ reads

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._reader is not None
        return self._reader

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """Database failures during a read, as BackendErrors that say what happened."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise describe(exc, self._path) from exc

    async def get(self, key: str) -> KeyValue | None:
        with self._failures():
            return _current(self._db, key)

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
        db = self._db
        # One read transaction so the rows and the revision agree. The revision read here
        # may be a batch the loop has not dispatched yet; that is still a consistent view.
        with self._failures():
            db.execute("BEGIN")
            try:
                row = db.execute("SELECT value FROM meta WHERE name='rev'").fetchone()
                current = int(row[0]) if row else 0
                if not revision or revision >= current:
                    at = current
                    rows = db.execute(
                        "SELECT key, value, create_rev, mod_rev FROM kv"
                        " WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
                        (low, high, fetch),
                    ).fetchall()
                else:
                    at = revision
                    rows = self._history(low, high, at, fetch)
            finally:
                if db.in_transaction:
                    db.execute("COMMIT")
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
        return ListResult([KeyValue(*row) for row in rows], at, more)

    def _history(self, low: str, high: str, at: int, fetch: int) -> list[Any]:
        return self._db.execute(
            """SELECT l.key, l.value, l.create_rev, l.rev FROM log l
               WHERE l.key >= ? AND l.key < ? AND l.deleted = 0
                 AND l.rev = (SELECT max(l2.rev) FROM log l2
                              WHERE l2.key = l.key AND l2.rev <= ?)
               ORDER BY l.key LIMIT ?""",
            (low, high, at, fetch),
        ).fetchall()

    async def count(self, prefix: str) -> int:
        with self._failures():
            row = self._db.execute(
                "SELECT count(*) FROM kv WHERE key >= ? AND key < ?",
                (prefix, prefix_end(prefix)),
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
        with self._failures():
            rows = self._db.execute(
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
        """Finish the queued writes, make the high-water mark exact, let go of the store."""
        if self._closed:
            return
        self._closed = True
        self._writes.put(None)
        await asyncio.to_thread(self._writer.join)
        try:
            self._mark_file.write(Mark(self._written + 1, self._written))
        except OSError as exc:  # the mark stays ahead of need, which is still true
            log.warning("store: could not record the last revision: %s", describe(exc, self._path))
        self._close_connections()
        self._lock.release()


def _current(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(
        "SELECT key, value, create_rev, mod_rev FROM kv WHERE key=?", (key,)
    ).fetchone()
    return KeyValue(*row) if row else None


def _staged_or_stored(
    conn: sqlite3.Connection, staged: dict[str, KeyValue | None], key: str
) -> KeyValue | None:
    """The key's value as the batch has left it so far, else as committed."""
    return staged[key] if key in staged else _current(conn, key)


@functools.cache
def _placeholders(rows: int, columns: int) -> str:
    row = "(" + ",".join("?" * columns) + ")"
    return ",".join([row] * rows)


def _values(conn: sqlite3.Connection, keys: set[str]) -> dict[str, bytes]:
    """The committed values of ``keys`` (those that exist), in one statement."""
    if not keys:
        return {}
    sql = f"SELECT key, value FROM kv WHERE key IN ({','.join('?' * len(keys))})"
    return dict(conn.execute(sql, list(keys)).fetchall())


def _write(
    conn: sqlite3.Connection,
    log_rows: list[tuple[int, str, int, int, bytes]],
    compact_to: int,
    *,
    probe: bool = False,
) -> None:
    """A batch's history rows (the triggers do the rest) and any compaction it asked for, in
    one transaction: the INSERT alone, or BEGIN ... COMMIT around it and the compaction. A
    probe with nothing else to write writes one row of its own (a real, durable write)."""
    if not compact_to:
        if log_rows:
            _insert_log(conn, log_rows)
        elif probe:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (time.time_ns(),))
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        _compact(conn, compact_to)  # committed history only: this batch's rows are newer
        if log_rows:
            _insert_log(conn, log_rows)
        conn.execute("COMMIT")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _insert_log(conn: sqlite3.Connection, rows: Sequence[tuple[int, str, int, int, bytes]]) -> None:
    conn.execute(
        f"INSERT INTO log VALUES {_placeholders(len(rows), 5)}",
        [column for row in rows for column in row],
    )


def _compact(conn: sqlite3.Connection, target: int) -> None:
    """Drop history up to ``target``: for every key keep its newest row at or before the
    target, unless that row is a deletion."""
    conn.execute(
        """DELETE FROM log WHERE rev <= ? AND (
               deleted = 1 OR rev < (SELECT max(l2.rev) FROM log l2
                                     WHERE l2.key = log.key AND l2.rev <= ?))""",
        (target, target),
    )
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('compact_rev', ?)", (target,))


def bump_revision(conn: sqlite3.Connection, revision: int) -> None:
    """Make ``revision`` the current one and compact everything before it, in one
    transaction: clients that hold an older resourceVersion are told their history is gone
    (410) instead of being shown another history under the same numbers."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        _compact(conn, revision)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('rev', ?)", (revision,))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _prepare_file(path: Path, mark: Mark | None, *, expect_data: bool, reset: bool) -> int | None:
    """Check the database file before SQLite opens it; create it (privately) if it may be.
    Returns the revision to continue above when a store that existed lost its database."""
    size = path.stat().st_size if path.exists() else 0
    if size:
        return None
    existed = expect_data or mark is not None
    if existed and not reset:
        state = "empty" if path.exists() else "missing"
        raise DatabaseMissingError(
            f"the database {path} is {state}, but a store existed here: starting empty would "
            "lose every object and send resourceVersions backwards; restore a snapshot "
            "(setpoint datastore snapshot restore) or start over with --cluster-reset",
            path=str(path),
        )
    if any(p.exists() for p in (path, *sidecars(path))):
        # an empty database's leftover WAL must not be replayed into the new one
        aside = move_aside(path, "reset")
        log.warning("store: moved the empty database %s to %s", path, aside)
    create_private_file(path)
    if not existed:
        return None
    log.warning("store: the database %s was missing or empty; starting over (reset)", path)
    return _lost_history_floor(mark, existed=True)


def _lost_history_floor(mark: Mark | None, *, existed: bool) -> int | None:
    """The revision a store that lost its database continues above."""
    if mark is not None:
        return mark.revision
    return clock_floor() if existed else None
