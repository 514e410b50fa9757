"""Store snapshots: save is a private, checked copy; restore continues above every revision
its data dir knows of, even a data dir that knows of none."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from setpoint.store.interface import CompactedError
from setpoint.store.snapshot import SnapshotError, inspect, restore, save
from setpoint.store.sqlite import SQLiteStore
from setpoint.store.sqlite_files import StoreInUseError


async def test_a_snapshot_restores_into_a_new_data_dir_above_the_clock(tmp_path: Path) -> None:
    source = await SQLiteStore.open(tmp_path / "old" / "db" / "state.db")
    for i in range(3):
        await source.create(f"/r/{i}", b"v")
    snapshot = save(tmp_path / "old" / "db" / "state.db", tmp_path / "snap.db")
    await source.close()
    assert stat.S_IMODE(snapshot.path.stat().st_mode) == 0o600
    assert (snapshot.revision, snapshot.keys) == (3, 3)

    before = time.time_ns() // 1000
    db = tmp_path / "new" / "db" / "state.db"
    restored = restore(snapshot.path, db)
    assert restored.previous is None
    # a new data dir has no record of the old cluster's revisions: the clock bounds them
    assert restored.revision >= before
    store = await SQLiteStore.open(db, expect_data=True)
    try:
        assert await store.count("/r/") == 3
        assert await store.current_revision() == restored.revision
        with pytest.raises(CompactedError):
            await store.scan("/r/", revision=3)
    finally:
        await store.close()
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in db.parent.iterdir()} == {
        p.name: "0o600" for p in db.parent.iterdir()
    }


async def test_restore_is_refused_while_the_store_is_open(tmp_path: Path) -> None:
    db = tmp_path / "db" / "state.db"
    store = await SQLiteStore.open(db, purpose="a server")
    try:
        await store.create("/r/a", b"v")
        snapshot = save(db, tmp_path / "snap.db")  # saving while open is fine
        with pytest.raises(StoreInUseError, match=r"in use by a server"):
            restore(snapshot.path, db)
    finally:
        await store.close()


def test_a_database_of_another_kind_is_not_a_snapshot(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SnapshotError, match="is not a setpoint store snapshot"):
        inspect(other)
