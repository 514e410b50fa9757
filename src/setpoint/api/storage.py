"""ResourceStorage: Kubernetes' object semantics for one resource type.

This is setpoint's counterpart of the apiserver's generic registry store: it turns the
REST verbs into store operations with everything Kubernetes promises around them —
server-set metadata (uid, creationTimestamp, generation, generateName), status changed only
through ``/status``, optimistic concurrency on resourceVersion (409 Conflict), finalizers and
``deletionTimestamp``, graceful pod deletion, propagation-policy finalizers, dry runs, and
no-op updates that do not bump resourceVersion. Reads and watches are served from the
resource's :class:`~setpoint.api.watchcache.WatchCache`; writes go to the store.

The HTTP layer (``handlers``) parses requests into calls on this class; kind-specific rules
come from the ``ResourceType`` hooks in ``setpoint.resources``.
"""

from __future__ import annotations

import base64
import copy
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import orjson

from setpoint.api import corrupt, errors
from setpoint.api.admission import CREATE, DELETE, UPDATE, AdmissionChain, AdmissionRequest
from setpoint.api.auth.user import UserInfo
from setpoint.api.corrupt import CorruptObjectError
from setpoint.api.errors import APIError
from setpoint.api.keylocks import KeyLocks
from setpoint.api.merge.conflicts import ApplyConflict
from setpoint.api.merge.merge import ApplyInvalid, track_update
from setpoint.api.merge.merge import apply as server_side_apply
from setpoint.api.watchcache import (
    CachedObject,
    CacheWatcher,
    Encoder,
    TooOldResourceVersion,
    WatchCache,
)
from setpoint.meta.clock import REAL_CLOCK, Clock, now_rfc3339
from setpoint.meta.fields import FieldSelector
from setpoint.meta.labels import Selector
from setpoint.resources.fielderrors import FieldError, required
from setpoint.resources.meta import validate_object_meta
from setpoint.resources.registry import Obj, ResourceType
from setpoint.resources.schema import DecodeError, SchemaSet
from setpoint.store.interface import (
    CompactedError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionConflictError,
    Store,
)

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    field_manager: str = ""
    user_agent: str = ""
    # server-side apply already computed managedFields; do not track this write again
    managed_by_apply: bool = False
    # who asks, for admission (None: the API server itself)
    user: UserInfo | None = None
    # where admission's audit annotations go (the request's audit event's, when audited)
    audit_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def manager(self) -> str:
        """The field manager of this write: the one named, else the client's User-Agent
        up to its first ``/`` (``kubectl``, ``OpenAPI-Generator``), as Kubernetes derives it."""
        if self.field_manager:
            return self.field_manager
        agent = self.user_agent.split("/", 1)[0].strip()
        return agent or "unknown"


@dataclass
class WriteResult:
    obj: Obj
    warnings: list[str] = field(default_factory=list)
    created: bool = False


@dataclass
class ListOptions:
    namespace: str | None = None
    label_selector: Selector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""


@dataclass
class ListResult:
    items: list[CachedObject]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


@dataclass
class StartedWatch:
    """A watch that has begun: its watcher, registered with the cache (or ``expired``, the
    410 to send instead), and whether the initial-events-end bookmark goes first."""

    watcher: CacheWatcher
    cache: WatchCache
    expired: APIError | None = None
    initial_events_end: bool = False

    def stop(self) -> None:
        self.cache.unwatch(self.watcher)


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    preconditions_uid: str | None = None
    preconditions_resource_version: str | None = None
    dry_run: bool = False
    # KEP-3926: remove a corrupt object without reading it (see ``corrupt``)
    ignore_store_read_error: bool = False
    # who asks, for admission (None: the API server itself)
    user: UserInfo | None = None


@dataclass
class DeleteResult:
    obj: Obj
    deleted: bool  # removed from the store now (False: marked for deletion)


_Written = TypeVar("_Written", WriteResult, DeleteResult)


class Transaction(Protocol):
    """What a write hook did for one write: undone if the write fails, completed if it
    lands."""

    async def commit(self) -> None: ...

    async def revert(self) -> None: ...


class WriteHooks(Protocol):
    """A kind's work around the store write, as the apiserver's generic store runs
    ``BeginCreate``, ``BeginUpdate`` and ``AfterDelete``: after validation, a hook may
    allocate what the object needs (a Service's cluster IP) and fill it in, or refuse with an
    :class:`APIError`; the returned transaction is reverted if the write fails and committed
    once it has landed. ``after_delete`` runs once the object has left the store."""

    async def begin_create(self, obj: Obj, *, dry_run: bool) -> Transaction: ...

    async def begin_update(self, new: Obj, old: Obj, *, dry_run: bool) -> Transaction: ...

    async def after_delete(self, obj: Obj) -> None: ...


class _Nothing:
    async def commit(self) -> None:
        return None

    async def revert(self) -> None:
        return None


_NOTHING = _Nothing()


class NoHooks:
    """The hooks of every kind without any."""

    async def begin_create(self, obj: Obj, *, dry_run: bool) -> Transaction:
        return _NOTHING

    async def begin_update(self, new: Obj, old: Obj, *, dry_run: bool) -> Transaction:
        return _NOTHING

    async def after_delete(self, obj: Obj) -> None:
        return None


NO_HOOKS = NoHooks()

NamespaceCheck = Callable[[ResourceType, str, str], Awaitable[None]]
"""``(rtype, namespace, name)``: raises the right APIError if the object may not be created
in the namespace (Kubernetes' NamespaceLifecycle admission)."""


def encode_continue(revision: int, start_after: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start_after})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded))
        revision, start = int(data["rv"]), str(data["start"])
        if data.get("v") != "meta.k8s.io/v1" or revision <= 0:
            raise ValueError(token)
        return revision, start
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from None


def spec_changed(new: Obj, old: Obj, *, with_annotations: bool) -> bool:
    ignored = ("metadata", "status", "apiVersion", "kind")
    keys = (set(new) | set(old)) - set(ignored)
    if any(new.get(k) != old.get(k) for k in keys):
        return True
    if with_annotations:
        return bool(new["metadata"].get("annotations") != old["metadata"].get("annotations"))
    return False


class ResourceStorage:
    def __init__(
        self,
        rtype: ResourceType,
        store: Store,
        cache: WatchCache,
        schemas: SchemaSet,
        *,
        namespace_check: NamespaceCheck | None = None,
        clock: Clock = REAL_CLOCK,
        hooks: WriteHooks = NO_HOOKS,
        admission: AdmissionChain | None = None,
    ) -> None:
        self.rtype = rtype
        self.hooks = hooks
        self.admission = admission or AdmissionChain()
        self.clock = clock
        self.store = store
        self.cache = cache
        self._decoder = schemas.decoder(rtype.definition, rtype.kind, rtype.api_version)
        self._namespace_check = namespace_check
        self._key_locks = KeyLocks()
        getters: dict[str, Callable[[Obj], str]] = {
            "metadata.name": lambda o: str(o["metadata"].get("name", "")),
            "metadata.namespace": lambda o: str(o["metadata"].get("namespace", "")),
        }
        getters.update(rtype.field_selectors)
        self.field_getters = getters

    # ------------------------------------------------------------ decoding

    def decode_body(
        self, body: Any, opts: WriteOptions, *, known: Obj | None = None
    ) -> tuple[Obj, list[str], list[FieldError]]:
        """Structural decode: type errors are 400; unknown fields per fieldValidation.

        Returns the pruned object, warnings for the client, and required-field problems.
        ``known``: the stored object the write starts from, whose parts ``body`` repeats
        need no second decode (see :meth:`Decoder.decode`).
        """
        try:
            result = self._decoder.decode(body, known=known)
        except DecodeError as exc:
            raise errors.bad_request(str(exc)) from None
        obj = result.obj
        warnings: list[str] = []
        if result.unknown_fields:
            described = [f'unknown field "{f}"' for f in result.unknown_fields]
            if opts.field_validation == "Strict":
                raise errors.bad_request("strict decoding error: " + ", ".join(described))
            if opts.field_validation != "Ignore":
                warnings = described
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != self.rtype.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({self.rtype.api_version})"
            )
        if kind and kind != self.rtype.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind "
                f"({self.rtype.kind})"
            )
        obj["apiVersion"] = self.rtype.api_version
        obj["kind"] = self.rtype.kind
        obj.setdefault("metadata", {})
        return obj, warnings, [required(path) for path in result.missing_required]

    def key(self, namespace: str | None, name: str) -> str:
        return self.rtype.store_key(namespace, name)

    # --------------------------------------------------------------- reads

    async def _fresh(self) -> None:
        revision = await self.store.current_revision()
        if not await self.cache.wait_fresh(revision):
            raise errors.timeout("Timeout: the watch cache did not catch up with the store")

    async def get(
        self, namespace: str | None, name: str, *, resource_version: str = ""
    ) -> CachedObject:
        """The object, at a ``resourceVersion`` read as Kubernetes reads it for a get: ""
        the most recent (a consistent read: the cache catches up with the store's revision
        first), "0" any (what the cache holds now, served even while the store cannot be
        reached), "N" not older than N."""
        if not resource_version:
            await self._fresh()
        elif resource_version != "0":
            wanted = _parse_rv(resource_version)
            if not await self.cache.wait_fresh(wanted):
                raise _too_large_rv(wanted, self.cache.revision)
        key = self.key(namespace, name)
        cached = self.cache.get(key)
        if cached is None:
            if key in self.cache.corrupt:
                raise corrupt.get_error(self.cache.corrupt[key])
            raise errors.not_found(self.rtype, name)
        return cached

    def check_readable(self, namespace: str | None) -> None:
        """Refuse a list or watch over ``namespace`` (None: all) that holds corrupt objects,
        naming them, rather than serve it without them."""
        found = self.cache.corruption(namespace)
        if found:
            raise corrupt.list_error(self.rtype, found)

    async def latest(
        self, namespace: str | None, name: str, *, fresh: bool = False, at_least: int = 0
    ) -> CachedObject:
        """The newest version this server knows, as the base of a write.

        Read from the watch cache — no store read on the event loop — after waiting for the
        cache to reach the store's revision (``fresh``, used when retrying after a
        conflict) or ``at_least`` (a resourceVersion the client has seen). A stale base is
        harmless: the store's compare-and-swap refuses it and the caller retries fresh.
        """
        if fresh:
            await self._fresh()
        elif at_least and self.cache.revision < at_least:
            await self.cache.wait_fresh(at_least)
        cached = self.cache.get(self.key(namespace, name))
        if cached is not None:
            return cached
        return await self.get_from_store(namespace, name)  # e.g. created a moment ago

    async def get_from_store(self, namespace: str | None, name: str) -> CachedObject:
        kv = await self.store.get(self.key(namespace, name))
        if kv is None:
            raise errors.not_found(self.rtype, name)
        try:
            return self.cache.decode(kv)
        except CorruptObjectError as exc:
            raise corrupt.get_error(exc) from None

    def matcher(
        self, label_selector: Selector | None, field_selector: FieldSelector | None
    ) -> Callable[[CachedObject], bool]:
        if field_selector is not None and not field_selector.is_empty():
            unknown = field_selector.fields() - set(self.field_getters)
            if unknown:
                known = ", ".join(f'"{f}"' for f in sorted(self.field_getters))
                raise errors.bad_request(
                    f'"{sorted(unknown)[0]}" is not a known field selector: only {known}'
                )
        labels = label_selector if label_selector and not label_selector.is_empty() else None
        fields = field_selector if field_selector and not field_selector.is_empty() else None
        getters = self.field_getters

        def matches(cached: CachedObject) -> bool:
            obj = cached.obj
            if labels is not None and not labels.matches(obj["metadata"].get("labels") or {}):
                return False
            if fields is not None:
                return fields.matches(lambda f: getters[f](obj) if f in getters else None)
            return True

        return matches

    async def list_objects(self, opts: ListOptions) -> ListResult:
        matches = self.matcher(opts.label_selector, opts.field_selector)
        if opts.continue_token:
            revision, start_after = decode_continue(opts.continue_token)
            return await self._list_from_store(opts, matches, revision, start_after)
        rv = opts.resource_version
        if rv and opts.resource_version_match == "Exact":
            return await self._list_from_store(opts, matches, _parse_rv(rv), "")
        if rv and rv != "0":
            if not await self.cache.wait_fresh(_parse_rv(rv)):
                raise _too_large_rv(_parse_rv(rv), self.cache.revision)
        elif not rv:
            await self._fresh()
        namespace = opts.namespace or self._namespace_hint(opts.field_selector)
        self.check_readable(namespace)
        listed = self.cache.sorted_items(namespace)  # in key order already; shared
        if _selects(opts.label_selector) or _selects(opts.field_selector):
            items = [c for c in listed if matches(c)]
        else:
            items = list(listed)
        revision = self.cache.revision
        if opts.limit and len(items) > opts.limit:
            page = items[: opts.limit]
            remaining = len(items) - opts.limit
            return ListResult(page, revision, encode_continue(revision, page[-1].key), remaining)
        return ListResult(items, revision)

    async def watch(
        self,
        opts: ListOptions,
        *,
        send_initial_events: bool | None,
        allow_bookmarks: bool,
        encode: Encoder,
        abort: Callable[[], None] | None = None,
    ) -> StartedWatch:
        """Start a watch: who it follows (namespace and selectors), from where (the
        resourceVersion, or now with the current objects first), and whether its initial
        events end with a bookmark (``sendInitialEvents``, which needs
        ``resourceVersionMatch=NotOlderThan`` and bookmarks). A resourceVersion older than
        the cache's history gives a watch that only says 410 Expired; one newer than the
        store is 504 after the cache had its chance to catch up."""
        if send_initial_events is not None and (
            opts.resource_version_match != "NotOlderThan" or not allow_bookmarks
        ):
            raise errors.bad_request(
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan and "
                "allowWatchBookmarks=true"
            )
        matches = self.matcher(opts.label_selector, opts.field_selector)
        namespace = opts.namespace
        if namespace:
            selected = matches

            def matches(cached: CachedObject) -> bool:
                return cached.namespace == namespace and selected(cached)

        self.check_readable(namespace)  # corrupt objects in scope: a Status naming them
        rv_text, cache = opts.resource_version, self.cache
        initial = send_initial_events if send_initial_events is not None else rv_text in ("", "0")
        start_rv: int | None = None
        if rv_text and rv_text != "0":
            start_rv = _parse_rv(rv_text)
            if not await cache.wait_fresh(start_rv):
                raise errors.timeout(
                    f"Too large resource version: {start_rv}, current: {cache.revision}"
                )
            if initial:
                start_rv = None  # initial state as of now replaces the replay
        elif not rv_text:
            await cache.wait_fresh(await self.store.current_revision())
        watcher = CacheWatcher(matches, encode, limits=cache.backlog_limits, abort=abort)
        try:
            cache.watch(
                watcher, namespace=namespace, resource_version=start_rv, initial_objects=initial
            )
        except TooOldResourceVersion as exc:
            return StartedWatch(watcher, cache, expired=errors.expired(str(exc)))
        return StartedWatch(watcher, cache, initial_events_end=bool(send_initial_events))

    def _namespace_hint(self, field_selector: FieldSelector | None) -> str | None:
        if field_selector is None or not self.rtype.namespaced:
            return None
        return field_selector.equality_value("metadata.namespace")

    async def _list_from_store(
        self,
        opts: ListOptions,
        matches: Callable[[CachedObject], bool],
        revision: int,
        start_after: str,
    ) -> ListResult:
        prefix = self.rtype.store_prefix
        if opts.namespace:
            prefix = f"{prefix}{opts.namespace}/"
        limit = opts.limit
        items: list[CachedObject] = []
        bad: list[CorruptObjectError] = []
        cursor = start_after
        try:
            while True:
                chunk = await self.store.scan(
                    prefix,
                    start_after=cursor,
                    limit=max(limit, 500) if limit else 0,
                    revision=revision,
                )
                for kv in chunk.items:
                    try:
                        cached = self.cache.decode(kv)
                    except CorruptObjectError as exc:
                        bad.append(exc)
                        continue
                    if matches(cached):
                        items.append(cached)
                        if limit and len(items) == limit:
                            if bad:
                                raise corrupt.list_error(self.rtype, bad)
                            more = kv is not chunk.items[-1] or chunk.more
                            token = encode_continue(chunk.revision, kv.key) if more else ""
                            return ListResult(items, chunk.revision, token)
                if not chunk.more or not chunk.items:
                    if bad:
                        raise corrupt.list_error(self.rtype, bad)
                    return ListResult(items, chunk.revision)
                cursor = chunk.items[-1].key
        except CompactedError:
            if opts.continue_token:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                ) from None
            raise errors.expired(f"too old resource version: {revision}") from None
        except FutureRevisionError as exc:
            raise _too_large_rv(exc.requested, exc.current) from None

    # -------------------------------------------------------------- create

    async def create(self, namespace: str | None, body: Any, opts: WriteOptions) -> WriteResult:
        obj, warnings, missing = self.decode_body(body, opts)
        meta = obj["metadata"]
        self._check_namespace(meta, namespace)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        if self.rtype.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if self.rtype.has_status and not self.rtype.keeps_status_on_create:
            obj.pop("status", None)
        self.rtype.prepare_for_create(obj)
        self.rtype.defaulter(obj)
        admission = AdmissionRequest(
            CREATE,
            self.rtype,
            meta.get("namespace"),
            meta.get("name", ""),
            opts.user,
            obj=obj,
            dry_run=opts.dry_run,
            audit_annotations=opts.audit_annotations,
        )
        await self.admission.admit(admission)
        problems = missing + validate_object_meta(self.rtype, obj, None)
        problems += self.rtype.validator(obj, None)
        problems = list(dict.fromkeys(problems))  # schema and validator may both see one
        if problems:
            raise errors.invalid(self.rtype, meta.get("name", ""), problems)
        await self.admission.validate(admission)
        warnings = warnings + admission.warnings
        if not opts.managed_by_apply:
            obj = self._track(None, obj, opts, subresource="")
            meta = obj["metadata"]
        self.rtype.fill_always_encoded(obj)  # after tracking: nobody set these fields
        if self.rtype.namespaced and self._namespace_check is not None:
            await self._namespace_check(self.rtype, meta["namespace"], meta["name"])
        if opts.dry_run:
            if self.cache.get(self.key(namespace, meta["name"])) is not None:
                raise errors.already_exists(self.rtype, meta["name"])
            await self.hooks.begin_create(obj, dry_run=True)
            return WriteResult(obj, warnings, created=True)
        txn = await self.hooks.begin_create(obj, dry_run=False)
        try:
            key = self.key(namespace, meta["name"])
            kv = await self.store.create(key, self.cache.encode(key, _encode(obj)))
        except BaseException as exc:
            await txn.revert()
            if isinstance(exc, KeyExistsError):
                raise errors.already_exists(self.rtype, meta["name"]) from None
            raise
        await txn.commit()
        meta["resourceVersion"] = str(kv.mod_revision)
        return WriteResult(obj, warnings, created=True)

    def _match_url(self, meta: Obj, namespace: str | None, name: str) -> None:
        """The body of a write to ``.../NAME`` must name that object (or no name at all)."""
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        self._check_namespace(meta, namespace)

    def _check_namespace(self, meta: Obj, namespace: str | None) -> None:
        if self.rtype.namespaced:
            given = meta.get("namespace")
            if given and given != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)

    # -------------------------------------------------------------- update

    async def update(
        self,
        namespace: str | None,
        name: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> WriteResult:
        cached = self.cache.get(self.key(namespace, name))  # any version will do as ``known``
        obj, warnings, missing = self.decode_body(
            body, opts, known=cached.obj if cached is not None else None
        )
        meta = obj["metadata"]
        self._match_url(meta, namespace, name)
        expected = meta.get("resourceVersion")
        expected_rv = _parse_rv(expected) if expected else 0

        async def attempt(fresh: bool) -> WriteResult | None:
            try:
                current = await self.latest(namespace, name, fresh=fresh, at_least=expected_rv)
            except APIError:
                if self.rtype.allow_create_on_update and not subresource:
                    meta.pop("resourceVersion", None)
                    return await self.create(namespace, obj, opts)
                raise
            if expected_rv and expected_rv != current.rv:
                if expected_rv > current.rv and not fresh:
                    return None  # our cache is behind what the client saw: look again
                raise errors.stale_conflict(self.rtype, name)
            try:
                result = await self._write_update(
                    current, obj, opts, subresource=subresource, missing=missing
                )
            except APIError as exc:
                if exc.code == 409 and exc.reason == "Conflict" and not expected_rv:
                    return None  # an unconditional update raced another writer
                raise
            result.warnings = warnings + result.warnings
            return result

        return await self._until_written(self.key(namespace, name), attempt)

    async def _write_update(
        self,
        current: CachedObject,
        obj: Obj,
        opts: WriteOptions,
        *,
        subresource: str,
        missing: list[FieldError],
    ) -> WriteResult:
        old = current.obj
        new = self._merge_for_update(current, obj, subresource)
        new_meta = new["metadata"]
        spec_subresource = self.rtype.spec_subresources.get(subresource)
        if subresource:
            missing = []
        if not subresource:
            self.rtype.defaulter(new)
            self.rtype.prepare_for_update(new, old)
        elif spec_subresource is not None:
            self.rtype.defaulter(new)  # the spec field it wrote is new
        admission = AdmissionRequest(
            UPDATE,
            self.rtype,
            new_meta.get("namespace"),
            new_meta["name"],
            opts.user,
            obj=new,
            old=old,
            subresource=subresource,
            dry_run=opts.dry_run,
            audit_annotations=opts.audit_annotations,
        )
        await self.admission.admit(admission)
        validator = spec_subresource.validator if spec_subresource else self.rtype.validator
        problems = missing + validate_object_meta(self.rtype, new, old)
        problems += validator(new, old)
        problems = list(dict.fromkeys(problems))
        if problems:
            raise errors.invalid(self.rtype, new_meta["name"], problems)
        await self.admission.validate(admission)
        if not opts.managed_by_apply and subresource != "finalize":
            new = self._track(old, new, opts, subresource=subresource)
            new_meta = new["metadata"]
        self.rtype.fill_always_encoded(new)
        new_meta.pop("resourceVersion", None)
        hooks = self.hooks if not subresource else NO_HOOKS
        txn = await hooks.begin_update(new, old, dry_run=opts.dry_run)
        old_stripped = {
            **old,
            "metadata": {k: v for k, v in old["metadata"].items() if k != "resourceVersion"},
        }
        if new == old_stripped and not current.stale:
            await txn.revert()
            # no-op: Kubernetes does not write (rv unchanged)
            return WriteResult(old, admission.warnings)
        if opts.dry_run:
            new_meta["resourceVersion"] = str(current.rv)
            return WriteResult(new, admission.warnings)
        key = current.key
        delete_now = bool(new_meta.get("deletionTimestamp")) and not _pending_finalizers(new)
        try:
            if delete_now:
                kv = await self.store.delete(key, expected_revision=current.rv)
            else:
                kv = await self.store.update(
                    key, self.cache.encode(key, _encode(new)), expected_revision=current.rv
                )
        except BaseException as exc:
            await txn.revert()
            if isinstance(exc, RevisionConflictError):
                raise errors.stale_conflict(self.rtype, new_meta["name"]) from None
            if isinstance(exc, KeyNotFoundError):
                raise errors.not_found(self.rtype, new_meta["name"]) from None
            raise
        await txn.commit()
        if delete_now:
            await self.hooks.after_delete(new)
        new_meta["resourceVersion"] = str(kv.mod_revision)
        return WriteResult(new, admission.warnings)

    def _track(self, old: Obj | None, new: Obj, opts: WriteOptions, *, subresource: str) -> Obj:
        """Record this write in ``metadata.managedFields`` (Kubernetes' field manager)."""
        return track_update(
            old,
            new,
            manager=opts.manager,
            definition=self.rtype.definition,
            api_version=self.rtype.api_version,
            now=now_rfc3339(self.clock),
            subresource=subresource,
        )

    async def apply(
        self, namespace: str | None, name: str, applied: Any, opts: WriteOptions, *, force: bool
    ) -> WriteResult:
        """Server-side apply of ``applied`` by ``opts.field_manager``: create when absent,
        else merge by field ownership; conflicts with other managers are 409 unless forced."""
        body, warnings, _ = self.decode_body(applied, opts)
        meta = body["metadata"]
        self._match_url(meta, namespace, name)
        opts = replace(opts, managed_by_apply=True)

        async def attempt(fresh: bool) -> WriteResult | None:
            try:
                current: CachedObject | None = await self.latest(namespace, name, fresh=fresh)
            except APIError as exc:
                if exc.code != 404:
                    raise
                current = None
            try:
                merged = server_side_apply(
                    current.obj if current else None,
                    body,
                    manager=opts.field_manager,
                    force=force,
                    definition=self.rtype.definition,
                    api_version=self.rtype.api_version,
                    now=now_rfc3339(self.clock),
                )
            except ApplyConflict as exc:
                raise APIError(409, "Conflict", str(exc), details={"causes": exc.causes}) from None
            except ApplyInvalid as exc:
                raise APIError(
                    exc.code, "BadRequest" if exc.code == 400 else "InternalError", str(exc)
                ) from None
            try:
                if current is None:
                    merged["metadata"].pop("resourceVersion", None)
                    result = await self.create(namespace, merged, opts)
                else:
                    merged["metadata"]["resourceVersion"] = str(current.rv)
                    decoded, _, missing = self.decode_body(merged, opts)
                    result = await self._write_update(
                        current, decoded, opts, subresource="", missing=missing
                    )
            except APIError as exc:
                if exc.code == 409 and exc.reason in ("Conflict", "AlreadyExists"):
                    return None  # raced with another writer: apply again on the fresh object
                raise
            result.warnings = warnings + result.warnings
            return result

        return await self._until_written(self.key(namespace, name), attempt)

    def _merge_for_update(self, current: CachedObject, obj: Obj, subresource: str) -> Obj:
        """Apply the update strategy: which parts of ``obj`` may replace the current
        object's."""
        rtype, old = self.rtype, current.obj
        if subresource == "finalize":
            # namespaces/finalize changes only spec.finalizers (the namespace controller's
            # way to say the namespace is empty)
            new = current.copy()
            new.setdefault("spec", {})["finalizers"] = (obj.get("spec") or {}).get("finalizers", [])
            return new
        if subresource == "status":
            new = current.copy()
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            meta, given = new["metadata"], obj["metadata"]
            for key in rtype.status_update_metadata:
                if key in given:
                    meta[key] = given[key]
                else:
                    meta.pop(key, None)
            return new
        spec_subresource = rtype.spec_subresources.get(subresource)
        if spec_subresource is not None:
            # e.g. pods/ephemeralcontainers: only that spec field changes
            new, name = current.copy(), spec_subresource.field
            given = (obj.get("spec") or {}).get(name)
            spec = new.setdefault("spec", {})
            if given is None:
                spec.pop(name, None)
            else:
                spec[name] = given
            if rtype.tracks_generation and spec_changed(new, old, with_annotations=False):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            return new
        new = obj
        meta, old_meta = new["metadata"], old["metadata"]
        if rtype.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if not meta.get("uid"):
            meta["uid"] = old_meta["uid"]
        meta["creationTimestamp"] = old_meta["creationTimestamp"]
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("selfLink", None)
        if _is_namespace(rtype):
            # spec.finalizers changes only through namespaces/finalize
            spec = new.setdefault("spec", {})
            spec["finalizers"] = list(_spec_finalizers(old))
            if not spec["finalizers"]:
                spec.pop("finalizers")
        if rtype.tracks_generation:
            generation = old_meta.get("generation", 1)
            if spec_changed(new, old, with_annotations=rtype.generation_includes_annotations):
                generation += 1
            meta["generation"] = generation
        else:
            meta.pop("generation", None)
        return new

    async def replace_with_retry(
        self,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], Obj],
        opts: WriteOptions,
        *,
        subresource: str = "",
        precondition_rv: Callable[[Obj], str | None] | None = None,
    ) -> WriteResult:
        """Read-modify-write (patch, scale): retried on conflict until it lands unless the
        change pinned a resourceVersion, exactly as the apiserver's patcher does."""

        async def attempt(fresh: bool) -> WriteResult | None:
            current = await self.latest(namespace, name, fresh=fresh)
            changed = mutate(current.copy())
            pinned = precondition_rv(changed) if precondition_rv else None
            body, warnings, missing = self.decode_body(changed, opts, known=current.obj)
            if pinned and _parse_rv(pinned) != current.rv:
                if _parse_rv(pinned) > current.rv and not fresh:
                    return None  # our cache is behind what the client saw: look again
                raise errors.stale_conflict(self.rtype, name)
            meta = body["metadata"]
            if meta.get("name") != name:
                raise errors.invalid(
                    self.rtype,
                    name,
                    [
                        FieldError(
                            "FieldValueInvalid",
                            "metadata.name",
                            f'Invalid value: "{meta.get("name")}": field is immutable',
                        )
                    ],
                )
            self._check_namespace(meta, namespace)
            try:
                result = await self._write_update(
                    current, body, opts, subresource=subresource, missing=missing
                )
            except APIError as exc:
                if exc.code == 409 and exc.reason == "Conflict" and not pinned:
                    return None
                raise
            result.warnings = warnings + result.warnings
            return result

        return await self._until_written(self.key(namespace, name), attempt)

    async def guaranteed_update(
        self,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], Obj],
        opts: WriteOptions,
    ) -> WriteResult:
        """The storage-level read-modify-write of Kubernetes' ``GuaranteedUpdate``, for a
        subresource whose handler itself changes the object (``pods/binding``): ``mutate``
        gets a copy of the newest object and returns it changed, and that is stored as it is,
        retried on conflict. There is nothing to decode, validate or record in managedFields,
        exactly as the apiserver's BindingREST writes ``spec.nodeName`` straight to etcd."""

        async def attempt(fresh: bool) -> WriteResult | None:
            current = await self.latest(namespace, name, fresh=fresh)
            new = mutate(current.copy())
            if opts.dry_run:
                return WriteResult(new)
            try:
                kv = await self.store.update(
                    current.key,
                    self.cache.encode(current.key, _encode(new)),
                    expected_revision=current.rv,
                )
            except RevisionConflictError:
                return None
            except KeyNotFoundError:
                raise errors.not_found(self.rtype, name) from None
            new["metadata"]["resourceVersion"] = str(kv.mod_revision)
            return WriteResult(new)

        return await self._until_written(self.key(namespace, name), attempt)

    async def _until_written(
        self, key: str, attempt: Callable[[bool], Awaitable[_Written | None]]
    ) -> _Written:
        """Run ``attempt`` — ``fresh`` once it has lost a race — with this key's turn held,
        until it returns a result (None: it raced another writer; read the newest and retry,
        as GuaranteedUpdate does for as long as the request lasts)."""
        async with self._key_locks.hold(key):
            fresh = False
            while True:
                result = await attempt(fresh)
                if result is not None:
                    return result
                fresh = True

    # -------------------------------------------------------------- delete

    async def delete(self, namespace: str | None, name: str, opts: DeleteOptions) -> DeleteResult:
        if opts.ignore_store_read_error:
            return await self._delete_corrupt(namespace, name, opts)

        async def attempt(fresh: bool) -> DeleteResult | None:
            current = await self.latest(namespace, name, fresh=fresh)
            try:
                return await self._delete_once(current, opts)
            except RevisionConflictError:
                return None

        return await self._until_written(self.key(namespace, name), attempt)

    async def _delete_once(self, current: CachedObject, opts: DeleteOptions) -> DeleteResult:
        obj = current.copy()
        meta = obj["metadata"]
        name = meta["name"]
        await self.admission.validate(
            AdmissionRequest(
                DELETE,
                self.rtype,
                current.namespace,
                name,
                opts.user,
                old=current.obj,
                dry_run=opts.dry_run,
            )
        )
        if opts.preconditions_uid and opts.preconditions_uid != meta.get("uid"):
            raise errors.conflict(
                self.rtype,
                name,
                f"Precondition failed: UID in precondition: {opts.preconditions_uid}, "
                f"UID in object meta: {meta.get('uid')}",
            )
        if opts.preconditions_resource_version and (
            opts.preconditions_resource_version != meta.get("resourceVersion")
        ):
            raise errors.conflict(
                self.rtype,
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{opts.preconditions_resource_version}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}",
            )
        finalizers: list[str] = list(meta.get("finalizers") or [])
        policy = opts.propagation_policy
        if policy == "Orphan":
            finalizers = [f for f in finalizers if f != FINALIZER_FOREGROUND]
            if FINALIZER_ORPHAN not in finalizers:
                finalizers.append(FINALIZER_ORPHAN)
        elif policy == "Foreground":
            finalizers = [f for f in finalizers if f != FINALIZER_ORPHAN]
            if FINALIZER_FOREGROUND not in finalizers:
                finalizers.append(FINALIZER_FOREGROUND)
        elif policy == "Background":
            finalizers = [
                f for f in finalizers if f not in (FINALIZER_ORPHAN, FINALIZER_FOREGROUND)
            ]
        grace = self._grace_period(obj, opts)
        pending = bool(meta.get("deletionTimestamp"))
        if _is_namespace(self.rtype) and _spec_finalizers(obj):
            # a namespace stays, Terminating, until the namespace controller has emptied it
            # and cleared spec.finalizers through namespaces/finalize
            obj.setdefault("status", {})["phase"] = "Terminating"
            namespace_finalizing = True
        else:
            namespace_finalizing = False
        if pending and grace > 0:
            old_grace = meta.get("deletionGracePeriodSeconds")
            if old_grace is None or grace >= old_grace:
                return DeleteResult(current.obj, deleted=False)
        if grace > 0 or finalizers or namespace_finalizing:
            if pending and grace == 0 and finalizers == list(meta.get("finalizers") or []):
                return DeleteResult(current.obj, deleted=False)  # already being deleted
            if finalizers:
                meta["finalizers"] = finalizers
            else:
                meta.pop("finalizers", None)
            if not pending or grace > 0:
                meta["deletionTimestamp"] = now_rfc3339(self.clock, offset_seconds=grace)
            meta["deletionGracePeriodSeconds"] = grace
            if meta.get("generation") is not None and not pending:
                meta["generation"] = meta["generation"] + 1
            if opts.dry_run:
                return DeleteResult(obj, deleted=False)
            meta.pop("resourceVersion", None)
            kv = await self.store.update(
                current.key,
                self.cache.encode(current.key, _encode(obj)),
                expected_revision=current.rv,
            )
            meta["resourceVersion"] = str(kv.mod_revision)
            return DeleteResult(obj, deleted=False)
        if opts.dry_run:
            return DeleteResult(current.obj, deleted=True)
        try:
            kv = await self.store.delete(current.key, expected_revision=current.rv)
        except KeyNotFoundError:
            raise errors.not_found(self.rtype, name) from None
        deleted = self.cache.decode(kv).obj
        await self.hooks.after_delete(deleted)
        return DeleteResult(deleted, deleted=True)

    async def _delete_corrupt(
        self, namespace: str | None, name: str, opts: DeleteOptions
    ) -> DeleteResult:
        """KEP-3926's unsafe deletion: remove the value from the store unread — only if it
        really does not decode, and only if it is still the value found corrupt."""
        key = self.key(namespace, name)
        kv = await self.store.get(key)
        if kv is None:
            raise errors.not_found(self.rtype, name)
        try:
            self.cache.decode(kv)
        except CorruptObjectError:
            pass
        else:
            raise corrupt.unsafe_delete_refused(self.rtype, name)
        gone: Obj = {"metadata": {"name": name, "namespace": namespace or ""}}
        if opts.dry_run:
            return DeleteResult(gone, deleted=True)
        try:
            await self.store.delete(key, expected_revision=kv.mod_revision)
        except KeyNotFoundError:
            raise errors.not_found(self.rtype, name) from None
        except RevisionConflictError:
            raise errors.stale_conflict(self.rtype, name) from None
        return DeleteResult(gone, deleted=True)

    def _grace_period(self, obj: Obj, opts: DeleteOptions) -> int:
        """Pods on a node terminate gracefully; everything else is removed at once."""
        if self.rtype.group or self.rtype.kind != "Pod":
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if opts.grace_period_seconds is not None:
            return max(0, opts.grace_period_seconds)
        # Kubernetes treats a negative configured grace period as 1 second
        return max(1, int(spec.get("terminationGracePeriodSeconds", 30)))


def _selects(selector: Selector | FieldSelector | None) -> bool:
    return selector is not None and not selector.is_empty()


def _is_namespace(rtype: ResourceType) -> bool:
    return rtype.group == "" and rtype.kind == "Namespace"


def _spec_finalizers(obj: Obj) -> list[str]:
    if obj.get("kind") != "Namespace":
        return []
    return list((obj.get("spec") or {}).get("finalizers") or [])


def _pending_finalizers(obj: Obj) -> bool:
    return bool(obj["metadata"].get("finalizers")) or bool(_spec_finalizers(obj))


def _encode(obj: Obj) -> bytes:
    meta = obj["metadata"]
    rv = meta.pop("resourceVersion", None)
    try:
        return orjson.dumps(obj)
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


def _parse_rv(value: str) -> int:
    try:
        rv = int(value)
    except (TypeError, ValueError):
        raise errors.bad_request(
            f'resourceVersion: Invalid value: "{value}": must be an integer'
        ) from None
    if rv < 0:
        raise errors.bad_request(f'resourceVersion: Invalid value: "{value}": must be >= 0')
    return rv


def _too_large_rv(requested: int, current: int) -> APIError:
    return APIError(
        504,
        "Timeout",
        f"Too large resource version: {requested}, current: {current}",
        details={
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
        headers={"Retry-After": "1"},
    )
