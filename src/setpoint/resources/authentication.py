"""The ``authentication.k8s.io`` group: TokenReview and SelfSubjectReview.

Both are reviews, not objects: a client creates one and the answer is the same object with
its ``status`` filled in, and nothing is stored (``stored=False``; the API server answers
them in :mod:`setpoint.api.authentication`). Their only verb is ``create``, which is what
discovery lists, so ``kubectl auth whoami`` finds SelfSubjectReview. TokenRequest, the
third kind of the group, is no resource of its own but the ``serviceaccounts/token``
subresource of the core group.
"""

from __future__ import annotations

from setpoint.resources.printers.base import DEFAULT_PRINTER
from setpoint.resources.registry import ResourceType

GROUP = "authentication.k8s.io"
TOKEN_REQUEST = "io.k8s.api.authentication.v1.TokenRequest"

KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group=GROUP,
        version="v1",
        kind="TokenReview",
        plural="tokenreviews",
        singular="tokenreview",
        namespaced=False,
        verbs=("create",),
        definition="io.k8s.api.authentication.v1.TokenReview",
        printer=DEFAULT_PRINTER,
        protobuf="k8s.io.api.authentication.v1.TokenReview",
        stored=False,
    ),
    ResourceType(
        group=GROUP,
        version="v1",
        kind="SelfSubjectReview",
        plural="selfsubjectreviews",
        singular="selfsubjectreview",
        namespaced=False,
        verbs=("create",),
        definition="io.k8s.api.authentication.v1.SelfSubjectReview",
        printer=DEFAULT_PRINTER,
        protobuf="k8s.io.api.authentication.v1.SelfSubjectReview",
        stored=False,
    ),
)
