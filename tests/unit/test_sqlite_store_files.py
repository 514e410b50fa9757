"""The SQLite store's files: private modes, one user at a time, and revisions that never go
backwards when the database is lost, emptied, replaced by an older copy or corrupt."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from setpoint.store import sqlite as sqlite_store
from setpoint.store.interface import BackendError, CompactedError
from setpoint.store.sqlite import SQLiteStore
from setpoint.store.sqlite_files import (
    MARK_BLOCK,
    CorruptDatabaseError,
    DatabaseMissingError,
    StoreInUseError,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def mark(directory: Path) -> dict[str, int]:
    data: dict[str, int] = json.loads((directory / "high-water-mark").read_text())
    return data


async def write_some(store: SQLiteStore, prefix: str, count: int) -> int:
    last = 0
    for i in range(count):
        last = (await store.create(f"/r/{prefix}{i}", b"v")).mod_revision
    return last


async def test_database_directory_and_files_are_private_even_if_they_were_not(
    tmp_path: Path,
) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir(mode=0o755)
    db_dir.chmod(0o755)
    store = await SQLiteStore.open(db_dir / "state.db")
    await store.create("/r/a", b"secret")
    await store.close()
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (db_dir / name).exists():
            (db_dir / name).chmod(0o644)
    (db_dir / "state.db-wal").unlink(missing_ok=True)  # SQLite creates it again: which mode?
    (db_dir / "state.db-shm").unlink(missing_ok=True)
    db_dir.chmod(0o755)

    store = await SQLiteStore.open(db_dir / "state.db")
    try:
        await store.create("/r/b", b"secret")
        assert mode(db_dir) == 0o700
        files = sorted(p.name for p in db_dir.iterdir())
        assert {"state.db", "state.db-wal", "state.db-shm", "high-water-mark", "lock"} <= set(files)
        assert {name: mode(db_dir / name) for name in files} == {name: 0o600 for name in files}
    finally:
        await store.close()


async def test_a_second_user_of_the_store_is_refused_until_the_first_closes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db" / "state.db"
    first = await SQLiteStore.open(path, purpose="first server")
    with pytest.raises(StoreInUseError, match=r"in use by first server \(pid \d+\)"):
        await SQLiteStore.open(path)
    await first.close()
    second = await SQLiteStore.open(path)
    await second.close()


@pytest.mark.parametrize("damage", ["missing", "empty"])
async def test_a_lost_database_is_refused_where_a_store_existed(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(path)
    await write_some(store, "k", 3)
    await store.close()
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(b"")
    Path(f"{path}-wal").unlink(missing_ok=True)
    # the high-water mark alone says a store was here
    with pytest.raises(
        DatabaseMissingError, match=f"state.db is {damage}, but a store existed here"
    ):
        await SQLiteStore.open(path)
    # and so does the caller's knowledge, even with the mark gone too
    (path.parent / "high-water-mark").unlink()
    with pytest.raises(DatabaseMissingError):
        await SQLiteStore.open(path, expect_data=True)


async def test_reset_after_losing_the_database_continues_above_every_revision_handed_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(path)
    last = await write_some(store, "old", 5)
    await store.close()
    path.unlink()

    store = await SQLiteStore.open(path, expect_data=True, reset=True)
    try:
        assert await store.count("/r/") == 0
        start = await store.current_revision()
        assert start > last
        with pytest.raises(CompactedError):
            await store.watch("/r/", after_revision=last).__anext__()
        assert (await store.create("/r/new", b"v")).mod_revision == start + 1
    finally:
        await store.close()


async def test_reset_without_any_record_starts_above_the_clock(tmp_path: Path) -> None:
    """Database and high-water mark both gone: the microseconds since the epoch bound every
    revision any store can have handed out."""
    before = time.time_ns() // 1000
    store = await SQLiteStore.open(tmp_path / "db" / "state.db", expect_data=True, reset=True)
    try:
        assert await store.current_revision() >= before
    finally:
        await store.close()


async def test_reset_keeps_a_healthy_database(tmp_path: Path) -> None:
    path = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(path)
    last = await write_some(store, "k", 3)
    await store.close()
    store = await SQLiteStore.open(path, expect_data=True, reset=True)
    try:
        assert await store.count("/r/") == 3
        assert await store.current_revision() == last
    finally:
        await store.close()


async def test_an_older_copy_of_the_database_continues_above_the_newer_revisions(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(path)
    copied_at = await write_some(store, "before", 3)
    await store.close()
    shutil.copy(path, tmp_path / "copy.db")
    store = await SQLiteStore.open(path)
    newest = await write_some(store, "after", 4)
    await store.close()
    shutil.copy(tmp_path / "copy.db", path)

    store = await SQLiteStore.open(path)
    try:
        listing = await store.scan("/r/")
        assert [kv.key for kv in listing.items] == [f"/r/before{i}" for i in range(3)]
        assert listing.revision > newest > copied_at
        with pytest.raises(CompactedError):
            await store.watch("/r/", after_revision=copied_at).__anext__()
        assert (await store.create("/r/x", b"v")).mod_revision > newest
    finally:
        await store.close()


async def test_the_high_water_mark_is_written_ahead_in_blocks_not_per_write(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "db"
    store = await SQLiteStore.open(directory / "state.db")
    try:
        first = (await store.create("/r/first", b"v")).mod_revision
        ahead = mark(directory)
        assert ahead["revision"] >= first + MARK_BLOCK - 1
        inode = (directory / "high-water-mark").stat().st_ino
        await asyncio.gather(*(store.create(f"/r/{i}", b"v") for i in range(200)))
        assert (directory / "high-water-mark").stat().st_ino == inode  # not rewritten
    finally:
        await store.close()
    # a clean close makes it exact
    assert mark(directory) == {"revision": first + 201, "committed": first + 200}


async def test_a_corrupt_database_is_refused_naming_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(path)
    await write_some(store, "k", 3)
    await store.close()
    with path.open("r+b") as handle:
        handle.write(b"this is not a SQLite header" * 4)
    with pytest.raises(
        CorruptDatabaseError, match="database file is corrupt: file is not a database"
    ):
        await SQLiteStore.open(path)


async def test_reset_moves_a_corrupt_database_aside_and_continues_above_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(path)
    last = await write_some(store, "k", 3)
    await store.close()
    damaged = b"\xff" * 512 + path.read_bytes()[512:]
    path.write_bytes(damaged)

    store = await SQLiteStore.open(path, expect_data=True, reset=True)
    try:
        assert await store.current_revision() > last
        assert await store.count("/r/") == 0
    finally:
        await store.close()
    [aside] = path.parent.glob("state.db.corrupt-*")
    assert aside.read_bytes() == damaged  # kept for whoever wants to look at it


async def test_check_writable_remembers_failed_writes_and_probes_once_they_are_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "WRITE_OUTCOME_FRESH", 0.2)
    path = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(path)
    try:
        await store.check_writable()  # nothing written yet: a probe, which works
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON log BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        with pytest.raises(BackendError):
            await store.create("/r/a", b"v")
        with pytest.raises(BackendError, match="no"):
            await store.check_writable()  # the last write failed: no need to probe
        blocker.execute("DROP TRIGGER refuse")
        blocker.close()
        with pytest.raises(BackendError):
            await store.check_writable()  # still the remembered failure...
        await asyncio.sleep(0.3)
        await store.check_writable()  # ...until it is stale and a probe succeeds
        await store.check_readable()
    finally:
        await store.close()
