"""The SQLite store's files: who may read them, who may use them, and what outlives them.

Everything lives in the store's directory (``<data dir>/db``)::

    db/                 mode 0700
        state.db        the database (mode 0600); SQLite gives the ``-wal`` and ``-shm``
        state.db-wal    files it creates later the database file's own mode, so every copy
        state.db-shm    of every Secret on disk is private from its first byte
        high-water-mark a revision above every revision this store ever handed out
        lock            held (``flock``) by the one process that has the store open

**Privacy.** The directory and every file are created private and tightened when found
looser (a directory made by an older version, or by hand), because the database and its
write-ahead log hold every Secret in the clear.

**One user at a time.** :class:`StoreLock` is an exclusive ``flock`` on ``lock``, taken on
open and released on close (or by the kernel when the process dies). A second server on the
same data dir, or an offline restore while a server runs, is refused instead of corrupting
the database.

**The high-water mark.** A resourceVersion a client holds must never be handed out again for
a different state, or its watches and conditional writes silently go wrong. Losing
``state.db`` (deleted, truncated, replaced by an older copy) would restart revisions below
what clients hold. ``high-water-mark`` is the store's memory of how far it got, kept apart
from the database so it survives the database's loss:

* ``revision``: every revision ever handed out is below it. The writer raises it *ahead* of
  need, in blocks of :data:`MARK_BLOCK` revisions, before committing a batch that would pass
  it — one small fsync'd write per block, nothing per write;
* ``committed``: a revision known to have been committed durably. On a clean close both are
  made exact (``committed`` = the last revision, ``revision`` = one more); on open,
  ``committed`` is reset to what the database holds.

A database found *below* ``committed`` is an older copy than this store has already served
from; one that is missing or empty lost everything. Either way the store continues above
``revision`` (see ``SQLiteStore``), like etcd's ``snapshot restore --bump-revision
--mark-compacted``. With no mark at all (the whole directory was lost), the microseconds
since the epoch serve as the floor: no store ever handed out revisions faster than one per
microsecond.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from setpoint.meta.privatefiles import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    fsync_dir,
    private_dir,
    tighten,
    write_private_file,
)
from setpoint.store.interface import BackendError

log = logging.getLogger(__name__)

MARK_FILE = "high-water-mark"
LOCK_FILE = "lock"
# How far ahead of need the high-water mark is raised: one fsync'd write per this many
# revisions (about ten seconds of a busy server's writes).
MARK_BLOCK = 10_000


class DatabaseMissingError(BackendError):
    """The database is gone (missing or empty) from a store that existed: starting empty would
    lose every object and send revisions backwards."""


class CorruptDatabaseError(BackendError):
    """The database file is damaged (bad header, malformed pages)."""


class StoreInUseError(BackendError):
    """Another process has the store open."""


# ------------------------------------------------------------------------- privacy


def make_private_dir(path: Path) -> None:
    """Make the store's directory private (0700), and everything already in it: 0700 for
    directories, 0600 for the rest (the database, its sidecars, the lock, the mark, and
    copies moved aside)."""
    private_dir(path)
    for entry in path.iterdir():
        tighten(entry, PRIVATE_DIR_MODE if entry.is_dir() else PRIVATE_FILE_MODE)


def sidecars(db_path: Path) -> tuple[Path, Path]:
    """SQLite's write-ahead log and shared-memory index of ``db_path``."""
    return Path(f"{db_path}-wal"), Path(f"{db_path}-shm")


def move_aside(db_path: Path, tag: str) -> Path:
    """Rename the database and its sidecars out of the way (never delete data an operator may
    still want): ``state.db`` -> ``state.db.<tag>-<UTC time>``, keeping ``-wal``/``-shm``
    beside it so the pair still opens."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = db_path.with_name(f"{db_path.name}.{tag}-{stamp}")
    for source, suffix in ((db_path, ""), *zip(sidecars(db_path), ("-wal", "-shm"), strict=True)):
        if source.exists():
            os.replace(source, f"{target}{suffix}")
    fsync_dir(db_path.parent)
    return target


# ------------------------------------------------------------------------- lock


class StoreLock:
    """An exclusive ``flock`` on the store directory's ``lock`` file, naming its holder."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, *, purpose: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreInUseError(
                f"the store in {self.path.parent} is in use by {holder}", path=str(self.path.parent)
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{purpose} (pid {os.getpid()})\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def store_in_use(directory: Path) -> str | None:
    """Who holds the store in ``directory`` (None if nobody), without taking it."""
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        return None
    finally:
        os.close(fd)


# ------------------------------------------------------------------------- high-water mark


@dataclass(frozen=True)
class Mark:
    revision: int  # every revision handed out is below this
    committed: int  # a revision known to have been committed durably


class HighWaterMark:
    """The ``high-water-mark`` file: read on open, raised ahead of need, made exact on close."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / MARK_FILE

    def read(self) -> Mark | None:
        try:
            data = json.loads(self.path.read_bytes())
            return Mark(int(data["revision"]), int(data["committed"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            # written atomically, so this is damage from outside; the database still knows
            # its own revision, only a lost database would need the mark
            log.warning("ignoring unreadable %s: %s", self.path, exc)
            return None

    def write(self, mark: Mark) -> None:
        body = json.dumps({"revision": mark.revision, "committed": mark.committed}) + "\n"
        write_private_file(self.path, body.encode())


def clock_floor() -> int:
    """A revision floor for a store that lost every record of how far it got."""
    return time.time_ns() // 1000


# ------------------------------------------------------------------------- errors


def describe(exc: BaseException, path: Path) -> BackendError:
    """A failure of the database or its files, as a BackendError that says what happened."""
    if isinstance(exc, BackendError):
        return exc
    where = str(path)
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith("SQLITE_FULL"):
            return BackendError("database or disk is full", path=where)
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return CorruptDatabaseError(f"database file is corrupt: {exc}", path=where)
        unwritable = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR")
        if name.startswith(unwritable) and _on_read_only_mount(path):
            return BackendError("read-only file system", path=where)
        if name.startswith("SQLITE_IOERR"):
            if _nearly_full(path):  # e.g. SQLITE_IOERR_SHMSIZE: no room for the -shm file
                return BackendError("database or disk is full", path=where)
            return BackendError(f"I/O error on the database file: {exc} ({name})", path=where)
        return BackendError(f"database error: {exc}", path=where)
    if isinstance(exc, OSError):
        where = str(exc.filename or path)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return BackendError("database or disk is full", path=where)
        if exc.errno == errno.EROFS:
            return BackendError("read-only file system", path=where)
        return BackendError((exc.strerror or str(exc)).lower(), path=where)
    return BackendError(f"storage failed: {exc}", path=where)


def _nearly_full(path: Path) -> bool:
    """Less than a megabyte left for us on the file system holding ``path``: SQLite reports
    some failures to allocate space as plain I/O errors."""
    for candidate in (path, path.parent):
        with contextlib.suppress(OSError):
            st = os.statvfs(candidate)
            free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
            return free * st.f_frsize < 1 << 20
    return False


def _on_read_only_mount(path: Path) -> bool:
    for candidate in (path, path.parent):
        with contextlib.suppress(OSError):
            return bool(os.statvfs(candidate).f_flag & os.ST_RDONLY)
    return False
