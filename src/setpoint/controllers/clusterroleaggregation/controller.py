"""The clusterrole-aggregation controller: fills the ``rules`` of every ClusterRole that has
an ``aggregationRule`` with the rules of the ClusterRoles its selectors pick
(``pkg/controller/clusterroleaggregation``).

That is how ``admin``, ``edit`` and ``view`` are made: each selects the ClusterRoles labelled
``rbac.authorization.k8s.io/aggregate-to-<role>: "true"``, so labelling a new ClusterRole so
(a CRD's ``view`` rules, say) widens what the aggregated role grants, within a moment and
without touching it. Any change to any ClusterRole queues every aggregated one;
``reconcile(name)`` collects, for each selector in turn, the rules of the matching
ClusterRoles in name order (never the role's own), dropping duplicates, and writes them when
they differ from what the role holds. It writes through the API like any controller (the
bootstrap policy grants it ``escalate`` on clusterroles, since it writes rules it need not
hold).
"""

from __future__ import annotations

from collections.abc import Iterable

from setpoint.client.api import ApiError, Obj, Resource
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler
from setpoint.client.workqueue import Requeue
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.labels import SelectorParseError, selector_from_label_selector

CLUSTERROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole")


def aggregated_rules(role: Obj, cluster_roles: Iterable[Obj]) -> list[Obj]:
    """The rules ``role``'s aggregationRule collects from ``cluster_roles``."""
    name = role["metadata"]["name"]
    candidates = sorted(cluster_roles, key=lambda r: str(r["metadata"]["name"]))
    rules: list[Obj] = []
    for selector_spec in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        try:
            selector = selector_from_label_selector(selector_spec)
        except (SelectorParseError, TypeError, ValueError):
            continue
        for other in candidates:
            if other["metadata"]["name"] == name:
                continue
            if not selector.matches(other["metadata"].get("labels") or {}):
                continue
            for rule in other.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
    return rules


class ClusterRoleAggregationController(Controller[str]):
    name = "clusterrole-aggregation-controller"
    workers = 1

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.roles = informers.informer(CLUSTERROLES)
        self.roles.add_handler(
            EventHandler(
                on_add=lambda _: self._enqueue_all(),
                on_update=lambda _old, _new: self._enqueue_all(),
                on_delete=lambda _: self._enqueue_all(),
            )
        )

    def _enqueue_all(self) -> None:
        for role in self.roles.objects():
            if role.get("aggregationRule") is not None:
                self.queue.add(role["metadata"]["name"])

    async def reconcile(self, key: str) -> Requeue | None:
        role = self.roles.get(key)
        if role is None or role.get("aggregationRule") is None:
            return None
        rules = aggregated_rules(role, self.roles.objects())
        if (role.get("rules") or []) == rules:
            return None
        updated = {**role, "rules": rules}
        try:
            await self.client.update(CLUSTERROLES, updated)
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise  # a conflict: the worker retries with the cache's newer version
        return None
