"""The resource quota controller: keeps every ResourceQuota's ``status`` true to what its
namespace really holds (``pkg/controller/resourcequota``).

Admission (the ResourceQuota plugin) only ever *charges* a quota, as writes arrive. This
controller computes ``status.hard`` (a copy of ``spec.hard``) and ``status.used`` from the
live objects, so that:

* a new or changed quota gets its status (until then, admission refuses what it covers:
  ``status unknown for quota``);
* usage is given back when objects are deleted and when pods finish (``Succeeded`` /
  ``Failed``: a finished pod no longer counts towards ``pods`` or compute, only towards
  ``count/pods``) — upstream's replenishment;
* any drift (a charge for a write that then failed) is corrected by a full recalculation of
  every quota each ``resync_period`` (``--resource-quota-sync-period``; upstream 5 minutes).

Like upstream it does not react to creations: those were charged by admission, and
recomputing from a cache that has not seen them yet would undo the charge.

Usage comes from informer caches for the kinds with evaluators (pods, services, persistent
volume claims) and the other core kinds that have object counts; ``count/<resource>.<group>``
of any other kind is counted by listing it through the API (its version found by discovery).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from setpoint.client.api import (
    CONFIGMAPS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    REPLICATIONCONTROLLERS,
    SECRETS,
    SERVICES,
    ApiError,
    Obj,
    Resource,
)
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, Informer, by_namespace, object_key
from setpoint.client.workqueue import Requeue
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.resources import quotausage as qu

log = logging.getLogger(__name__)

RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", True, "ResourceQuota")
# upstream's --resource-quota-sync-period is 5m; a small cluster can afford a shorter one
DEFAULT_RESYNC_PERIOD = 60.0
_COUNTED = (PODS, SERVICES, PERSISTENTVOLUMECLAIMS, CONFIGMAPS, SECRETS, REPLICATIONCONTROLLERS)


class ResourceQuotaController(Controller[str]):
    name = "resourcequota"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        resync_period: float = DEFAULT_RESYNC_PERIOD,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.resync_period = resync_period
        self.quotas = informers.informer(RESOURCEQUOTAS, indexers={"namespace": by_namespace})
        self.quotas.add_handler(
            EventHandler(
                on_add=lambda q: self.queue.add(object_key(q)),
                on_update=self._on_quota_update,
            )
        )
        self.kinds: dict[Resource, Informer] = {}
        for resource in _COUNTED:
            informer = informers.informer(resource, indexers={"namespace": by_namespace})
            self.kinds[resource] = informer
            informer.add_handler(
                EventHandler(on_update=self._update_handler(resource), on_delete=self._on_delete)
            )
        self.kinds[RESOURCEQUOTAS] = self.quotas
        self._versions: dict[str, str] = {}

    # ------------------------------------------------------------- event handlers

    def _on_quota_update(self, old: Obj, new: Obj) -> None:
        """``updateQuota``: a changed spec, or a status that does not cover it yet."""
        spec_hard = (new.get("spec") or {}).get("hard") or {}
        status = new.get("status") or {}
        incomplete = status.get("hard") != spec_hard or set(spec_hard) - set(
            status.get("used") or {}
        )
        if old.get("spec") != new.get("spec") or incomplete:
            self.queue.add(object_key(new))

    def _update_handler(self, resource: Resource) -> Callable[[Obj, Obj], None]:
        return lambda old, new: self._on_update(resource, old, new)

    def _on_update(self, resource: Resource, old: Obj, new: Obj) -> None:
        """Replenishment: an update that changes usage (a pod that finished)."""
        namespace = new["metadata"].get("namespace", "")
        if not self.quotas.by_index("namespace", namespace):
            return  # most namespaces have no quota: skip the arithmetic
        now = self.clock.now()
        before = qu.usage(resource.group, resource.plural, old, now)
        after = qu.usage(resource.group, resource.plural, new, now)
        if before != after:
            self._enqueue_namespace(namespace)

    def _on_delete(self, obj: Obj) -> None:
        self._enqueue_namespace(obj["metadata"].get("namespace", ""))

    def _enqueue_namespace(self, namespace: str) -> None:
        for quota in self.quotas.by_index("namespace", namespace):
            self.queue.add(object_key(quota))

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> Requeue | None:
        quota = self.quotas.get(key)
        if quota is None:
            return None
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        used = await self.usage(quota, list(hard))
        status = quota.get("status") or {}
        if status.get("hard") != hard or status.get("used") != used:
            updated = {**quota, "status": {**status, "hard": hard, "used": used}}
            await self.client.update_status(RESOURCEQUOTAS, updated)
        return Requeue(after=self.resync_period)

    async def usage(self, quota: Obj, names: list[str]) -> dict[str, str]:
        """``status.used`` of ``quota``: each hard resource summed over the namespace."""
        namespace = quota["metadata"]["namespace"]
        hard = qu.parse_list((quota.get("spec") or {}).get("hard"))
        total = qu.zero(names, hard)
        scopes = qu.quota_scope_selectors(quota)
        now = self.clock.now()
        covered: set[str] = set()
        for resource, informer in self.kinds.items():
            own = qu.matching_resources(resource.group, resource.plural, names)
            covered.update(own)
            if not own:
                continue
            is_pod = resource == PODS
            if scopes and not is_pod:
                continue  # only pods are selected by scopes
            for obj in informer.by_index("namespace", namespace):
                if is_pod and not all(qu.pod_matches_scope(s, obj) for s in scopes):
                    continue
                total = qu.add(
                    total, qu.mask(qu.usage(resource.group, resource.plural, obj, now), own)
                )
        for name in names:
            if name in covered or not name.startswith("count/") or scopes:
                continue
            count = await self._count(namespace, name)
            if count is not None:
                total = qu.add(total, {name: qu.parse_list({name: str(count)})[name]})
        return qu.render_list(total)

    async def _count(self, namespace: str, name: str) -> int | None:
        """How many objects ``count/<plural>.<group>`` names in ``namespace``, listed through
        the API; None when no such resource is served."""
        plural, _, group = name.removeprefix("count/").partition(".")
        version = await self._version_of(group)
        if version is None:
            return None
        try:
            listing = await self.client.list(Resource(group, version, plural, True), namespace)
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise
        return len(listing.get("items") or [])

    async def _version_of(self, group: str) -> str | None:
        if not group:
            return "v1"
        if group not in self._versions:
            try:
                found: Any = await self.client.request("GET", f"/apis/{group}")
            except ApiError as exc:
                if exc.is_not_found:
                    return None
                raise
            version = (found.get("preferredVersion") or {}).get("version")
            if not version:
                return None
            self._versions[group] = str(version)
        return self._versions[group]
