"""The watch cache over a real SQLite store: history window, fan-out and freshness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from setpoint.api.watchcache import (
    BacklogLimits,
    CachedObject,
    CacheWatcher,
    HistoryLimits,
    TooOldResourceVersion,
    WatchCache,
)
from setpoint.resources.catalog import default_registry
from setpoint.store.sqlite import SQLiteStore

CONFIGMAPS = default_registry().lookup("", "v1", "configmaps")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = await SQLiteStore.open(tmp_path / "state.db")
    yield backend
    await backend.close()


def cm(name: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
        }
    )


def recorder() -> tuple[CacheWatcher, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def encode(event_type: str, cached: object) -> bytes:
        seen.append((event_type, cached.name))  # type: ignore[attr-defined]
        return b""

    return CacheWatcher(lambda c: True, encode), seen


async def test_cache_lists_what_the_store_holds(store: SQLiteStore) -> None:
    assert CONFIGMAPS is not None
    await store.create(CONFIGMAPS.store_key("default", "a"), cm("a"))
    cache = WatchCache(CONFIGMAPS, store)
    await cache.start()
    try:
        assert [c.name for c in cache.items("default")] == ["a"]
        assert cache.get(CONFIGMAPS.store_key("default", "a")) is not None
    finally:
        await cache.stop()


async def test_cache_catches_up_with_writes(store: SQLiteStore) -> None:
    assert CONFIGMAPS is not None
    cache = WatchCache(CONFIGMAPS, store)
    await cache.start()
    try:
        kv = await store.create(CONFIGMAPS.store_key("default", "b"), cm("b"))
        assert await cache.wait_fresh(kv.mod_revision)
        cached = cache.get(CONFIGMAPS.store_key("default", "b"))
        assert cached is not None and cached.obj["metadata"]["resourceVersion"] == str(
            kv.mod_revision
        )
    finally:
        await cache.stop()


async def test_watch_from_before_the_history_window_is_too_old(store: SQLiteStore) -> None:
    assert CONFIGMAPS is not None
    cache = WatchCache(CONFIGMAPS, store, history=HistoryLimits(max_events=3))
    await cache.start()
    try:
        first = await store.create(CONFIGMAPS.store_key("default", "k0"), cm("k0"))
        for i in range(1, 6):
            kv = await store.create(CONFIGMAPS.store_key("default", f"k{i}"), cm(f"k{i}"))
        await cache.wait_fresh(kv.mod_revision)
        watcher, _ = recorder()
        with pytest.raises(TooOldResourceVersion):
            cache.watch(
                watcher, namespace=None, resource_version=first.mod_revision, initial_objects=False
            )
    finally:
        await cache.stop()


async def test_watch_replays_history_after_its_revision(store: SQLiteStore) -> None:
    assert CONFIGMAPS is not None
    cache = WatchCache(CONFIGMAPS, store)
    await cache.start()
    try:
        first = await store.create(CONFIGMAPS.store_key("default", "a"), cm("a"))
        await store.create(CONFIGMAPS.store_key("default", "b"), cm("b"))
        last = await store.delete(CONFIGMAPS.store_key("default", "a"))
        await cache.wait_fresh(last.mod_revision)
        watcher, seen = recorder()
        cache.watch(
            watcher, namespace=None, resource_version=first.mod_revision, initial_objects=False
        )
        while watcher.has_output:
            watcher.take()
        assert seen == [("ADDED", "b"), ("DELETED", "a")]
    finally:
        await cache.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_history_keeps_only_the_window(store: SQLiteStore) -> None:
    """Events older than the window are forgotten even when nothing new arrives; a watch
    resumes from any revision after the newest forgotten one, and earlier is 410."""
    assert CONFIGMAPS is not None
    clock = FakeClock()
    cache = WatchCache(CONFIGMAPS, store, history=HistoryLimits(window=75.0), clock=clock)
    await cache.start()
    try:
        old = await store.create(CONFIGMAPS.store_key("default", "old"), cm("old"))
        await cache.wait_fresh(old.mod_revision)
        clock.now += 60
        new = await store.create(CONFIGMAPS.store_key("default", "new"), cm("new"))
        await cache.wait_fresh(new.mod_revision)
        clock.now += 20  # "old" is 80 s old, "new" 20 s
        assert cache.trim_history() > 0
        watcher, seen = recorder()
        with pytest.raises(TooOldResourceVersion):
            cache.watch(
                watcher,
                namespace=None,
                resource_version=old.mod_revision - 1,
                initial_objects=False,
            )
        cache.watch(
            watcher, namespace=None, resource_version=old.mod_revision, initial_objects=False
        )
        while watcher.has_output:
            watcher.take()
        assert seen == [("ADDED", "new")]
    finally:
        await cache.stop()


async def test_history_keeps_at_most_its_byte_budget(store: SQLiteStore) -> None:
    assert CONFIGMAPS is not None
    cache = WatchCache(CONFIGMAPS, store, history=HistoryLimits(max_bytes=2000))
    await cache.start()
    try:
        for i in range(50):
            kv = await store.create(CONFIGMAPS.store_key("default", f"k{i}"), cm(f"k{i}"))
        await cache.wait_fresh(kv.mod_revision)
        assert 0 < cache.history_bytes <= 2000
        watcher, seen = recorder()
        with pytest.raises(TooOldResourceVersion):
            cache.watch(watcher, namespace=None, resource_version=1, initial_objects=False)
        cache.watch(
            watcher, namespace=None, resource_version=kv.mod_revision - 3, initial_objects=False
        )
        while watcher.has_output:
            watcher.take()
        assert [name for _, name in seen] == ["k47", "k48", "k49"]
    finally:
        await cache.stop()


def cached(name: str, size: int = 0) -> CachedObject:
    obj = {"metadata": {"name": name, "namespace": "default"}, "data": {"x": "y" * size}}
    return CachedObject(f"/registry/core/configmaps/default/{name}", obj, orjson.dumps(obj), 1)


def raw_encoder(event_type: str, obj: CachedObject) -> bytes:
    return obj.raw


async def test_watcher_behind_a_stuck_write_is_closed_and_its_connection_aborted() -> None:
    aborted: list[bool] = []
    limits = BacklogLimits(stuck_bytes=10_000, stuck_seconds=0.05, max_bytes=1_000_000)
    watcher = CacheWatcher(
        lambda c: True, raw_encoder, limits=limits, abort=lambda: aborted.append(True)
    )
    never = asyncio.get_running_loop().create_future()

    async def stuck_write() -> None:
        with watcher.writing():  # a write the client never reads
            await never

    writer = asyncio.create_task(stuck_write())
    await asyncio.sleep(0)
    for i in range(20):
        watcher.send("ADDED", cached(f"a{i}", 1000))
    assert not watcher.closed, "a fresh write is a client draining a burst"
    await asyncio.sleep(0.2)
    assert watcher.closed and watcher.overflowed and aborted == [True]
    writer.cancel()


async def test_watcher_draining_a_burst_is_not_closed() -> None:
    limits = BacklogLimits(stuck_bytes=10_000, stuck_seconds=0.05, max_bytes=1_000_000)
    watcher = CacheWatcher(lambda c: True, raw_encoder, limits=limits)
    for i in range(200):  # 200 KB at once: more than stuck_bytes, but nothing is stuck
        watcher.send("ADDED", cached(f"a{i}", 1000))
    while watcher.has_output:
        with watcher.writing():
            watcher.take()
            await asyncio.sleep(0.01)
    assert not watcher.closed and watcher.pending_bytes == 0


def test_watcher_is_closed_past_the_hard_budget_whatever_its_writes_do() -> None:
    limits = BacklogLimits(stuck_bytes=10_000, max_bytes=50_000)
    watcher = CacheWatcher(lambda c: True, raw_encoder, limits=limits)
    for i in range(100):
        watcher.send("ADDED", cached(f"b{i}", 1000))
        if watcher.closed:
            break
    assert watcher.overflowed and watcher.pending_bytes > 50_000


def test_waiting_events_are_the_cached_versions_not_copies() -> None:
    watcher = CacheWatcher(lambda c: True, raw_encoder)
    version = cached("shared", 5000)
    watcher.send("MODIFIED", version)
    [entry] = watcher.pending
    assert isinstance(entry, tuple) and entry[1] is version


def test_watcher_writes_its_prelude_before_live_events_in_slices() -> None:
    limits = BacklogLimits(write_slice=3000)
    watcher = CacheWatcher(lambda c: True, raw_encoder, limits=limits)
    watcher.start_with([cached(f"i{i}", 1000) for i in range(5)])
    watcher.send("ADDED", cached("live", 10))
    chunks = []
    while watcher.has_output:
        chunks.append(watcher.take())
    assert all(len(chunk) < 3000 + 1200 for chunk in chunks) and len(chunks) >= 2
    names = [
        orjson.loads(part)["metadata"]["name"]
        for part in b"".join(chunks).replace(b"}{", b"}\n{").split(b"\n")
    ]
    assert names == ["i0", "i1", "i2", "i3", "i4", "live"]
    assert watcher.pending_bytes == 0


async def test_sorted_items_stay_in_key_order_as_objects_come_and_go(store: SQLiteStore) -> None:
    assert CONFIGMAPS is not None

    def cm_in(namespace: str, name: str) -> bytes:
        return orjson.dumps({"metadata": {"name": name, "namespace": namespace}})

    for name in ("m", "c", "x"):
        await store.create(CONFIGMAPS.store_key("b", name), cm_in("b", name))
    cache = WatchCache(CONFIGMAPS, store)
    await cache.start()
    try:
        assert [c.name for c in cache.sorted_items(None)] == ["c", "m", "x"]
        await store.create(CONFIGMAPS.store_key("a", "z"), cm_in("a", "z"))
        await store.create(CONFIGMAPS.store_key("b", "d"), cm_in("b", "d"))
        await store.delete(CONFIGMAPS.store_key("b", "m"))
        await store.create(CONFIGMAPS.store_key("bb", "a"), cm_in("bb", "a"))
        kv = await store.create(CONFIGMAPS.store_key("b", "m"), cm_in("b", "m"))  # again
        await cache.wait_fresh(kv.mod_revision)
        listed = [(c.namespace, c.name) for c in cache.sorted_items(None)]
        assert listed == sorted(listed) and len(listed) == 6
        assert [c.name for c in cache.sorted_items("b")] == ["c", "d", "m", "x"]
        assert [c.name for c in cache.sorted_items("bb")] == ["a"]
        assert cache.sorted_items("nothing") == []
        gone = await store.delete(CONFIGMAPS.store_key("b", "x"))
        await cache.wait_fresh(gone.mod_revision)
        assert [c.name for c in cache.sorted_items("b")] == ["c", "d", "m"]
    finally:
        await cache.stop()
