"""Snapshots of the SQLite store: a consistent copy taken while serving, and a restore into a
stopped data dir that keeps revisions going up.

**Save** runs ``VACUUM INTO`` on the live database: SQLite copies it inside one read
transaction, so the snapshot is exactly the store at one revision, however busy the server
is (WAL lets the writer go on meanwhile), and compact (no free pages, no WAL). It is written
to a private temporary file beside the target, checked (``PRAGMA quick_check``), fsync'd and
renamed into place, so a snapshot file that exists is a whole one.

**Restore** needs the store to itself (the lock: a running server refuses it). The snapshot
is copied next to the database and prepared there: its revision is raised above every
revision the data dir ever handed out — its high-water mark, its current database, the
snapshot's own — and everything before is compacted, as etcd's ``snapshot restore
--bump-revision --mark-compacted`` does for Kubernetes. Clients that kept resourceVersions
from after the snapshot are then told their history is gone (410) and re-list, instead of
watching a different history under the same numbers. The current database is moved aside
(``state.db.before-restore-<time>``), never deleted, and the prepared copy renamed into its
place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from setpoint.meta.privatefiles import create_private_file, fsync_dir
from setpoint.store.interface import BackendError
from setpoint.store.sqlite import bump_revision
from setpoint.store.sqlite_files import (
    HighWaterMark,
    Mark,
    StoreLock,
    clock_floor,
    describe,
    make_private_dir,
    move_aside,
    sidecars,
)


class SnapshotError(BackendError):
    """A snapshot could not be taken or restored; the message says why."""


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    revision: int  # the store's revision in the snapshot
    keys: int  # live keys
    size: int  # bytes


def save(db_path: Path, target: Path) -> SnapshotInfo:
    """Write a consistent snapshot of the database at ``db_path`` to ``target``."""
    if not db_path.exists() or not db_path.stat().st_size:
        raise SnapshotError(f"there is no database at {db_path}", path=str(db_path))
    tmp = target.with_name(f".{target.name}.part")
    tmp.unlink(missing_ok=True)
    create_private_file(tmp)  # VACUUM INTO fills an empty file, keeping its mode
    try:
        source = sqlite3.connect(db_path, isolation_level=None)
        try:
            source.execute("PRAGMA busy_timeout=10000")
            source.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            source.close()
        info = inspect(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except (sqlite3.Error, OSError) as exc:
        raise _failure(exc, db_path) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return SnapshotInfo(target, info.revision, info.keys, target.stat().st_size)


def inspect(snapshot: Path) -> SnapshotInfo:
    """Check that ``snapshot`` is a whole store snapshot; what it holds."""
    try:
        conn = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _failure(exc, snapshot) from exc
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise SnapshotError(f"{snapshot} is corrupt: {check}", path=str(snapshot))
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not {"kv", "log", "meta"} <= tables:
            raise SnapshotError(f"{snapshot} is not a setpoint store snapshot", path=str(snapshot))
        row = conn.execute("SELECT value FROM meta WHERE name='rev'").fetchone()
        keys = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
    except sqlite3.Error as exc:
        raise _failure(exc, snapshot) from exc
    finally:
        conn.close()
    return SnapshotInfo(snapshot, int(row[0]) if row else 0, int(keys), snapshot.stat().st_size)


@dataclass(frozen=True)
class Restored:
    snapshot: SnapshotInfo
    revision: int  # where the restored store continues
    previous: Path | None  # where the database it replaced was moved


def restore(snapshot: Path, db_path: Path) -> Restored:
    """Make the snapshot the store at ``db_path``, continuing above every revision handed
    out there. Refused while anything (a server) has the store open."""
    info = inspect(snapshot)
    directory = db_path.parent
    make_private_dir(directory)
    lock = StoreLock(directory)
    lock.acquire(purpose="setpoint datastore snapshot restore")
    try:
        mark = HighWaterMark(directory).read()
        floors = [info.revision + 1]
        if mark is not None:
            floors.append(mark.revision)
        current = _revision_of(db_path)
        if current is not None:
            floors.append(current + 1)
        if mark is None and current is None:
            # nothing says how far the data dir's revisions went (a new machine): the clock
            floors.append(clock_floor())
        revision = max(floors)
        prepared = db_path.with_name(f"{db_path.name}.restoring")
        for leftover in (prepared, *sidecars(prepared)):
            leftover.unlink(missing_ok=True)
        create_private_file(prepared)
        try:
            with open(snapshot, "rb") as source, open(prepared, "wb") as copy:
                while chunk := source.read(1 << 20):
                    copy.write(chunk)
            conn = sqlite3.connect(prepared, isolation_level=None)
            try:
                bump_revision(conn, revision)
                conn.execute("PRAGMA journal_mode=WAL")
            finally:
                conn.close()  # checkpoints: the file alone is the database
            with open(prepared, "rb") as handle:
                os.fsync(handle.fileno())
            previous = None
            if any(p.exists() for p in (db_path, *sidecars(db_path))):
                previous = move_aside(db_path, "before-restore")
            os.replace(prepared, db_path)
            fsync_dir(directory)
            HighWaterMark(directory).write(Mark(revision + 1, revision))
        except (sqlite3.Error, OSError) as exc:
            raise _failure(exc, db_path) from exc
        finally:
            for leftover in (prepared, *sidecars(prepared)):
                with contextlib.suppress(OSError):
                    leftover.unlink()
    finally:
        lock.release()
    return Restored(info, revision, previous)


def _revision_of(db_path: Path) -> int | None:
    """The revision of the database at ``db_path``, if there is a readable one (opened
    read-write, under the store's lock, so that a write-ahead log left by a crash counts)."""
    if not db_path.exists() or not db_path.stat().st_size:
        return None
    try:
        conn = sqlite3.connect(db_path)
        try:
            row = conn.execute("SELECT value FROM meta WHERE name='rev'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # a corrupt database is replaced; the mark still bounds its revisions
    return int(row[0]) if row else 0


def _failure(exc: BaseException, path: Path) -> SnapshotError:
    cause = describe(exc, path)
    named = not cause.path or cause.path in str(cause)
    return SnapshotError(str(cause) if named else f"{cause} ({cause.path})", path=cause.path)
