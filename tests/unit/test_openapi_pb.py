"""Tests for setpoint.api.discovery.openapi_pb: /openapi/v2 as gnostic's ``openapi.v2.Document``.

The encoded document is read back with the wire-format reader of setpoint.api.protobuf and
a decoder written here from gnostic's OpenAPIv2.proto (field numbers and oneofs), then
compared with the JSON document it was made from: everything kubectl reads must survive.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import yaml

from setpoint.api import errors
from setpoint.api.discovery.openapi import OpenAPIDocuments, build_openapi
from setpoint.api.discovery.openapi_pb import (
    PROTOBUF_MEDIA_TYPE,
    PROTOBUF_MEDIA_TYPE_DEPRECATED,
    OpenAPIEncodeError,
    encode_document,
)
from setpoint.api.negotiation import JSON, negotiate_openapi_v2
from setpoint.api.protobuf import _iter_fields
from setpoint.resources.catalog import default_registry

Fields = dict[int, list[Any]]


@pytest.fixture(scope="module")
def docs() -> OpenAPIDocuments:
    return build_openapi(default_registry(), server_version="v1.37.1")


@pytest.fixture(scope="module")
def v2(docs: OpenAPIDocuments) -> dict[str, Any]:
    return orjson.loads(docs.v2_json)


# -- a decoder for the parts of OpenAPIv2.proto the document uses ---------------------------------


def _fields(buf: bytes) -> Fields:
    """Field number -> values in wire order: ints for varints, floats for 64-bit, else bytes."""
    out: Fields = {}
    for wire in _iter_fields(buf, 0, len(buf)):
        value: Any
        if wire.wire_type == 0:
            value = wire.value
        elif wire.wire_type == 1:
            (value,) = struct.unpack("<d", buf[wire.value : wire.end])
        else:
            value = buf[wire.value : wire.end]
        out.setdefault(wire.number, []).append(value)
    return out


def _numbers(buf: bytes) -> list[int]:
    return [wire.number for wire in _iter_fields(buf, 0, len(buf))]


def _text(value: bytes) -> str:
    return value.decode()


def _named(buf: bytes, decode: Callable[[bytes], Any], number: int = 1) -> dict[str, Any]:
    """A repeated Named<Value> field as a dict (name = 1, value = 2)."""
    out: dict[str, Any] = {}
    for entry in _fields(buf).get(number, []):
        pair = _fields(entry)
        out[pair[1][0].decode()] = decode(pair.get(2, [b""])[0])
    return out


def _any(buf: bytes) -> Any:
    """gnostic Any: the value is YAML text in field 2."""
    return yaml.safe_load(_fields(buf)[2][0].decode())


def _extensions(values: list[bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in values:
        pair = _fields(entry)
        out[pair[1][0].decode()] = _any(pair[2][0])
    return out


def _decode(buf: bytes, table: dict[int, tuple[str, Callable[[list[Any]], Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, values in _fields(buf).items():
        if number not in table:
            raise AssertionError(f"unexpected field {number}")
        key, decode = table[number]
        if key == "x-":
            out.update(decode(values))
        else:
            out[key] = decode(values)
    return out


def _one(decode: Callable[[Any], Any]) -> Callable[[list[Any]], Any]:
    return lambda values: decode(values[-1])


def _all(decode: Callable[[Any], Any]) -> Callable[[list[Any]], Any]:
    return lambda values: [decode(v) for v in values]


_text1 = _one(_text)


def _flag(values: list[int]) -> bool:
    return bool(values[-1])


def _schema(buf: bytes) -> dict[str, Any]:
    def additional(value: bytes) -> Any:
        choice = _fields(value)
        return _schema(choice[1][0]) if 1 in choice else bool(choice[2][0])

    def single_or_list(decoded: list[Any]) -> Any:
        return decoded[0] if len(decoded) == 1 else decoded

    return _decode(
        buf,
        {
            1: ("$ref", _one(_text)),
            2: ("format", _one(_text)),
            4: ("description", _one(_text)),
            19: ("required", _all(_text)),
            21: ("additionalProperties", _one(additional)),
            22: ("type", _one(lambda v: single_or_list(_all(_text)(_fields(v)[1])))),
            23: ("items", _one(lambda v: single_or_list(_all(_schema)(_fields(v)[1])))),
            25: ("properties", _one(lambda v: _named(v, _schema))),
            31: ("x-", _extensions),
        },
    )


def _parameter(buf: bytes) -> dict[str, Any]:
    """ParametersItem -> Parameter -> BodyParameter | NonBodyParameter(query | path)."""
    parameter = _fields(_fields(buf)[1][0])
    if 1 in parameter:
        return _decode(
            parameter[1][0],
            {
                1: ("description", _one(_text)),
                2: ("name", _one(_text)),
                3: ("in", _one(_text)),
                4: ("required", _flag),
                5: ("schema", _one(_schema)),
            },
        )
    sub_schema = _fields(parameter[2][0])
    head = {1: ("required", _flag), 2: ("in", _one(_text)), 3: ("description", _one(_text))}
    head[4] = ("name", _one(_text))
    if 3 in sub_schema:  # query: allowEmptyValue = 5 shifts the rest by one
        return _decode(
            sub_schema[3][0], {**head, 6: ("type", _one(_text)), 20: ("uniqueItems", _flag)}
        )
    return _decode(sub_schema[4][0], {**head, 5: ("type", _one(_text)), 19: ("uniqueItems", _flag)})


def _response(buf: bytes) -> dict[str, Any]:
    response = _fields(buf)[1][0]  # ResponseValue.response
    return _decode(
        response,
        {
            1: ("description", _one(_text)),
            2: ("schema", _one(lambda v: _schema(_fields(v)[1][0]))),  # SchemaItem.schema
        },
    )


def _operation(buf: bytes) -> dict[str, Any]:
    return _decode(
        buf,
        {
            1: ("tags", _all(_text)),
            3: ("description", _one(_text)),
            5: ("operationId", _one(_text)),
            6: ("produces", _all(_text)),
            7: ("consumes", _all(_text)),
            8: ("parameters", _all(_parameter)),
            9: ("responses", _one(lambda v: _named(v, _response))),
            10: ("schemes", _all(_text)),
            13: ("x-", _extensions),
        },
    )


def _path_item(buf: bytes) -> dict[str, Any]:
    methods = {2: "get", 3: "put", 4: "post", 5: "delete", 8: "patch"}
    table: dict[int, tuple[str, Callable[[list[Any]], Any]]] = {
        number: (method, _one(_operation)) for number, method in methods.items()
    }
    table[9] = ("parameters", _all(_parameter))
    return _decode(buf, table)


def _document(buf: bytes) -> dict[str, Any]:
    def security_definition(value: bytes) -> Any:
        api_key = _fields(value)[2][0]  # SecurityDefinitionsItem.api_key_security
        return _decode(
            api_key,
            {
                1: ("type", _one(_text)),
                2: ("name", _one(_text)),
                3: ("in", _one(_text)),
                4: ("description", _one(_text)),
            },
        )

    return _decode(
        buf,
        {
            1: ("swagger", _one(_text)),
            2: ("info", _one(lambda v: _decode(v, {1: ("title", _text1), 2: ("version", _text1)}))),
            8: ("paths", _one(lambda v: _named(v, _path_item, number=2))),
            9: ("definitions", _one(lambda v: _named(v, _schema))),
            12: (
                "security",
                _all(lambda v: _named(v, lambda s: _all(_text)(_fields(s).get(1, [])))),
            ),
            13: ("securityDefinitions", _one(lambda v: _named(v, security_definition))),
        },
    )


# -- the served document --------------------------------------------------------------------------


def test_encoded_document_decodes_to_the_json_document(
    docs: OpenAPIDocuments, v2: dict[str, Any]
) -> None:
    assert _document(docs.v2_protobuf) == v2


def test_document_fields_are_written_in_field_number_order(docs: OpenAPIDocuments) -> None:
    assert _numbers(docs.v2_protobuf) == [1, 2, 8, 9, 12, 13]


def test_definitions_keep_the_json_order(docs: OpenAPIDocuments, v2: dict[str, Any]) -> None:
    definitions = _fields(docs.v2_protobuf)[9][0]
    names = [_fields(entry)[1][0].decode() for entry in _fields(definitions)[1]]
    assert names == list(v2["definitions"])


def test_group_version_kind_extension_is_yaml_kubectl_can_read(docs: OpenAPIDocuments) -> None:
    definitions = _named(_fields(docs.v2_protobuf)[9][0], lambda v: v)
    deployment = _fields(definitions["io.k8s.api.apps.v1.Deployment"])
    (extension,) = deployment[31]
    pair = _fields(extension)
    assert pair[1] == [b"x-kubernetes-group-version-kind"]
    yaml_text = _fields(pair[2][0])[2][0].decode()
    assert yaml_text == "- group: apps\n  kind: Deployment\n  version: v1\n"


def test_security_requirement_keeps_an_empty_scope_list(docs: OpenAPIDocuments) -> None:
    (requirement,) = _fields(docs.v2_protobuf)[12]
    (entry,) = _fields(requirement)[1]
    assert _fields(entry) == {1: [b"BearerToken"], 2: [b""]}  # StringArray present, empty


def test_protobuf_is_built_once_and_kept(docs: OpenAPIDocuments) -> None:
    assert docs.v2_protobuf is docs.v2_protobuf


# -- the mapping ----------------------------------------------------------------------------------


def _definition(schema: dict[str, Any]) -> bytes:
    """The encoded Schema of the one definition in a minimal document."""
    document = _fields(encode_document({"definitions": {"x": schema}}))
    (entry,) = _fields(document[9][0])[1]
    return bytes(_fields(entry)[2][0])


def test_empty_properties_are_still_written() -> None:
    assert _fields(_definition({"type": "object", "properties": {}}))[25] == [b""]


def test_additional_properties_false_is_written_as_the_boolean_choice() -> None:
    assert _fields(_definition({"additionalProperties": False}))[21] == [b"\x10\x00"]


def test_zero_scalars_are_left_out() -> None:
    assert _definition({"description": "", "uniqueItems": False, "maxLength": 0}) == b""


def test_numbers_use_int64_and_double_encodings() -> None:
    encoded = _fields(_definition({"minLength": -1, "maximum": 2.5, "minimum": 3}))
    assert encoded[12] == [(1 << 64) - 1]  # negative int64: ten-byte two's complement
    assert encoded[7] == [2.5]
    assert encoded[9] == [3.0]


def test_enum_and_default_carry_yaml() -> None:
    encoded = _fields(_definition({"enum": ["a", "true"], "default": {"k": [1]}}))
    assert [_any(value) for value in encoded[20]] == ["a", "true"]
    assert _any(encoded[5][0]) == {"k": [1]}


def test_scalar_extension_yaml_has_no_document_end_marker() -> None:
    (extension,) = _fields(_definition({"x-kubernetes-list-type": "atomic"}))[31]
    assert _fields(_fields(extension)[2][0])[2] == [b"atomic\n"]


def test_parameter_reference_becomes_a_json_reference() -> None:
    document = {"paths": {"/p": {"parameters": [{"$ref": "#/parameters/q"}]}}}
    paths = _fields(encode_document(document))[8][0]
    (named,) = _fields(paths)[2]
    (item,) = _fields(_fields(named)[2][0])[9]
    choice = _fields(item)
    assert list(choice) == [2]  # ParametersItem.json_reference
    assert _fields(choice[2][0]) == {1: [b"#/parameters/q"]}


def test_unknown_property_is_refused() -> None:
    with pytest.raises(OpenAPIEncodeError, match="patternProperties"):
        _definition({"patternProperties": {}})


# -- content negotiation for /openapi/v2 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("application/*", JSON),
        (PROTOBUF_MEDIA_TYPE_DEPRECATED, PROTOBUF_MEDIA_TYPE),
        (PROTOBUF_MEDIA_TYPE, PROTOBUF_MEDIA_TYPE),
        (f"application/json;q=0.5, {PROTOBUF_MEDIA_TYPE_DEPRECATED}", PROTOBUF_MEDIA_TYPE),
        (f"*/*, {PROTOBUF_MEDIA_TYPE}", PROTOBUF_MEDIA_TYPE),
        (f"application/yaml, {PROTOBUF_MEDIA_TYPE};q=0.1", PROTOBUF_MEDIA_TYPE),
    ],
)
def test_openapi_v2_negotiation_follows_kube_openapi(accept: str, served: str) -> None:
    assert negotiate_openapi_v2(accept) == served


def test_openapi_v2_refuses_what_it_cannot_produce() -> None:
    with pytest.raises(errors.APIError) as raised:
        negotiate_openapi_v2("application/yaml")
    assert raised.value.code == 406
