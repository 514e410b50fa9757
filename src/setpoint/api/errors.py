"""Kubernetes ``Status`` errors.

Every failure a client can cause leaves the API server as a ``meta/v1 Status`` with the HTTP
code, ``reason`` and ``details`` Kubernetes uses for the same situation, so kubectl and client
libraries print and classify it as they would for a real cluster (``Error from server
(NotFound): deployments.apps "web" not found``). Handlers raise :class:`APIError`; the HTTP
layer turns it into the response.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from setpoint.resources.fielderrors import FieldError
from setpoint.resources.registry import ResourceType


class APIError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failure ``Status`` with its fields in the order Go's encoder writes ``metav1.Status``
    (``kind, apiVersion, metadata, status, message, reason, details, code``), empty ones left
    out as ``omitempty`` does: clients and tests compare these bodies byte for byte."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
    }
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    if details:
        status["details"] = _ordered_details(details)
    status["code"] = code
    return status


# metav1.StatusDetails and metav1.StatusCause, in their Go field order
_DETAIL_FIELDS = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_FIELDS = ("reason", "message", "field")


def _ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    ordered: dict[str, Any] = {}
    for key in _DETAIL_FIELDS:
        value = details.get(key)
        if not value:
            continue
        if key == "causes":
            value = [{k: cause[k] for k in _CAUSE_FIELDS if cause.get(k)} for cause in value]
        ordered[key] = value
    return ordered


def encode_status(status: dict[str, Any]) -> bytes:
    """A Status as the apiserver sends it: compact JSON and the newline Go's encoder ends
    every document with."""
    return orjson.dumps(status) + b"\n"


def success_status(rtype: ResourceType, name: str, uid: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": _ordered_details(
            {"name": name, "group": rtype.group, "kind": rtype.plural, "uid": uid}
        ),
    }


def qualified_resource(rtype: ResourceType) -> str:
    """``deployments.apps`` / ``pods``: how Kubernetes names a resource in messages."""
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


def qualified_kind(kind: str, group: str) -> str:
    """``Deployment.apps`` / ``Pod``: how Kubernetes names a kind in Invalid messages."""
    return f"{kind}.{group}" if group else kind


def _details(rtype: ResourceType, name: str) -> dict[str, Any]:
    return {"name": name, "group": rtype.group, "kind": rtype.plural}


def not_found(rtype: ResourceType, name: str) -> APIError:
    return APIError(
        404,
        "NotFound",
        f'{qualified_resource(rtype)} "{name}" not found',
        details=_details(rtype, name),
    )


def already_exists(rtype: ResourceType, name: str) -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{qualified_resource(rtype)} "{name}" already exists',
        details=_details(rtype, name),
    )


def conflict(rtype: ResourceType, name: str, why: str) -> APIError:
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified_resource(rtype)} "{name}": {why}',
        details=_details(rtype, name),
    )


def stale_conflict(rtype: ResourceType, name: str) -> APIError:
    return conflict(
        rtype,
        name,
        "the object has been modified; please apply your changes to the latest version "
        "and try again",
    )


def invalid(rtype: ResourceType, name: str, errors: Sequence[FieldError]) -> APIError:
    return invalid_kind(rtype.kind, rtype.group, name, errors)


def invalid_kind(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> APIError:
    """422 Invalid for an object of any kind, served or not (a Scale, a Binding)."""
    causes = [{"reason": e.type, "message": e.message, "field": e.field} for e in errors]
    summary = ", ".join(f"{e.field}: {e.message}" for e in errors)
    if len(errors) > 1:
        summary = f"[{summary}]"
    return APIError(
        422,
        "Invalid",
        f'{qualified_kind(kind, group)} "{name}" is invalid: {summary}',
        details={"name": name, "group": group, "kind": kind, "causes": causes},
    )


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def method_not_allowed(method: str) -> APIError:
    return APIError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method})",
    )


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf; "
        f'got "{content_type}"',
    )


def not_acceptable(accept: str) -> APIError:
    return APIError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: application/json, application/yaml, "
        f"application/json;as=Table;v=v1;g=meta.k8s.io (asked for {accept})",
    )


def too_large(limit: int) -> APIError:
    return APIError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str) -> APIError:
    return APIError(403, "Forbidden", message)


def forbidden_object(rtype: ResourceType, name: str, why: str) -> APIError:
    """403 for one object, as ``apierrors.NewForbidden`` words it."""
    subject = f'{qualified_resource(rtype)} "{name}"' if name else qualified_resource(rtype)
    return APIError(
        403, "Forbidden", f"{subject} is forbidden: {why}", details=_details(rtype, name)
    )


def namespace_terminating(rtype: ResourceType, name: str, namespace: str) -> APIError:
    """NamespaceLifecycle's refusal, with the ``NamespaceTerminating`` cause that clients
    (and controllers, which then skip the object quietly) look for."""
    error = forbidden_object(
        rtype,
        name,
        f"unable to create new content in namespace {namespace} because it is being terminated",
    )
    assert error.details is not None
    error.details["causes"] = [
        {
            "reason": "NamespaceTerminating",
            "message": f"namespace {namespace} is being terminated",
            "field": "metadata.namespace",
        }
    ]
    return error


def expired(message: str) -> APIError:
    return APIError(410, "Expired", message)


def resource_not_found(path: str) -> APIError:
    return APIError(
        404,
        "NotFound",
        "the server could not find the requested resource",
        details={"causes": [{"reason": "UnexpectedServerResponse", "message": path}]},
    )


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)


def too_many_requests(
    message: str, *, retry_after: int = 0, causes: Sequence[dict[str, str]] = ()
) -> APIError:
    """429 as ``apierrors.NewTooManyRequests``: a ``retryAfterSeconds`` above 0 also goes out
    as the ``Retry-After`` header, which makes client-go retry by itself."""
    details: dict[str, Any] = {"causes": list(causes), "retryAfterSeconds": retry_after}
    headers = {"Retry-After": str(retry_after)} if retry_after > 0 else {}
    return APIError(429, "TooManyRequests", message, details=details, headers=headers)
