"""The Store contract. Every backend must pass these; parametrise ``store`` to add one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from setpoint.store.interface import (
    CompactedError,
    EventType,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    Store,
    WatchBatch,
    WatchEvent,
)
from setpoint.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = await SQLiteStore.open(tmp_path / "state.db")
    yield backend
    await backend.close()


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
