"""The two Event APIs name the same fields differently: ``events.k8s.io/v1`` in core's words.

Kubernetes keeps one internal Event type behind ``v1`` and ``events.k8s.io/v1``; an
``events.k8s.io/v1`` Event read with the core field names (``regarding`` is
``involvedObject``, ``note`` is ``message``, ...) is checked (:mod:`.events`) and printed
(:mod:`.printers.events`) by the same rules as a core one.
"""

from __future__ import annotations

from setpoint.meta.jsonvalue import Obj

# events.k8s.io/v1 name -> core/v1 name of the same internal field
RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}


def as_core_event(event: Obj) -> Obj:
    """An ``events.k8s.io/v1`` Event with the core/v1 field names."""
    return {RENAMED.get(key, key): value for key, value in event.items()}
