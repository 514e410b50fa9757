"""Escalation prevention: nobody grants through RBAC what they do not hold themselves, as
kube-apiserver's policy-based storage of roles and bindings ensures
(``pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased``).

An admission plugin (its ``validate`` step) over writes of the four RBAC kinds:

* Creating or updating a Role or ClusterRole whose rules the writer does not hold (in the
  role's namespace, or cluster-wide) is 403 — unless the writer may ``escalate`` roles
  (clusterroles) by that name. An update that leaves the rules alone is not checked. A
  ClusterRole with an ``aggregationRule`` may be written only by who may ``escalate``.
* Creating or updating a RoleBinding or ClusterRoleBinding is 403 unless the writer holds
  every rule of the role it refers to (in the binding's namespace) — or may ``bind`` that
  role. A binding to a role that does not exist is then 400.

``system:masters`` and the API server's own writes pass unchecked. The 403 reads as upstream's:
``user "bob" (groups=[...]) is attempting to grant RBAC permissions not currently held:``
followed by each missing rule.
"""

from __future__ import annotations

from setpoint.api import errors
from setpoint.api.admission import DELETE, AdmissionRequest
from setpoint.api.auth.attributes import RequestAttributes
from setpoint.api.auth.authorizer import Authorizer, Decision
from setpoint.api.auth.rbac import RBACAuthorizer, covers, escalation_message
from setpoint.api.auth.user import SYSTEM_MASTERS, UserInfo
from setpoint.resources.rbac import CLUSTER_ROLE, GROUP, ROLE


class RBACEscalationCheck:
    """The admission plugin; ``authorizer`` answers ``escalate``/``bind``, ``rbac`` says
    which rules a user holds."""

    def __init__(self, authorizer: Authorizer, rbac: RBACAuthorizer) -> None:
        self.authorizer = authorizer
        self.rbac = rbac

    async def admit(self, request: AdmissionRequest) -> None:
        return None

    async def validate(self, request: AdmissionRequest) -> None:
        user, obj = request.user, request.obj
        if request.rtype.group != GROUP or request.operation == DELETE or obj is None:
            return
        if user is None or SYSTEM_MASTERS in user.groups:
            return
        namespace = request.namespace or ""
        if request.rtype.kind in (ROLE, CLUSTER_ROLE):
            self._check_role(request, user, namespace)
        else:
            self._check_binding(request, user, namespace)

    def _allowed(self, user: UserInfo, verb: str, resource: str, namespace: str, name: str) -> bool:
        attrs = RequestAttributes(
            user,
            verb,
            resource_request=True,
            api_group=GROUP,
            api_version="v1",
            resource=resource,
            namespace=namespace,
            name=name,
        )
        return self.authorizer.authorize(attrs)[0] is Decision.ALLOW

    def _check_role(self, request: AdmissionRequest, user: UserInfo, namespace: str) -> None:
        obj, old = request.obj or {}, request.old
        if old is not None and (old.get("rules"), old.get("aggregationRule")) == (
            obj.get("rules"),
            obj.get("aggregationRule"),
        ):
            return  # only metadata changed (the garbage collector, labels)
        plural = request.rtype.plural
        if self._allowed(user, "escalate", plural, namespace, request.name):
            return
        if obj.get("aggregationRule"):
            raise errors.forbidden_object(
                request.rtype,
                request.name,
                "must have cluster-admin privileges to use the aggregationRule",
            )
        missing = covers(self.rbac.rules_for(user, namespace), obj.get("rules") or [])
        if missing:
            raise errors.forbidden_object(
                request.rtype, request.name, escalation_message(user, missing)
            )

    def _check_binding(self, request: AdmissionRequest, user: UserInfo, namespace: str) -> None:
        ref = (request.obj or {}).get("roleRef") or {}
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        resource = "roles" if kind == ROLE else "clusterroles"
        if self._allowed(user, "bind", resource, namespace, name):
            return
        index = self.rbac.policy.index()
        if kind == ROLE:
            rules = index.roles.get((namespace, name))
        else:
            rules = index.cluster_roles.get(name)
        if rules is None:
            raise errors.bad_request(f'{resource}.{GROUP} "{name}" not found')
        missing = covers(self.rbac.rules_for(user, namespace), [rule.source for rule in rules])
        if missing:
            raise errors.forbidden_object(
                request.rtype, request.name, escalation_message(user, missing)
            )
