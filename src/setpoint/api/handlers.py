"""REST handlers: one HTTP request in, one storage call, one Kubernetes-shaped answer out.

``ResourceHandlers`` owns the URL grammar of resources
(``/api/v1/namespaces/{ns}/pods/{name}/status``, ``/apis/apps/v1/deployments``, ...),
the verbs (get, list, watch, create, update, patch, delete, deletecollection), the query
parameters Kubernetes defines for them, and the subresources (status, scale, binding,
finalize, and those that write one spec field, such as ``pods/ephemeralcontainers``). Object
semantics live in :class:`~setpoint.api.storage.ResourceStorage`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiohttp import web

from setpoint.api import errors, negotiation
from setpoint.api.audit import AUDIT_CONTEXT_KEY
from setpoint.api.auth.user import request_user
from setpoint.api.bodies import read_body, read_raw_body
from setpoint.api.corrupt import UNSAFE_DELETE_OPTION
from setpoint.api.errors import APIError
from setpoint.api.merge.jsonpatch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    require_object,
)
from setpoint.api.merge.strategic import apply_strategic_merge_patch
from setpoint.api.negotiation import ResponseFormat
from setpoint.api.storage import (
    DeleteOptions,
    ListOptions,
    ResourceStorage,
    WriteOptions,
    WriteResult,
)
from setpoint.api.tables import partial_metadata, to_table
from setpoint.api.watchcache import (
    BOOKMARK,
    CachedObject,
    CacheWatcher,
)
from setpoint.meta import queryparams
from setpoint.meta.fields import FieldSelectorParseError, parse_field_selector
from setpoint.meta.labels import SelectorParseError, parse_selector
from setpoint.resources.fielderrors import invalid, not_supported, required
from setpoint.resources.meta import validate_annotations
from setpoint.resources.registry import Obj, Registry, ResourceType
from setpoint.resources.schema import DecodeError, Decoder, SchemaSet

log = logging.getLogger(__name__)

WATCH_BOOKMARK_INTERVAL = 30.0
DEFAULT_WATCH_TIMEOUT = 1800


@dataclass(frozen=True)
class Target:
    """A parsed resource URL."""

    rtype: ResourceType
    namespace: str | None
    name: str
    subresource: str


def warning_header(text: str) -> str | None:
    """The ``Warning`` header for ``text`` (code 299, no agent), or None when the text has a
    control character or is not valid UTF-8: Kubernetes' ``NewWarningHeader`` refuses those
    and its recorder drops the warning. Such text comes from the client (an unknown field's
    name), and a CR or LF in it would otherwise be a header injection."""
    if any(unicodedata.category(c) == "Cc" for c in text):
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def int_param(query: Any, name: str) -> int | None:
    """An integer query parameter (None when absent or empty); 400 when not a number."""
    try:
        return queryparams.int_param(query, name)
    except queryparams.QueryParamError as exc:
        raise errors.bad_request(str(exc)) from None


def _write_options(request: web.BaseRequest) -> WriteOptions:
    query = request.query
    dry_run = query.getall("dryRun", [])
    for value in dry_run:
        if value != "All":
            raise errors.bad_request(
                f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    validation = query.get("fieldValidation", "") or "Warn"
    if validation not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation: Unsupported value: "{validation}": supported values: '
            '"Ignore", "Strict", "Warn"'
        )
    return WriteOptions(
        dry_run=bool(dry_run),
        field_validation=validation,
        field_manager=query.get("fieldManager", ""),
        user_agent=request.headers.get("User-Agent", ""),
        user=request_user(request),
        audit_annotations=_audit_annotations(request),
    )


def _audit_annotations(request: web.BaseRequest) -> dict[str, str]:
    """The annotations of ``request``'s audit event, which admission may add to (a fresh
    dict when the request is not audited)."""
    context = request.get(AUDIT_CONTEXT_KEY)
    return context.annotations if context is not None else {}


class ResourceHandlers:
    def __init__(self, registry: Registry, storages: dict[ResourceType, ResourceStorage]) -> None:
        self.registry = registry
        self.storages = storages

    # ------------------------------------------------------------- routing

    def resolve(self, group: str, version: str, rest: list[str]) -> Target | None:
        """Map the path after ``/api/v1`` or ``/apis/g/v`` to a target, None if unknown."""
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self.registry.lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        rtype = self.registry.lookup(group, version, rest[0])
        if rtype is None:
            return None
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rtype.subresources:
            return None
        if rtype.namespaced and name and namespace is None:
            return None  # a namespaced object must be addressed inside its namespace
        return Target(rtype, namespace, name, sub)

    async def handle(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        method = request.method
        storage = self.storages[target.rtype]
        fmt = negotiation.negotiate_response(request.headers.get("Accept", ""))
        if not target.name:
            if method == "GET":
                if _truthy(request.query.get("watch")):
                    return await self.watch(request, storage, target, fmt)
                return await self.list(request, storage, target, fmt)
            if method == "POST":
                return await self.create(request, storage, target, fmt)
            if method == "DELETE":
                return await self.delete_collection(request, storage, target, fmt)
            raise errors.method_not_allowed(method)
        if target.subresource == "scale":
            return await self.scale(request, storage, target, fmt)
        if target.subresource == "binding":
            if method != "POST":
                raise errors.method_not_allowed(method)
            return await self.bind(request, storage, target)
        if method == "GET":
            cached = await storage.get(
                target.namespace,
                target.name,
                resource_version=request.query.get("resourceVersion", ""),
            )
            return self.respond_object(request, target.rtype, cached.obj, fmt)
        if method == "PUT":
            body = await read_body(request)
            result = await storage.update(
                target.namespace,
                target.name,
                body,
                _write_options(request),
                subresource=target.subresource,
            )
            return self.respond_write(request, target.rtype, result, fmt)
        if method == "PATCH":
            return await self.patch(request, storage, target, fmt)
        if method == "DELETE":
            if target.subresource:
                raise errors.method_not_allowed(method)
            return await self.delete(request, storage, target, fmt)
        raise errors.method_not_allowed(method)

    # ------------------------------------------------------------ responses

    def respond_object(
        self,
        request: web.BaseRequest,
        rtype: ResourceType,
        obj: Obj,
        fmt: ResponseFormat,
        *,
        status: int = 200,
        warnings: list[str] | None = None,
    ) -> web.Response:
        if fmt.table:
            body: Any = to_table(
                rtype,
                [obj],
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=obj["metadata"].get("resourceVersion", ""),
            )
        elif fmt.partial_metadata:
            body = partial_metadata(obj)
        else:
            body = obj
        data, content_type = negotiation.encode(body, fmt)
        response = web.Response(body=data, status=status, content_type=content_type)
        for warning in warnings or []:
            header = warning_header(warning)
            if header is not None:
                response.headers.add("Warning", header)
        return response

    def respond_write(
        self,
        request: web.BaseRequest,
        rtype: ResourceType,
        result: WriteResult,
        fmt: ResponseFormat,
    ) -> web.Response:
        return self.respond_object(
            request,
            rtype,
            result.obj,
            fmt,
            status=201 if result.created else 200,
            warnings=result.warnings,
        )

    # ---------------------------------------------------------------- list

    def _list_options(self, request: web.BaseRequest, target: Target) -> ListOptions:
        query = request.query
        try:
            labels = parse_selector(query.get("labelSelector", ""))
        except SelectorParseError as exc:
            raise errors.bad_request(f"unable to parse requirement: {exc}") from None
        try:
            fields = parse_field_selector(query.get("fieldSelector", ""))
        except FieldSelectorParseError as exc:
            raise errors.bad_request(str(exc)) from None
        limit = int_param(query, "limit") or 0
        match = query.get("resourceVersionMatch", "")
        rv = query.get("resourceVersion", "")
        if match and match not in ("Exact", "NotOlderThan"):
            raise errors.bad_request(
                f'resourceVersionMatch: Unsupported value: "{match}": supported values: '
                '"Exact", "NotOlderThan"'
            )
        initial_events = query.get("sendInitialEvents") is not None
        if match and not rv and not initial_events:
            raise errors.bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        if match == "Exact" and rv == "0":
            raise errors.bad_request(
                'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
            )
        if query.get("continue") and rv:
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue"
            )
        return ListOptions(
            namespace=target.namespace,
            label_selector=labels,
            field_selector=fields,
            limit=max(0, limit),
            continue_token=query.get("continue", ""),
            resource_version=rv,
            resource_version_match=match,
        )

    async def list(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.StreamResponse:
        opts = self._list_options(request, target)
        result = await storage.list_objects(opts)
        rtype = target.rtype
        rv = str(result.resource_version)
        if fmt.table:
            body: Any = to_table(
                rtype,
                (c.obj for c in result.items),
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=rv,
                continue_token=result.continue_token,
                remaining=result.remaining,
            )
            data, content_type = negotiation.encode(body, fmt)
            return web.Response(body=data, content_type=content_type)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if result.continue_token:
            meta["continue"] = result.continue_token
            if result.remaining is not None:
                meta["remainingItemCount"] = result.remaining
        if fmt.partial_metadata:
            body = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": [partial_metadata(c.obj) for c in result.items],
            }
            data, content_type = negotiation.encode(body, fmt)
            return web.Response(body=data, content_type=content_type)
        if fmt.media_type == negotiation.JSON:
            # Objects are already serialised in the cache: splice them, do not re-encode.
            head = orjson.dumps(
                {"kind": rtype.list_kind, "apiVersion": rtype.api_version, "metadata": meta}
            )
            return await _spliced_list(request, head[:-1] + b',"items":[', result.items)
        body = {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": [c.obj for c in result.items],
        }
        data, content_type = negotiation.encode(body, fmt)
        return web.Response(body=data, content_type=content_type)

    # --------------------------------------------------------------- watch

    async def watch(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.StreamResponse:
        """Stream what :meth:`ResourceStorage.watch` starts (the semantics live there)."""
        query = request.query
        send_initial = query.get("sendInitialEvents")
        allow_bookmarks = _truthy(query.get("allowWatchBookmarks"))
        transport = request.transport
        started = await storage.watch(
            self._list_options(request, target),
            send_initial_events=_truthy(send_initial) if send_initial is not None else None,
            allow_bookmarks=allow_bookmarks,
            encode=self._watch_encoder(request, target.rtype, fmt),
            abort=transport.abort if transport is not None else None,
        )
        try:
            response = web.StreamResponse(
                status=200,
                headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
            )
            response.enable_chunked_encoding()
            await response.prepare(request)
            if started.expired is not None:
                status = started.expired.status()
                await response.write(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
                return response
            rtype, watcher, cache = target.rtype, started.watcher, started.cache
            if started.initial_events_end:
                watcher.push(self._bookmark(rtype, cache.revision, initial_end=True))
            timeout = int_param(query, "timeoutSeconds")
            await self._stream(response, watcher, cache, rtype, timeout, allow_bookmarks)
        except ConnectionResetError:
            pass  # the client went away mid-stream: its watch simply ends
        finally:
            started.stop()
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        watcher: CacheWatcher,
        cache: Any,
        rtype: ResourceType,
        timeout: int | None,
        bookmarks: bool,
    ) -> None:
        """Write the watcher's events as they come, batched per wake-up; end at the
        deadline. Timers wake the loop for the deadline and bookmarks, so waiting for events
        costs nothing per event (no per-wait task or timeout object)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout is not None else DEFAULT_WATCH_TIMEOUT)
        timers = [loop.call_at(deadline, watcher.wake.set)]
        next_bookmark = loop.time() + WATCH_BOOKMARK_INTERVAL
        if bookmarks:
            timers.append(loop.call_at(next_bookmark, watcher.wake.set))
        try:
            while True:
                if not watcher.has_output and not watcher.closed:
                    await watcher.wake.wait()
                watcher.wake.clear()
                # a watcher closed by the cache still says what it has (a last ERROR);
                # one closed for falling behind has had its connection aborted
                while watcher.has_output and not watcher.overflowed:
                    with watcher.writing():
                        await response.write(watcher.take())
                if watcher.closed:
                    return
                now = loop.time()
                if now >= deadline:
                    return
                if bookmarks and now >= next_bookmark:
                    with watcher.writing():
                        await response.write(self._bookmark(rtype, cache.revision))
                    next_bookmark = now + WATCH_BOOKMARK_INTERVAL
                    timers.append(loop.call_at(next_bookmark, watcher.wake.set))
        finally:
            for timer in timers:
                timer.cancel()

    def _bookmark(self, rtype: ResourceType, revision: int, *, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}
        return orjson.dumps({"type": BOOKMARK, "object": obj}) + b"\n"

    def _watch_encoder(
        self, request: web.BaseRequest, rtype: ResourceType, fmt: ResponseFormat
    ) -> Callable[[str, CachedObject], bytes]:
        if fmt.table:
            include = request.query.get("includeObject", "Metadata")
            first = [True]

            def encode_table(event_type: str, cached: CachedObject) -> bytes:
                table = to_table(
                    rtype,
                    [cached.obj],
                    include_object=include,
                    resource_version=str(cached.rv),
                    with_columns=first[0],
                )
                first[0] = False
                return orjson.dumps({"type": event_type, "object": table}) + b"\n"

            return encode_table
        if fmt.partial_metadata:

            def encode_partial(event_type: str, cached: CachedObject) -> bytes:
                obj = partial_metadata(cached.obj)
                return orjson.dumps({"type": event_type, "object": obj}) + b"\n"

            return encode_partial
        prefixes = {
            t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED")
        }

        def encode_json(event_type: str, cached: CachedObject) -> bytes:
            return prefixes[event_type] + cached.raw + b"}\n"

        return encode_json

    # --------------------------------------------------------------- write

    async def create(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.Response:
        if not target.rtype.namespaced or target.namespace is not None:
            body = await read_body(request)
            result = await storage.create(target.namespace, body, _write_options(request))
            return self.respond_write(request, target.rtype, result, fmt)
        raise errors.method_not_allowed("POST")

    async def patch(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        media = negotiation.body_media_type(content_type)
        if media == negotiation.APPLY_PATCH:
            return await self.server_side_apply(request, storage, target, fmt)
        if request.query.get("force") is not None:
            raise errors.bad_request("force: Forbidden: may not be specified for non-apply patch")
        if media not in (
            negotiation.JSON_PATCH,
            negotiation.MERGE_PATCH,
            negotiation.STRATEGIC_MERGE_PATCH,
        ):
            raise errors.unsupported_media_type(content_type)
        raw = await read_raw_body(request)
        try:
            patch_doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
        try:
            if media == negotiation.MERGE_PATCH:
                patch_doc = require_object(patch_doc, "merge")
            elif media == negotiation.STRATEGIC_MERGE_PATCH:
                patch_doc = require_object(patch_doc, "strategic")
        except PatchError as exc:
            raise errors.bad_request(exc.message) from None
        pinned: dict[str, str | None] = {}
        definition = target.rtype.definition

        def mutate(obj: Obj) -> Obj:
            original_rv = obj["metadata"].get("resourceVersion")
            try:
                if media == negotiation.JSON_PATCH:
                    patched = apply_json_patch(obj, patch_doc)
                elif media == negotiation.STRATEGIC_MERGE_PATCH:
                    patched = apply_strategic_merge_patch(obj, patch_doc, definition)
                else:
                    patched = apply_merge_patch(obj, patch_doc)
            except PatchError as exc:
                raise APIError(
                    exc.code, "BadRequest" if exc.code == 400 else "Invalid", exc.message
                ) from None
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            meta = patched.get("metadata")
            rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
            pinned["rv"] = rv if rv != original_rv else None
            return patched

        opts = _write_options(request)
        written = ("status", *target.rtype.spec_subresources)
        sub = target.subresource if target.subresource in written else ""
        try:
            result = await storage.replace_with_retry(
                target.namespace,
                target.name,
                mutate,
                opts,
                subresource=sub,
                precondition_rv=lambda _: pinned.get("rv"),
            )
        except APIError as exc:
            if exc.code == 400 and exc.message.startswith(f"{target.rtype.kind} in version"):
                raise APIError(422, "Invalid", exc.message) from None
            raise
        return self.respond_write(request, target.rtype, result, fmt)

    async def server_side_apply(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.Response:
        if target.subresource:
            raise errors.unsupported_media_type(request.headers.get("Content-Type", ""))
        opts = _write_options(request)
        if not opts.field_manager:
            raise APIError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        force_param = request.query.get("force")
        if force_param not in (None, "", "true", "false"):
            raise errors.bad_request(f'invalid value "{force_param}" for query parameter force')
        raw = await read_raw_body(request)
        applied = negotiation.decode_yaml(raw)
        if not isinstance(applied, dict):
            raise errors.bad_request("error decoding YAML: the apply body must be an object")
        result = await storage.apply(
            target.namespace, target.name, applied, opts, force=_truthy(force_param)
        )
        return self.respond_write(request, target.rtype, result, fmt)

    # -------------------------------------------------------------- delete

    async def _delete_options(self, request: web.BaseRequest) -> DeleteOptions:
        options: dict[str, Any] = {}
        if request.can_read_body:
            raw = await read_raw_body(request)
            if raw.strip():
                parsed = negotiation.decode_body(raw, request.headers.get("Content-Type", ""))
                if not isinstance(parsed, dict):
                    raise errors.bad_request("DeleteOptions must be an object")
                options = parsed
        return replace(delete_options(options, request.query), user=request_user(request))

    async def delete(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.Response:
        opts = await self._delete_options(request)
        result = await storage.delete(target.namespace, target.name, opts)
        rtype = target.rtype
        if result.deleted and not rtype.return_deleted_object:
            meta = result.obj["metadata"]
            body = errors.success_status(rtype, meta["name"], meta.get("uid", ""))
            data, content_type = negotiation.encode(
                body, fmt if not fmt.table else ResponseFormat()
            )
            return web.Response(body=data, content_type=content_type)
        return self.respond_object(request, rtype, result.obj, fmt)

    async def delete_collection(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.Response:
        list_opts = self._list_options(request, target)
        opts = await self._delete_options(request)
        listing = await storage.list_objects(list_opts)
        deleted = []
        for cached in listing.items:
            try:
                result = await storage.delete(cached.namespace or None, cached.name, opts)
            except APIError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(result.obj)
        rtype = target.rtype
        body = {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(listing.resource_version)},
            "items": deleted,
        }
        data, content_type = negotiation.encode(body, ResponseFormat(fmt.media_type))
        return web.Response(body=data, content_type=content_type)

    # --------------------------------------------------------- subresources

    async def scale(
        self,
        request: web.BaseRequest,
        storage: ResourceStorage,
        target: Target,
        fmt: ResponseFormat,
    ) -> web.Response:
        method = request.method
        if method == "GET":
            cached = await storage.get(target.namespace, target.name)
            return _json(to_scale(cached.obj, storage.rtype))
        if method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(method)
        if method == "PUT":
            body = await read_body(request)
            if not isinstance(body, dict):
                raise errors.bad_request("Scale body must be an object")

            def change(scale: Obj) -> Obj:
                return body
        else:
            content_type = request.headers.get("Content-Type", "")
            media = negotiation.body_media_type(content_type)
            raw = await read_raw_body(request)
            try:
                patch_doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise errors.bad_request(f"error decoding patch: {exc}") from None

            def change(scale: Obj) -> Obj:
                try:
                    if media == negotiation.JSON_PATCH:
                        return apply_json_patch(scale, patch_doc)
                    if media in (negotiation.MERGE_PATCH, negotiation.STRATEGIC_MERGE_PATCH):
                        return apply_merge_patch(scale, require_object(patch_doc, "merge"))
                except PatchError as exc:
                    raise APIError(exc.code, "BadRequest", exc.message) from None
                raise errors.unsupported_media_type(content_type)

        pinned: dict[str, str | None] = {}

        def mutate(obj: Obj) -> Obj:
            scale = to_scale(obj, storage.rtype)
            wanted = _decoded_scale(change(copy.deepcopy(scale)), target.name)
            replicas = (wanted.get("spec") or {}).get("replicas", 0)  # Go's zero value
            rv = (wanted.get("metadata") or {}).get("resourceVersion")
            pinned["rv"] = rv if rv and rv != scale["metadata"].get("resourceVersion") else None
            obj.setdefault("spec", {})["replicas"] = replicas
            return obj

        result = await storage.replace_with_retry(
            target.namespace,
            target.name,
            mutate,
            _write_options(request),
            precondition_rv=lambda _: pinned.get("rv"),
        )
        return _json(to_scale(result.obj, storage.rtype))

    async def bind(
        self, request: web.BaseRequest, storage: ResourceStorage, target: Target
    ) -> web.Response:
        node, annotations = _binding(await read_body(request), target.name)

        def mutate(obj: Obj) -> Obj:
            meta = obj["metadata"]
            if annotations:
                merged = {**(meta.get("annotations") or {}), **annotations}
                problems = validate_annotations(merged, "metadata.annotations")
                if problems:  # the pod must stay valid for every later write
                    raise errors.invalid(target.rtype, target.name, problems)
                meta["annotations"] = merged
            if meta.get("deletionTimestamp"):
                raise errors.conflict(target.rtype, target.name, "pod is being deleted")
            current = (obj.get("spec") or {}).get("nodeName")
            if current:
                raise errors.conflict(
                    target.rtype,
                    target.name,
                    f'pod {target.name} is already assigned to node "{current}"',
                )
            obj["spec"]["nodeName"] = node
            conditions = obj.setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": _now(),
                }
            )
            return obj

        await storage.guaranteed_update(
            target.namespace, target.name, mutate, _write_options(request)
        )
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": 201,
            },
            status=201,
        )


def delete_options(options: Obj, query: Any) -> DeleteOptions:
    """A ``DeleteOptions`` body (``{}`` when none came) and the query parameters that may
    stand in for its fields, checked as the apiserver checks them."""
    grace = options.get("gracePeriodSeconds", int_param(query, "gracePeriodSeconds"))
    policy = options.get("propagationPolicy") or query.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    if orphan is None and query.get("orphanDependents") is not None:
        orphan = _truthy(query.get("orphanDependents"))
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise errors.APIError(
            422,
            "Invalid",
            f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
            f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
        )
    if grace is not None and not isinstance(grace, int):
        raise errors.bad_request("gracePeriodSeconds must be an integer")
    pre = options.get("preconditions") or {}
    dry = options.get("dryRun") or query.getall("dryRun", [])
    return DeleteOptions(
        grace_period_seconds=grace,
        propagation_policy=policy,
        preconditions_uid=pre.get("uid"),
        preconditions_resource_version=pre.get("resourceVersion"),
        dry_run=bool(dry),
        ignore_store_read_error=options.get(UNSAFE_DELETE_OPTION) is True,
    )


@functools.cache
def _scale_decoder() -> Decoder:
    return SchemaSet().decoder("io.k8s.api.autoscaling.v1.Scale", "Scale", "autoscaling/v1")


def _decoded_scale(wanted: Any, name: str) -> Obj:
    """The Scale a write asks for, decoded and validated as the apiserver does
    (``ValidateScale``): types are 400, a negative replica count is 422."""
    try:
        scale = _scale_decoder().decode(wanted).obj
    except DecodeError as exc:
        raise errors.bad_request(str(exc)) from None
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if replicas < 0:
        problem = invalid("spec.replicas", replicas, "must be greater than or equal to 0")
        raise errors.invalid_kind("Scale", "autoscaling", name, [problem])
    return scale


def _binding(body: Any, name: str) -> tuple[str, dict[str, str]]:
    """The node a Binding names and the annotations it adds to the pod, after Kubernetes'
    ``ValidatePodBinding`` (target kind empty or Node, target name required)."""
    if not isinstance(body, dict):
        raise errors.bad_request("Binding body must be an object")
    target = body.get("target")
    meta = body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if target is not None and not isinstance(target, dict):
        raise errors.bad_request("Binding target must be an object (an ObjectReference)")
    if annotations is not None and not (
        isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())
    ):
        raise errors.bad_request("Binding metadata.annotations must map strings to strings")
    target = target or {}
    node, kind = target.get("name") or "", target.get("kind") or ""
    problems = []
    if kind and kind != "Node":
        problems.append(not_supported("target.kind", kind, ("Node", "<empty>")))
    if not isinstance(node, str) or not node:
        problems.append(required("target.name"))
    if problems:
        raise errors.invalid_kind("Binding", "", name, problems)
    return node, dict(annotations or {})


def _now() -> str:
    from setpoint.meta.clock import now_rfc3339

    return now_rfc3339()


def to_scale(obj: Obj, rtype: ResourceType) -> Obj:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {"replicas": status.get("replicas", 0), "selector": rtype.scale_selector(obj)},
    }


LIST_WRITE_SLICE = 256 * 1024


async def _spliced_list(
    request: web.BaseRequest, head: bytes, items: list[CachedObject]
) -> web.StreamResponse:
    """A JSON list of cached objects (``head`` opens it up to its items). A large one is
    written a slice at a time, giving the event loop back between slices (a write to a
    client that keeps up never waits, so it would not), so other requests are served while
    megabytes are joined and encrypted."""
    raws = [c.raw for c in items]
    payload = sum(map(len, raws))
    size = len(head) + payload + max(len(raws) - 1, 0) + 2
    if size <= LIST_WRITE_SLICE:
        return web.Response(body=head + b",".join(raws) + b"]}", content_type=negotiation.JSON)
    response = web.StreamResponse(headers={"Content-Type": negotiation.JSON})
    response.content_length = size
    await response.prepare(request)
    await response.write(head)
    per_slice = max(1, LIST_WRITE_SLICE * len(raws) // max(payload, 1))
    for start in range(0, len(raws), per_slice):
        chunk = b",".join(raws[start : start + per_slice])
        await response.write(b"," + chunk if start else chunk)
        await asyncio.sleep(0)
    await response.write(b"]}")
    await response.write_eof()
    return response


def _json(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=negotiation.JSON)
