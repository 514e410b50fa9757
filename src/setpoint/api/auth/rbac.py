"""Role-based access control: whether the roles bound to an identity allow a request, as
kube-apiserver's RBAC authorizer (``plugin/pkg/auth/authorizer/rbac/rbac.go``) and rule
resolver (``pkg/registry/rbac/validation/rule.go``) decide it.

A request is allowed when one rule of one role bound to its user, or to one of its groups,
matches it. Rules match as ``pkg/apis/rbac/helpers.go`` says: a verb, API group, resource
or URL of ``*`` matches anything; a resource ``pods/log`` matches that subresource, and
``*/scale`` the ``scale`` subresource of anything; ``resourceNames``, when given, confine a
rule to those names; a non-resource URL ending in ``*`` matches every path it prefixes.
ClusterRoleBindings grant everywhere; a RoleBinding grants only in its namespace, whether
its role is a Role there or a ClusterRole. A ``ServiceAccount`` subject is the user
``system:serviceaccount:<namespace>:<name>`` (a RoleBinding's own namespace when the subject
names none). Nothing here ever denies: what RBAC does not allow it has no opinion on, and
the chain's end answers 403.

The roles and bindings come from the API server's watch caches. :class:`PolicyIndex` reads
them once into dictionaries keyed by subject — user name, group, each within a namespace or
cluster-wide — and by role, so a decision looks only at the bindings of the request's user
and groups, never at every binding; :class:`CachedPolicy` rebuilds the index when one of the
four caches has changed since (a cheap generation check per request).

:func:`covers` is the escalation check (``Covers`` in ``rule.go``): whether a set of rules
grants everything another does, used by :mod:`setpoint.api.auth.escalation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from setpoint.api.auth.attributes import RequestAttributes
from setpoint.api.auth.authorizer import Decision
from setpoint.api.auth.user import SERVICE_ACCOUNT_PREFIX, UserInfo
from setpoint.api.watchcache import WatchCache
from setpoint.resources.rbac import CLUSTER_ROLE, GROUP_KIND, ROLE, SERVICE_ACCOUNT, USER

Obj = dict[str, Any]
ALL = "*"


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class Rule:
    """One PolicyRule, ready to match (sets instead of lists)."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    urls: tuple[str, ...]
    source: Obj = field(compare=False, hash=False)

    @classmethod
    def of(cls, rule: Obj) -> Rule:
        return cls(
            frozenset(_strings(rule.get("verbs"))),
            frozenset(_strings(rule.get("apiGroups"))),
            frozenset(_strings(rule.get("resources"))),
            frozenset(_strings(rule.get("resourceNames"))),
            _strings(rule.get("nonResourceURLs")),
            rule,
        )

    def allows(self, attrs: RequestAttributes) -> bool:
        """``RuleAllows``."""
        if ALL not in self.verbs and attrs.verb not in self.verbs:
            return False
        if not attrs.resource_request:
            return any(url_matches(url, attrs.path) for url in self.urls)
        if ALL not in self.groups and attrs.api_group not in self.groups:
            return False
        if not self._resource_matches(attrs.resource_and_subresource, attrs.subresource):
            return False
        return not self.names or attrs.name in self.names

    def _resource_matches(self, combined: str, subresource: str) -> bool:
        """``ResourceMatches``: ``*``, the exact ``resource[/subresource]``, or
        ``*/subresource``."""
        resources = self.resources
        if ALL in resources or combined in resources:
            return True
        return bool(subresource) and f"*/{subresource}" in resources


def url_matches(rule_url: str, path: str) -> bool:
    """``NonResourceURLMatches``."""
    if rule_url in (ALL, path):
        return True
    return rule_url.endswith("*") and path.startswith(rule_url[:-1])


@dataclass(frozen=True)
class Grant:
    """One subject of one binding: the role it grants, and to whom (for the reason an
    access review shows)."""

    binding_kind: str
    binding_name: str
    binding_namespace: str
    role_kind: str
    role_name: str
    subject: str  # as upstream describes it: User "bob", ServiceAccount "sa/ns"

    def describe(self) -> str:
        """``clusterRoleBindingDescriber`` / ``roleBindingDescriber``."""
        if self.binding_kind == "RoleBinding":
            name = f"{self.binding_name}/{self.binding_namespace}"
        else:
            name = self.binding_name
        return (
            f'{self.binding_kind} "{name}" of {self.role_kind} "{self.role_name}" to {self.subject}'
        )


def _subject_keys(subject: Obj, binding_namespace: str) -> tuple[str, str] | None:
    """(index, key) a subject is found by: ("user", name) or ("group", name); None for a
    subject that can match nobody (a ServiceAccount without a namespace in a
    ClusterRoleBinding, an unknown kind)."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if not name:
        return None
    if kind == USER:
        return "user", name
    if kind == GROUP_KIND:
        return "group", name
    if kind == SERVICE_ACCOUNT:
        namespace = str(subject.get("namespace") or binding_namespace)
        if not namespace:
            return None
        return "user", f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"
    return None


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind, name = str(subject.get("kind") or ""), str(subject.get("name") or "")
    if kind == SERVICE_ACCOUNT:
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


class PolicyIndex:
    """Roles by name and bindings by subject, read from the objects once."""

    def __init__(
        self,
        *,
        roles: Iterable[Obj] = (),
        cluster_roles: Iterable[Obj] = (),
        role_bindings: Iterable[Obj] = (),
        cluster_role_bindings: Iterable[Obj] = (),
    ) -> None:
        self.roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self.cluster_roles: dict[str, tuple[Rule, ...]] = {}
        # (index, key) -> grants cluster-wide; (namespace, index, key) -> grants there
        self._cluster: dict[tuple[str, str], list[Grant]] = {}
        self._namespaced: dict[tuple[str, str, str], list[Grant]] = {}
        for role in roles:
            meta = role["metadata"]
            key = (meta.get("namespace") or "", meta["name"])
            self.roles[key] = tuple(Rule.of(r) for r in role.get("rules") or [])
        for role in cluster_roles:
            self.cluster_roles[role["metadata"]["name"]] = tuple(
                Rule.of(r) for r in role.get("rules") or []
            )
        for binding in cluster_role_bindings:
            for key, grant in self._grants(binding, "ClusterRoleBinding", ""):
                self._cluster.setdefault(key, []).append(grant)
        for binding in role_bindings:
            namespace = binding["metadata"].get("namespace") or ""
            for key, grant in self._grants(binding, "RoleBinding", namespace):
                self._namespaced.setdefault((namespace, *key), []).append(grant)

    @staticmethod
    def _grants(binding: Obj, kind: str, namespace: str) -> Iterator[tuple[tuple[str, str], Grant]]:
        ref = binding.get("roleRef") or {}
        role_kind, role_name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if role_kind not in (ROLE, CLUSTER_ROLE) or (role_kind == ROLE and not namespace):
            return
        for subject in binding.get("subjects") or []:
            if not isinstance(subject, dict):
                continue
            key = _subject_keys(subject, namespace)
            if key is not None:
                described = _describe_subject(subject, namespace)
                name = binding["metadata"]["name"]
                yield key, Grant(kind, name, namespace, role_kind, role_name, described)

    def grants_for(self, user: UserInfo, namespace: str) -> Iterator[Grant]:
        """Every binding subject that names ``user`` (by name or group): cluster-wide ones
        first, then those of ``namespace``."""
        keys = [("user", user.name), *(("group", group) for group in user.groups)]
        for key in keys:
            yield from self._cluster.get(key, ())
        if namespace:
            for index, name in keys:
                yield from self._namespaced.get((namespace, index, name), ())

    def rules_of(self, grant: Grant) -> tuple[Rule, ...]:
        """The rules of the role ``grant`` refers to (none if it does not exist)."""
        if grant.role_kind == CLUSTER_ROLE:
            return self.cluster_roles.get(grant.role_name, ())
        return self.roles.get((grant.binding_namespace, grant.role_name), ())

    def rules_for(self, user: UserInfo, namespace: str) -> list[Rule]:
        """``RulesFor``: every rule ``user`` holds in ``namespace`` ("" = cluster-wide)."""
        return [rule for grant in self.grants_for(user, namespace) for rule in self.rules_of(grant)]

    def allowed_by(self, attrs: RequestAttributes) -> Grant | None:
        """The first grant one of whose rules allows ``attrs``, else None."""
        for grant in self.grants_for(attrs.user, attrs.namespace):
            for rule in self.rules_of(grant):
                if rule.allows(attrs):
                    return grant
        return None


class PolicySource(Protocol):
    def index(self) -> PolicyIndex:
        """The index as the roles and bindings are now."""
        ...


class StaticPolicy:
    """A fixed set of roles and bindings (tests, and the escalation check's unit tests)."""

    def __init__(self, index: PolicyIndex) -> None:
        self._index = index

    def index(self) -> PolicyIndex:
        return self._index


class CachedPolicy:
    """The index of what four watch caches (Role, ClusterRole, RoleBinding,
    ClusterRoleBinding) hold, rebuilt on first use after any of them changed."""

    def __init__(
        self,
        *,
        roles: WatchCache | None,
        cluster_roles: WatchCache | None,
        role_bindings: WatchCache | None,
        cluster_role_bindings: WatchCache | None,
    ) -> None:
        self._caches = (roles, cluster_roles, role_bindings, cluster_role_bindings)
        self._built: tuple[int, ...] | None = None
        self._index = PolicyIndex()

    def _generations(self) -> tuple[int, ...]:
        return tuple(c.generation if c is not None else 0 for c in self._caches)

    def index(self) -> PolicyIndex:
        generations = self._generations()
        if generations != self._built:
            roles, cluster_roles, role_bindings, cluster_role_bindings = (
                [cached.obj for cached in cache.items(None)] if cache is not None else []
                for cache in self._caches
            )
            self._index = PolicyIndex(
                roles=roles,
                cluster_roles=cluster_roles,
                role_bindings=role_bindings,
                cluster_role_bindings=cluster_role_bindings,
            )
            self._built = generations
        return self._index


class RBACAuthorizer:
    """Allows what a bound role allows; otherwise no opinion."""

    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        grant = self.policy.index().allowed_by(attrs)
        if grant is not None:
            return Decision.ALLOW, f"RBAC: allowed by {grant.describe()}"
        return Decision.NO_OPINION, ""

    def rules_for(self, user: UserInfo, namespace: str) -> list[Rule]:
        return self.policy.index().rules_for(user, namespace)


# ----------------------------------------------------------------------- escalation


def breakdown(rule: Obj) -> Iterator[Obj]:
    """``BreakdownRule``: one simple rule per verb, group, resource and name (or URL)."""
    verbs = _strings(rule.get("verbs"))
    for group in _strings(rule.get("apiGroups")):
        for resource in _strings(rule.get("resources")):
            for verb in verbs:
                names = _strings(rule.get("resourceNames"))
                if names:
                    for name in names:
                        yield {
                            "verbs": [verb],
                            "apiGroups": [group],
                            "resources": [resource],
                            "resourceNames": [name],
                        }
                else:
                    yield {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
    for url in _strings(rule.get("nonResourceURLs")):
        for verb in verbs:
            yield {"verbs": [verb], "nonResourceURLs": [url]}


def _has_all(owned: frozenset[str], wanted: Sequence[str]) -> bool:
    return all(item in owned for item in wanted)


def _resource_covers_all(owned: frozenset[str], wanted: Sequence[str]) -> bool:
    if ALL in owned or _has_all(owned, wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def rule_covers(owner: Rule, wanted: Obj) -> bool:
    """``ruleCovers``: ``owner`` grants everything the simple rule ``wanted`` does."""
    verbs, groups = _strings(wanted.get("verbs")), _strings(wanted.get("apiGroups"))
    names, urls = _strings(wanted.get("resourceNames")), _strings(wanted.get("nonResourceURLs"))
    if not (ALL in owner.verbs or _has_all(owner.verbs, verbs)):
        return False
    if not (ALL in owner.groups or _has_all(owner.groups, groups)):
        return False
    if not _resource_covers_all(owner.resources, _strings(wanted.get("resources"))):
        return False
    if not all(any(_url_covers(o, u) for o in owner.urls) for u in urls):
        return False
    if not names:
        return not owner.names
    return not owner.names or _has_all(owner.names, names)


def covers(owned: Sequence[Rule], wanted: Iterable[Obj]) -> list[Obj]:
    """``Covers``: the simple rules of ``wanted`` that no rule of ``owned`` grants (empty:
    ``owned`` covers them all)."""
    missing = []
    for rule in wanted:
        for simple in breakdown(rule):
            if not any(rule_covers(owner, simple) for owner in owned):
                missing.append(simple)
    return missing


def _go_strings(values: Sequence[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def compact_string(rule: Obj) -> str:
    """``PolicyRule.CompactString``: ``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}``."""
    parts = []
    for label, key in (
        ("APIGroups", "apiGroups"),
        ("Resources", "resources"),
        ("NonResourceURLs", "nonResourceURLs"),
        ("ResourceNames", "resourceNames"),
        ("Verbs", "verbs"),
    ):
        values = _strings(rule.get(key))
        if values:
            parts.append(f"{label}:{_go_strings(values)}")
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: UserInfo, missing: Sequence[Obj]) -> str:
    """``ConfirmNoEscalation``'s error text."""
    rules = "\n".join(compact_string(rule) for rule in missing)
    return (
        f'user "{user.name}" (groups={_go_strings(user.groups)}) is attempting to grant RBAC '
        f"permissions not currently held:\n{rules}"
    )
