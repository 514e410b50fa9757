"""Structural decoding of objects against Kubernetes' official schema.

The API server decodes every body the way Kubernetes' Go decoder does: fields of the wrong
JSON type are a 400 ("cannot unmarshal string into Go struct field ..."), unknown fields are
dropped and reported (fieldValidation Ignore/Warn/Strict decides what the client hears),
and explicit nulls read as "unset". The schema is the one the ``kubernetes-validate``
package ships (v1.37 definitions), compiled lazily, per definition, into small node objects
that one recursive walk checks and prunes in a single pass.

Why not a JSON Schema validator: a validator answers yes/no at the first problem, while the
API server must prune unknown fields, name every one of them, and coerce numbers the Go way;
a single walk does all three in tens of microseconds per object.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from setpoint.meta.jsonvalue import json_type_name
from setpoint.meta.quantity import parse_quantity_or_none

Schema = dict[str, Any]
"""One JSON (Schema) object, as parsed."""

SCHEMA_VERSION: Final = "v1.37.0"
"""The Kubernetes release whose schema ``kubernetes-validate`` ships and this server speaks."""

_SCALAR_GO_TYPES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}


def schema_directory(variant: str = "local") -> Path:
    """Where ``kubernetes-validate`` keeps the schema ``variant`` (``local``/``local-strict``).

    Found through the package's import spec rather than by importing it: the package pulls
    in ``jsonschema`` at import time, which costs more than reading the schema itself.
    """
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        raise RuntimeError("the kubernetes-validate package is not installed")
    return Path(spec.origin).parent / "kubernetes-json-schema" / f"{SCHEMA_VERSION}-{variant}"


@functools.cache
def load_definitions() -> dict[str, Schema]:
    """The ``$defs`` of the official JSON Schema (unknown fields allowed), loaded once.

    The mapping is shared by every caller: treat it as read-only.
    """
    path = schema_directory("local") / "_definitions.json"
    defs: dict[str, Schema] = orjson.loads(path.read_bytes())["$defs"]
    return defs


@dataclass(eq=False)
class Node:
    """One compiled schema position. ``kind`` is object/map/array/scalar/intstr/quantity/any."""

    kind: str
    go_type: str = ""
    scalar: str = ""  # for kind == "scalar": string/integer/number/boolean
    properties: dict[str, Node] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: Node | None = None
    values: Node | None = None  # map values
    definition: str = ""


ANY = Node("any", go_type="interface {}")


def _types(schema: dict[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    types = [t] if isinstance(t, str) else list(t)
    return [x for x in types if x != "null"]


class SchemaCompiler:
    """Compiles definitions into :class:`Node` trees on first use, sharing subtrees."""

    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self._defs = definitions
        self._compiled: dict[str, Node] = {}

    def node(self, definition: str) -> Node:
        compiled = self._compiled.get(definition)
        if compiled is not None:
            return compiled
        schema = self._defs[definition]
        short = definition.rsplit(".", 1)[-1]
        if definition.endswith("util.intstr.IntOrString"):
            node = Node("intstr", go_type="intstr.IntOrString", definition=definition)
            self._compiled[definition] = node
            return node
        if definition.endswith("api.resource.Quantity"):
            node = Node("quantity", go_type="resource.Quantity", definition=definition)
            self._compiled[definition] = node
            return node
        # register before recursing: definitions may be recursive
        node = Node("object", go_type=short, definition=definition)
        self._compiled[definition] = node
        self._fill(node, schema, short)
        return node

    def _fill(self, node: Node, schema: dict[str, Any], go_name: str) -> None:
        compiled = self._compile(schema, go_name)
        node.kind = compiled.kind
        node.go_type = compiled.go_type if compiled.kind != "object" else go_name
        node.scalar = compiled.scalar
        node.properties = compiled.properties
        node.required = compiled.required
        node.items = compiled.items
        node.values = compiled.values

    def _compile(self, schema: dict[str, Any], go_name: str) -> Node:
        ref = schema.get("$ref")
        if ref:
            return self.node(ref.rsplit("/", 1)[-1])
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self._compile(schema["allOf"][0], go_name)
        types = _types(schema)
        if "properties" in schema:
            props = {
                name: self._compile(sub, _go_field_type(sub))
                for name, sub in schema["properties"].items()
            }
            return Node(
                "object",
                go_type=go_name,
                properties=props,
                required=tuple(schema.get("required", ())),
            )
        if types == ["object"] or "additionalProperties" in schema:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                values = self._compile(extra, _go_field_type(extra))
                return Node("map", go_type=f"map[string]{values.go_type}", values=values)
            return ANY
        if types == ["array"]:
            items = self._compile(schema.get("items", {}), _go_field_type(schema.get("items", {})))
            return Node("array", go_type=f"[]{items.go_type}", items=items)
        if len(types) == 1 and types[0] in _SCALAR_GO_TYPES:
            go_type = _go_scalar(types[0], schema.get("format", ""))
            return Node("scalar", go_type=go_type, scalar=types[0])
        return ANY


def _go_scalar(json_type: str, fmt: str) -> str:
    if json_type == "integer":
        return "int32" if fmt == "int32" else "int64"
    if json_type == "string" and fmt == "byte":
        return "[]uint8"
    return _SCALAR_GO_TYPES[json_type]


def _go_field_type(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if ref:
        return ref.rsplit(".", 1)[-1]
    types = _types(schema)
    return (
        _go_scalar(types[0], schema.get("format", ""))
        if types and types[0] in _SCALAR_GO_TYPES
        else ""
    )


_ABSENT: Any = object()
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _in(value: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _identical(value: Any, known: Any) -> bool:
    """Whether ``value`` is ``known`` exactly as JSON (``1``, ``1.0`` and ``true`` differ)."""
    if known is _ABSENT or value is None:
        return False
    if isinstance(value, dict | list):
        if type(value) is not type(known):
            return False
        try:
            return orjson.dumps(value) == orjson.dumps(known)
        except TypeError:  # not JSON orjson can write (an integer beyond 64 bits): decode it
            return False
    return type(value) is type(known) and value == known


class DecodeError(ValueError):
    """A field holds a value of the wrong JSON type (Kubernetes answers 400)."""


@dataclass
class DecodeResult:
    obj: dict[str, Any]
    unknown_fields: list[str]
    missing_required: list[str]


class Decoder:
    """Checks and prunes one object against a compiled definition."""

    def __init__(self, root: Node, kind: str, version: str) -> None:
        self._root = root
        self._kind = kind
        self._version = version

    def decode(self, obj: Any, *, known: dict[str, Any] | None = None) -> DecodeResult:
        """Check and prune ``obj``. ``known``: an object of this kind decoded before (the
        stored one an update or patch starts from); a top-level field of ``obj`` identical
        to ``known``'s, byte for byte as JSON, is decoded already and is kept as it is
        instead of being walked again — most writes send back most of what they read."""
        if not isinstance(obj, dict):
            raise DecodeError(
                f"json: cannot unmarshal {json_type_name(obj)} into Go value of type "
                f"struct {{ APIVersion string; Kind string }}"
            )
        unknown: list[str] = []
        missing: list[str] = []
        pruned = self._object(self._root, obj, "", unknown, missing, known)
        return DecodeResult(pruned, unknown, missing)

    def _fail(self, value: Any, path: str, node: Node, parent: str) -> DecodeError:
        where = f"Go struct field {parent}.{path}" if path else "Go value"
        what = json_type_name(value)
        if what == "number" and (node.scalar == "integer" or node.kind == "intstr"):
            what = f"number {value!r}"  # Go names a number an integer cannot hold
        return DecodeError(
            f'{self._kind} in version "{self._version}" cannot be handled as a {self._kind}: '
            f"json: cannot unmarshal {what} into {where} of type {node.go_type}"
        )

    def _value(
        self,
        node: Node,
        value: Any,
        path: str,
        parent: str,
        unknown: list[str],
        missing: list[str],
    ) -> Any:
        kind = node.kind
        if kind == "scalar":
            scalar = node.scalar
            if scalar == "string":
                if isinstance(value, str):
                    return value
            elif scalar == "integer":
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if (
                    isinstance(value, int)
                    and not isinstance(value, bool)
                    and _in(value, _INT32 if node.go_type == "int32" else _INT64)
                ):
                    return value
            elif scalar == "boolean":
                if isinstance(value, bool):
                    return value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                return value
            raise self._fail(value, path, node, parent)
        if kind == "object":
            if not isinstance(value, dict):
                raise self._fail(value, path, node, parent)
            return self._object(node, value, path, unknown, missing)
        if kind == "array":
            if not isinstance(value, list):
                raise self._fail(value, path, node, parent)
            items = node.items
            assert items is not None
            return [
                self._value(items, item, f"{path}[{i}]", parent, unknown, missing)
                for i, item in enumerate(value)
                if item is not None or items.kind == "any"
            ]
        if kind == "map":
            if not isinstance(value, dict):
                raise self._fail(value, path, node, parent)
            values = node.values
            assert values is not None
            out = {}
            for key, item in value.items():
                if item is None:
                    # Go decodes null map values as the zero value
                    item = "" if values.kind == "scalar" and values.scalar == "string" else None
                    if item is None:
                        continue
                out[key] = self._value(values, item, f"{path}[{key}]", parent, unknown, missing)
            return out
        if kind == "intstr":
            if isinstance(value, str):
                return value
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            # IntOrString holds an int32
            if isinstance(value, int) and not isinstance(value, bool) and _in(value, _INT32):
                return value
            raise self._fail(value, path, node, parent)
        if kind == "quantity":
            # resource.Quantity's UnmarshalJSON parses what it is given: "x" is a 400 here,
            # not something to find later (a Node's capacity has no validation of its own)
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(int(value)) if float(value).is_integer() else repr(value)
            if isinstance(value, str) and parse_quantity_or_none(value) is not None:
                return value
            raise DecodeError(
                f'{self._kind} in version "{self._version}" cannot be handled as a '
                f"{self._kind}: quantities must match the regular expression "
                f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            )
        return value

    def _object(
        self,
        node: Node,
        value: dict[str, Any],
        path: str,
        unknown: list[str],
        missing: list[str],
        known: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        props = node.properties
        out: dict[str, Any] = {}
        prefix = f"{path}." if path else ""
        for key, item in value.items():
            sub = props.get(key)
            if sub is None:
                unknown.append(prefix + key)
                continue
            if item is None:
                continue
            if known is not None and _identical(item, known.get(key, _ABSENT)):
                out[key] = item
                continue
            out[key] = self._value(sub, item, prefix + key, node.go_type, unknown, missing)
        for name in node.required:
            if name not in out:
                missing.append(prefix + name)
        return out


class SchemaSet:
    """Decoders for the served kinds, built on first use of each kind."""

    def __init__(self, definitions: dict[str, dict[str, Any]] | None = None) -> None:
        self._compiler = SchemaCompiler(definitions or load_definitions())
        self._decoders: dict[str, Decoder] = {}

    def decoder(self, definition: str, kind: str, version: str) -> Decoder:
        decoder = self._decoders.get(definition)
        if decoder is None:
            decoder = Decoder(self._compiler.node(definition), kind, version)
            self._decoders[definition] = decoder
        return decoder
