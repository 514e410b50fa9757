"""The ResourceQuota admission plugin (``staging/.../admission/plugin/resourcequota``): a write
that would take a namespace over one of its quotas is refused, and one that fits is charged
to the quotas before it is stored.

For each quota of the namespace that matches the object (:func:`quotausage.matches`), the
plugin (:func:`check_request`):

1. refuses a pod that does not declare what a compute quota limits (``failed quota: q: must
   specify limits.cpu for: app``), and any object while the quota's status is not yet
   computed (``status unknown for quota: q, resources: pods``);
2. computes the object's usage (for an update, the growth over the stored object);
3. refuses the write if used + requested goes over hard (``exceeded quota: q, requested:
   pods=1, used: pods=2, limited: pods=2``), else increments ``status.used``.

The increment is a compare-and-swap of the quota's status at the resourceVersion the check
read, so two API servers (or two writes) cannot both spend the last unit: the loser re-reads
the quota and checks again. Within one server, writes to the same namespace are checked one
at a time (upstream batches them per namespace for the same reason). Usage is only ever
charged here; the resource quota controller recomputes it from the live objects, which is
how deletions and finished pods give it back (and how a charge for a write that then failed
is corrected).

Writes without a user (the API server's own), subresources and dry runs are not charged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from setpoint.api import errors
from setpoint.api.admission import CREATE, UPDATE, AdmissionRequest
from setpoint.api.admission_plugins import StorageLookup
from setpoint.api.errors import APIError
from setpoint.api.storage import ListOptions, ResourceStorage, WriteOptions
from setpoint.api.watchcache import CachedObject
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.resources import quotausage as qu

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "resourcequota-admission"
MAX_RETRIES = 10


class QuotaRefused(Exception):
    """The write does not fit a quota; the message is upstream's."""


def check_request(
    quotas: list[Obj],
    group: str,
    plural: str,
    operation: str,
    obj: Obj,
    old: Obj | None,
    now: datetime,
) -> list[tuple[int, qu.ResourceList]]:
    """``CheckRequest``: the new ``status.used`` of each quota (by index) this write changes,
    or :class:`QuotaRefused`."""
    interesting: list[int] = []
    for i, quota in enumerate(quotas):
        if not qu.matches(quota, group, plural, obj):
            continue
        name = quota["metadata"]["name"]
        status = quota.get("status") or {}
        restricted = qu.matching_resources(group, plural, (status.get("hard") or {}).keys())
        if (group, plural) == ("", "pods"):
            problem = qu.pod_constraints(restricted, obj)
            if problem:
                raise QuotaRefused(f"failed quota: {name}: {problem}")
        used = status.get("used") or {}
        unknown = [r for r in restricted if r not in used]
        if unknown:
            raise QuotaRefused(
                f"status unknown for quota: {name}, resources: {','.join(sorted(restricted))}"
            )
        interesting.append(i)
    if not interesting:
        return []
    usage = qu.usage(group, plural, obj, now)
    negative = sorted(n for n, q in usage.items() if q.value < 0)
    if negative:
        raise QuotaRefused(f"quota usage is negative for resource(s): {','.join(negative)}")
    deltas = {i: usage for i in interesting}
    if operation == UPDATE and old is not None:
        delta = qu.subtract_non_negative(usage, qu.usage(group, plural, old, now))
        for i in interesting:
            if qu.matches(quotas[i], group, plural, old):
                deltas[i] = delta
    changed = []
    for i in interesting:
        delta = qu.remove_zeros(deltas[i])
        if not delta:
            continue
        quota = quotas[i]
        status = quota.get("status") or {}
        hard = qu.parse_list(status.get("hard"))
        used = qu.parse_list(status.get("used"))
        requested = qu.mask(delta, hard)
        new_used = qu.add(used, requested)
        over = qu.exceeded(qu.mask(new_used, requested), hard)
        if over:
            raise QuotaRefused(
                f"exceeded quota: {quota['metadata']['name']}, "
                f"requested: {qu.pretty(qu.mask(requested, over))}, "
                f"used: {qu.pretty(qu.mask(used, over))}, "
                f"limited: {qu.pretty(qu.mask(hard, over))}"
            )
        changed.append((i, new_used))
    return changed


class ResourceQuotaAdmission:
    def __init__(self, storages: StorageLookup, *, clock: Clock = REAL_CLOCK) -> None:
        self._storages = storages
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    async def admit(self, request: AdmissionRequest) -> None:
        return None

    async def validate(self, request: AdmissionRequest) -> None:
        if request.user is None or request.subresource or not request.namespace:
            return
        if request.operation not in (CREATE, UPDATE) or request.obj is None:
            return
        group, plural = request.resource
        if not qu.handles(group, plural, request.operation):
            return
        storage = self._storages("resourcequotas")
        if storage is None:
            return
        namespace = request.namespace
        if not any(True for _ in storage.cache.items(namespace)):
            return
        # one lock per namespace that has quotas (a handful of bytes each)
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            await self._charge(storage, request, namespace)

    async def _charge(
        self, storage: ResourceStorage, request: AdmissionRequest, namespace: str
    ) -> None:
        group, plural = request.resource
        assert request.obj is not None
        pending: list[CachedObject] = list(storage.cache.sorted_items(namespace))
        last: APIError | None = None
        for _ in range(MAX_RETRIES):
            quotas = [cached.obj for cached in pending]
            try:
                changes = check_request(
                    quotas,
                    group,
                    plural,
                    request.operation,
                    request.obj,
                    request.old,
                    self._clock.now(),
                )
            except QuotaRefused as exc:
                raise errors.forbidden_object(request.rtype, request.name, str(exc)) from None
            if request.dry_run or not changes:
                return
            failed: set[str] = set()
            for index, new_used in changes:
                cached = pending[index]
                try:
                    await _write_used(storage, cached, new_used)
                except APIError as exc:
                    if exc.code not in (404, 409):
                        raise
                    failed.add(cached.name)
                    last = exc
            if not failed:
                return
            # some quota changed since it was read: check those again, as they are now
            fresh = await storage.list_objects(ListOptions(namespace=namespace))
            pending = [cached for cached in fresh.items if cached.name in failed]
            if not pending:
                return  # the quotas that changed are gone
        assert last is not None
        raise last


async def _write_used(
    storage: ResourceStorage, cached: CachedObject, used: qu.ResourceList
) -> None:
    """Compare-and-swap ``status.used`` at the resourceVersion the check read."""
    quota = cached.copy()
    quota["metadata"]["resourceVersion"] = str(cached.rv)
    status = quota.setdefault("status", {})
    status["used"] = {**(status.get("used") or {}), **qu.render_list(used)}
    await storage.update(
        cached.namespace,
        cached.name,
        quota,
        WriteOptions(field_manager=FIELD_MANAGER),
        subresource="status",
    )
