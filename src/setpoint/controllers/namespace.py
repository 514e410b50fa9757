"""The namespace controller: empties a deleted namespace, then lets the server remove it.

Deleting a Namespace does not remove it: the API server sets its deletionTimestamp and
``status.phase: Terminating``, refuses new objects in it, and keeps it while
``spec.finalizers`` holds ``kubernetes``. That finalizer is this controller's promise to
delete everything inside first. Each pass over a terminating namespace:

1. reads discovery (:func:`~setpoint.client.discovery.server_preferred_resources`) and
   deletes the content of every namespaced resource the server serves that can be listed
   and deleted (a ``deletecollection`` with propagationPolicy Background; per-object
   deletes where the collection verb is not served or is refused). Pods go first and the
   rest waits until they are gone (Kubernetes' ordered namespace deletion), so workloads
   stop before the objects they use (ConfigMaps, Secrets) vanish; bound pods terminate
   gracefully, so that may take their grace period;
2. lists what remains, counting instances per resource and the finalizers holding them;
3. records the outcome in the namespace conditions Kubernetes reports
   (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
   NamespaceDeletionContentFailure, NamespaceContentRemaining, NamespaceFinalizersRemaining)
   through ``namespaces/{name}/status``, so ``kubectl describe ns`` tells users what is
   blocking (e.g. "Some resources are remaining: pods. has 2 resource instances");
4. requeues itself while content remains; once nothing does, it removes ``kubernetes`` from
   ``spec.finalizers`` with ``PUT namespaces/{name}/finalize``, and the server removes the
   namespace when no finalizers are left.

Objects held by their own finalizers wait for whoever owns those finalizers; this controller
never removes them. Discovery is read on every pass, as kube-controller-manager reads it
whenever it deletes a namespace, so a kind the server starts serving later is emptied too. A
pass in which discovery failed, even for one group, reports
``NamespaceDeletionDiscoveryFailure`` and never finalizes: content of a kind it could not see
may remain.

Reference: kubernetes/pkg/controller/namespace (namespace_controller.go,
deletion/namespaced_resources_deleter.go, deletion/status_condition_utils.go).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from setpoint.client.api import NAMESPACES, PODS, ApiError, Obj, Resource
from setpoint.client.controller import Controller
from setpoint.client.discovery import APIResource, Discovered, server_preferred_resources
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.workqueue import Requeue
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.timestamps import format_time

log = logging.getLogger(__name__)

FINALIZER_KUBERNETES = "kubernetes"

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GROUP_VERSION_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

CONDITION_TYPES = (
    DISCOVERY_FAILURE,
    GROUP_VERSION_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
)

# The status=False variants, worded as Kubernetes words them.
OK_CONDITIONS: dict[str, tuple[str, str]] = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    GROUP_VERSION_PARSING_FAILURE: (
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    CONTENT_FAILURE: (
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}

# Kubernetes' guess of how long an object held by a finalizer takes to go.
FINALIZER_ESTIMATE_SECONDS = 15.0


@dataclass
class ContentTotals:
    """What one pass found still in the namespace."""

    remaining: dict[str, int] = field(default_factory=dict)  # "pods." -> instances
    finalizers: Counter[str] = field(default_factory=Counter)  # finalizer -> instances
    errors: list[str] = field(default_factory=list)
    estimate: float = 0.0  # seconds until the remaining content is likely gone
    discovery_error: str | None = None  # what could not be discovered: content may hide there

    @property
    def empty(self) -> bool:
        return not any(self.remaining.values()) and not self.errors and self.discovery_error is None


# ------------------------------------------------------------------ pure decisions

# the verbs that make a namespaced resource something this controller can empty
LIST = "list"
DELETE_VERBS = ("delete", "deletecollection")


def namespace_content(discovered: Sequence[APIResource]) -> list[APIResource]:
    """The served resources a namespace can hold and this controller can empty: namespaced,
    listable, and deletable one by one or as a collection."""
    return [
        r
        for r in discovered
        if r.resource.namespaced
        and LIST in r.verbs
        and any(verb in r.verbs for verb in DELETE_VERBS)
    ]


def discovery_failure(discovered: Discovered) -> str | None:
    """The ``NamespaceDeletionDiscoveryFailure`` message for a partial discovery, as
    ``ProcessDiscoverResourcesErr`` words it."""
    if not discovered.failed:
        return None
    return (
        f"Discovery failed for some groups, {len(discovered.failed)} failing: "
        + discovered.failure_message()
    )


def resource_label(resource: Resource) -> str:
    """``pods.`` / ``deployments.apps``: how Kubernetes names a resource in conditions."""
    return f"{resource.plural}.{resource.group}"


def count_remaining(resource: Resource, items: Sequence[Obj], totals: ContentTotals) -> None:
    """Add one resource's leftover objects (after a delete) to ``totals``."""
    if not items:
        return
    totals.remaining[resource_label(resource)] = len(items)
    for item in items:
        meta = item.get("metadata", {})
        held = list(meta.get("finalizers") or [])
        totals.finalizers.update(held)
        if held:
            totals.estimate = max(totals.estimate, FINALIZER_ESTIMATE_SECONDS)
        grace = meta.get("deletionGracePeriodSeconds")
        if isinstance(grace, int):
            totals.estimate = max(totals.estimate, float(grace))


def deletion_conditions(totals: ContentTotals) -> dict[str, tuple[str, str, str]]:
    """The five conditions for one pass: type -> (status, reason, message)."""
    conditions = {kind: ("False", *OK_CONDITIONS[kind]) for kind in CONDITION_TYPES}
    if totals.discovery_error is not None:
        conditions[DISCOVERY_FAILURE] = ("True", "DiscoveryFailed", totals.discovery_error)
    if totals.errors:
        messages = sorted(totals.errors)
        conditions[CONTENT_FAILURE] = (
            "True",
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(messages)} remaining: "
            + ", ".join(messages),
        )
    remaining = sorted(
        f"{label} has {count} resource instances"
        for label, count in totals.remaining.items()
        if count
    )
    if remaining:
        conditions[CONTENT_REMAINING] = (
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: " + ", ".join(remaining),
        )
    held = sorted(
        f"{name} in {count} resource instances"
        for name, count in totals.finalizers.items()
        if count
    )
    if held:
        conditions[FINALIZERS_REMAINING] = (
            "True",
            "SomeFinalizersRemain",
            "Some content in the namespace has finalizers remaining: " + ", ".join(held),
        )
    return conditions


def merge_conditions(
    current: Sequence[Obj], wanted: dict[str, tuple[str, str, str]], now: str
) -> tuple[list[Obj], bool]:
    """Update ``status.conditions`` in place of the same types; lastTransitionTime moves
    only when a condition's status flips. Returns the new list and whether it changed."""
    result = [dict(c) for c in current]
    by_type = {c.get("type"): c for c in result}
    changed = False
    for kind in CONDITION_TYPES:
        status, reason, message = wanted[kind]
        old = by_type.get(kind)
        if old is None:
            result.append(
                {
                    "type": kind,
                    "status": status,
                    "lastTransitionTime": now,
                    "reason": reason,
                    "message": message,
                }
            )
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != wanted[kind]:
            if old.get("status") != status:
                old["lastTransitionTime"] = now
            old.update(status=status, reason=reason, message=message)
            changed = True
    return result, changed


def finalized_spec_finalizers(namespace: Obj) -> list[str]:
    """spec.finalizers without ours, as ``namespaces/finalize`` should receive them."""
    present = (namespace.get("spec") or {}).get("finalizers") or []
    return sorted({f for f in present if f != FINALIZER_KUBERNETES})


def deletion_order(resources: Sequence[Resource]) -> list[list[Resource]]:
    """Pods first, everything else after they are gone."""
    namespaced = [r for r in dict.fromkeys(resources) if r.namespaced]
    pods = [r for r in namespaced if r == PODS]
    rest = [r for r in namespaced if r != PODS]
    return [group for group in (pods, rest) if group]


# ------------------------------------------------------------------ the controller


class NamespaceController(Controller):
    name = "namespace"
    workers = 2

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        recheck_interval: float = 1.0,
        discover: Callable[[], Awaitable[Discovered]] | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.discover = discover or (lambda: server_preferred_resources(self.client))
        # Kubernetes requeues after half its estimate; setpoint looks again sooner, capped
        self.recheck_interval = recheck_interval
        self.namespaces = informers.informer(NAMESPACES)
        self.watch_owned(self.namespaces)

    async def reconcile(self, key: str) -> Requeue | None:
        cached = self.namespaces.get(key)
        if cached is None or not cached["metadata"].get("deletionTimestamp"):
            return None
        namespace = await self._get_live(key)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return None
        if FINALIZER_KUBERNETES not in ((namespace.get("spec") or {}).get("finalizers") or []):
            return None  # already emptied; other finalizers belong to others
        totals = await self._delete_all_content(key)
        namespace = await self._update_conditions(key, totals)
        if not totals.empty:
            delay = min(max(totals.estimate / 2, self.recheck_interval), 5 * self.recheck_interval)
            log.info("namespace %s: content remains, looking again in %.1fs", key, delay)
            return Requeue(after=delay)
        await self._finalize(key)
        return None

    # ------------------------------------------------------------- content

    async def _delete_all_content(self, namespace: str) -> ContentTotals:
        """``deleteAllContent``: one pass over every namespaced resource discovery names."""
        totals = ContentTotals()
        try:
            discovered = await self.discover()
        except (ApiError, OSError, TimeoutError) as exc:  # not even the group lists
            totals.discovery_error = str(exc)
            return totals
        totals.discovery_error = discovery_failure(discovered)
        verbs = {r.resource: r.verbs for r in namespace_content(discovered.resources)}
        for group in deletion_order(list(verbs)):
            for resource in group:
                await self._delete_resource_content(resource, verbs[resource], namespace, totals)
            if any(totals.remaining.values()) or totals.errors:
                break  # later groups wait until this one is gone
        return totals

    async def _delete_resource_content(
        self, resource: Resource, verbs: frozenset[str], namespace: str, totals: ContentTotals
    ) -> None:
        try:
            await self._delete_collection(resource, verbs, namespace)
            listing = await self.client.list(resource, namespace)
        except ApiError as exc:
            totals.errors.append(f"{resource_label(resource)}: {exc}")
            return
        count_remaining(resource, listing.get("items") or [], totals)

    async def _delete_collection(
        self, resource: Resource, verbs: frozenset[str], namespace: str
    ) -> None:
        options: Obj = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if "deletecollection" in verbs:
            try:
                await self.client.request("DELETE", resource.path(namespace), body=options)
                return
            except ApiError as exc:
                if exc.code not in (404, 405):
                    raise
        # the collection verb is not served: delete one by one
        listing = await self.client.list(resource, namespace)
        for item in listing.get("items") or []:
            meta = item["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(
                    resource,
                    meta["name"],
                    namespace,
                    propagation_policy="Background",
                    preconditions_uid=meta.get("uid"),
                )
            except ApiError as exc:
                if not (exc.is_not_found or exc.is_conflict):
                    raise

    # ------------------------------------------------------------- namespace writes

    async def _get_live(self, name: str) -> Obj | None:
        try:
            return await self.client.get(NAMESPACES, name)
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise

    async def _update_conditions(self, name: str, totals: ContentTotals) -> Obj | None:
        wanted = deletion_conditions(totals)

        async def attempt() -> Obj | None:
            live = await self._get_live(name)
            if live is None:
                return None
            status = dict(live.get("status") or {})
            conditions, changed = merge_conditions(
                status.get("conditions") or [], wanted, format_time(self.clock.now())
            )
            if not changed and status.get("phase") == "Terminating":
                return live
            status["conditions"] = conditions
            status["phase"] = "Terminating"
            return await self.client.update_status(NAMESPACES, {**live, "status": status})

        try:
            return await self.client.retry_on_conflict(attempt)
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise

    async def _finalize(self, name: str) -> None:
        async def attempt() -> None:
            live = await self._get_live(name)
            if live is None:
                return
            spec = dict(live.get("spec") or {})
            if FINALIZER_KUBERNETES not in (spec.get("finalizers") or []):
                return
            spec["finalizers"] = finalized_spec_finalizers(live)
            log.info("namespace %s is empty; finalizing", name)
            await self.client.update(NAMESPACES, {**live, "spec": spec}, subresource="finalize")

        try:
            await self.client.retry_on_conflict(attempt)
        except ApiError as exc:
            if not exc.is_not_found:
                raise
