"""Impersonation: acting as another identity (``kubectl --as=bob --as-group=devs``), as
kube-apiserver's ``WithImpersonation`` filter (``endpoints/filters/impersonation.go``) does.

The headers ``Impersonate-User``, ``Impersonate-Group`` (repeatable), ``Impersonate-Uid`` and
``Impersonate-Extra-<key>`` name the identity wanted. The authenticated requester must be
allowed the verb ``impersonate`` on each part: ``users`` (or, for a
``system:serviceaccount:<ns>:<name>`` user, that ``serviceaccounts`` object in its
namespace), ``groups``, ``uids`` and ``userextras/<key>`` (the last two in the
``authentication.k8s.io`` group), each named by the value asked for. Allowed, the request
goes on as the impersonated identity, which is also in ``system:authenticated`` (a service
account impersonated without groups gets its fixed ones). Groups, a uid or extras without a
user are 400; anything not allowed is 403, naming the first part that was not.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from setpoint.api import errors
from setpoint.api.auth.attributes import RequestAttributes
from setpoint.api.auth.authorizer import Authorizer, check
from setpoint.api.auth.user import (
    ANONYMOUS,
    AUTHENTICATED,
    SERVICE_ACCOUNTS_GROUP,
    UNAUTHENTICATED,
    UserInfo,
    service_account_of,
)

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


def wants_impersonation(headers: Mapping[str, str]) -> bool:
    return any(key.lower().startswith("impersonate-") for key in headers)


def _attrs(
    user: UserInfo,
    resource: str,
    name: str,
    *,
    group: str = "",
    namespace: str = "",
    subresource: str = "",
) -> RequestAttributes:
    return RequestAttributes(
        user,
        "impersonate",
        resource_request=True,
        api_group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def impersonate(
    requester: UserInfo, headers: CIMultiDictProxy[str], authorizer: Authorizer
) -> UserInfo:
    """The identity ``headers`` ask to act as, once ``authorizer`` allows ``requester`` each
    part of it; ``requester`` itself when no impersonation is asked."""
    name = headers.get(USER_HEADER, "")
    groups = tuple(headers.getall(GROUP_HEADER, ()))
    uid = headers.get(UID_HEADER, "")
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith(EXTRA_PREFIX.lower()):
            extra_key = _unescape(key[len(EXTRA_PREFIX) :]).lower()
            extra.setdefault(extra_key, []).append(value)
    if not name:
        if groups or uid or extra:
            raise errors.bad_request(
                "requested impersonation of groups, a uid or extra fields without impersonating "
                "a user"
            )
        return requester
    account = service_account_of(UserInfo(name))
    if account is not None:
        namespace, account_name = account
        check(authorizer, _attrs(requester, "serviceaccounts", account_name, namespace=namespace))
        if not groups:
            groups = (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}")
    else:
        check(authorizer, _attrs(requester, "users", name))
    for group in groups:
        check(authorizer, _attrs(requester, "groups", group))
    if uid:
        check(authorizer, _attrs(requester, "uids", uid, group=AUTHENTICATION_GROUP))
    for key, values in extra.items():
        for value in values:
            check(
                authorizer,
                _attrs(requester, "userextras", value, group=AUTHENTICATION_GROUP, subresource=key),
            )
    everyone = UNAUTHENTICATED if name == ANONYMOUS else AUTHENTICATED
    if everyone not in groups:
        groups = (*groups, everyone)
    pairs = tuple(sorted((key, tuple(values)) for key, values in extra.items()))
    return UserInfo(name, groups, uid, pairs)


def _unescape(key: str) -> str:
    """Extra keys travel percent-encoded in header names (``%2F`` for ``/``)."""
    return unquote(key)
