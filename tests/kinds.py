"""What the API server makes of an object before it validates it, and the problems it
finds: the steps of a create or update that the kind tests share."""

from __future__ import annotations

import copy
from typing import Any

from setpoint.resources.catalog import default_registry

REGISTRY = default_registry()
UID = "5b9a8c1e-0000-4000-8000-000000000001"

Obj = dict[str, Any]


def stored(group: str, kind: str, obj: Obj) -> Obj:
    """The object after create-time preparation and defaults (as the store keeps it)."""
    rtype = REGISTRY.by_kind(group, "v1", kind)
    assert rtype is not None
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("name", "x")
    if rtype.namespaced:
        meta.setdefault("namespace", "default")
    meta.setdefault("uid", UID)
    rtype.prepare_for_create(obj)
    rtype.defaulter(obj)
    return obj


def problems(group: str, kind: str, obj: Obj, old: Obj | None = None) -> list[str]:
    """Validation causes for a create (``old`` None) or an update of ``old`` to ``obj``."""
    rtype = REGISTRY.by_kind(group, "v1", kind)
    assert rtype is not None
    if old is None:
        new = stored(group, kind, obj)
    else:
        new = copy.deepcopy(obj)
        rtype.defaulter(new)
    return [f"{e.field}: {e.message}" for e in rtype.validator(new, old)]
