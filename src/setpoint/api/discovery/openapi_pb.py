"""The protobuf encoding of the Swagger 2.0 document, as gnostic's ``openapi.v2.Document``.

client-go's discovery client (``OpenAPISchema()``) fetches ``/openapi/v2`` with ``Accept:
application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and unmarshals the answer as the
protobuf message ``openapi.v2.Document`` of google/gnostic-models (``openapiv2/OpenAPIv2.proto``);
it has no JSON fallback. kubectl needs that document whenever it validates on the client side,
which it does when the server cannot validate the object itself: notably for ``kind: List``
files, whose items it checks one by one against the v2 definitions. kube-openapi serves the
encoding by parsing its JSON document with gnostic and marshalling the result; this module does
the same mapping for the JSON document :func:`setpoint.api.discovery.openapi.build_v2` produces.

The mapping follows gnostic's compiler. Each Swagger object becomes its message, with fields
numbered as in the .proto; JSON objects that are maps (``definitions``, ``properties``,
``paths``, response codes, ...) become repeated ``Named*`` (name, value) pairs in document order;
``x-`` properties become ``vendor_extension`` ``NamedAny`` entries whose ``Any`` carries the
value as YAML text in its ``yaml`` field (kube-openapi reads ``x-kubernetes-*`` extensions
back with a YAML parser), as do ``default``, ``example`` and ``enum`` values. The ``oneof``
choices are made as gnostic makes them: a parameter is a ``JsonReference`` when it has a
``$ref``, a ``BodyParameter`` when it is ``in: body``, otherwise the non-body sub-schema for
its location; ``additionalProperties`` is a schema or a boolean; a security definition is
chosen by ``type`` (and ``flow`` for OAuth2). As in Go's marshaller, proto3 scalars holding
their zero value are left out and fields are written in field-number order, while a message
that is present is always written, even when empty: ``properties: {}`` still tells kubectl the
schema is an object with fields.

A property the Swagger 2.0 object does not define (other than ``x-``) raises
:class:`OpenAPIEncodeError`, as gnostic refuses it too, rather than being dropped silently.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

__all__ = [
    "PROTOBUF_MEDIA_TYPE",
    "PROTOBUF_MEDIA_TYPE_DEPRECATED",
    "OpenAPIEncodeError",
    "encode_document",
]

# kube-openapi answers both with the first (the second is what client-go still asks for).
PROTOBUF_MEDIA_TYPE: Final = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
PROTOBUF_MEDIA_TYPE_DEPRECATED: Final = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

try:
    _YamlDumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _YamlDumper = yaml.SafeDumper


class OpenAPIEncodeError(ValueError):
    """The JSON document holds something the gnostic v2 messages cannot represent."""


# -- wire format --------------------------------------------------------------------------------

_VARINT, _I64, _LEN = 0, 1, 2
_MASK64: Final = (1 << 64) - 1

# A codec writes one field (key and value) of a message, or nothing for a proto3 zero value.
Codec = Callable[[int, Any], bytes]
# A body encoder turns a JSON value into the bytes of one message (without key or length).
Body = Callable[[Any], bytes]


def _varint(value: int) -> bytes:
    value &= _MASK64  # negative int64 values take ten bytes, as in Go
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, _LEN) + _varint(len(payload)) + payload


# -- scalar codecs ------------------------------------------------------------------------------


def _expect(value: Any, kind: type | tuple[type, ...], number: int) -> None:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise OpenAPIEncodeError(f"field {number}: unexpected value {value!r}")


def _string(number: int, value: Any) -> bytes:
    _expect(value, str, number)
    return _length_delimited(number, value.encode()) if value else b""


def _bool(number: int, value: Any) -> bytes:
    _expect(value, bool, number)
    return _key(number, _VARINT) + b"\x01" if value else b""


def _int64(number: int, value: Any) -> bytes:
    _expect(value, int, number)
    return _key(number, _VARINT) + _varint(value) if value else b""


def _double(number: int, value: Any) -> bytes:
    _expect(value, (int, float), number)
    return _key(number, _I64) + struct.pack("<d", value) if value else b""


def _strings(number: int, value: Any) -> bytes:
    _expect(value, list, number)
    for item in value:
        _expect(item, str, number)
    return b"".join(_length_delimited(number, item.encode()) for item in value)


def _yaml(value: Any) -> str:
    """A JSON value as the YAML text gnostic stores in ``Any.yaml``."""
    text: str = yaml.dump(
        value, Dumper=_YamlDumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )
    # PyYAML ends a bare scalar document with an explicit end marker; Go's encoder does not.
    return text.removesuffix("...\n")


def _any_body(value: Any) -> bytes:
    return _string(2, _yaml(value))  # Any.yaml


def _any(number: int, value: Any) -> bytes:
    return _length_delimited(number, _any_body(value))


def _anys(number: int, value: Any) -> bytes:
    _expect(value, list, number)
    return b"".join(_any(number, item) for item in value)


def _named_any(name: str, value: Any) -> bytes:
    return _string(1, name) + _any(2, value)  # NamedAny.name, NamedAny.value


# -- message codecs -----------------------------------------------------------------------------


def _message(body: Body) -> Codec:
    """A singular message field: written whenever present, even when empty."""

    def codec(number: int, value: Any) -> bytes:
        return _length_delimited(number, body(value))

    return codec


def _repeated(body: Body) -> Codec:
    def codec(number: int, value: Any) -> bytes:
        _expect(value, list, number)
        return b"".join(_length_delimited(number, body(item)) for item in value)

    return codec


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise OpenAPIEncodeError(f"{what}: expected an object, got {value!r}")
    return value


def _named(value_codec: Codec, what: str) -> Body:
    """A map as gnostic's ``repeated Named<Value> additional_properties = 1``."""

    def body(value: Any) -> bytes:
        entries = _mapping(value, what)
        return b"".join(
            _length_delimited(1, _string(1, name) + value_codec(2, item))
            for name, item in entries.items()
        )

    return body


@dataclass(frozen=True)
class _Object:
    """A Swagger object with fixed properties: JSON property -> (field number, codec)."""

    name: str
    fields: Mapping[str, tuple[int, Codec]]
    extensions: int = 0  # the vendor_extension field number; 0: none allowed

    def __call__(self, value: Any) -> bytes:
        parts: list[tuple[int, bytes]] = []
        extensions: list[bytes] = []
        for key, item in _mapping(value, self.name).items():
            spec = self.fields.get(key)
            if spec is not None:
                number, codec = spec
                parts.append((number, codec(number, item)))
            elif self.extensions and key.startswith("x-"):
                extensions.append(_length_delimited(self.extensions, _named_any(key, item)))
            else:
                raise OpenAPIEncodeError(f"{self.name}: unexpected property {key!r}")
        if extensions:
            parts.append((self.extensions, b"".join(extensions)))
        parts.sort(key=lambda part: part[0])  # stable: repeated fields keep their order
        return b"".join(payload for _, payload in parts)


def _numbered(*fields: tuple[str, Codec]) -> dict[str, tuple[int, Codec]]:
    """Properties numbered 1, 2, 3, ... in the order given, as gnostic's messages are."""
    return {key: (number, codec) for number, (key, codec) in enumerate(fields, 1)}


# -- the messages of openapiv2/OpenAPIv2.proto ----------------------------------------------------

_EXTERNAL_DOCS: Final = _Object(
    "ExternalDocs", _numbered(("description", _string), ("url", _string)), extensions=3
)
_CONTACT: Final = _Object(
    "Contact", _numbered(("name", _string), ("url", _string), ("email", _string)), extensions=4
)
_LICENSE: Final = _Object("License", _numbered(("name", _string), ("url", _string)), extensions=3)
_INFO: Final = _Object(
    "Info",
    _numbered(
        ("title", _string),
        ("version", _string),
        ("description", _string),
        ("termsOfService", _string),
        ("contact", _message(_CONTACT)),
        ("license", _message(_LICENSE)),
    ),
    extensions=7,
)
_TAG: Final = _Object(
    "Tag",
    _numbered(
        ("name", _string), ("description", _string), ("externalDocs", _message(_EXTERNAL_DOCS))
    ),
    extensions=4,
)
_XML: Final = _Object(
    "Xml",
    _numbered(
        ("name", _string),
        ("namespace", _string),
        ("prefix", _string),
        ("attribute", _bool),
        ("wrapped", _bool),
    ),
    extensions=6,
)


def _schema(value: Any) -> bytes:
    """Schema, recursive: its items, allOf, properties and additionalProperties are schemas."""
    return _SCHEMA(value)


def _primitives_items(value: Any) -> bytes:
    """PrimitivesItems, recursive through its own ``items``."""
    return _PRIMITIVES_ITEMS(value)


def _additional_properties(value: Any) -> bytes:
    """AdditionalPropertiesItem: oneof schema = 1 | boolean = 2 (false is still written)."""
    if isinstance(value, bool):
        return _key(2, _VARINT) + (b"\x01" if value else b"\x00")
    return _length_delimited(1, _schema(value))


def _type_item(value: Any) -> bytes:
    """TypeItem: ``type`` as a repeated string, whether one name or a list."""
    return _strings(1, value if isinstance(value, list) else [value])


def _items_item(value: Any) -> bytes:
    """ItemsItem: ``items`` as a repeated Schema, whether one schema or a list."""
    return _repeated(_schema)(1, value if isinstance(value, list) else [value])


_SCHEMA_FIELDS: Final = _numbered(
    ("$ref", _string),
    ("format", _string),
    ("title", _string),
    ("description", _string),
    ("default", _any),
    ("multipleOf", _double),
    ("maximum", _double),
    ("exclusiveMaximum", _bool),
    ("minimum", _double),
    ("exclusiveMinimum", _bool),
    ("maxLength", _int64),
    ("minLength", _int64),
    ("pattern", _string),
    ("maxItems", _int64),
    ("minItems", _int64),
    ("uniqueItems", _bool),
    ("maxProperties", _int64),
    ("minProperties", _int64),
    ("required", _strings),
    ("enum", _anys),
    ("additionalProperties", _message(_additional_properties)),
    ("type", _message(_type_item)),
    ("items", _message(_items_item)),
    ("allOf", _repeated(_schema)),
    ("properties", _message(_named(_message(_schema), "properties"))),
    ("discriminator", _string),
    ("readOnly", _bool),
    ("xml", _message(_XML)),
    ("externalDocs", _message(_EXTERNAL_DOCS)),
    ("example", _any),
)
_SCHEMA: Final = _Object("Schema", _SCHEMA_FIELDS, extensions=31)

# The validation properties shared, in this order, by PrimitivesItems, Header and the non-body
# parameter sub-schemas; only their starting field number differs.
_PRIMITIVE_FIELDS: Final = (
    ("type", _string),
    ("format", _string),
    ("items", _message(_primitives_items)),
    ("collectionFormat", _string),
    ("default", _any),
    ("maximum", _double),
    ("exclusiveMaximum", _bool),
    ("minimum", _double),
    ("exclusiveMinimum", _bool),
    ("maxLength", _int64),
    ("minLength", _int64),
    ("pattern", _string),
    ("maxItems", _int64),
    ("minItems", _int64),
    ("uniqueItems", _bool),
    ("enum", _anys),
    ("multipleOf", _double),
)
_PRIMITIVES_ITEMS: Final = _Object("PrimitivesItems", _numbered(*_PRIMITIVE_FIELDS), extensions=18)
_HEADER: Final = _Object(
    "Header", _numbered(*_PRIMITIVE_FIELDS, ("description", _string)), extensions=19
)
_PARAMETER_HEAD: Final = (
    ("required", _bool),
    ("in", _string),
    ("description", _string),
    ("name", _string),
)
# Header and path parameters: required, in, description, name, then the shared properties.
_HEADER_OR_PATH_PARAMETER_FIELDS: Final = _numbered(*_PARAMETER_HEAD, *_PRIMITIVE_FIELDS)
# Query and formData parameters add allowEmptyValue before them.
_QUERY_OR_FORM_PARAMETER_FIELDS: Final = _numbered(
    *_PARAMETER_HEAD, ("allowEmptyValue", _bool), *_PRIMITIVE_FIELDS
)
# NonBodyParameter's oneof: location -> (field number, sub-schema message).
_NON_BODY_PARAMETERS: Final = {
    "header": (
        1,
        _Object("HeaderParameterSubSchema", _HEADER_OR_PATH_PARAMETER_FIELDS, extensions=22),
    ),
    "formData": (
        2,
        _Object("FormDataParameterSubSchema", _QUERY_OR_FORM_PARAMETER_FIELDS, extensions=23),
    ),
    "query": (
        3,
        _Object("QueryParameterSubSchema", _QUERY_OR_FORM_PARAMETER_FIELDS, extensions=23),
    ),
    "path": (4, _Object("PathParameterSubSchema", _HEADER_OR_PATH_PARAMETER_FIELDS, extensions=22)),
}
_BODY_PARAMETER: Final = _Object(
    "BodyParameter",
    _numbered(
        ("description", _string),
        ("name", _string),
        ("in", _string),
        ("required", _bool),
        ("schema", _message(_schema)),
    ),
    extensions=6,
)
_JSON_REFERENCE: Final = _Object(
    "JsonReference", _numbered(("$ref", _string), ("description", _string))
)


def _parameter(value: Any) -> bytes:
    """Parameter: oneof body_parameter = 1 | non_body_parameter = 2 (NonBodyParameter)."""
    location = _mapping(value, "Parameter").get("in")
    if location == "body":
        return _length_delimited(1, _BODY_PARAMETER(value))
    if location not in _NON_BODY_PARAMETERS:
        raise OpenAPIEncodeError(f"Parameter: unexpected location {location!r}")
    number, sub_schema = _NON_BODY_PARAMETERS[location]
    return _length_delimited(2, _length_delimited(number, sub_schema(value)))


def _parameters_item(value: Any) -> bytes:
    """ParametersItem: oneof parameter = 1 | json_reference = 2."""
    if "$ref" in _mapping(value, "ParametersItem"):
        return _length_delimited(2, _JSON_REFERENCE(value))
    return _length_delimited(1, _parameter(value))


def _schema_item(value: Any) -> bytes:
    """SchemaItem: oneof schema = 1 | file_schema = 2. gnostic tries Schema first, and a Schema
    accepts every FileSchema property, so it is always the schema."""
    return _length_delimited(1, _schema(value))


_RESPONSE: Final = _Object(
    "Response",
    _numbered(
        ("description", _string),
        ("schema", _message(_schema_item)),
        ("headers", _message(_named(_message(_HEADER), "headers"))),
        ("examples", _message(_named(_any, "examples"))),
    ),
    extensions=5,
)


def _response_value(value: Any) -> bytes:
    """ResponseValue: oneof response = 1 | json_reference = 2."""
    if "$ref" in _mapping(value, "ResponseValue"):
        return _length_delimited(2, _JSON_REFERENCE(value))
    return _length_delimited(1, _RESPONSE(value))


def _split_named(value: Any, what: str, *, named: int, extensions: int, encode: Body) -> bytes:
    """Paths and Responses: ``x-`` properties are extensions, all others named entries."""
    out: list[tuple[int, bytes]] = []
    for key, item in _mapping(value, what).items():
        if key.startswith("x-"):
            out.append((extensions, _length_delimited(extensions, _named_any(key, item))))
        else:
            out.append(
                (named, _length_delimited(named, _string(1, key) + _message(encode)(2, item)))
            )
    out.sort(key=lambda part: part[0])
    return b"".join(payload for _, payload in out)


def _responses(value: Any) -> bytes:
    """Responses: response_code = 1 (NamedResponseValue), vendor_extension = 2."""
    return _split_named(value, "Responses", named=1, extensions=2, encode=_response_value)


def _security_requirement(value: Any) -> bytes:
    """SecurityRequirement: scheme name -> StringArray of scopes."""
    return _named(_message(lambda scopes: _strings(1, scopes)), "SecurityRequirement")(value)


_OPERATION: Final = _Object(
    "Operation",
    _numbered(
        ("tags", _strings),
        ("summary", _string),
        ("description", _string),
        ("externalDocs", _message(_EXTERNAL_DOCS)),
        ("operationId", _string),
        ("produces", _strings),
        ("consumes", _strings),
        ("parameters", _repeated(_parameters_item)),
        ("responses", _message(_responses)),
        ("schemes", _strings),
        ("deprecated", _bool),
        ("security", _repeated(_security_requirement)),
    ),
    extensions=13,
)
_PATH_ITEM: Final = _Object(
    "PathItem",
    _numbered(
        ("$ref", _string),
        ("get", _message(_OPERATION)),
        ("put", _message(_OPERATION)),
        ("post", _message(_OPERATION)),
        ("delete", _message(_OPERATION)),
        ("options", _message(_OPERATION)),
        ("head", _message(_OPERATION)),
        ("patch", _message(_OPERATION)),
        ("parameters", _repeated(_parameters_item)),
    ),
    extensions=10,
)


def _paths(value: Any) -> bytes:
    """Paths: vendor_extension = 1, path = 2 (NamedPathItem)."""
    return _split_named(value, "Paths", named=2, extensions=1, encode=_PATH_ITEM)


_SCOPES: Final = _message(_named(_string, "scopes"))
_BASIC_AUTH: Final = _Object(
    "BasicAuthenticationSecurity",
    _numbered(("type", _string), ("description", _string)),
    extensions=3,
)
_API_KEY: Final = _Object(
    "ApiKeySecurity",
    _numbered(("type", _string), ("name", _string), ("in", _string), ("description", _string)),
    extensions=5,
)
_OAUTH2_HEAD: Final = (("type", _string), ("flow", _string), ("scopes", _SCOPES))
# SecurityDefinitionsItem's oneof for OAuth2: flow -> (field number, message).
_OAUTH2: Final = {
    "implicit": (
        3,
        _Object(
            "Oauth2ImplicitSecurity",
            _numbered(*_OAUTH2_HEAD, ("authorizationUrl", _string), ("description", _string)),
            extensions=6,
        ),
    ),
    "password": (
        4,
        _Object(
            "Oauth2PasswordSecurity",
            _numbered(*_OAUTH2_HEAD, ("tokenUrl", _string), ("description", _string)),
            extensions=6,
        ),
    ),
    "application": (
        5,
        _Object(
            "Oauth2ApplicationSecurity",
            _numbered(*_OAUTH2_HEAD, ("tokenUrl", _string), ("description", _string)),
            extensions=6,
        ),
    ),
    "accessCode": (
        6,
        _Object(
            "Oauth2AccessCodeSecurity",
            _numbered(
                *_OAUTH2_HEAD,
                ("authorizationUrl", _string),
                ("tokenUrl", _string),
                ("description", _string),
            ),
            extensions=7,
        ),
    ),
}


def _security_definitions_item(value: Any) -> bytes:
    """SecurityDefinitionsItem: oneof chosen by ``type`` (and ``flow`` for oauth2)."""
    scheme = _mapping(value, "SecurityDefinitionsItem")
    kind = scheme.get("type")
    if kind == "basic":
        return _length_delimited(1, _BASIC_AUTH(value))
    if kind == "apiKey":
        return _length_delimited(2, _API_KEY(value))
    if kind == "oauth2" and scheme.get("flow") in _OAUTH2:
        number, message = _OAUTH2[scheme["flow"]]
        return _length_delimited(number, message(value))
    raise OpenAPIEncodeError(f"SecurityDefinitionsItem: unexpected scheme {value!r}")


_DOCUMENT: Final = _Object(
    "Document",
    _numbered(
        ("swagger", _string),
        ("info", _message(_INFO)),
        ("host", _string),
        ("basePath", _string),
        ("schemes", _strings),
        ("consumes", _strings),
        ("produces", _strings),
        ("paths", _message(_paths)),
        ("definitions", _message(_named(_message(_schema), "definitions"))),
        ("parameters", _message(_named(_message(_parameter), "parameters"))),
        ("responses", _message(_named(_message(_RESPONSE), "responses"))),
        ("security", _repeated(_security_requirement)),
        (
            "securityDefinitions",
            _message(_named(_message(_security_definitions_item), "securityDefinitions")),
        ),
        ("tags", _repeated(_TAG)),
        ("externalDocs", _message(_EXTERNAL_DOCS)),
    ),
    extensions=16,
)


def encode_document(document: Mapping[str, Any]) -> bytes:
    """Encode a Swagger 2.0 document (its JSON object) as a gnostic ``openapi.v2.Document``.

    Raises :class:`OpenAPIEncodeError` for a property Swagger 2.0 does not define.
    """
    return _DOCUMENT(document)
