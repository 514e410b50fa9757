"""The garbage collector: deletes objects whose owners are gone, as Kubernetes' does.

An object names the objects it belongs to in ``metadata.ownerReferences`` (a ReplicaSet owns
its Pods, a Deployment its ReplicaSets). When an owner is deleted, what happens to its
dependents is the *propagation policy* of that deletion, which the API server records as a
finalizer on the owner (see ``DELETE`` with ``DeleteOptions.propagationPolicy``):

- **Background** (no finalizer): the server removes the owner at once; the collector then
  finds dependents whose owners are all gone ("dangling" references) and deletes them.
- **Foreground** (``foregroundDeletion``): the owner stays, with a deletionTimestamp, while
  the collector deletes its dependents (those that have dependents of their own are deleted
  in the foreground too, so the cascade is depth-first). Once no dependent that set
  ``blockOwnerDeletion: true`` remains, the collector removes the ``foregroundDeletion``
  finalizer and the server removes the owner.
- **Orphan** (``orphan``): the collector strips the owner's reference from every dependent,
  then removes the ``orphan`` finalizer; the dependents live on, ownerless.

The collector keeps its graph in the shared informers: each followed resource is indexed by
``metadata.uid`` (the owners) and by owner uid (the dependents). It follows every resource
the server's discovery names with the verbs ``list``, ``watch`` and ``delete`` (Events
excepted, as upstream's ``DefaultIgnoredResources``), and reads discovery again every
``resync_period`` (30 s, as kube-controller-manager), so a kind the server starts serving
later is followed too; workers wait while informers for new kinds fill their caches, so no
decision is made on a graph that lacks them (``GarbageCollector.Sync``). A kind that is no
longer served is no longer followed; if discovery fails for a group, what the collector
followed in it is kept.

Work items are single objects; ``reconcile`` looks at one object and either processes its
own pending deletion (orphan or foreground) or checks its owners (``attempt to delete``). An
owner that is not in the graph is looked up live by name and the uid compared before
anything is deleted, because an informer can lag behind the server; an owner that was never
there, or has another uid now, is absent. A dependent is deleted only when none of its
owners remain ("solid" owners keep it; dangling references to absent owners are then merely
removed). An owner of a kind the collector does not follow is assumed to exist: never delete
on a guess.

All writes are merge patches on ``metadata.ownerReferences`` / ``metadata.finalizers``
pinned to the resourceVersion just read (retried on conflict), and deletions carry a uid
precondition, so a recreated object with the same name is never touched by mistake. The
collector never removes a finalizer it does not own. Like every controller it is
level-triggered: after a restart the initial listing re-enqueues every object and the same
decisions are reached again.

Reference: kubernetes/pkg/controller/garbagecollector (garbagecollector.go,
attemptToDeleteItem, processDeletingDependentsItem, orphanDependents).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from setpoint.client.api import ApiError, Obj, Resource
from setpoint.client.controller import Controller
from setpoint.client.discovery import APIResource, Discovered, server_preferred_resources
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, Informer, by_owner_uid, object_key, split_key

log = logging.getLogger(__name__)

FINALIZER_FOREGROUND = "foregroundDeletion"
FINALIZER_ORPHAN = "orphan"

UID_INDEX = "by_uid"
OWNER_INDEX = "by_owner_uid"

_ABSENT_CACHE_SIZE = 4096

RESYNC_PERIOD = 30.0  # how often discovery is read again (kube-controller-manager: 30 s)
INITIAL_SYNC_TIMEOUT = 300.0
# the verbs a resource needs for the collector to follow it (GetDeletableResources)
FOLLOW_VERBS = ("delete", "list", "watch")
# resources never followed: Events own nothing and are many (DefaultIgnoredResources)
IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})


def by_uid(obj: Obj) -> Iterable[str]:
    uid = obj["metadata"].get("uid")
    return [uid] if uid else []


# ------------------------------------------------------------------ pure decisions


class OwnerState(enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"
    DELETING_DEPENDENTS = "deletingDependents"  # being deleted in the foreground
    UNKNOWN = "unknown"  # a kind we do not follow: assumed present


class ItemRef(NamedTuple):
    """One object in the graph: the work item of the collector's queue."""

    resource: Resource
    key: str  # "namespace/name" or "name"


@dataclass(frozen=True)
class OwnerClassification:
    solid: list[Obj] = field(default_factory=list)
    dangling: list[Obj] = field(default_factory=list)
    waiting: list[Obj] = field(default_factory=list)  # owners deleting in the foreground


@dataclass(frozen=True)
class Keep:
    """Leave the dependent alone."""


@dataclass(frozen=True)
class RemoveOwnerReferences:
    """The dependent has a solid owner: only drop its references to these owner uids."""

    uids: frozenset[str]


@dataclass(frozen=True)
class Delete:
    """Every owner is gone (or deleting in the foreground): delete with this policy."""

    policy: str


Decision = Keep | RemoveOwnerReferences | Delete


def owner_references(obj: Obj) -> list[Obj]:
    return list(obj.get("metadata", {}).get("ownerReferences") or [])


def finalizers(obj: Obj) -> list[str]:
    return list(obj.get("metadata", {}).get("finalizers") or [])


def is_being_deleted(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def is_deleting_dependents(obj: Obj) -> bool:
    """Deleted with propagationPolicy Foreground and not yet finished."""
    return is_being_deleted(obj) and FINALIZER_FOREGROUND in finalizers(obj)


def is_orphaning_dependents(obj: Obj) -> bool:
    return is_being_deleted(obj) and FINALIZER_ORPHAN in finalizers(obj)


def owner_state_of(owner: Obj | None, uid: str) -> OwnerState:
    """The state of an owner found (or not) by name: absent unless its uid matches."""
    if owner is None or owner.get("metadata", {}).get("uid") != uid:
        return OwnerState.ABSENT
    if is_deleting_dependents(owner):
        return OwnerState.DELETING_DEPENDENTS
    return OwnerState.PRESENT


def classify_owners(refs: Sequence[Obj], states: Mapping[str, OwnerState]) -> OwnerClassification:
    """Split ownerReferences into solid (the owner exists), dangling (it does not) and
    waiting (it is being deleted in the foreground and waits for its dependents)."""
    result = OwnerClassification()
    for ref in refs:
        state = states.get(ref.get("uid", ""), OwnerState.UNKNOWN)
        if state is OwnerState.ABSENT:
            result.dangling.append(ref)
        elif state is OwnerState.DELETING_DEPENDENTS:
            result.waiting.append(ref)
        else:
            result.solid.append(ref)
    return result


def deletion_policy_for(obj: Obj) -> str:
    """Delete a dependent the way its own pending finalizers ask, Background otherwise."""
    present = finalizers(obj)
    if FINALIZER_ORPHAN in present:
        return "Orphan"
    if FINALIZER_FOREGROUND in present:
        return "Foreground"
    return "Background"


def decide_dependent(obj: Obj, owners: OwnerClassification, *, has_dependents: bool) -> Decision:
    """What to do with an object given the state of its owners (attemptToDeleteItem)."""
    if not owner_references(obj):
        return Keep()
    if owners.solid:
        stale = owners.dangling + owners.waiting
        if stale:
            return RemoveOwnerReferences(frozenset(ref["uid"] for ref in stale))
        return Keep()
    if owners.waiting and has_dependents:
        # keep the cascade depth-first: our own dependents go before we do
        return Delete("Foreground")
    return Delete(deletion_policy_for(obj))


def without_owner_references(refs: Sequence[Obj], uids: Iterable[str]) -> list[Obj]:
    drop = set(uids)
    return [ref for ref in refs if ref.get("uid") not in drop]


def without_finalizer(present: Sequence[str], name: str) -> list[str]:
    return [f for f in present if f != name]


def reference_to(obj: Obj, owner_uid: str) -> Obj | None:
    for ref in owner_references(obj):
        if ref.get("uid") == owner_uid:
            return ref
    return None


def blocking_dependents(owner_uid: str, dependents: Iterable[Obj]) -> list[Obj]:
    """Dependents whose reference to the owner says ``blockOwnerDeletion: true``: a
    foreground deletion of the owner waits until they are gone."""
    blocking = []
    for dependent in dependents:
        ref = reference_to(dependent, owner_uid)
        if ref is not None and ref.get("blockOwnerDeletion") is True:
            blocking.append(dependent)
    return blocking


def api_group(api_version: str) -> str:
    """The group of an ownerReference's apiVersion (``apps/v1`` -> ``apps``, ``v1`` -> core);
    owners are matched by group and kind, whatever version the reference was written in."""
    return api_version.rpartition("/")[0]


def followed_resources(discovered: Iterable[APIResource]) -> list[Resource]:
    """The served resources the collector follows: those it can list, watch and delete,
    except the ignored ones (``GetDeletableResources``)."""
    return [
        r.resource
        for r in discovered
        if r.supports(FOLLOW_VERBS)
        and (r.resource.group, r.resource.plural) not in IGNORED_RESOURCES
    ]


def resources_to_follow(discovered: Discovered, following: Iterable[Resource]) -> list[Resource]:
    """What to follow after a discovery pass: what it found, plus what is already followed
    in group versions it could not read (a failed group is not a removed one)."""
    kept = [r for r in following if r.api_version in discovered.failed]
    return list(dict.fromkeys([*followed_resources(discovered.resources), *kept]))


def can_reference(dependent: Obj, owner_resource: Resource) -> bool:
    """A cluster-scoped object cannot be owned by a namespaced one (Kubernetes treats such a
    reference as pointing at nothing)."""
    return not owner_resource.namespaced or bool(dependent["metadata"].get("namespace"))


# ------------------------------------------------------------------ the collector


class GarbageCollector(Controller[ItemRef]):
    """Follows ownerReferences across every resource discovery names and carries out
    propagation policies."""

    name = "garbagecollector"
    workers = 4

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        discover: Callable[[], Awaitable[Discovered]] | None = None,
        resync_period: float = RESYNC_PERIOD,
    ) -> None:
        super().__init__(informers, recorder)
        self.discover = discover or (lambda: server_preferred_resources(self.client))
        self.resync_period = resync_period
        self.followed: dict[Resource, Informer] = {}
        self._kinds: dict[tuple[str, str], Resource] = {}
        self._absent: OrderedDict[str, None] = OrderedDict()
        self._graph_synced = asyncio.Event()
        self._handled: set[Resource] = set()  # informers that already have our handler

    # ------------------------------------------------------------- running

    async def run(self) -> None:
        # deciding that an owner is gone needs every followed resource listed first
        while not await self.sync(sync_timeout=INITIAL_SYNC_TIMEOUT, initial=True):
            await asyncio.sleep(1.0)
        log.info("garbage collector: following %d resources", len(self.followed))
        resync = asyncio.create_task(self._resync_loop(), name="garbagecollector-resync")
        try:
            await super().run()
        finally:
            resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resync

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            await self.sync(sync_timeout=self.resync_period)

    async def sync(self, *, sync_timeout: float, initial: bool = False) -> bool:
        """``GarbageCollector.Sync``: read discovery, follow new resources (workers wait
        until their informers have listed, at most ``sync_timeout``), stop following
        resources no longer served. Returns whether discovery could be read."""
        try:
            discovered = await self.discover()
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("garbage collector: discovery failed, following what it did: %s", exc)
            return False
        if discovered.failed:
            log.warning("garbage collector: %s", discovered.failure_message())
        wanted = resources_to_follow(discovered, self.followed)
        for resource in [r for r in self.followed if r not in wanted]:
            log.info("garbage collector: no longer following %s", resource_name(resource))
            del self.followed[resource]
            if self._kinds.get((resource.group, resource.kind)) == resource:
                del self._kinds[(resource.group, resource.kind)]
        added = [r for r in wanted if r not in self.followed]
        if not added:
            self._graph_synced.set()
            return True
        self._graph_synced.clear()  # new kinds: no decisions until the graph holds them
        for resource in added:
            if not initial:
                log.info("garbage collector: following %s", resource_name(resource))
            self._follow(resource)
        try:
            await asyncio.gather(
                *(self.followed[r].wait_synced(timeout=sync_timeout) for r in added)
            )
        except TimeoutError:
            if initial:
                raise
            log.warning("garbage collector: informers of new resources not synced yet")
        finally:
            self._graph_synced.set()
        return True

    def _follow(self, resource: Resource) -> None:
        informer = self.informers.informer(
            resource, indexers={UID_INDEX: by_uid, OWNER_INDEX: by_owner_uid}
        )
        self.followed[resource] = informer
        self._kinds[(resource.group, resource.kind)] = resource
        if resource not in self._handled:  # followed again after a while: it still has one
            self._handled.add(resource)
            informer.add_handler(self._handler(resource))

    # ------------------------------------------------------------- events -> work

    def _handler(self, resource: Resource) -> EventHandler:
        def changed(old: Obj | None, new: Obj) -> None:
            if resource not in self.followed:
                return  # no longer served (a shared informer cannot drop a handler)
            if old is None or _graph_fields(old) != _graph_fields(new):
                self.queue.add(ItemRef(resource, object_key(new)))
                self._enqueue_waiting_owners(new)
                if old is not None:
                    self._enqueue_waiting_owners(old)

        def deleted(obj: Obj) -> None:
            if resource not in self.followed:
                return
            uid = obj["metadata"].get("uid", "")
            for dep_resource, dependent in self._dependents_of(uid, obj, resource):
                self.queue.add(ItemRef(dep_resource, object_key(dependent)))
            self._enqueue_waiting_owners(obj)

        return EventHandler(
            on_add=lambda obj: changed(None, obj),
            on_update=changed,
            on_delete=deleted,
        )

    def _enqueue_waiting_owners(self, obj: Obj) -> None:
        """A foreground-deleting owner waits on this object: let it look again."""
        for ref in owner_references(obj):
            for resource, owner in self._cached_by_uid(ref.get("uid", "")):
                if is_being_deleted(owner):
                    self.queue.add(ItemRef(resource, object_key(owner)))

    # ------------------------------------------------------------- graph lookups

    def _cached_by_uid(self, uid: str) -> list[tuple[Resource, Obj]]:
        if not uid:
            return []
        return [
            (resource, obj)
            for resource, informer in self.followed.items()
            for obj in informer.by_index(UID_INDEX, uid)
        ]

    def _dependents_of(
        self, uid: str, owner: Obj, owner_resource: Resource
    ) -> list[tuple[Resource, Obj]]:
        namespace = owner["metadata"].get("namespace")
        found = []
        for resource, informer in self.followed.items():
            for dependent in informer.by_index(OWNER_INDEX, uid):
                if (
                    owner_resource.namespaced
                    and dependent["metadata"].get("namespace") != namespace
                ):
                    continue  # a namespaced owner only owns objects in its namespace
                found.append((resource, dependent))
        return found

    async def _owner_state(self, dependent: Obj, ref: Obj) -> OwnerState:
        uid = ref.get("uid", "")
        resource = self._kinds.get((api_group(ref.get("apiVersion", "")), ref.get("kind", "")))
        if resource is None:
            return OwnerState.UNKNOWN
        if not can_reference(dependent, resource) or uid in self._absent:
            return OwnerState.ABSENT
        namespace = dependent["metadata"].get("namespace") if resource.namespaced else None
        for cached_resource, owner in self._cached_by_uid(uid):
            if cached_resource == resource and owner["metadata"].get("namespace") == namespace:
                return owner_state_of(owner, uid)
        # not in the graph: the informer may lag, so ask the server before calling it absent
        try:
            live: Obj | None = await self.client.get(resource, ref.get("name", ""), namespace)
        except ApiError as exc:
            if not exc.is_not_found:
                raise
            live = None
        state = owner_state_of(live, uid)
        if state is OwnerState.ABSENT:
            self._remember_absent(uid)
        return state

    def _remember_absent(self, uid: str) -> None:
        # uids are never reused, so an owner seen absent stays absent
        self._absent[uid] = None
        while len(self._absent) > _ABSENT_CACHE_SIZE:
            self._absent.popitem(last=False)

    # ------------------------------------------------------------- reconcile

    async def reconcile(self, item: ItemRef) -> None:
        await self._graph_synced.wait()
        informer = self.followed.get(item.resource)
        obj = informer.get(item.key) if informer is not None else None
        if obj is None:
            return  # gone: its dependents were enqueued when it left the graph
        if is_being_deleted(obj):
            if FINALIZER_ORPHAN in finalizers(obj):
                await self._orphan_dependents(item, obj)
            elif FINALIZER_FOREGROUND in finalizers(obj):
                await self._delete_dependents_in_foreground(item, obj)
            return
        if owner_references(obj):
            await self._attempt_to_delete(item, obj)

    async def _decide(self, resource: Resource, obj: Obj) -> Decision:
        refs = owner_references(obj)
        states = {ref.get("uid", ""): await self._owner_state(obj, ref) for ref in refs}
        uid = obj["metadata"].get("uid", "")
        has_dependents = bool(self._dependents_of(uid, obj, resource))
        return decide_dependent(obj, classify_owners(refs, states), has_dependents=has_dependents)

    async def _attempt_to_delete(self, item: ItemRef, cached: Obj) -> None:
        """Delete the object if all its owners are gone, or drop its stale references."""
        if isinstance(await self._decide(item.resource, cached), Keep):
            return
        # act on what the server says now, not on a possibly stale cache entry
        live = await self._get_live(item, cached["metadata"].get("uid", ""))
        if live is None or is_being_deleted(live):
            return
        decision = await self._decide(item.resource, live)
        namespace, name = split_key(item.key)
        if isinstance(decision, RemoveOwnerReferences):
            log.info("removing dangling ownerReferences from %s %s", item.resource.kind, item.key)
            await self._remove_owner_references(item, live, decision.uids)
        elif isinstance(decision, Delete):
            log.info("deleting %s %s (policy %s)", item.resource.kind, item.key, decision.policy)
            try:
                await self.client.delete(
                    item.resource,
                    name,
                    namespace,
                    propagation_policy=decision.policy,
                    preconditions_uid=live["metadata"]["uid"],
                )
            except ApiError as exc:
                if not (exc.is_not_found or exc.is_conflict):
                    raise

    async def _delete_dependents_in_foreground(self, item: ItemRef, owner: Obj) -> None:
        """processDeletingDependentsItem: wait for blocking dependents, then let go."""
        uid = owner["metadata"].get("uid", "")
        dependents = self._dependents_of(uid, owner, item.resource)
        blocking = blocking_dependents(uid, [dependent for _, dependent in dependents])
        if not blocking:
            await self._remove_finalizer(item, owner, FINALIZER_FOREGROUND)
            return
        for resource, dependent in dependents:
            if not is_being_deleted(dependent):
                self.queue.add(ItemRef(resource, object_key(dependent)))

    async def _orphan_dependents(self, item: ItemRef, owner: Obj) -> None:
        """orphanDependents: strip the owner from each dependent, then drop ``orphan``."""
        uid = owner["metadata"].get("uid", "")
        dependents = self._dependents_of(uid, owner, item.resource)
        for resource, dependent in dependents:
            await self._remove_owner_references(
                ItemRef(resource, object_key(dependent)), dependent, {uid}
            )
        if dependents:
            await self.recorder.record(
                owner,
                "Normal",
                "OrphanedDependents",
                f"Removed ownerReferences from {len(dependents)} dependent(s)",
            )
        await self._remove_finalizer(item, owner, FINALIZER_ORPHAN)

    # ------------------------------------------------------------- writes

    async def _get_live(self, item: ItemRef, uid: str) -> Obj | None:
        namespace, name = split_key(item.key)
        try:
            live = await self.client.get(item.resource, name, namespace)
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise
        return live if live["metadata"].get("uid") == uid else None

    async def _remove_owner_references(self, item: ItemRef, obj: Obj, uids: Iterable[str]) -> None:
        uid = obj["metadata"].get("uid", "")
        drop = frozenset(uids)
        namespace, name = split_key(item.key)

        async def attempt() -> None:
            live = await self._get_live(item, uid)
            if live is None:
                return
            refs = owner_references(live)
            kept = without_owner_references(refs, drop)
            if kept == refs:
                return
            patch = {
                "metadata": {
                    "resourceVersion": live["metadata"]["resourceVersion"],
                    "ownerReferences": kept or None,
                }
            }
            await self._patch(item, name, namespace, patch)

        await self.client.retry_on_conflict(attempt)

    async def _remove_finalizer(self, item: ItemRef, obj: Obj, finalizer: str) -> None:
        uid = obj["metadata"].get("uid", "")
        namespace, name = split_key(item.key)

        async def attempt() -> None:
            live = await self._get_live(item, uid)
            if live is None or finalizer not in finalizers(live):
                return
            remaining = without_finalizer(finalizers(live), finalizer)
            patch = {
                "metadata": {
                    "resourceVersion": live["metadata"]["resourceVersion"],
                    "finalizers": remaining or None,
                }
            }
            log.info("removing finalizer %s from %s %s", finalizer, item.resource.kind, item.key)
            await self._patch(item, name, namespace, patch)

        await self.client.retry_on_conflict(attempt)

    async def _patch(self, item: ItemRef, name: str, namespace: str | None, patch: Obj) -> None:
        try:
            await self.client.patch(item.resource, name, patch, namespace)
        except ApiError as exc:
            if not exc.is_not_found:
                raise


def resource_name(resource: Resource) -> str:
    """``deployments.apps`` / ``pods``: a resource as Kubernetes names it in logs."""
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def _graph_fields(obj: Obj) -> tuple[object, ...]:
    """The parts of an object the collector's decisions depend on."""
    meta = obj.get("metadata", {})
    return (
        meta.get("uid"),
        meta.get("ownerReferences"),
        meta.get("finalizers"),
        meta.get("deletionTimestamp"),
    )
