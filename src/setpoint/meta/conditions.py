"""``metav1.Condition`` lists: apimachinery's ``meta.SetStatusCondition``.

The newer kinds (PodDisruptionBudget, and every CRD that follows the API conventions) keep
``status.conditions`` as ``metav1.Condition`` entries: ``type``, ``status``,
``observedGeneration``, ``lastTransitionTime``, ``reason`` and ``message``, at most one per
type. Setting one changes ``lastTransitionTime`` only when its status changes.
"""

from __future__ import annotations

from typing import Any

Condition = dict[str, Any]


def set_status_condition(conditions: list[Condition], new: Condition, now: str) -> bool:
    """Put ``new`` into ``conditions`` in place (``meta.SetStatusCondition``); ``now`` (RFC
    3339) stamps ``lastTransitionTime`` when the condition is new or its status changed and
    ``new`` brings none. Returns whether anything changed."""
    for existing in conditions:
        if existing.get("type") != new["type"]:
            continue
        changed = False
        if existing.get("status") != new["status"]:
            existing["status"] = new["status"]
            existing["lastTransitionTime"] = new.get("lastTransitionTime") or now
            changed = True
        for key in ("reason", "message", "observedGeneration"):
            if existing.get(key) != new.get(key):
                if new.get(key) is None:
                    existing.pop(key, None)
                else:
                    existing[key] = new[key]
                changed = True
        return changed
    added = {
        "type": new["type"],
        "status": new["status"],
        "observedGeneration": new.get("observedGeneration"),
        "lastTransitionTime": new.get("lastTransitionTime") or now,
        "reason": new.get("reason", ""),
        "message": new.get("message", ""),
    }
    if not added["observedGeneration"]:  # an int64 with omitempty: 0 is not written
        del added["observedGeneration"]
    conditions.append(added)
    return True
