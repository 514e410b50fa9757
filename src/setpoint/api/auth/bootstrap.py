"""The default roles and bindings put in place when an API server starts, as kube-apiserver's
``rbac/bootstrap-roles`` post-start hook reconciles them (``pkg/registry/rbac/reconciliation``).

Each object of :mod:`setpoint.api.auth.bootstrappolicy` is created when missing. One that
exists is left alone if its ``rbac.authorization.kubernetes.io/autoupdate`` annotation is
``"false"`` (an administrator took it over); otherwise what the default has and it lacks is
added — rules, aggregation selectors, subjects, labels and annotations — and nothing is
taken away, so a cluster's additions survive an upgrade. A binding whose ``roleRef`` differs
from the default's (which cannot be updated) is deleted and made again. Several API servers
may do this at once: losing a race (409) is fine, the winner wrote the same.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from setpoint.api.auth import bootstrappolicy
from setpoint.api.errors import APIError
from setpoint.api.storage import DeleteOptions, ResourceStorage, WriteOptions
from setpoint.resources.rbac import AUTOUPDATE_ANNOTATION

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MANAGER = "kube-apiserver"


def reconciled(existing: Obj, default: Obj) -> Obj | None:
    """``existing`` with whatever ``default`` has that it lacks, or None when it needs no
    change (or must not be changed)."""
    meta = existing.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE_ANNOTATION) == "false":
        return None
    out = copy.deepcopy(existing)
    out_meta = out["metadata"]
    for key in ("labels", "annotations"):
        wanted = default["metadata"].get(key) or {}
        have = out_meta.setdefault(key, {})
        for name, value in wanted.items():
            have.setdefault(name, value)
        if not have:
            del out_meta[key]
    if "roleRef" in default:
        subjects = out.setdefault("subjects", [])
        for subject in default.get("subjects") or []:
            if subject not in subjects:
                subjects.append(subject)
    else:
        if "aggregationRule" in default:
            selectors = out.setdefault("aggregationRule", {}).setdefault("clusterRoleSelectors", [])
            for selector in default["aggregationRule"]["clusterRoleSelectors"]:
                if selector not in selectors:
                    selectors.append(selector)
        else:  # an aggregated role's rules are the aggregation controller's to write
            rules = out.setdefault("rules", [])
            for rule in default.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
    return None if out == existing else out


async def ensure_default_policy(cluster_roles: ResourceStorage, bindings: ResourceStorage) -> None:
    """Reconcile every default ClusterRole, then every default ClusterRoleBinding."""
    for role in bootstrappolicy.cluster_roles():
        await _ensure(cluster_roles, role)
    for binding in bootstrappolicy.cluster_role_bindings():
        await _ensure(bindings, binding)


async def _ensure(storage: ResourceStorage, default: Obj) -> None:
    name = default["metadata"]["name"]
    opts = WriteOptions(field_manager=MANAGER)
    for _ in range(5):  # a lost race: read again and decide again
        cached = storage.cache.get(storage.key(None, name))
        try:
            if cached is None:
                await storage.create(None, copy.deepcopy(default), opts)
                return
            existing = cached.obj
            if "roleRef" in default and existing.get("roleRef") != default["roleRef"]:
                if (existing["metadata"].get("annotations") or {}).get(
                    AUTOUPDATE_ANNOTATION
                ) == "false":
                    return
                await storage.delete(None, name, DeleteOptions())
                await storage.create(None, copy.deepcopy(default), opts)
                return
            update = reconciled(existing, default)
            if update is None:
                return
            await storage.update(None, name, update, opts)
            return
        except APIError as exc:
            if exc.code not in (404, 409):
                raise
            await storage.cache.wait_fresh(await storage.store.current_revision())
    log.warning("could not reconcile the default %s %s", storage.rtype.kind, name)
