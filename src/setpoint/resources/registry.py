"""The catalogue of resource types the API server serves.

A ``ResourceType`` says everything the generic REST machinery needs to know about one kind:
where it lives in the URL space (group, version, plural), how kubectl names it (kind, short
names, categories), whether it is namespaced, which subresources it has, and the kind-specific
hooks (defaults, semantic validation, field selectors, what an update may change). The hooks
live in one module per API group (``core``, ``apps``, ``batch``, ...); this module only holds
the shapes and the lookup tables built from them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.meta.labels import SelectorParseError, selector_from_label_selector
from setpoint.resources.fielderrors import FieldError
from setpoint.resources.printers.base import Printer

FieldGetter = Callable[[Obj], str]


def field_getter(*path: str, default: str = "") -> FieldGetter:
    """A field selector's reading of a nested field, as its string (``true``/``false`` for a
    boolean, ``default`` when absent)."""

    def get(obj: Obj) -> str:
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool):
            return "true" if value else "false"
        return default if value is None else str(value)

    return get


# an ObjectReference's fields, each selectable (an Event's involvedObject.name, ...)
OBJECT_REFERENCE_FIELDS = (
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
)


def reference_field_selectors(reference: str) -> dict[str, FieldGetter]:
    """Field selectors for every field of the ObjectReference at ``reference``."""
    return {f"{reference}.{key}": field_getter(reference, key) for key in OBJECT_REFERENCE_FIELDS}


"""Reads one selectable field (``spec.nodeName``) of an object as a string."""


Defaulter = Callable[[Obj], None]
"""Fills in defaults in place on a new or updated object (after schema pruning)."""

Validator = Callable[[Obj, Obj | None], list[FieldError]]
"""Semantic validation: ``(new, old)``; ``old`` is None on create. Returns every problem."""

Preparer = Callable[[Obj], None]
"""Strategy hook run in place on a new object before defaults (Kubernetes' PrepareForCreate),
e.g. a Namespace starts Active with the ``kubernetes`` finalizer."""

UpdatePreparer = Callable[[Obj, Obj], None]
"""Strategy hook run in place on ``(new, old)`` when the object itself (not its status) is
updated, before defaults (Kubernetes' PrepareForUpdate), e.g. a DaemonSet's template
generation goes up with its template."""


def _no_defaults(obj: Obj) -> None:
    return None


def _no_preparation(obj: Obj) -> None:
    return None


def _no_update_preparation(obj: Obj, old: Obj) -> None:
    return None


def _no_validation(obj: Obj, old: Obj | None) -> list[FieldError]:
    return []


def label_selector_text(obj: Obj) -> str:
    """``spec.selector``, a LabelSelector, as ``Scale.status.selector`` writes it ("" when it
    cannot be read)."""
    try:
        return str(selector_from_label_selector((obj.get("spec") or {}).get("selector") or {}))
    except (SelectorParseError, TypeError):
        return ""


@dataclass(frozen=True)
class SpecSubresource:
    """A subresource through which one field of the spec, and nothing else, changes
    (``pods/ephemeralcontainers``): an update through it keeps the stored object but for
    ``spec.<field>``, as Kubernetes' strategy for it drops every other change, and is checked
    by its own ``validator`` instead of the kind's."""

    field: str
    validator: Validator


JSON_ONLY = "json-only"
"""``protobuf=JSON_ONLY``: the kind has no protobuf encoding; clients send it as JSON."""

# what kind declarations share: the ``all`` category (``kubectl get all``), and the structs
# Go always encodes in objects with a spec and a status, and in pod templates
CATEGORY_ALL = ("all",)
SPEC_AND_STATUS: Mapping[str, Any] = {"spec": {}, "status": {}}
POD_TEMPLATE: Mapping[str, Any] = {"spec.template": {}, "spec.template.metadata": {}}


@dataclass(frozen=True, eq=False)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "binding", ...
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    definition: str = ""  # the schema definition name, e.g. io.k8s.api.apps.v1.Deployment
    # spec-like fields whose change bumps metadata.generation; None = any non-metadata change
    has_status: bool = False
    # metadata.generation is set and bumped on spec changes (false for e.g. ConfigMap, Node)
    tracks_generation: bool = False
    # annotation changes also bump generation (Deployment copies annotations to ReplicaSets)
    generation_includes_annotations: bool = False
    # metadata a status update may change besides status itself (Kubernetes' status
    # strategies differ: a Deployment's lets the controller record its revision annotation)
    status_update_metadata: tuple[str, ...] = ()
    # status given on create is kept (Node) rather than reset (everything with /status)
    keeps_status_on_create: bool = False
    allow_create_on_update: bool = False
    # DELETE answers with the object (pods, namespaces, serviceaccounts) instead of a Status
    return_deleted_object: bool = False
    defaulter: Defaulter = _no_defaults
    prepare_for_create: Preparer = _no_preparation
    prepare_for_update: UpdatePreparer = _no_update_preparation
    validator: Validator = _no_validation
    # the scale subresource's status.selector, from the object's spec.selector
    scale_selector: Callable[[Obj], str] = label_selector_text
    # subresources that write one spec field (each also listed in ``subresources``)
    spec_subresources: Mapping[str, SpecSubresource] = field(default_factory=dict)
    field_selectors: Mapping[str, FieldGetter] = field(default_factory=dict)
    # the table ``kubectl get`` shows; every built-in kind says which (DEFAULT_PRINTER: NAME
    # and AGE); None only for a kind registered at run time without one
    printer: Printer | None = None
    # the protobuf message of this kind in Kubernetes' generated.proto (what kubectl sends),
    # or JSON_ONLY; None only for a kind registered at run time
    protobuf: str | None = None
    # False: a kind that is only ever created and answered, never stored (TokenReview,
    # SelfSubjectReview): no storage or watch cache; the API server answers its creates with
    # the handler registered for it (APIServer.unstored)
    stored: bool = True
    # fields Go writes even when empty (a struct that is not a pointer, a string without
    # omitempty): dotted path -> its empty value, parents before children. Clients rely on
    # them: the Python client's ``job.status`` is None, not empty, without ``"status": {}``.
    always_encoded: Mapping[str, Any] = field(default_factory=dict)

    def fill_always_encoded(self, obj: Obj) -> None:
        """Give ``obj`` (in place) every :attr:`always_encoded` field it lacks, as the
        apiserver's encoding of a Go struct would."""
        for path, empty in self.always_encoded.items():
            *parents, leaf = path.split(".")
            target: Any = obj
            for name in parents:
                target = target.get(name) if isinstance(target, dict) else None
            if isinstance(target, dict) and leaf not in target:
                target[leaf] = copy.copy(empty)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def store_prefix(self) -> str:
        """Key prefix in the store, laid out like Kubernetes' etcd registry."""
        group = self.group or "core"
        return f"/registry/{group}/{self.plural}/"

    def store_key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.store_prefix}{namespace}/{name}"
        return f"{self.store_prefix}{name}"


class RegistryConflict(ValueError):
    """A kind that would take a name (its plural or kind in a group version) another holds."""


class Registry:
    """The served resource types, looked up by (group, version, plural) and by kind.

    It can grow and shrink while the server runs (:meth:`register`, :meth:`remove`): a
    CustomResourceDefinition or a new built-in group plugs in here, and whoever serves the
    registry (the API server) starts and stops what each kind needs. ``generation`` counts
    the changes, so anything rendered from the registry (discovery, OpenAPI) knows when it
    is out of date."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self.types: tuple[ResourceType, ...] = ()
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str, str], ResourceType] = {}
        self.generation = 0
        for rtype in types:
            self.register(rtype)

    def register(self, rtype: ResourceType) -> None:
        """Serve ``rtype`` from now on; RegistryConflict if its plural or kind is taken in
        its group version."""
        path = (rtype.group, rtype.version, rtype.plural)
        kind = (rtype.group, rtype.version, rtype.kind)
        if path in self._by_path or kind in self._by_kind:
            raise RegistryConflict(
                f"{rtype.plural}.{rtype.group or 'core'}/{rtype.version} (kind {rtype.kind}) "
                "is already served"
            )
        self.types = (*self.types, rtype)
        self._by_path[path] = rtype
        self._by_kind[kind] = rtype
        self.generation += 1

    def remove(self, rtype: ResourceType) -> None:
        """Stop serving ``rtype`` (KeyError if it is not served)."""
        if self._by_path.get((rtype.group, rtype.version, rtype.plural)) is not rtype:
            raise KeyError(rtype.plural)
        self.types = tuple(t for t in self.types if t is not rtype)
        del self._by_path[(rtype.group, rtype.version, rtype.plural)]
        del self._by_kind[(rtype.group, rtype.version, rtype.kind)]
        self.generation += 1

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, version, kind))

    def group_versions(self) -> dict[str, list[str]]:
        """Group name -> its served versions, in the order types were registered."""
        out: dict[str, list[str]] = {}
        for t in self.types:
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]
