"""The Eviction subresource of pods: a deletion that asks the pod's PodDisruptionBudget first.

``POST /api/v1/namespaces/{ns}/pods/{name}/eviction`` with a policy/v1 ``Eviction`` body is
how ``kubectl drain`` (and any client that wants to be polite) removes a pod. It follows
Kubernetes' ``EvictionREST`` (``pkg/registry/core/pod/storage/eviction.go``):

1. A pod that already caused its disruption — ``Succeeded``, ``Failed``, ``Pending``, or
   being deleted — is deleted at once; no budget is asked.
2. Otherwise the budgets of the pod's namespace whose selector matches its labels are found
   (a missing or empty selector matches nothing). None: the pod is deleted. More than one:
   500, the subresource does not support that.
3. With one budget: a pod that is not Ready does not count as healthy, so evicting it
   spends nothing — if the budget says ``unhealthyPodEvictionPolicy: AlwaysAllow``, or if the
   guarded application is whole (``currentHealthy >= desiredHealthy > 0``). Else the budget
   must allow a disruption: one not yet seen by the disruption controller
   (``observedGeneration`` behind ``generation``) is 429 with ``Retry-After: 10``;
   ``disruptionsAllowed`` 0 is 429 "Cannot evict pod as it would violate the pod's
   disruption budget." with a ``DisruptionBudget`` cause. Allowed, it is spent: the budget's
   status goes down by one and names the pod in ``disruptedPods`` (so the controller does
   not count it healthy until it is gone), written with the budget's resourceVersion — a
   lost race reads the budget again and decides again.
4. The pod gets the ``DisruptionTarget`` condition (reason ``EvictionByEvictionAPI``) and is
   deleted with the eviction's ``deleteOptions`` (grace period, preconditions, dry run). Where
   no budget was spent but the pod's state was relied on (an unready pod, or step 1), the
   delete is conditional on the resourceVersion that was read: a pod that changed meanwhile
   is 429 (so the client asks again) rather than deleted on stale facts.

Success is ``201`` with a ``Status`` of ``Success``. The API server does not import
controllers: the budget arithmetic lives in the disruption controller, and this module only
reads and spends what that controller wrote.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from setpoint.api import errors, negotiation
from setpoint.api.auth.user import request_user
from setpoint.api.bodies import read_body
from setpoint.api.errors import APIError
from setpoint.api.handlers import delete_options
from setpoint.api.storage import DeleteOptions, ListOptions, ResourceStorage, WriteOptions
from setpoint.meta.clock import REAL_CLOCK, Clock, now_rfc3339
from setpoint.meta.labels import selector_from_label_selector
from setpoint.resources.policy import ALWAYS_ALLOW, update_disruption_allowed_condition
from setpoint.resources.registry import Obj
from setpoint.resources.schema import DecodeError, Decoder, SchemaSet

# ``MaxDisruptedPodSize``: more evictions than this not yet seen by the disruption controller
# and the budget refuses more
MAX_DISRUPTED_POD_SIZE = 2000
# how often a lost race on a budget or a pod is decided again (``EvictionsRetry.Steps``)
RETRIES = 20
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MANAGER = "kube-apiserver"
_VERSIONS = ("policy/v1", "policy/v1beta1")  # both are accepted, as upstream


def can_ignore_budget(pod: Obj) -> bool:
    """``canIgnorePDB``: the pod's disruption has happened already (finished, pending, or
    being deleted), so no budget is asked."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _enforces_resource_version(pod: Obj) -> bool:
    """``shouldEnforceResourceVersion``: a running pod could become ready before it is
    deleted, so its delete is pinned to the version that was read."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: Obj) -> bool:
    """``podutil.IsPodReady``: the Ready condition is True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def matching_budgets(pod: Obj, budgets: list[Obj]) -> list[Obj]:
    """The budgets whose selector matches the pod's labels (``getPodDisruptionBudgets``):
    an invalid, missing or empty selector matches nothing."""
    labels = pod["metadata"].get("labels") or {}
    found = []
    for budget in budgets:
        try:
            selector = selector_from_label_selector((budget.get("spec") or {}).get("selector"))
        except ValueError:
            continue
        if not selector.is_empty() and selector.matches(labels):
            found.append(budget)
    return found


def spend_disruption(budget: Obj, pod_name: str, now: str, *, dry_run: bool) -> Obj:
    """``checkAndDecrement``: the budget with one disruption spent on ``pod_name`` (a copy),
    or the APIError that says why it cannot be."""
    name = budget["metadata"]["name"]
    status = copy.deepcopy(budget.get("status") or {})
    allowed = int(status.get("disruptionsAllowed") or 0)
    if int(status.get("observedGeneration") or 0) < int(budget["metadata"].get("generation") or 0):
        raise still_processing(name)
    if allowed < 0:
        raise _forbidden(name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_POD_SIZE:
        raise _forbidden(
            name, "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        )
    if allowed == 0:
        needs = (
            f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
            f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently"
        )
        raise errors.too_many_requests(
            VIOLATION, causes=[{"reason": DISRUPTION_BUDGET_CAUSE, "message": needs}]
        )
    status["disruptionsAllowed"] = allowed - 1
    if allowed == 1:
        update_disruption_allowed_condition(status, now)
    if not dry_run:
        status.setdefault("disruptedPods", {})[pod_name] = now
    spent = copy.deepcopy(budget)
    spent["status"] = status
    return spent


def still_processing(name: str) -> APIError:
    """``createTooManyRequestsError``: ask again in 10 s."""
    message = f"The disruption budget {name} is still being processed by the server."
    return errors.too_many_requests(
        VIOLATION,
        retry_after=10,
        causes=[{"reason": DISRUPTION_BUDGET_CAUSE, "message": message}],
    )


def _forbidden(name: str, why: str) -> APIError:
    return APIError(
        403,
        "Forbidden",
        f'poddisruptionbudget.policy "{name}" is forbidden: {why}',
        details={"name": name, "group": "policy", "kind": "poddisruptionbudget"},
    )


@functools.cache
def _eviction_decoder() -> Decoder:
    return SchemaSet().decoder("io.k8s.api.policy.v1.Eviction", "Eviction", "policy/v1")


def decode_eviction(body: Any, namespace: str, name: str) -> Obj:
    """The Eviction a request carries, checked as the create handler and ``EvictionREST``
    check it: 400 for a body that is not an Eviction of this pod."""
    if isinstance(body, dict) and body.get("apiVersion") in _VERSIONS:
        body = {**body, "apiVersion": "policy/v1"}  # the same object in both versions
    elif isinstance(body, dict) and body.get("apiVersion"):
        raise errors.bad_request(
            f"the API version in the data ({body['apiVersion']}) does not match the expected "
            "API version (policy/v1)"
        )
    try:
        eviction = _eviction_decoder().decode(body).obj
    except DecodeError as exc:
        raise errors.bad_request(str(exc)) from None
    if eviction.get("kind") not in (None, "Eviction"):
        raise errors.bad_request(
            f"the kind in the data ({eviction['kind']}) does not match the expected kind (Eviction)"
        )
    meta = eviction.get("metadata") or {}
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if meta.get("name") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    return eviction


def eviction_delete_options(eviction: Obj, query: Any) -> DeleteOptions:
    """The eviction's ``deleteOptions`` with the request's ``dryRun`` pushed in
    (``propagateDryRun``); a body and a query that disagree about it are a 400."""
    options = eviction.get("deleteOptions") or {}
    query_dry_run = list(query.getall("dryRun", []))
    body_dry_run = list(options.get("dryRun") or [])
    for value in query_dry_run + body_dry_run:
        if value != "All":
            raise errors.bad_request(
                f'dryRun: Unsupported value: "{value}": supported values: "All"'
            )
    if query_dry_run and body_dry_run and query_dry_run != body_dry_run:
        raise errors.bad_request(
            f"Non-matching dry-run options in request and content: {query_dry_run} and "
            f"{body_dry_run}"
        )
    return delete_options({**options, "dryRun": query_dry_run or body_dry_run}, query)


class PodEviction:
    """Serves ``pods/eviction`` over the pods' storage and the budgets'."""

    def __init__(
        self,
        *,
        pods: ResourceStorage,
        budgets: Callable[[], ResourceStorage | None],
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.pods = pods
        self.budgets = budgets
        self.clock = clock

    async def serve(self, request: web.BaseRequest, namespace: str, name: str) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed(request.method)
        eviction = decode_eviction(await read_body(request), namespace, name)
        options = replace(
            eviction_delete_options(eviction, request.query), user=request_user(request)
        )
        await self.evict(namespace, name, options)
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }
        return web.Response(body=orjson.dumps(status), status=201, content_type=negotiation.JSON)

    async def evict(self, namespace: str, name: str, options: DeleteOptions) -> None:
        """Evict the pod or raise why not (``EvictionREST.Create``)."""
        pinned = options.preconditions_resource_version is not None
        for attempt in range(RETRIES):
            pod = (await self.pods.get(namespace, name)).obj
            if not can_ignore_budget(pod):
                break
            try:
                await self._delete(pod, options, pin=_enforces_resource_version(pod))
                return
            except APIError as exc:
                if exc.code != 409 or pinned or attempt == RETRIES - 1:
                    raise
        budgets = await self._budgets_of(pod)
        if len(budgets) > 1:
            raise APIError(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction "
                "subresource does not support.",
            )
        spends = bool(budgets) and not self._unhealthy_goes_free(pod, budgets[0])
        if spends:
            await self._spend(budgets[0], pod, dry_run=options.dry_run)
        pin = bool(budgets) and not spends
        try:
            await self._delete(pod, options, pin=pin)
        except APIError as exc:
            if exc.code == 409 and pin and not pinned:
                raise still_processing(budgets[0]["metadata"]["name"]) from None
            raise

    @staticmethod
    def _unhealthy_goes_free(pod: Obj, budget: Obj) -> bool:
        """An unready pod is not counted healthy, so evicting it spends nothing — always
        under ``AlwaysAllow``, else while the application it belongs to is whole."""
        if is_ready(pod):
            return False
        spec, status = budget.get("spec") or {}, budget.get("status") or {}
        if spec.get("unhealthyPodEvictionPolicy") == ALWAYS_ALLOW:
            return True
        desired = int(status.get("desiredHealthy") or 0)
        return int(status.get("currentHealthy") or 0) >= desired > 0

    async def _budgets_of(self, pod: Obj) -> list[Obj]:
        storage = self.budgets()
        if storage is None:
            return []
        namespace = pod["metadata"]["namespace"]
        listed = await storage.list_objects(ListOptions(namespace=namespace))
        return matching_budgets(pod, [c.obj for c in listed.items])

    async def _spend(self, budget: Obj, pod: Obj, *, dry_run: bool) -> None:
        """Spend one disruption of ``budget`` on ``pod``, re-reading the budget after every
        lost race (``RetryOnConflict`` around ``checkAndDecrement``)."""
        storage = self.budgets()
        assert storage is not None
        meta = budget["metadata"]
        for attempt in range(RETRIES):
            spent = spend_disruption(
                budget, pod["metadata"]["name"], now_rfc3339(self.clock), dry_run=dry_run
            )
            if dry_run:
                return
            try:
                await storage.update(
                    meta["namespace"],
                    meta["name"],
                    spent,
                    WriteOptions(field_manager=MANAGER),
                    subresource="status",
                )
                return
            except APIError as exc:
                if exc.code != 409:
                    raise
                if attempt == RETRIES - 1:
                    raise errors.timeout(
                        f'couldn\'t update PodDisruptionBudget "{meta["name"]}" due to conflicts'
                    ) from None
            budget = (await storage.get(meta["namespace"], meta["name"])).obj

    async def _delete(self, pod: Obj, options: DeleteOptions, *, pin: bool) -> None:
        """Mark the pod a ``DisruptionTarget`` and delete it (``addConditionAndDeletePod``);
        ``pin``: only if it is still the version read, unless the client pinned one."""
        meta = pod["metadata"]
        if pin and options.preconditions_resource_version is None:
            options = replace(options, preconditions_resource_version=meta["resourceVersion"])
        if not options.dry_run:
            marked = await self.pods.guaranteed_update(
                meta["namespace"],
                meta["name"],
                lambda latest: self._mark_disruption_target(latest, options),
                WriteOptions(field_manager=MANAGER),
            )
            if options.preconditions_resource_version is not None:
                # this write is ours: the pinned version moves on with it
                new_rv = marked.obj["metadata"]["resourceVersion"]
                options = replace(options, preconditions_resource_version=new_rv)
        await self.pods.delete(meta["namespace"], meta["name"], options)

    def _mark_disruption_target(self, pod: Obj, options: DeleteOptions) -> Obj:
        meta = pod["metadata"]
        if options.preconditions_uid and options.preconditions_uid != meta.get("uid"):
            raise errors.conflict(
                self.pods.rtype,
                meta["name"],
                f"the UID in the precondition ({options.preconditions_uid}) does not match the "
                f"UID in record ({meta.get('uid')}). The object might have been deleted and "
                "then recreated",
            )
        wanted = options.preconditions_resource_version
        if wanted and wanted != meta.get("resourceVersion"):
            raise errors.conflict(
                self.pods.rtype,
                meta["name"],
                f"the ResourceVersion in the precondition ({wanted}) does not match the "
                f"ResourceVersion in record ({meta.get('resourceVersion')}). The object might "
                "have been modified",
            )
        conditions = pod.setdefault("status", {}).setdefault("conditions", [])
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(self.clock),
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
        }
        for i, existing in enumerate(conditions):
            if existing.get("type") == condition["type"]:
                if existing.get("status") == condition["status"]:
                    condition["lastTransitionTime"] = existing.get("lastTransitionTime")
                conditions[i] = condition
                break
        else:
            conditions.append(condition)
        return pod
