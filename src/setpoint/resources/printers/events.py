"""Tables for Events, from both the core (``v1``) and the ``events.k8s.io/v1`` API.

The printer is ``printEvent`` of Kubernetes' ``pkg/printers/internalversion/printers.go``:
LAST SEEN, TYPE, REASON, OBJECT and MESSAGE, and with ``-o wide`` the SUBOBJECT, SOURCE, FIRST
SEEN, COUNT and NAME as well. Times fall back the way new-style events need them to: no first
timestamp means the event time, no last timestamp means the first, and a series brings its own
count and last observation.

Both APIs print the same way, as in Kubernetes where they share one internal type: an
``events.k8s.io/v1`` Event is read through its core field names (``note`` is the message,
``regarding`` the involved object, ``deprecatedCount`` the count, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.resources.eventfields import as_core_event
from setpoint.resources.printers.base import NAME_DOC, Printer, age, column, name_of, number, text

EVENT_COLUMNS = [
    column(
        "Last Seen",
        description="The time at which the most recent occurrence of this event was recorded.",
    ),
    column(
        "Type",
        description="Type of this event (Normal, Warning), new types could be added in the future",
    ),
    column(
        "Reason",
        description="This should be a short, machine understandable string that gives the "
        "reason for the transition into the object's current status.",
    ),
    column("Object", description="The object that this event is about."),
    column(
        "Subobject",
        priority=1,
        description="If referring to a piece of an object instead of an entire object, this "
        "string should contain a valid JSON/Go field access statement, such as "
        "desiredState.manifest.containers[2]. For example, if the object reference is to a "
        'container within a pod, this would take on a value like: "spec.containers{name}" '
        '(where "name" refers to the name of the container that triggered the event) or if no '
        'container name is specified "spec.containers[2]" (container with index 2 in this pod). '
        "This syntax is chosen only to have some well-defined way of referencing a part of an "
        "object.",
    ),
    column(
        "Source",
        priority=1,
        description="The component reporting this event. Should be a short machine "
        "understandable string.",
    ),
    column("Message", description="A human-readable description of the status of this operation."),
    column(
        "First Seen",
        priority=1,
        description="The time at which the event was first recorded. (Time of server receipt is "
        "in TypeMeta.)",
    ),
    column("Count", priority=1, description="The number of times this event has occurred."),
    column("Name", priority=1, fmt="name", description=NAME_DOC),
]


def _event_source(event: Obj) -> str:
    """``formatEventSource``: component (or reporting controller), then host (or instance)."""
    component = text(event, "source", "component") or text(event, "reportingComponent")
    instance = text(event, "source", "host") or text(event, "reportingInstance")
    return f"{component}, {instance}" if instance else component


def event_cells(event: Obj, now: datetime) -> list[Any]:
    """``printEvent`` for a core/v1 Event: times fall back from first/last to event time."""
    first_seen = text(event, "firstTimestamp")
    first = age(first_seen or text(event, "eventTime"), now)
    last_seen = text(event, "lastTimestamp")
    last = age(last_seen, now) if last_seen else first
    count = number(event, "count")
    series = event.get("series")
    if isinstance(series, Mapping):
        last = age(text(series, "lastObservedTime"), now)
        count = number(series, "count")
    elif count == 0:
        count = 1  # singleton events have no count in the new API
    kind = text(event, "involvedObject", "kind").lower()
    involved_name = text(event, "involvedObject", "name")
    target = f"{kind}/{involved_name}" if involved_name else kind
    return [
        last,
        text(event, "type"),
        text(event, "reason"),
        target,
        text(event, "involvedObject", "fieldPath"),
        _event_source(event),
        text(event, "message").strip(),
        first,
        count,
        name_of(event),
    ]


def events_v1_cells(event: Obj, now: datetime) -> list[Any]:
    """An ``events.k8s.io/v1`` Event, printed like the core Event it is stored as."""
    return event_cells(as_core_event(event), now)


EVENT_PRINTER = Printer(EVENT_COLUMNS, event_cells)
EVENTS_V1_PRINTER = Printer(EVENT_COLUMNS, events_v1_cells)
