"""The watch cache over values that do not decode: it keeps serving everything else,
remembers the corrupt keys by namespace, and ends the watches a value turns corrupt under."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from setpoint.api.watchcache import CacheWatcher, TooOldResourceVersion, WatchCache
from setpoint.resources.catalog import default_registry
from setpoint.store.sqlite import SQLiteStore

CONFIGMAPS = default_registry().lookup("", "v1", "configmaps")
assert CONFIGMAPS is not None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = await SQLiteStore.open(tmp_path / "state.db")
    yield backend
    await backend.close()


def cm(namespace: str, name: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
        }
    )


def key(namespace: str, name: str) -> str:
    assert CONFIGMAPS is not None
    return CONFIGMAPS.store_key(namespace, name)


def json_watcher() -> CacheWatcher:
    return CacheWatcher(
        lambda c: True, lambda t, c: orjson.dumps({"type": t, "name": c.name}) + b"\n"
    )


@pytest.mark.parametrize(
    ("value", "cause"),
    [
        (b"{not json", "unexpected character"),
        (b"[1, 2]", "not an object with metadata.name"),
        (b'{"metadata": {"name": 5}}', "not an object with metadata.name"),
    ],
)
async def test_undecodable_values_are_remembered_and_the_rest_is_served(
    store: SQLiteStore, value: bytes, cause: str
) -> None:
    await store.create(key("a", "good"), cm("a", "good"))
    bad = await store.create(key("a", "bad"), value)
    await store.create(key("b", "other"), cm("b", "other"))
    cache = WatchCache(CONFIGMAPS, store)  # type: ignore[arg-type]
    await cache.start()
    try:
        assert sorted(c.name for c in cache.items(None)) == ["good", "other"]
        [error] = cache.corruption("a")
        assert error.key == key("a", "bad")
        assert error.revision == bad.mod_revision
        assert cause in error.cause
        assert cache.corruption("b") == []
        assert cache.corruption(None) == [error]
    finally:
        await cache.stop()


async def test_a_value_turning_corrupt_ends_the_watches_that_could_have_it(
    store: SQLiteStore,
) -> None:
    await store.create(key("a", "x"), cm("a", "x"))
    cache = WatchCache(CONFIGMAPS, store)  # type: ignore[arg-type]
    await cache.start()
    try:
        in_a, everywhere, in_b = json_watcher(), json_watcher(), json_watcher()
        for watcher, namespace in ((in_a, "a"), (everywhere, None), (in_b, "b")):
            cache.watch(watcher, namespace=namespace, resource_version=None, initial_objects=False)
        turned = await store.update(key("a", "x"), b"\xff garbage", expected_revision=0)
        await cache.wait_fresh(turned.mod_revision)

        for watcher in (in_a, everywhere):
            assert watcher.closed
            [line] = watcher.take().splitlines()
            event = orjson.loads(line)
            assert event["type"] == "ERROR"
            assert event["object"]["reason"] == "StorageReadError"
            assert event["object"]["details"]["causes"][0]["field"] == key("a", "x")
        assert not in_b.closed
        assert cache.get(key("a", "x")) is None

        # a client that had the old value cannot resume from before: it must re-list
        with pytest.raises(TooOldResourceVersion):
            cache.watch(
                json_watcher(),
                namespace="a",
                resource_version=turned.mod_revision - 1,
                initial_objects=False,
            )

        # deleting it ends the corruption, with no event: no watcher was sent the bad value
        later = json_watcher()
        cache.watch(
            later, namespace=None, resource_version=turned.mod_revision, initial_objects=False
        )
        gone = await store.delete(key("a", "x"))
        await cache.wait_fresh(gone.mod_revision)
        assert cache.corruption(None) == []
        assert later.take() == b""
    finally:
        await cache.stop()
