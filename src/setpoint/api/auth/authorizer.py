"""Whether a request may be done: the authorizer chain and the 403 it answers.

An :class:`Authorizer` says allow, deny or nothing (no opinion) about one
:class:`RequestAttributes`; a :class:`UnionAuthorizer` asks each in turn and the first that
has an opinion decides, as kube-apiserver's ``--authorization-mode`` chain does. Members of
``system:masters`` are allowed everything before any other authorizer is asked (Kubernetes'
privileged-group authorizer). What nobody allows is forbidden.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from setpoint.api import errors
from setpoint.api.auth.attributes import RequestAttributes
from setpoint.api.auth.user import SYSTEM_MASTERS


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


class Authorizer(Protocol):
    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        """The decision about ``attrs`` and why (the reason is shown to a denied client)."""
        ...


class PrivilegedGroups:
    """Everything for members of the privileged groups (``system:masters``)."""

    def __init__(self, groups: Sequence[str] = (SYSTEM_MASTERS,)) -> None:
        self._groups = frozenset(groups)

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        if self._groups.intersection(attrs.user.groups):
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""


class UnionAuthorizer:
    """The first authorizer with an opinion decides; with none, the request is denied."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = list(authorizers)

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision, reason = authorizer.authorize(attrs)
            if decision is not Decision.NO_OPINION:
                return decision, reason
            if reason:
                reasons.append(reason)
        return Decision.DENY, ", ".join(reasons)


def check(authorizer: Authorizer, attrs: RequestAttributes) -> None:
    """Raise the Kubernetes 403 for ``attrs`` unless ``authorizer`` allows it."""
    decision, reason = authorizer.authorize(attrs)
    if decision is not Decision.ALLOW:
        raise forbidden(attrs, reason)


def forbidden_message(attrs: RequestAttributes) -> str:
    """kube-apiserver's ``forbiddenMessage``: who cannot do what, where."""
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource_and_subresource
    if attrs.namespace:
        return (
            f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.api_group}" in the namespace "{attrs.namespace}"'
        )
    return (
        f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group '
        f'"{attrs.api_group}" at the cluster scope'
    )


def forbidden(attrs: RequestAttributes, reason: str = "") -> errors.APIError:
    """The 403 Status kube-apiserver sends a request its authorizers did not allow."""
    message = forbidden_message(attrs)
    if reason:
        message = f"{message}: {reason}"
    if not attrs.resource_request:
        return errors.APIError(403, "Forbidden", f"forbidden: {message}")
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return errors.APIError(
        403,
        "Forbidden",
        f"{subject} is forbidden: {message}",
        details={
            key: value
            for key, value in (
                ("name", attrs.name),
                ("group", attrs.api_group),
                ("kind", attrs.resource),
            )
            if value
        },
    )
