"""The authorization.k8s.io group's four kinds: questions put to the authorizer, never stored.

A SubjectAccessReview asks whether a user (with groups, uid, extra) may do something — a verb
on a resource, or on a non-resource path; a LocalSubjectAccessReview asks the same inside one
namespace; a SelfSubjectAccessReview asks it of the caller itself (``kubectl auth can-i``);
a SelfSubjectRulesReview asks which rules the caller holds in a namespace (``kubectl auth
can-i --list``). Each is create-only (``POST`` answers the object with its ``status``
filled in) and, as upstream, none is kept: the API server answers them itself
(:mod:`setpoint.api.auth.reviews`), so discovery lists only the ``create`` verb.
"""

from __future__ import annotations

from setpoint.resources.printers.base import DEFAULT_PRINTER
from setpoint.resources.registry import ResourceType

GROUP = "authorization.k8s.io"


def _review(kind: str, *, namespaced: bool = False) -> ResourceType:
    return ResourceType(
        group=GROUP,
        version="v1",
        kind=kind,
        plural=f"{kind.lower()}s",
        singular=kind.lower(),
        namespaced=namespaced,
        verbs=("create",),
        stored=False,  # answered by the API server's AccessReviews
        definition=f"io.k8s.api.authorization.v1.{kind}",
        printer=DEFAULT_PRINTER,
        protobuf=f"k8s.io.api.authorization.v1.{kind}",
    )


KINDS: tuple[ResourceType, ...] = (
    _review("LocalSubjectAccessReview", namespaced=True),
    _review("SelfSubjectAccessReview"),
    _review("SelfSubjectRulesReview"),
    _review("SubjectAccessReview"),
)
