"""Corrupt objects: stored values that do not decode, reported per key as kube-apiserver does.

A value under ``/registry/...`` that is not a JSON object with ``metadata.name`` (a disk that
flipped bits, a hand edit of the database) must not take the server down, nor a whole
resource type: the watch cache keeps serving every other object and remembers the corrupt
key, and the requests that touch it fail naming it — the shapes of KEP-3926 ("unsafe
deletion of corrupt objects"), so the key shows up in ``kubectl`` output and in clients'
logs:

* GET (and any write, which reads first): ``500 InternalError``, ``Internal error occurred:
  StorageError: corrupt object, Code: 7, Key: <key>, ...``;
* LIST or WATCH whose scope holds a corrupt key: ``500 StorageReadError``, ``failed to read
  one or more <resource> from the storage``, one ``details.causes`` entry per key
  (``field`` is the key), at most 100 and then a ``FieldValueTooMany`` cause.

The way out is KEP-3926's too: a ``DELETE`` whose DeleteOptions say
``ignoreStoreReadErrorWithClusterBreakingPotential: true`` removes a corrupt object without
reading it (no finalizers, no graceful deletion, no garbage collection of dependents: it may
break what depended on it). On an object that decodes, the option is refused (422), as it is
upstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from setpoint.api.errors import APIError, qualified_resource
from setpoint.resources.registry import ResourceType

MAX_CAUSES = 100
UNSAFE_DELETE_OPTION = "ignoreStoreReadErrorWithClusterBreakingPotential"


class CorruptObjectError(Exception):
    """The value stored under ``key`` (at ``revision``) does not decode: ``cause`` says why."""

    def __init__(self, key: str, revision: int, cause: str) -> None:
        super().__init__(f"object not decodable revision={revision}: {cause}")
        self.key = key
        self.revision = revision
        self.cause = cause

    @property
    def storage_error(self) -> str:
        """kube-apiserver's text for it (storage.StorageError of code ErrCodeCorruptObj)."""
        return (
            f"StorageError: corrupt object, Code: 7, Key: {self.key}, ResourceVersion: 0, "
            f"AdditionalErrorMsg: {self}"
        )


def get_error(error: CorruptObjectError) -> APIError:
    """A read of one corrupt object (``errors.NewInternalError`` of the storage error)."""
    text = error.storage_error
    details = {"causes": [{"message": text}]}
    return APIError(500, "InternalError", f"Internal error occurred: {text}", details=details)


def list_error(rtype: ResourceType, found: Sequence[CorruptObjectError]) -> APIError:
    """A list or watch over corrupt objects (``aggregatedStorageError.NewAPIStatusError``)."""
    ordered = sorted(found, key=lambda e: e.key)
    causes: list[dict[str, Any]] = [
        {"reason": "UnexpectedServerResponse", "message": e.storage_error, "field": e.key}
        for e in ordered[:MAX_CAUSES]
    ]
    if len(ordered) > MAX_CAUSES:
        causes.append(
            {"reason": "FieldValueTooMany", "message": "too many errors, the list is truncated"}
        )
    return APIError(
        500,
        "StorageReadError",
        f"failed to read one or more {qualified_resource(rtype)} from the storage",
        details={"name": "list", "group": rtype.group, "kind": rtype.plural, "causes": causes},
    )


def unsafe_delete_refused(rtype: ResourceType, name: str) -> APIError:
    """The unsafe-deletion option on an object that decodes fine."""
    field = UNSAFE_DELETE_OPTION
    message = (
        f"{field}: Invalid value: true: is exclusively used to delete corrupt object(s), "
        "try again by removing this option"
    )
    return APIError(
        422,
        "Invalid",
        f'{qualified_resource(rtype)} "{name}" is invalid: {message}',
        details={
            "name": name,
            "group": rtype.group,
            "kind": rtype.plural,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def key_namespace(key: str, prefix: str, *, namespaced: bool) -> str:
    """The namespace of the object under ``key`` (``prefix`` is its type's), from the key
    alone: a corrupt value cannot be asked."""
    if not namespaced:
        return ""
    return key[len(prefix) :].split("/", 1)[0]
