"""The watch cache over a real SQLite store: history window, fan-out and freshness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from setpoint.api.watchcache import CacheWatcher, TooOldResourceVersion, WatchCache
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
    cache = WatchCache(CONFIGMAPS, store, history=3)
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
        assert seen == [("ADDED", "b"), ("DELETED", "a")]
    finally:
        await cache.stop()
