"""The Store contract. Every backend must pass these; parametrise ``store`` to add one."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest

from setpoint.store.interface import (
    CompactedError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionConflictError,
    Store,
    StoreError,
    WatchBatch,
    WatchEvent,
)
from setpoint.store.sqlite import SQLiteStore


async def next_batch(it: AsyncIterator[WatchBatch]) -> list[WatchEvent]:
    """The next batch that carries events (progress notifications are skipped)."""
    while True:
        batch = await asyncio.wait_for(it.__anext__(), timeout=5)
        if batch.events:
            return batch.events


async def test_create_assigns_increasing_revisions(store: Store) -> None:
    a = await store.create("/r/a", b"1")
    b = await store.create("/r/b", b"2")
    assert b.mod_revision > a.mod_revision
    assert a.create_revision == a.mod_revision
    assert await store.current_revision() == b.mod_revision


async def test_create_of_existing_key_is_rejected(store: Store) -> None:
    await store.create("/r/a", b"1")
    with pytest.raises(KeyExistsError):
        await store.create("/r/a", b"2")


async def test_update_with_stale_revision_conflicts_and_keeps_value(store: Store) -> None:
    first = await store.create("/r/a", b"1")
    await store.update("/r/a", b"2", expected_revision=first.mod_revision)
    with pytest.raises(RevisionConflictError) as caught:
        await store.update("/r/a", b"3", expected_revision=first.mod_revision)
    assert caught.value.current is not None and caught.value.current.value == b"2"
    current = await store.get("/r/a")
    assert current is not None and current.value == b"2"


async def test_update_keeps_create_revision(store: Store) -> None:
    first = await store.create("/r/a", b"1")
    second = await store.update("/r/a", b"2", expected_revision=0)
    assert second.create_revision == first.create_revision
    assert second.mod_revision > first.mod_revision


async def test_update_of_missing_key_is_not_found(store: Store) -> None:
    with pytest.raises(KeyNotFoundError):
        await store.update("/r/missing", b"x", expected_revision=0)


async def test_delete_returns_last_value_with_deletion_revision(store: Store) -> None:
    created = await store.create("/r/a", b"1")
    deleted = await store.delete("/r/a")
    assert deleted.value == b"1"
    assert deleted.mod_revision > created.mod_revision
    assert await store.get("/r/a") is None


async def test_delete_with_stale_revision_conflicts(store: Store) -> None:
    created = await store.create("/r/a", b"1")
    await store.update("/r/a", b"2", expected_revision=created.mod_revision)
    with pytest.raises(RevisionConflictError):
        await store.delete("/r/a", expected_revision=created.mod_revision)
    assert await store.get("/r/a") is not None


async def test_failed_write_does_not_fail_its_batch_neighbours(store: Store) -> None:
    await store.create("/r/taken", b"x")
    results = await asyncio.gather(
        store.create("/r/taken", b"y"),
        *(store.create(f"/r/k{i}", b"v") for i in range(50)),
        return_exceptions=True,
    )
    assert isinstance(results[0], KeyExistsError)
    assert all(not isinstance(r, BaseException) for r in results[1:])
    revisions = [r.mod_revision for r in results[1:] if not isinstance(r, BaseException)]
    assert len(set(revisions)) == 50


async def test_scan_returns_prefix_in_key_order_with_paging(store: Store) -> None:
    for name in ["c", "a", "b", "d"]:
        await store.create(f"/r/x/{name}", name.encode())
    await store.create("/r/y/a", b"other prefix")
    page = await store.scan("/r/x/", limit=2)
    assert [kv.key for kv in page.items] == ["/r/x/a", "/r/x/b"]
    assert page.more
    rest = await store.scan("/r/x/", start_after="/r/x/b", limit=2, revision=page.revision)
    assert [kv.key for kv in rest.items] == ["/r/x/c", "/r/x/d"]
    assert not rest.more


async def test_scan_at_earlier_revision_sees_the_past(store: Store) -> None:
    a = await store.create("/r/a", b"1")
    await store.update("/r/a", b"2", expected_revision=0)
    await store.create("/r/b", b"new")
    await store.delete("/r/a")
    past = await store.scan("/r/", revision=a.mod_revision)
    assert [(kv.key, kv.value) for kv in past.items] == [("/r/a", b"1")]
    now = await store.scan("/r/")
    assert [kv.key for kv in now.items] == ["/r/b"]


async def test_watch_replays_history_then_follows_live(store: Store) -> None:
    start = await store.current_revision()
    await store.create("/r/a", b"1")
    watch = store.watch("/r/", after_revision=start)
    replay = await next_batch(watch)
    assert [(e.type, e.kv.key) for e in replay] == [(EventType.PUT, "/r/a")]
    await store.delete("/r/a")
    live = await next_batch(watch)
    assert [(e.type, e.kv.value) for e in live] == [(EventType.DELETE, b"1")]
    await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_only_sees_its_prefix(store: Store) -> None:
    start = await store.current_revision()
    watch = store.watch("/r/mine/", after_revision=start)
    pending = asyncio.ensure_future(next_batch(watch))
    await store.create("/r/other/a", b"x")
    await store.create("/r/mine/a", b"y")
    batch = await pending
    assert [e.kv.key for e in batch] == ["/r/mine/a"]
    await watch.aclose()  # type: ignore[attr-defined]


async def test_watch_from_compacted_revision_is_refused(store: Store) -> None:
    first = await store.create("/r/a", b"1")
    for i in range(3):
        await store.update("/r/a", str(i).encode(), expected_revision=0)
    await store.compact(await store.current_revision())
    with pytest.raises(CompactedError):
        await next_batch(store.watch("/r/", after_revision=first.mod_revision))


async def test_compaction_keeps_latest_value_of_every_key(store: Store) -> None:
    await store.create("/r/a", b"1")
    await store.update("/r/a", b"2", expected_revision=0)
    await store.create("/r/gone", b"x")
    await store.delete("/r/gone")
    rev = await store.current_revision()
    await store.compact(rev)
    listing = await store.scan("/r/", revision=rev)
    assert [(kv.key, kv.value) for kv in listing.items] == [("/r/a", b"2")]


async def test_acknowledged_writes_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = await SQLiteStore.open(path)
    written = await asyncio.gather(*(first.create(f"/r/{i}", b"v") for i in range(100)))
    await first.close()
    again = await SQLiteStore.open(path)
    try:
        assert await again.count("/r/") == 100
        assert await again.current_revision() == max(kv.mod_revision for kv in written)
        later = await again.create("/r/after", b"v")
        assert later.mod_revision > max(kv.mod_revision for kv in written)
    finally:
        await again.close()


async def test_watch_reports_progress_for_writes_elsewhere(store: Store) -> None:
    start = await store.current_revision()
    watch = store.watch("/r/mine/", after_revision=start)
    pending = asyncio.ensure_future(asyncio.wait_for(watch.__anext__(), timeout=5))
    await asyncio.sleep(0)
    written = await store.create("/r/other/a", b"x")
    batch = await pending
    assert batch.events == []
    assert batch.revision == written.mod_revision
    await watch.aclose()  # type: ignore[attr-defined]


async def test_writes_sharing_a_batch_act_as_if_applied_one_by_one(tmp_path: Path) -> None:
    """Creates, updates and deletes of the same few keys, submitted together so they land
    in shared batches: each result, the final state (also after reopening) and the history
    a watch replays match applying the writes one at a time in submission order."""
    rng = random.Random(7)
    keys = [f"/r/{name}" for name in "abcde"]
    path = tmp_path / "state.db"
    store = await SQLiteStore.open(path)
    start = await store.current_revision()

    # Generate the writes against a model that applies them one by one; a revision-checked
    # write names the revision the model predicts half of the time, a stale one otherwise.
    model: dict[str, KeyValue] = {}
    history: list[tuple[EventType, str, bytes, int]] = []
    revision = start
    writes: list[tuple[str, str, bytes, int]] = []
    expected: list[KeyValue | type[Exception]] = []
    conflicting: dict[int, KeyValue] = {}  # write index -> the value a conflict reports
    for i in range(400):
        op = rng.choice(["create", "update", "update-checked", "delete", "delete-checked"])
        key, value = rng.choice(keys), f"v{i}".encode()
        current = model.get(key)
        rev = 0
        if op.endswith("checked"):
            right = current is not None and rng.random() < 0.5
            rev = current.mod_revision if right and current else max(revision - 1, 1)
        writes.append((op, key, value, rev))
        if op == "create" and current is not None:
            expected.append(KeyExistsError)
        elif op != "create" and current is None:
            expected.append(KeyNotFoundError)
        elif rev and current is not None and current.mod_revision != rev:
            conflicting[len(expected)] = current
            expected.append(RevisionConflictError)
        else:
            revision += 1
            if current is None:
                kv = KeyValue(key, value, revision, revision)
            elif op.startswith("delete"):
                kv = KeyValue(key, current.value, current.create_revision, revision)
            else:
                kv = KeyValue(key, value, current.create_revision, revision)
            expected.append(kv)
            if op.startswith("delete"):
                del model[key]
                history.append((EventType.DELETE, key, kv.value, revision))
            else:
                model[key] = kv
                history.append((EventType.PUT, key, value, revision))

    def submit(op: str, key: str, value: bytes, rev: int) -> Awaitable[KeyValue]:
        if op == "create":
            return store.create(key, value)
        if op.startswith("update"):
            return store.update(key, value, expected_revision=rev)
        return store.delete(key, expected_revision=rev)

    results = await asyncio.gather(*(submit(*w) for w in writes), return_exceptions=True)
    for i, (result, want) in enumerate(zip(results, expected, strict=True)):
        if isinstance(want, KeyValue):
            assert result == want
        else:
            assert isinstance(result, want)
        if isinstance(result, RevisionConflictError):
            assert result.current == conflicting[i]
    outcomes = {type(w).__name__ if isinstance(w, KeyValue) else w.__name__ for w in expected}
    assert outcomes == {"KeyValue", "KeyExistsError", "KeyNotFoundError", "RevisionConflictError"}
    assert (
        sum(
            1
            for (op, *_), w in zip(writes, expected, strict=True)
            if op.endswith("checked") and isinstance(w, KeyValue)
        )
        > 20
    )

    async def check(s: Store) -> None:
        assert await s.current_revision() == revision
        listing = await s.scan("/r/")
        assert listing.items == sorted(model.values(), key=lambda kv: kv.key)
        replay = await next_batch(s.watch("/r/", after_revision=start))
        assert [(e.type, e.kv.key, e.kv.value, e.revision) for e in replay] == history

    await check(store)
    await store.close()
    reopened = await SQLiteStore.open(path)
    try:
        await check(reopened)
        later = await reopened.create("/r/later", b"x")
        assert later.mod_revision == revision + 1
    finally:
        await reopened.close()


async def test_a_batch_the_database_refuses_fails_its_writers_and_changes_nothing(
    tmp_path: Path,
) -> None:
    store = await SQLiteStore.open(tmp_path / "state.db")
    try:
        kept = await store.create("/r/kept", b"1")
        # a write the database itself refuses (not a conflict the store decides)
        blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        blocker.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON log BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        outcomes = await asyncio.gather(
            store.update("/r/kept", b"2", expected_revision=kept.mod_revision),
            store.create("/r/new", b"x"),
            return_exceptions=True,
        )
        assert all(isinstance(o, StoreError) for o in outcomes)
        blocker.execute("DROP TRIGGER refuse")
        blocker.close()
        assert await store.get("/r/new") is None
        assert await store.current_revision() == kept.mod_revision
        # the store's own view of the keys was not advanced by the refused batch
        again = await store.update("/r/kept", b"3", expected_revision=kept.mod_revision)
        assert again.mod_revision == kept.mod_revision + 1
        assert (await store.create("/r/new", b"y")).mod_revision == kept.mod_revision + 2
    finally:
        await store.close()


async def test_a_database_from_before_the_triggers_opens_and_keeps_working(
    tmp_path: Path,
) -> None:
    """Databases written when every write updated ``kv`` itself (no triggers) gain the
    triggers on open; their keys, values and revisions carry on."""
    path = tmp_path / "state.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(
        """CREATE TABLE kv (key TEXT PRIMARY KEY, create_rev INTEGER NOT NULL,
                            mod_rev INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
           CREATE TABLE log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, deleted INTEGER NOT NULL,
                             create_rev INTEGER NOT NULL, value BLOB NOT NULL);
           CREATE INDEX log_key_rev ON log(key, rev);
           CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
           INSERT INTO log VALUES (1, '/r/a', 0, 1, '1'), (2, '/r/b', 0, 2, '2'),
                                  (3, '/r/a', 0, 1, '1b'), (4, '/r/b', 1, 2, '2');
           INSERT INTO kv VALUES ('/r/a', 1, 3, '1b');
           INSERT INTO meta VALUES ('rev', 4);"""
    )
    old.close()
    store = await SQLiteStore.open(path)
    try:
        assert await store.current_revision() == 4
        a = await store.update("/r/a", b"1c", expected_revision=3)
        b = await store.create("/r/b", b"again")
        assert (a.create_revision, a.mod_revision, b.mod_revision) == (1, 5, 6)
        listing = await store.scan("/r/")
        assert [(kv.key, kv.value) for kv in listing.items] == [("/r/a", b"1c"), ("/r/b", b"again")]
    finally:
        await store.close()
