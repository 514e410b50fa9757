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
the quota and checks again. Within one server, the writes that arrive for a namespace while
its quotas are being written wait and are then checked together, one after another against
the quotas as the earlier ones left them, and charged with one write per quota — upstream's
batching, which keeps a busy namespace from paying one quota write per object. Usage is only ever
charged here; the resource quota controller recomputes it from the live objects, which is
how deletions and finished pods give it back (and how a charge for a write that then failed
is corrected).

Writes without a user (the API server's own), subresources and dry runs are not charged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
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


@dataclass
class _Waiter:
    """One write waiting for its namespace's next batch; ``done`` carries its verdict."""

    request: AdmissionRequest
    done: asyncio.Future[None]

    def allow(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def refuse(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class ResourceQuotaAdmission:
    def __init__(self, storages: StorageLookup, *, clock: Clock = REAL_CLOCK) -> None:
        self._storages = storages
        self._clock = clock
        # per namespace: the writes waiting for a check, and the task checking them
        self._waiting: dict[str, list[_Waiter]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

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
        waiter = _Waiter(request, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(namespace, []).append(waiter)
        if namespace not in self._workers:
            self._workers[namespace] = asyncio.create_task(
                self._work(storage, namespace), name=f"quota-admission-{namespace}"
            )
        await waiter.done

    async def _work(self, storage: ResourceStorage, namespace: str) -> None:
        """Check the namespace's waiting writes a batch at a time until none wait (it owns
        its batches: every waiter gets a verdict, whatever happens)."""
        try:
            while self._waiting.get(namespace):
                batch = [w for w in self._waiting.pop(namespace) if not w.done.done()]
                try:
                    await self._check_batch(storage, namespace, batch)
                except Exception as exc:
                    log.exception("quota admission failed in namespace %s", namespace)
                    for waiter in batch:
                        waiter.refuse(exc)
        except asyncio.CancelledError:
            for waiter in self._waiting.pop(namespace, []):
                waiter.done.cancel()
            raise
        finally:
            self._workers.pop(namespace, None)

    async def _check_batch(
        self, storage: ResourceStorage, namespace: str, batch: list[_Waiter]
    ) -> None:
        """``checkQuotas``: check the writes one after another against the quotas as the
        earlier ones left them, write each changed quota once (compare-and-swap), and on a
        conflict check the writes that passed again against the quotas that changed."""
        pending: list[CachedObject] = list(storage.cache.sorted_items(namespace))
        undecided = batch
        last: APIError | None = None
        for _ in range(MAX_RETRIES):
            quotas = [cached.copy() for cached in pending]
            changed: set[int] = set()
            passed: list[_Waiter] = []
            for waiter in undecided:
                request = waiter.request
                assert request.obj is not None
                group, plural = request.resource
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
                    waiter.refuse(errors.forbidden_object(request.rtype, request.name, str(exc)))
                    continue
                if request.dry_run:
                    waiter.allow()
                    continue
                for index, used in changes:
                    status = quotas[index].setdefault("status", {})
                    status["used"] = {**(status.get("used") or {}), **qu.render_list(used)}
                    changed.add(index)
                passed.append(waiter)
            failed: set[str] = set()
            for index in sorted(changed):
                try:
                    await _write_status(storage, quotas[index], pending[index].rv)
                except APIError as exc:
                    if exc.code not in (404, 409):
                        raise
                    failed.add(pending[index].name)
                    last = exc
            if failed:
                # some quota changed since it was read: check again against it as it is now
                fresh = await storage.list_objects(ListOptions(namespace=namespace))
                pending = [cached for cached in fresh.items if cached.name in failed]
            if not failed or not pending:
                for waiter in passed:
                    waiter.allow()
                return
            undecided = passed
        assert last is not None
        for waiter in undecided:
            waiter.refuse(last)


async def _write_status(storage: ResourceStorage, quota: Obj, rv: int) -> None:
    """Compare-and-swap the quota's status at the resourceVersion the check read."""
    meta = quota["metadata"]
    meta["resourceVersion"] = str(rv)
    await storage.update(
        meta["namespace"],
        meta["name"],
        quota,
        WriteOptions(field_manager=FIELD_MANAGER),
        subresource="status",
    )
