"""The authorization.k8s.io/v1 reviews: asking the authorizer a question over the API, as
kube-apiserver's ``pkg/registry/authorization`` answers them. Nothing is stored; a ``POST``
answers the object it was sent with ``status`` filled in (201).

* SelfSubjectAccessReview — may I? (``kubectl auth can-i VERB RESOURCE``): the caller's own
  identity, ``spec.resourceAttributes`` or ``spec.nonResourceAttributes``.
* SubjectAccessReview — may this user (``spec.user``, ``groups``, ``uid``, ``extra``)?
* LocalSubjectAccessReview — the same, inside the namespace of the URL, which
  ``spec.resourceAttributes.namespace`` must name.
* SelfSubjectRulesReview — what may I do in ``spec.namespace``? (``kubectl auth can-i
  --list``): the rules RBAC gives the caller there and cluster-wide.

Each is authorized like any create first (``system:basic-user`` lets everyone ask about
themselves; asking about others takes ``create`` on subjectaccessreviews).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from setpoint.api import errors, negotiation
from setpoint.api.auth.attributes import RequestAttributes
from setpoint.api.auth.authorizer import Authorizer, Decision
from setpoint.api.auth.rbac import RBACAuthorizer
from setpoint.api.auth.user import UserInfo, request_user
from setpoint.api.bodies import read_body
from setpoint.resources.fielderrors import FieldError, invalid
from setpoint.resources.registry import ResourceType

Obj = dict[str, Any]
SELF_RULES = "selfsubjectrulesreviews"
SELF_ACCESS = "selfsubjectaccessreviews"
LOCAL_ACCESS = "localsubjectaccessreviews"


class AccessReviews:
    def __init__(self, authorizer: Authorizer, rbac: RBACAuthorizer) -> None:
        self.authorizer = authorizer
        self.rbac = rbac

    def handler(
        self, rtype: ResourceType
    ) -> Callable[[web.BaseRequest, str | None], Awaitable[web.Response]]:
        """What answers a create of the review kind ``rtype`` (see ``APIServer.unstored``)."""

        async def answer(request: web.BaseRequest, namespace: str | None) -> web.Response:
            return await self.serve(request, rtype, namespace)

        return answer

    async def serve(
        self, request: web.BaseRequest, rtype: ResourceType, namespace: str | None
    ) -> web.Response:
        if request.method != "POST":
            raise errors.method_not_allowed(request.method)
        caller = request_user(request)
        assert caller is not None  # every /apis request is authenticated first
        body = await read_body(request)
        if not isinstance(body, dict):
            raise errors.bad_request("the request body is not a JSON object")
        kind = body.get("kind")
        if kind not in (None, rtype.kind):
            raise errors.bad_request(f"the body is a {kind}, not a {rtype.kind}")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        if rtype.plural == SELF_RULES:
            status = self._rules(caller, str(spec.get("namespace") or ""))
        else:
            status = self._access(rtype, caller, spec, namespace)
        out: Obj = {
            "kind": rtype.kind,
            "apiVersion": rtype.api_version,
            "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
        return web.Response(body=orjson.dumps(out), status=201, content_type=negotiation.JSON)

    def _rules(self, user: UserInfo, namespace: str) -> Obj:
        resource_rules, non_resource_rules = [], []
        for rule in self.rbac.rules_for(user, namespace):
            source = rule.source
            if rule.urls:
                non_resource_rules.append(
                    {"verbs": list(source.get("verbs") or []), "nonResourceURLs": list(rule.urls)}
                )
                continue
            entry: Obj = {"verbs": list(source.get("verbs") or [])}
            for key in ("apiGroups", "resources", "resourceNames"):
                if source.get(key):
                    entry[key] = list(source[key])
            resource_rules.append(entry)
        return {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": False,
        }

    def _access(
        self, rtype: ResourceType, caller: UserInfo, spec: Obj, namespace: str | None
    ) -> Obj:
        resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        problems: list[FieldError] = []
        if resource is not None and non_resource is not None:
            detail = "cannot be specified in combination with resourceAttributes"
            problems.append(invalid("spec.nonResourceAttributes", non_resource, detail))
        elif resource is None and non_resource is None:
            detail = "exactly one of nonResourceAttributes or resourceAttributes must be specified"
            problems.append(invalid("spec.resourceAttributes", None, detail))
        if rtype.plural == SELF_ACCESS:
            user = caller
        else:
            user = _subject(spec)
            if not user.name and not user.groups:
                detail = "at least one of user or group must be specified"
                problems.append(invalid("spec.user", "", detail))
        if rtype.plural == LOCAL_ACCESS:
            if non_resource is not None:
                detail = "disallowed on this kind of request"
                problems.append(invalid("spec.nonResourceAttributes", non_resource, detail))
            elif isinstance(resource, dict) and (resource.get("namespace") or "") != namespace:
                raise errors.bad_request(
                    f"spec.resourceAttributes.namespace must match namespace: {namespace}"
                )
        if problems:
            raise errors.invalid(rtype, "", problems)
        attrs = _attributes(user, resource, non_resource)
        decision, reason = self.authorizer.authorize(attrs)
        status: Obj = {"allowed": decision is Decision.ALLOW}
        if reason:
            status["reason"] = reason
        return status


def _subject(spec: Obj) -> UserInfo:
    extra = spec.get("extra") or {}
    pairs = (
        tuple(sorted((str(k), tuple(str(v) for v in values or ())) for k, values in extra.items()))
        if isinstance(extra, dict)
        else ()
    )
    groups = spec.get("groups") or []
    return UserInfo(
        str(spec.get("user") or ""),
        tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        str(spec.get("uid") or ""),
        pairs,
    )


def _attributes(user: UserInfo, resource: Any, non_resource: Any) -> RequestAttributes:
    if isinstance(non_resource, dict):
        return RequestAttributes(
            user, str(non_resource.get("verb") or ""), path=str(non_resource.get("path") or "")
        )
    attrs = resource if isinstance(resource, dict) else {}
    return RequestAttributes(
        user,
        str(attrs.get("verb") or ""),
        resource_request=True,
        api_group=str(attrs.get("group") or ""),
        api_version=str(attrs.get("version") or ""),
        resource=str(attrs.get("resource") or ""),
        subresource=str(attrs.get("subresource") or ""),
        namespace=str(attrs.get("namespace") or ""),
        name=str(attrs.get("name") or ""),
    )
