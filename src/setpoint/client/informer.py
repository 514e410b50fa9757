"""Informers: a local, indexed, read-only cache of one resource, fed by list+watch.

An :class:`Informer` lists the resource, then watches from the list's resourceVersion,
keeping ``cache`` equal to the server's view; when the watch ends or its connection
breaks (another API server may take over, see ``client.servers``) it re-watches from the
last resourceVersion seen, and when the server says that version is gone (410) it lists
again and reconciles the cache with the new listing (deletes included). Registered
handlers hear every change as ``on_add(obj)``, ``on_update(old, new)``, ``on_delete(obj)``;
they should only turn events into work-queue keys. Objects in the cache are shared: never
mutate them — copy first.

Indexes (by namespace, owner uid, node name, or any function) answer "which objects
have X" without scanning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from setpoint.client.api import ApiClient, ApiError, Obj, Resource

log = logging.getLogger(__name__)

IndexFunc = Callable[[Obj], Iterable[str]]


def object_key(obj: Obj) -> str:
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    if "/" in key:
        namespace, name = key.split("/", 1)
        return namespace, name
    return None, key


def by_namespace(obj: Obj) -> Iterable[str]:
    return [obj["metadata"].get("namespace", "")]


def by_owner_uid(obj: Obj) -> Iterable[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or [] if "uid" in ref]


def by_node_name(obj: Obj) -> Iterable[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


@dataclass
class EventHandler:
    on_add: Callable[[Obj], None] = lambda obj: None
    on_update: Callable[[Obj, Obj], None] = lambda old, new: None
    on_delete: Callable[[Obj], None] = lambda obj: None


@dataclass
class Informer:
    client: ApiClient
    resource: Resource
    namespace: str | None = None
    label_selector: str = ""
    field_selector: str = ""
    indexers: dict[str, IndexFunc] = field(default_factory=dict)
    resync_period: float | None = None

    def __post_init__(self) -> None:
        self.cache: dict[str, Obj] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self.indexers}
        self._handlers: list[EventHandler] = []
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- reading

    def get(self, key: str) -> Obj | None:
        return self.cache.get(key)

    def objects(self, namespace: str | None = None) -> list[Obj]:
        if namespace is None:
            return list(self.cache.values())
        return [o for o in self.cache.values() if o["metadata"].get("namespace") == namespace]

    def by_index(self, index: str, value: str) -> list[Obj]:
        keys = self._indexes[index].get(value, ())
        return [self.cache[k] for k in keys if k in self.cache]

    def index_values(self, index: str) -> list[str]:
        """Every value ``index`` holds objects for (e.g. every node name pods are bound to)."""
        return list(self._indexes[index])

    def reindex(self, index: str) -> None:
        """Build (or rebuild) one index over the current cache."""
        func = self.indexers[index]
        built: dict[str, set[str]] = {}
        for key, obj in self.cache.items():
            for value in func(obj):
                built.setdefault(value, set()).add(key)
        self._indexes[index] = built

    def add_handler(self, handler: EventHandler) -> None:
        self._handlers.append(handler)
        for obj in self.cache.values():
            handler.on_add(obj)

    # ------------------------------------------------------------- running

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"informer-{self.resource.plural}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_synced(self, timeout: float = 30) -> None:
        await asyncio.wait_for(self.synced.wait(), timeout)

    async def run(self) -> None:
        backoff = 0.05
        need_list = True
        resync_task = asyncio.create_task(self._resync_loop()) if self.resync_period else None
        try:
            while True:
                try:
                    if need_list:
                        await self._list()
                        need_list = False
                    await self._watch()
                    backoff = 0.05
                except ApiError as exc:
                    if exc.is_gone:
                        need_list = True
                        continue
                    log.warning("%s informer: %s; retrying", self.resource.plural, exc)
                    need_list = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                except (TimeoutError, OSError) as exc:
                    # the server could not be reached (the client moves to another, if it
                    # knows one): watch again from the last resourceVersion, and list again
                    # only if the server says that is too old (410)
                    log.warning("%s informer: %r; retrying", self.resource.plural, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                except ValueError as exc:
                    log.warning("%s informer: %r; retrying", self.resource.plural, exc)
                    need_list = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if resync_task is not None:
                resync_task.cancel()

    async def _list(self) -> None:
        items: list[Obj] = []
        token = ""
        while True:
            page = await self.client.list(
                self.resource,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=500,
                continue_token=token,
            )
            items += page.get("items") or []
            token = page.get("metadata", {}).get("continue", "")
            if not token:
                break
        self.resource_version = page["metadata"]["resourceVersion"]
        fresh = {}
        for obj in items:
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)
            fresh[object_key(obj)] = obj
        for key in list(self.cache):
            if key not in fresh:
                self._delete(key)
        for key, obj in fresh.items():
            self._put(key, obj)
        self.synced.set()

    async def _watch(self) -> None:
        async for event_type, obj in self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        ):
            self.resource_version = obj["metadata"].get("resourceVersion", self.resource_version)
            if event_type == "BOOKMARK":
                continue
            key = object_key(obj)
            if event_type == "DELETED":
                self._delete(key, obj)
            else:
                self._put(key, obj)

    async def _resync_loop(self) -> None:
        assert self.resync_period is not None
        while True:
            await asyncio.sleep(self.resync_period)
            for obj in list(self.cache.values()):
                for handler in self._handlers:
                    handler.on_update(obj, obj)

    # ----------------------------------------------------------- the cache

    def _put(self, key: str, obj: Obj) -> None:
        old = self.cache.get(key)
        if old is not None and old["metadata"].get("resourceVersion") == obj["metadata"].get(
            "resourceVersion"
        ):
            return
        self.cache[key] = obj
        self._reindex(key, old, obj)
        for handler in self._handlers:
            if old is None:
                handler.on_add(obj)
            else:
                handler.on_update(old, obj)

    def _delete(self, key: str, last: Obj | None = None) -> None:
        old = self.cache.pop(key, None)
        if old is None:
            return
        self._reindex(key, old, None)
        for handler in self._handlers:
            handler.on_delete(last or old)

    def _reindex(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, func in self.indexers.items():
            index = self._indexes[name]
            if old is not None:
                for value in func(old):
                    bucket = index.get(value)
                    if bucket is not None:
                        bucket.discard(key)
                        if not bucket:
                            del index[value]
            if new is not None:
                for value in func(new):
                    index.setdefault(value, set()).add(key)
