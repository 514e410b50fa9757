"""The OpenAPI documents the API server publishes, built from the official Kubernetes schema.

Kubernetes clients learn about a server from its OpenAPI documents. kubectl reads the
OpenAPI v3 document of a group-version to decide whether the server validates fields itself
(it looks for a PATCH operation tagged with the kind's ``x-kubernetes-group-version-kind`` whose
parameters include ``fieldValidation``), to compute client-side apply patches (merge keys and
patch strategies from the ``x-kubernetes-patch-*`` extensions, found through the PATCH
operation that accepts ``application/strategic-merge-patch+json``), and to render
``kubectl explain`` (the operation's GVK names the schema, whose own
``x-kubernetes-group-version-kind`` list identifies it among ``components.schemas``). The
single Swagger 2.0 document at ``/openapi/v2`` carries the same information for older tools.

Nothing here is written by hand: the schemas come from the JSON Schema definitions shipped in
the ``kubernetes-validate`` package (the same source the validation code uses, exposed through
:func:`setpoint.resources.schema.load_definitions`), reduced to the kinds this server
serves and everything they reference, and converted the way the real apiserver emits them:
nullable ``["string", "null"]`` types become plain types, ``#/$defs/`` references become
``#/definitions/`` (v2) or ``#/components/schemas/`` (v3, wrapped in a one-element ``allOf`` when
the reference carries its own description or extensions), ``IntOrString`` and ``Quantity`` take
their apiserver shapes, and the ``apiVersion``/``kind`` enums the validation package adds are
dropped. The paths mirror the apiserver's route table for every served resource and verb,
with the operation ids, actions and query parameters Kubernetes documents.

:func:`build_openapi` produces every document at once, already serialized with sorted keys,
together with the SHA-512 hashes (upper-case hex, as kube-openapi computes them) that the v3
root advertises in each ``serverRelativeURL`` and that double as ETags, so the HTTP handlers
only pick bytes and compare ``If-None-Match``. The v2 document is also served in gnostic's
protobuf encoding (:mod:`setpoint.api.discovery.openapi_pb`), which client-go's discovery
client asks for; that encoding is made from the JSON bytes on first request and kept.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from setpoint.api.discovery import openapi_pb
from setpoint.resources.registry import Registry, ResourceType
from setpoint.resources.schema import Schema, load_definitions

_DEFS_PREFIX: Final = "#/$defs/"
_V2_PREFIX: Final = "#/definitions/"
_V3_PREFIX: Final = "#/components/schemas/"

_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS: Final = _META + "Status"
DELETE_OPTIONS: Final = _META + "DeleteOptions"
WATCH_EVENT: Final = _META + "WatchEvent"
PATCH: Final = _META + "Patch"
API_RESOURCE_LIST: Final = _META + "APIResourceList"
SCALE: Final = "io.k8s.api.autoscaling.v1.Scale"
BINDING: Final = "io.k8s.api.core.v1.Binding"
EVICTION: Final = "io.k8s.api.policy.v1.Eviction"
TOKEN_REQUEST: Final = "io.k8s.api.authentication.v1.TokenRequest"
INT_OR_STRING: Final = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY: Final = "io.k8s.apimachinery.pkg.api.resource.Quantity"

_SCALE_GVK: Final = {"group": "autoscaling", "kind": "Scale", "version": "v1"}
_BINDING_GVK: Final = {"group": "", "kind": "Binding", "version": "v1"}
_EVICTION_GVK: Final = {"group": "policy", "kind": "Eviction", "version": "v1"}
_TOKEN_REQUEST_GVK: Final = {
    "group": "authentication.k8s.io",
    "kind": "TokenRequest",
    "version": "v1",
}
# subresources that take a POST of a kind of their own: its definition, GVK and kind
_CREATE_SUBRESOURCES: Final = {
    "binding": (BINDING, _BINDING_GVK, "Binding"),
    "eviction": (EVICTION, _EVICTION_GVK, "Eviction"),
    "token": (TOKEN_REQUEST, _TOKEN_REQUEST_GVK, "TokenRequest"),
}

# What the server answers with. It speaks JSON only, so that is all the documents promise.
_JSON: Final = "application/json"
_WATCH_STREAM: Final = "application/json;stream=watch"
_PATCH_TYPES: Final = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)

Flavor = Literal["v2", "v3"]


# -- JSON Schema -> OpenAPI schema conversion ------------------------------------------------

_INT_OR_STRING_DESCRIPTION: Final = (
    "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML "
    "marshalling and unmarshalling, it produces or consumes the inner type.  This allows you "
    "to have, for example, a JSON field that can accept a name or number."
)
_QUANTITY_DESCRIPTION: Final = (
    "Quantity is a fixed-point representation of a number. It provides convenient "
    "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() "
    "accessors.\n\nThe serialization format is:\n\n``` <quantity>        ::= "
    '<signedNumber><suffix>\n\n\t(Note that <suffix> may be empty, from the "" case in '
    "<decimalSI>.)\n\n<digit>           ::= 0 | 1 | ... | 9 <digits>          ::= <digit> | "
    "<digit><digits> <number>          ::= <digits> | <digits>.<digits> | <digits>. | "
    '<digits> <sign>            ::= "+" | "-" <signedNumber>    ::= <number> | '
    "<sign><number> <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI> "
    "<binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n\t(International System of units; "
    'See: http://physics.nist.gov/cuu/Units/binary.html)\n\n<decimalSI>       ::= m | "" | '
    "k | M | G | T | P | E\n\n\t(Note that 1024 = 1Ki but 1000 = 1k; I didn't choose the "
    'capitalization.)\n\n<decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber> '
    "```\n\nNo matter which of the three exponent forms is used, no quantity may represent a "
    "number greater than 2^63-1 in magnitude, nor may it have more than 3 decimal places. "
    "Numbers larger or more precise will be capped or rounded up. (E.g.: 0.1m will rounded up "
    "to 1m.) This may be extended in the future if we require larger or smaller quantities."
    "\n\nWhen a Quantity is parsed from a string, it will remember the type of suffix it had, "
    "and will use the same type again when it is serialized."
)

# The apiserver's shapes for the two scalar unions (kube-openapi's OpenAPISchemaType /
# OpenAPIV3OneOfTypes of intstr.IntOrString and resource.Quantity).
_SPECIAL: Final[dict[tuple[str, Flavor], Schema]] = {
    (INT_OR_STRING, "v2"): {
        "description": _INT_OR_STRING_DESCRIPTION,
        "format": "int-or-string",
        "type": "string",
    },
    (INT_OR_STRING, "v3"): {
        "description": _INT_OR_STRING_DESCRIPTION,
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    (QUANTITY, "v2"): {"description": _QUANTITY_DESCRIPTION, "type": "string"},
    (QUANTITY, "v3"): {
        "description": _QUANTITY_DESCRIPTION,
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}

_SUBSCHEMA_KEYS: Final = frozenset({"items", "additionalProperties", "not"})
_SUBSCHEMA_LIST_KEYS: Final = frozenset({"allOf", "anyOf", "oneOf"})


def _plain_type(value: Any) -> str | None:
    """``["string", "null"]`` -> ``"string"``; OpenAPI has no null type."""
    if isinstance(value, str):
        return None if value == "null" else value
    kinds = [v for v in value if v != "null"]
    return kinds[0] if len(kinds) == 1 else None


def _convert(node: Any, flavor: Flavor) -> Any:
    """Convert one JSON Schema node to its OpenAPI ``flavor`` equivalent (a new object)."""
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "type":
            plain = _plain_type(value)
            if plain is not None:
                out["type"] = plain
        elif key == "$ref":
            name = value.removeprefix(_DEFS_PREFIX)
            out["$ref"] = (_V2_PREFIX if flavor == "v2" else _V3_PREFIX) + name
        elif key == "enum":
            values = [v for v in value if v is not None]
            if values:
                out["enum"] = values
        elif key == "properties":
            out["properties"] = {name: _convert(sub, flavor) for name, sub in value.items()}
        elif key in _SUBSCHEMA_KEYS:
            out[key] = _convert(value, flavor)
        elif key in _SUBSCHEMA_LIST_KEYS:
            out[key] = [_convert(sub, flavor) for sub in value]
        else:
            out[key] = value
    if flavor == "v3" and "$ref" in out and len(out) > 1:
        # OpenAPI 3.0 ignores siblings of $ref; the apiserver wraps such references.
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


@functools.cache
def _definition(name: str, flavor: Flavor) -> Schema:
    """One official definition in OpenAPI ``flavor`` form (cached; read-only)."""
    special = _SPECIAL.get((name, flavor))
    if special is not None:
        return special
    converted: Schema = _convert(load_definitions()[name], flavor)
    if "x-kubernetes-group-version-kind" in converted:
        # kubernetes-validate pins apiVersion/kind with enums; the apiserver does not.
        for field_name in ("apiVersion", "kind"):
            prop = converted.get("properties", {}).get(field_name)
            if prop is not None and "enum" in prop:
                converted["properties"][field_name] = {k: v for k, v in prop.items() if k != "enum"}
    return converted


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.removeprefix(_DEFS_PREFIX)
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@functools.cache
def _direct_refs(name: str) -> frozenset[str]:
    return frozenset(_refs(load_definitions()[name]))


def closure(roots: Iterable[str]) -> list[str]:
    """``roots`` and every definition they reference, transitively, sorted by name."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(_direct_refs(name) - seen)
    return sorted(seen)


# -- the route table --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str
    location: Literal["path", "query"]
    type: str
    description: str


@dataclass(frozen=True)
class _Operation:
    method: Literal["get", "post", "put", "patch", "delete"]
    operation_id: str
    description: str
    action: str  # x-kubernetes-action
    gvk: Mapping[str, str] | None
    tag: str
    params: tuple[_Param, ...] = ()
    body: str | None = None  # definition name of the request body
    body_kind: Literal["object", "patch", "options"] = "object"
    responses: tuple[tuple[str, str | None], ...] = ()  # (HTTP code, definition name)
    streams: bool = False  # a list or watch: also answers application/json;stream=watch


@dataclass(frozen=True)
class _Path:
    path: str
    params: tuple[_Param, ...]
    operations: tuple[_Operation, ...]


def _query(name: str, type_: str, description: str) -> _Param:
    return _Param(name, "query", type_, description)


_P_ALLOW_WATCH_BOOKMARKS = _query(
    "allowWatchBookmarks",
    "boolean",
    'allowWatchBookmarks requests watch events with type "BOOKMARK". Servers that do not '
    "implement bookmarks may ignore this flag and bookmarks are sent at the server's "
    "discretion. Clients should not assume bookmarks are returned at any specific interval, "
    "nor may they assume the server will send any BOOKMARK event during a session. If this is "
    "not a watch, this field is ignored.",
)
_P_CONTINUE = _query(
    "continue",
    "string",
    "The continue option should be set when retrieving more results from the server. Since "
    "this value is server defined, clients may only use the continue value from a previous "
    "query result with identical query parameters (except for the value of continue) and the "
    "server may reject a continue value it does not recognize. If the specified continue "
    "value is no longer valid whether due to expiration (generally five to fifteen minutes) "
    "or a configuration change on the server, the server will respond with a 410 "
    "ResourceExpired error together with a continue token. If the client needs a consistent "
    "list, it must restart their list without the continue field. Otherwise, the client may "
    "send another list request with the token received with the 410 error, the server will "
    "respond with a list starting from the next key, but from the latest snapshot, which is "
    "inconsistent from the previous list results - objects that are created, modified, or "
    "deleted after the first list request will be included in the response, as long as their "
    'keys are after the "next key".\n\nThis field is not supported when watch is true. '
    "Clients may start a watch from the last resourceVersion value returned by the server and "
    "not miss any modifications.",
)
_P_DRY_RUN = _query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. An invalid or "
    "unrecognized dryRun directive will result in an error response and no further "
    "processing of the request. Valid values are: - All: all dry run stages will be processed",
)
_FIELD_MANAGER = (
    "fieldManager is a name associated with the actor or entity that is making these "
    "changes. The value must be less than or 128 characters long, and only contain printable "
    "characters, as defined by https://golang.org/pkg/unicode/#IsPrint."
)
_P_FIELD_MANAGER = _query("fieldManager", "string", _FIELD_MANAGER)
_P_FIELD_MANAGER_PATCH = _query(
    "fieldManager",
    "string",
    _FIELD_MANAGER + " This field is required for apply requests (application/apply-patch) "
    "but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).",
)
_P_FIELD_SELECTOR = _query(
    "fieldSelector",
    "string",
    "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
)
_P_FIELD_VALIDATION = _query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: "
    "This will ignore any unknown fields that are silently dropped from the object, and will "
    "ignore all but the last duplicate field that the decoder encounters. This is the "
    "default behavior prior to v1.23. - Warn: This will send a warning via the standard "
    "warning response header for each unknown field that is dropped from the object, and for "
    "each duplicate field that is encountered. The request will still succeed if there are "
    "no other errors, and will only persist the last of any duplicate fields. This is the "
    "default in v1.23+ - Strict: This will fail the request with a BadRequest error if any "
    "unknown fields would be dropped from the object, or if any duplicate fields are present. "
    "The error returned from the server will contain all unknown and duplicate fields "
    "encountered.",
)
_P_FORCE = _query(
    "force",
    "boolean",
    'Force is going to "force" Apply requests. It means user will re-acquire conflicting '
    "fields owned by other people. Force flag must be unset for non-apply patch requests.",
)
_P_GRACE_PERIOD = _query(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted. Value must be non-negative "
    "integer. The value zero indicates delete immediately. If this value is nil, the default "
    "grace period for the specified type will be used. Defaults to a per object value if not "
    "specified. zero means delete immediately.",
)
_P_IGNORE_STORE_READ_ERROR = _query(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "boolean",
    "if set to true, it will trigger an unsafe deletion of the resource in case the normal "
    "deletion flow fails with a corrupt object error. A resource is considered corrupt if it "
    "can not be retrieved from the underlying storage successfully because of a) its data "
    "can not be transformed e.g. decryption failure, or b) it fails to decode into an object. "
    "NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and "
    "removes the object from the storage. WARNING: This may potentially break the cluster if "
    "the workload associated with the resource being unsafe-deleted relies on normal deletion "
    "flow. Use only if you REALLY know what you are doing. The default value is false, and "
    "the user must opt in to enable it",
)
_P_LABEL_SELECTOR = _query(
    "labelSelector",
    "string",
    "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
)
_P_LIMIT = _query(
    "limit",
    "integer",
    "limit is a maximum number of responses to return for a list call. If more items exist, "
    "the server will set the `continue` field on the list metadata to a value that can be "
    "used with the same initial query to retrieve the next set of results. Setting a limit "
    "may return fewer than the requested amount of items (up to zero items) in the event all "
    "requested objects are filtered out and clients should only use the presence of the "
    "continue field to determine whether more results are available. Servers may choose not "
    "to support the limit argument and will return all of the available results. If limit is "
    "specified and the continue field is empty, clients may assume that no more results are "
    "available. This field is not supported if watch is true.\n\nThe server guarantees that "
    "the objects returned when using continue will be identical to issuing a single list call "
    "without a limit - that is, no objects created, modified, or deleted after the first "
    "request is issued will be included in any subsequent continued requests. This is "
    "sometimes referred to as a consistent snapshot, and ensures that a client that is using "
    "limit to receive smaller chunks of a very large result can ensure they see all possible "
    "objects. If objects are updated during a chunked list the version of the object that "
    "was present at the time the first list result was calculated is returned.",
)
_P_ORPHAN_DEPENDENTS = _query(
    "orphanDependents",
    "boolean",
    "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. "
    'Should the dependent objects be orphaned. If true/false, the "orphan" finalizer will be '
    "added to/removed from the object's finalizers list. Either this field or "
    "PropagationPolicy may be set, but not both.",
)
_P_PRETTY = _query(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent "
    "indicates a browser or command-line HTTP tool (curl and wget).",
)
_P_PROPAGATION_POLICY = _query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed. Either this field or "
    "OrphanDependents may be set, but not both. The default policy is decided by the "
    "existing finalizer set in the metadata.finalizers and the resource-specific default "
    "policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow "
    "the garbage collector to delete the dependents in the background; 'Foreground' - a "
    "cascading policy that deletes all dependents in the foreground.",
)
_P_RESOURCE_VERSION = _query(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served "
    "from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions "
    "for details.\n\nDefaults to unset",
)
_P_RESOURCE_VERSION_MATCH = _query(
    "resourceVersionMatch",
    "string",
    "resourceVersionMatch determines how resourceVersion is applied to list calls. It is "
    "highly recommended that resourceVersionMatch be set for list calls where "
    "resourceVersion is set See "
    "https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for "
    "details.\n\nDefaults to unset",
)
_P_SEND_INITIAL_EVENTS = _query(
    "sendInitialEvents",
    "boolean",
    "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch "
    "stream will begin with synthetic events to produce the current state of objects in the "
    'collection. Once all such events have been sent, a synthetic "Bookmark" event  will be '
    "sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of "
    'objects, and be marked with `"k8s.io/initial-events-end": "true"` annotation. '
    "Afterwards, the watch stream will proceed as usual, sending watch events corresponding "
    "to changes (subsequent to the RV) to objects watched.\n\nWhen `sendInitialEvents` option "
    "is set, we require `resourceVersionMatch` option to also be set. The semantic of the "
    "watch request is as following: - `resourceVersionMatch` = NotOlderThan\n  is interpreted "
    'as "data at least as new as the provided `resourceVersion`"\n  and the bookmark event is '
    "send when the state is synced\n  to a `resourceVersion` at least as fresh as the one "
    'provided by the ListOptions.\n  If `resourceVersion` is unset, this is interpreted as "'
    'consistent read" and the\n  bookmark event is send when the state is synced at least '
    "to the moment\n  when request started being processed.\n- `resourceVersionMatch` set to "
    "any other value or unset\n  Invalid error is returned.\n\nDefaults to true if "
    '`resourceVersion=""` or `resourceVersion="0"` (for backward compatibility reasons) and '
    "to false otherwise.",
)
_P_TIMEOUT_SECONDS = _query(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call. This limits the duration of the call, regardless of "
    "any activity or inactivity.",
)
_P_WATCH = _query(
    "watch",
    "boolean",
    "Watch for changes to the described resources and return them as a stream of add, "
    "update, and remove notifications. Specify resourceVersion.",
)
_P_NAMESPACE = _Param(
    "namespace", "path", "string", "object name and auth scope, such as for teams and projects"
)

_LIST_PARAMS: Final = (
    _P_ALLOW_WATCH_BOOKMARKS,
    _P_CONTINUE,
    _P_FIELD_SELECTOR,
    _P_LABEL_SELECTOR,
    _P_LIMIT,
    _P_RESOURCE_VERSION,
    _P_RESOURCE_VERSION_MATCH,
    _P_SEND_INITIAL_EVENTS,
    _P_TIMEOUT_SECONDS,
    _P_WATCH,
)
_WRITE_PARAMS: Final = (_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION)
_PATCH_PARAMS: Final = (_P_DRY_RUN, _P_FIELD_MANAGER_PATCH, _P_FIELD_VALIDATION, _P_FORCE)
_DELETE_PARAMS: Final = (
    _P_DRY_RUN,
    _P_GRACE_PERIOD,
    _P_IGNORE_STORE_READ_ERROR,
    _P_ORPHAN_DEPENDENTS,
    _P_PROPAGATION_POLICY,
)
_DELETE_COLLECTION_PARAMS: Final = (
    _P_CONTINUE,
    _P_DRY_RUN,
    _P_FIELD_SELECTOR,
    _P_GRACE_PERIOD,
    _P_IGNORE_STORE_READ_ERROR,
    _P_LABEL_SELECTOR,
    _P_LIMIT,
    _P_ORPHAN_DEPENDENTS,
    _P_PROPAGATION_POLICY,
    _P_RESOURCE_VERSION,
    _P_RESOURCE_VERSION_MATCH,
    _P_SEND_INITIAL_EVENTS,
    _P_TIMEOUT_SECONDS,
)


def _sorted(params: Iterable[_Param]) -> tuple[_Param, ...]:
    return tuple(sorted(params, key=lambda p: p.name))


def _name_param(kind: str) -> _Param:
    return _Param("name", "path", "string", f"name of the {kind}")


def _group_prefix(group: str) -> str:
    """The group part of operation ids: ``""`` -> Core, ``rbac.authorization.k8s.io`` ->
    RbacAuthorization."""
    if not group:
        return "Core"
    parts = group.removesuffix(".k8s.io").split(".")
    return "".join(p[:1].upper() + p[1:] for p in parts)


def _tag(group: str, version: str) -> str:
    """The operation tag: ``core_v1``, ``apps_v1``, ``rbacAuthorization_v1``."""
    prefix = _group_prefix(group)
    return f"{prefix[:1].lower()}{prefix[1:]}_{version}"


def group_version_path(group: str, version: str) -> str:
    """The v3 document key of a group-version: ``api/v1`` or ``apis/apps/v1``."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _gvk(t: ResourceType) -> dict[str, str]:
    return {"group": t.group, "kind": t.kind, "version": t.version}


def _operation_prefix(group: str, version: str) -> str:
    """``AppsV1``, ``CoreV1``, ``CoordinationV1``: the middle of every operation id."""
    return f"{_group_prefix(group)}{version[:1].upper()}{version[1:]}"


_OK: Final = "200"
_CREATED: Final = "201"
_ACCEPTED: Final = "202"


@dataclass(frozen=True)
class _Routes:
    """Builds the apiserver's routes for one resource type."""

    t: ResourceType

    @property
    def base(self) -> str:
        return "/" + group_version_path(self.t.group, self.t.version)

    @property
    def collection(self) -> str:
        if self.t.namespaced:
            return f"{self.base}/namespaces/{{namespace}}/{self.t.plural}"
        return f"{self.base}/{self.t.plural}"

    @property
    def item(self) -> str:
        return f"{self.collection}/{{name}}"

    @property
    def scope(self) -> tuple[_Param, ...]:
        return (_P_NAMESPACE,) if self.t.namespaced else ()

    def op(
        self,
        method: Literal["get", "post", "put", "patch", "delete"],
        verb: str,
        action: str,
        description: str,
        *,
        scoped: bool = True,
        infix: str = "",
        suffix: str = "",
        gvk: Mapping[str, str] | None = None,
        params: tuple[_Param, ...] = (),
        body: str | None = None,
        body_kind: Literal["object", "patch", "options"] = "object",
        responses: tuple[tuple[str, str | None], ...] = (),
        streams: bool = False,
    ) -> _Operation:
        """One operation; its id reads ``<verb><GroupVersion><infix>[Namespaced]<Kind><suffix>``."""
        t = self.t
        namespaced = "Namespaced" if scoped and t.namespaced else ""
        prefix = _operation_prefix(t.group, t.version)
        return _Operation(
            method=method,
            operation_id=f"{verb}{prefix}{infix}{namespaced}{t.kind}{suffix}",
            description=description,
            action=action,
            gvk=gvk if gvk is not None else _gvk(t),
            tag=_tag(t.group, t.version),
            params=params,
            body=body,
            body_kind=body_kind,
            responses=responses,
            streams=streams,
        )

    def collection_path(self) -> _Path | None:
        t, verbs, kind = self.t, set(self.t.verbs), self.t.kind
        ops = []
        if "deletecollection" in verbs:
            ops.append(
                self.op(
                    "delete",
                    "delete",
                    "deletecollection",
                    f"delete collection of {kind}",
                    infix="Collection",
                    params=_DELETE_COLLECTION_PARAMS,
                    body=DELETE_OPTIONS,
                    body_kind="options",
                    responses=((_OK, STATUS),),
                )
            )
        if "list" in verbs:
            ops.append(
                self.op(
                    "get",
                    "list",
                    "list",
                    f"list or watch objects of kind {kind}",
                    params=_LIST_PARAMS,
                    responses=((_OK, t.definition + "List"),),
                    streams=True,
                )
            )
        if "create" in verbs:
            ops.append(
                self.op(
                    "post",
                    "create",
                    "post",
                    f"create a {kind}",
                    params=_WRITE_PARAMS,
                    body=t.definition,
                    responses=tuple((code, t.definition) for code in (_OK, _CREATED, _ACCEPTED)),
                )
            )
        if not ops:
            return None
        return _Path(self.collection, _sorted((*self.scope, _P_PRETTY)), tuple(ops))

    def item_path(self) -> _Path | None:
        t, verbs, kind = self.t, set(self.t.verbs), self.t.kind
        ops = []
        if "delete" in verbs:
            ops.append(
                self.op(
                    "delete",
                    "delete",
                    "delete",
                    f"delete a {kind}",
                    params=_DELETE_PARAMS,
                    body=DELETE_OPTIONS,
                    body_kind="options",
                    responses=((_OK, STATUS), (_ACCEPTED, STATUS)),
                )
            )
        if "get" in verbs:
            ops.append(
                self.op(
                    "get",
                    "read",
                    "get",
                    f"read the specified {kind}",
                    responses=((_OK, t.definition),),
                )
            )
        if "patch" in verbs:
            ops.append(self._patch(f"partially update the specified {kind}", t.definition))
        if "update" in verbs:
            ops.append(self._replace(f"replace the specified {kind}", t.definition))
        if not ops:
            return None
        params = _sorted((_name_param(kind), *self.scope, _P_PRETTY))
        return _Path(self.item, params, tuple(ops))

    def _patch(self, description: str, definition: str, **kw: Any) -> _Operation:
        return self.op(
            "patch",
            "patch",
            "patch",
            description,
            params=_PATCH_PARAMS,
            body=PATCH,
            body_kind="patch",
            responses=((_OK, definition), (_CREATED, definition)),
            **kw,
        )

    def _replace(self, description: str, definition: str, **kw: Any) -> _Operation:
        return self.op(
            "put",
            "replace",
            "put",
            description,
            params=_WRITE_PARAMS,
            body=definition,
            responses=((_OK, definition), (_CREATED, definition)),
            **kw,
        )

    def list_everywhere_path(self) -> _Path | None:
        """``/apis/<g>/<v>/<plural>``: a namespaced resource listed across namespaces."""
        t = self.t
        if not t.namespaced or "list" not in t.verbs:
            return None
        op = self.op(
            "get",
            "list",
            "list",
            f"list or watch objects of kind {t.kind}",
            scoped=False,
            suffix="ForAllNamespaces",
            responses=((_OK, t.definition + "List"),),
            streams=True,
        )
        return _Path(f"{self.base}/{t.plural}", _sorted((*_LIST_PARAMS, _P_PRETTY)), (op,))

    def watch_paths(self) -> list[_Path]:
        """The deprecated ``/watch/`` endpoints (kept: clients and docs still name them)."""
        t = self.t
        if "watch" not in t.verbs:
            return []
        params = (*_LIST_PARAMS, _P_PRETTY)
        watched = self.collection.replace(self.base, f"{self.base}/watch", 1)
        watchlist = (
            f"watch individual changes to a list of {t.kind}. deprecated: use the 'watch' "
            "parameter with a list operation instead."
        )
        watch_one = (
            f"watch changes to an object of kind {t.kind}. deprecated: use the 'watch' "
            "parameter with a list operation instead, filtered to a single item with the "
            "'fieldSelector' parameter."
        )
        events = ((_OK, WATCH_EVENT),)
        paths = [
            _Path(
                watched,
                _sorted((*params, *self.scope)),
                (
                    self.op(
                        "get",
                        "watch",
                        "watchlist",
                        watchlist,
                        suffix="List",
                        responses=events,
                        streams=True,
                    ),
                ),
            ),
            _Path(
                f"{watched}/{{name}}",
                _sorted((*params, *self.scope, _name_param(t.kind))),
                (self.op("get", "watch", "watch", watch_one, responses=events, streams=True),),
            ),
        ]
        if t.namespaced:
            op = self.op(
                "get",
                "watch",
                "watchlist",
                watchlist,
                scoped=False,
                suffix="ListForAllNamespaces",
                responses=events,
                streams=True,
            )
            paths.append(_Path(f"{self.base}/watch/{t.plural}", _sorted(params), (op,)))
        return paths

    def subresource_path(self, sub: str) -> _Path | None:
        t, title = self.t, sub.capitalize()
        path = f"{self.item}/{sub}"
        scope = (*self.scope, _P_PRETTY)
        if sub in ("status", "scale", *t.spec_subresources):
            definition, gvk, named = (
                (SCALE, _SCALE_GVK, "Scale") if sub == "scale" else (t.definition, _gvk(t), t.kind)
            )
            ops = (
                self.op(
                    "get",
                    "read",
                    "get",
                    f"read {sub} of the specified {t.kind}",
                    suffix=title,
                    gvk=gvk,
                    responses=((_OK, definition),),
                ),
                self._patch(
                    f"partially update {sub} of the specified {t.kind}",
                    definition,
                    suffix=title,
                    gvk=gvk,
                ),
                self._replace(
                    f"replace {sub} of the specified {t.kind}", definition, suffix=title, gvk=gvk
                ),
            )
            return _Path(path, _sorted((*scope, _name_param(named))), ops)
        if sub in _CREATE_SUBRESOURCES:
            definition, gvk, named = _CREATE_SUBRESOURCES[sub]
            op = self.op(
                "post",
                "create",
                "post",
                f"create {sub} of a {t.kind}",
                suffix=title,
                gvk=gvk,
                params=_WRITE_PARAMS,
                body=definition,
                responses=tuple((code, definition) for code in (_OK, _CREATED, _ACCEPTED)),
            )
            return _Path(path, _sorted((*scope, _name_param(named))), (op,))
        if sub == "finalize":
            op = self._replace(
                f"replace finalize of the specified {t.kind}", t.definition, suffix=title
            )
            return _Path(path, _sorted((*scope, _name_param(t.kind))), (op,))
        return None

    def paths(self) -> list[_Path]:
        found = [self.collection_path(), self.item_path(), self.list_everywhere_path()]
        found.extend(self.watch_paths())
        found.extend(self.subresource_path(sub) for sub in self.t.subresources)
        return [p for p in found if p is not None]


def _discovery_path(group: str, version: str) -> _Path:
    gv = _operation_prefix(group, version)
    return _Path(
        "/" + group_version_path(group, version) + "/",
        (),
        (
            _Operation(
                method="get",
                operation_id=f"get{gv}APIResources",
                description="get available resources",
                action="",
                gvk=None,
                tag=_tag(group, version),
                responses=(("200", API_RESOURCE_LIST),),
            ),
        ),
    )


def _group_version_paths(registry: Registry, group: str, version: str) -> list[_Path]:
    paths = [_discovery_path(group, version)]
    for t in registry.in_group_version(group, version):
        paths.extend(_Routes(t).paths())
    return paths


def _roots(paths: Iterable[_Path], registry_types: Iterable[ResourceType]) -> set[str]:
    """Definitions the operations mention, plus each served kind and its list kind."""
    roots = {STATUS, DELETE_OPTIONS, WATCH_EVENT, PATCH, API_RESOURCE_LIST}
    for t in registry_types:
        roots.add(t.definition)
        if "list" in t.verbs:  # a create-only kind (an access review) has no list kind
            roots.add(t.definition + "List")
    for p in paths:
        for o in p.operations:
            if o.body:
                roots.add(o.body)
            roots.update(name for _, name in o.responses if name)
    return roots


# -- rendering ----------------------------------------------------------------------------------

_RESPONSE_DESCRIPTIONS: Final = {
    "200": "OK",
    "201": "Created",
    "202": "Accepted",
    "401": "Unauthorized",
}


def _media_types(o: _Operation) -> tuple[str, ...]:
    return (_JSON, _WATCH_STREAM) if o.streams else (_JSON,)


def _v2_param(p: _Param) -> Schema:
    out: Schema = {
        "description": p.description,
        "in": p.location,
        "name": p.name,
        "type": p.type,
        "uniqueItems": True,
    }
    if p.location == "path":
        out["required"] = True
    return out


def _v3_param(p: _Param) -> Schema:
    out: Schema = {
        "description": p.description,
        "in": p.location,
        "name": p.name,
        "schema": {"type": p.type, "uniqueItems": True},
    }
    if p.location == "path":
        out["required"] = True
    return out


def _extensions(o: _Operation) -> Schema:
    out: Schema = {}
    if o.action:
        out["x-kubernetes-action"] = o.action
    if o.gvk is not None:
        out["x-kubernetes-group-version-kind"] = dict(o.gvk)
    return out


def _v2_operation(o: _Operation) -> Schema:
    params = [_v2_param(p) for p in o.params]
    if o.body:
        body: Schema = {"in": "body", "name": "body", "schema": {"$ref": _V2_PREFIX + o.body}}
        if o.body_kind != "options":
            body["required"] = True
        params.insert(0, body)
    responses: Schema = {}
    for code, name in (*o.responses, ("401", None)):
        response: Schema = {"description": _RESPONSE_DESCRIPTIONS[code]}
        if name:
            response["schema"] = {"$ref": _V2_PREFIX + name}
        responses[code] = response
    out: Schema = {
        "consumes": list(_PATCH_TYPES) if o.body_kind == "patch" else ["*/*"],
        "description": o.description,
        "operationId": o.operation_id,
        "produces": list(_media_types(o)),
        "responses": responses,
        "schemes": ["https"],
        "tags": [o.tag],
        **_extensions(o),
    }
    if params:
        out["parameters"] = params
    return out


def _v3_operation(o: _Operation) -> Schema:
    responses: Schema = {}
    for code, name in (*o.responses, ("401", None)):
        response: Schema = {"description": _RESPONSE_DESCRIPTIONS[code]}
        if name:
            ref = {"schema": {"$ref": _V3_PREFIX + name}}
            response["content"] = {media: ref for media in _media_types(o)}
        responses[code] = response
    out: Schema = {
        "description": o.description,
        "operationId": o.operation_id,
        "responses": responses,
        "tags": [o.tag],
        **_extensions(o),
    }
    if o.params:
        out["parameters"] = [_v3_param(p) for p in o.params]
    if o.body:
        ref = {"schema": {"$ref": _V3_PREFIX + o.body}}
        media = _PATCH_TYPES if o.body_kind == "patch" else ("*/*",)
        body: Schema = {"content": {m: ref for m in media}}
        if o.body_kind != "options":
            body["required"] = True
        out["requestBody"] = body
    return out


def _render_paths(paths: Iterable[_Path], flavor: Flavor) -> Schema:
    render_op = _v2_operation if flavor == "v2" else _v3_operation
    render_param = _v2_param if flavor == "v2" else _v3_param
    out: Schema = {}
    for p in paths:
        item: Schema = {o.method: render_op(o) for o in p.operations}
        if p.params:
            item["parameters"] = [render_param(param) for param in p.params]
        out[p.path] = item
    return out


_BEARER: Final = {
    "description": "Bearer Token authentication",
    "in": "header",
    "name": "authorization",
    "type": "apiKey",
}


def _dumps(doc: Schema) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def content_hash(data: bytes) -> str:
    """kube-openapi's hash of a document: SHA-512, upper-case hex."""
    return hashlib.sha512(data).hexdigest().upper()


def _etag(data: bytes) -> str:
    return f'"{content_hash(data)}"'


# -- the documents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAPIDocuments:
    """Every OpenAPI document the server serves, serialized, with hashes and ETags.

    ETag values are quoted, ready for the ``ETag`` header and for comparison with
    ``If-None-Match``; ``v3_hashes`` are the bare hashes used in ``?hash=``. Group-version
    keys are the paths under ``/openapi/v3/``: ``api/v1``, ``apis/apps/v1``, ...
    """

    v2_json: bytes
    v2_etag: str
    v3_root_json: bytes
    v3_root_etag: str
    v3_group_versions: Mapping[str, bytes]
    v3_hashes: Mapping[str, str]
    v3_etags: Mapping[str, str]

    @functools.cached_property
    def v2_protobuf(self) -> bytes:
        """The v2 document in gnostic's protobuf encoding, built on first use and kept.

        It is served with ``v2_etag``, as kube-openapi does: both encodings hash the JSON.
        """
        return openapi_pb.encode_document(orjson.loads(self.v2_json))

    def server_relative_url(self, group_version: str) -> str:
        """Where the v3 root points clients for ``group_version`` (hash included)."""
        return f"/openapi/v3/{group_version}?hash={self.v3_hashes[group_version]}"


def build_v2(registry: Registry, *, server_version: str) -> Schema:
    """The Swagger 2.0 document (``/openapi/v2``) as a JSON object."""
    paths: list[_Path] = []
    for group, versions in registry.group_versions().items():
        for version in versions:
            paths.extend(_group_version_paths(registry, group, version))
    names = closure(_roots(paths, registry.types))
    return {
        "definitions": {name: _definition(name, "v2") for name in names},
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": _render_paths(paths, "v2"),
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": _BEARER},
        "swagger": "2.0",
    }


def build_v3(registry: Registry, group: str, version: str, *, server_version: str) -> Schema:
    """The OpenAPI 3.0 document of one group-version (``/openapi/v3/apis/<g>/<v>``)."""
    paths = _group_version_paths(registry, group, version)
    names = closure(_roots(paths, registry.in_group_version(group, version)))
    return {
        "components": {
            "schemas": {name: _definition(name, "v3") for name in names},
            "securitySchemes": {"BearerToken": _BEARER},
        },
        "info": {"title": "Kubernetes", "version": server_version},
        "openapi": "3.0.0",
        "paths": _render_paths(paths, "v3"),
    }


def build_openapi(registry: Registry, *, server_version: str) -> OpenAPIDocuments:
    """Build and serialize every document for the kinds in ``registry``."""
    v2_json = _dumps(build_v2(registry, server_version=server_version))
    group_versions: dict[str, bytes] = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = build_v3(registry, group, version, server_version=server_version)
            group_versions[group_version_path(group, version)] = _dumps(doc)
    hashes = {gv: content_hash(data) for gv, data in group_versions.items()}
    root_json = _dumps(
        {
            "paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
                for gv, digest in hashes.items()
            }
        }
    )
    return OpenAPIDocuments(
        v2_json=v2_json,
        v2_etag=_etag(v2_json),
        v3_root_json=root_json,
        v3_root_etag=_etag(root_json),
        v3_group_versions=group_versions,
        v3_hashes=hashes,
        v3_etags={gv: f'"{digest}"' for gv, digest in hashes.items()},
    )
