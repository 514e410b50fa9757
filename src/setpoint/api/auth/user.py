"""The identity of a request, as every authenticator produces it (kube-apiserver's
``user.Info``), and the well-known names Kubernetes gives users and groups."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

SYSTEM_MASTERS = "system:masters"  # the privileged group: authorized for everything
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"


@dataclass(frozen=True)
class UserInfo:
    """Who made a request: a name, the groups it belongs to, a uid and extra attributes
    (``extra`` as sorted pairs, so the identity stays hashable)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    def in_group(self, group: str) -> bool:
        return group in self.groups

    def extra_dict(self) -> dict[str, list[str]]:
        return {key: list(values) for key, values in self.extra}

    def as_user_info(self) -> dict[str, object]:
        """The ``authentication.k8s.io/v1`` ``UserInfo`` shape (SelfSubjectReview, audit)."""
        out: dict[str, object] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = self.extra_dict()
        return out


# where the API server keeps a request's identity
REQUEST_USER_KEY: web.RequestKey[UserInfo] = web.RequestKey("setpoint.user", UserInfo)


def request_user(request: web.BaseRequest) -> UserInfo | None:
    """The identity the API server authenticated ``request`` as (None: not authenticated,
    as for the health endpoints)."""
    return request.get(REQUEST_USER_KEY)


def node_name_of(user: UserInfo) -> str | None:
    """The node a ``system:node:<name>`` identity in ``system:nodes`` speaks for, else None."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_USER_PREFIX):
        return user.name[len(NODE_USER_PREFIX) :] or None
    return None


def service_account_of(user: UserInfo) -> tuple[str, str] | None:
    """(namespace, name) of a ``system:serviceaccount:<ns>:<name>`` identity, else None."""
    if not user.name.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    rest = user.name[len(SERVICE_ACCOUNT_PREFIX) :]
    namespace, sep, name = rest.partition(":")
    if not sep or not namespace or not name:
        return None
    return namespace, name
