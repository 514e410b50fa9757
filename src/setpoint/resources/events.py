"""Events: validation shared by ``v1`` and ``events.k8s.io/v1``, and the declaration of the
latter (``KINDS``; the core Event is declared with the core group).

Kubernetes stores both API versions of Event as one internal type, so one set of rules
applies, worded with the core (``v1``) field names whichever version was used. Events written
through ``v1`` only get the lenient legacy checks (the involved object's namespace must agree
with the event's; new-style events, those with an ``eventTime``, need a reporting controller,
instance, action and reason). Writes through ``events.k8s.io/v1`` are checked strictly: an
``eventTime`` is required, ``type`` is Normal or Warning, the deprecated fields stay unset, and
an update may only change the series.

An ``events.k8s.io/v1`` Event is turned into the core field names (:func:`as_core_event`)
before it is checked.
"""

from __future__ import annotations

from typing import Any

from setpoint.meta import gofmt
from setpoint.meta.validation import dns1123_subdomain_errors, label_key_errors
from setpoint.resources.checks import immutable, kube_finalizer_errors
from setpoint.resources.eventfields import as_core_event
from setpoint.resources.fielderrors import FieldError, invalid_value, required
from setpoint.resources.printers.events import EVENTS_V1_PRINTER
from setpoint.resources.registry import Obj, ResourceType, field_getter, reference_field_selectors

_LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128}
_NOTE_LIMIT = 1024
_IMMUTABLE_FIELDS = (
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
)
_PATHS = {"reportingComponent": "reportingController"}  # internal names used in messages
_REFERENCE_FIELDS = (
    ("Kind", "kind"),
    ("Namespace", "namespace"),
    ("Name", "name"),
    ("UID", "uid"),
    ("APIVersion", "apiVersion"),
    ("ResourceVersion", "resourceVersion"),
    ("FieldPath", "fieldPath"),
)


def legacy_event_errors(event: Obj) -> list[FieldError]:
    """``legacyValidateEvent``: what every Event must satisfy."""
    namespace = (event.get("metadata") or {}).get("namespace", "")
    involved = (event.get("involvedObject") or {}).get("namespace", "")
    errors: list[FieldError] = []
    mismatch = invalid_value("involvedObject.namespace", involved, "does not match event.namespace")
    if not event.get("eventTime"):
        if (involved and namespace != involved) or (
            not involved and namespace not in ("", "default")
        ):
            errors.append(mismatch)
    else:
        if not involved and namespace not in ("default", "kube-system"):
            errors.append(mismatch)
        errors += _reporting_errors(event)
    errors += [
        invalid_value("namespace", namespace, m) for m in dns1123_subdomain_errors(namespace)
    ]
    return errors


def _reporting_errors(event: Obj) -> list[FieldError]:
    """Kubernetes names the field ``reportingController`` in messages; core/v1 JSON calls it
    ``reportingComponent``."""
    controller = event.get("reportingComponent", "")
    errors = [] if controller else [required("reportingController")]
    errors += [
        invalid_value("reportingController", controller, m) for m in label_key_errors(controller)
    ]
    for key in ("reportingInstance", "action", "reason"):
        value = event.get(key, "")
        if not value:
            errors.append(required(key))
        if len(value) > _LIMITS[key]:
            errors.append(invalid_value(key, "", f"can have at most {_LIMITS[key]} characters"))
    if len(event.get("message", "")) > _NOTE_LIMIT:
        errors.append(invalid_value("message", "", f"can have at most {_NOTE_LIMIT} characters"))
    return errors


def strict_event_errors(event: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateEventCreate`` / ``ValidateEventUpdate`` for ``events.k8s.io/v1`` requests."""
    errors = legacy_event_errors(event) + kube_finalizer_errors(event)
    if old is None or event.get("series") != old.get("series"):
        errors += _series_errors(event.get("series"))
    if old is not None:
        for key in _IMMUTABLE_FIELDS:
            new, previous, path = event.get(key), old.get(key), _PATHS.get(key, key)
            errors += immutable(new, previous, path, _render(key, new))
        return errors
    if not event.get("eventTime"):
        errors.append(required("eventTime"))
    if event.get("type") not in ("Normal", "Warning"):
        errors.append(invalid_value("type", "", f"has invalid value: {event.get('type', '')}"))
    for key in ("firstTimestamp", "lastTimestamp", "count"):
        if event.get(key):
            errors.append(invalid_value(key, "", "needs to be unset"))
    source = event.get("source") or {}
    if source.get("component") or source.get("host"):
        errors.append(invalid_value("source", "", "needs to be unset"))
    return errors


def _series_errors(series: Obj | None) -> list[FieldError]:
    if series is None:
        return []
    errors = []
    if series.get("count", 0) < 2:
        errors.append(invalid_value("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        errors.append(required("series.lastObservedTime"))
    return errors


def _render(key: str, value: Any) -> str:
    """Go's printing of the internal Event field ``key``."""
    if key in ("involvedObject", "related"):
        if value is None:
            return "null"
        fields = ", ".join(f"{go}:{gofmt.quote(value.get(js, ''))}" for go, js in _REFERENCE_FIELDS)
        return f"core.ObjectReference{{{fields}}}"
    if key == "source":
        value = value or {}
        component, host = (
            gofmt.quote(value.get("component", "")),
            gofmt.quote(value.get("host", "")),
        )
        return f"core.EventSource{{Component:{component}, Host:{host}}}"
    if key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        return gofmt.time_string(value)
    if value is None:
        return gofmt.quote("") if key != "count" else "0"
    return gofmt.quote(value) if isinstance(value, str) else str(value)


def _validate_event(event: Obj, old: Obj | None) -> list[FieldError]:
    return strict_event_errors(as_core_event(event), as_core_event(old) if old else None)


def _source(event: Obj) -> str:
    source = (event.get("deprecatedSource") or {}).get("component", "")
    return str(source or event.get("reportingController", ""))


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="events.k8s.io",
        version="v1",
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        short_names=("ev",),
        definition="io.k8s.api.events.v1.Event",
        printer=EVENTS_V1_PRINTER,
        protobuf="k8s.io.api.events.v1.Event",
        allow_create_on_update=True,
        always_encoded={"regarding": {}, "deprecatedSource": {}},
        validator=_validate_event,
        field_selectors={
            **reference_field_selectors("regarding"),
            "reason": field_getter("reason"),
            "reportingController": field_getter("reportingController"),
            "source": _source,
            "type": field_getter("type"),
        },
    ),
)
