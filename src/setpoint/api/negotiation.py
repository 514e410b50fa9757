"""Media types in and out: JSON and YAML bodies, Table responses, patch types.

Kubernetes clients say what they send with ``Content-Type`` and what they want with
``Accept``; this module decides both, answering 415 for a body type the server does not
read, 406 for a response type it cannot produce, and 400 for a body that does not parse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import orjson
import yaml

from setpoint.api import errors, protobuf
from setpoint.api.discovery import openapi_pb
from setpoint.meta import gofmt

MAX_BODY_BYTES = 3 * 1024 * 1024

JSON = "application/json"
YAML = "application/yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

try:
    _SafeLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _SafeLoader = yaml.SafeLoader


# Aliases let a small document stand for a huge (or endless) one; go-yaml refuses
# "excessive aliasing", setpoint refuses documents past this many values, or past this many
# bytes of text (keys and strings) once every alias is expanded: one long string named by
# many keys is few values but would be gigabytes when stored or sent back.
MAX_YAML_VALUES = 1_000_000
MAX_YAML_EXPANDED_BYTES = 4 * MAX_BODY_BYTES


class _TooLarge(Exception):
    """A YAML document that would expand past the limits above (a 400, as go-yaml's
    "excessive aliasing")."""


class _YamlLoader(_SafeLoader):
    """YAML 1.1 as the apiserver reads it (sigs.k8s.io/yaml on go-yaml v2): an unquoted
    date or time stays a string, and map keys that are numbers, booleans or null become
    strings (``1: a`` is ``{"1": "a"}``; ``1`` and ``true`` stay two keys)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pairs_left = MAX_YAML_VALUES

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[str, Any]:
        self.flatten_mapping(node)  # merge keys (<<)
        self._spend(len(node.value))
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            mapping[_json_key(key, key_node)] = self.construct_object(value_node, deep=deep)
        return mapping

    def _spend(self, pairs: int) -> None:
        self._pairs_left -= pairs
        if self._pairs_left < 0:
            raise _TooLarge(
                f"error converting YAML to JSON: more than {MAX_YAML_VALUES} values "
                "(excessive aliasing?)"
            )

    def flatten_mapping(self, node: Any) -> None:
        """PyYAML's merge keys (``<<: *a`` or ``<<: [*a, *b]``), with every pair it looks
        at counted: many mappings merging one big one (or one merging a big one many times)
        would otherwise build or scan a product of the two before the document ends."""
        merge: list[Any] = []
        seen: set[int] = set()
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag == "tag:yaml.org,2002:merge":
                del node.value[index]
                if isinstance(value_node, yaml.MappingNode):
                    merged = [value_node]
                elif isinstance(value_node, yaml.SequenceNode):
                    merged = value_node.value
                else:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "expected a mapping or list of mappings for merging, "
                        f"but found {value_node.id}",
                        value_node.start_mark,
                    )
                for subnode in merged:
                    if not isinstance(subnode, yaml.MappingNode):
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"expected a mapping for merging, but found {subnode.id}",
                            subnode.start_mark,
                        )
                    self.flatten_mapping(subnode)
                    self._spend(len(subnode.value))
                    for pair in subnode.value:
                        if id(pair[0].value) not in seen:
                            seen.add(id(pair[0].value))
                            merge.append(pair)
            else:
                if key_node.tag == "tag:yaml.org,2002:value":
                    key_node.tag = "tag:yaml.org,2002:str"
                index += 1
        if merge:
            node.value = merge + node.value


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


# Explicit tags whose PyYAML values are not JSON (bytes, set, datetime) become what
# sigs.k8s.io/yaml makes of them: a !!binary value is its decoded bytes as a string (Go's
# encoding/json writes invalid UTF-8 as U+FFFD), a !!set is a mapping to nulls, a
# !!timestamp keeps its text and an !!omap or !!pairs is the sequence of mappings it is
# written as.
def _construct_binary(loader: Any, node: Any) -> str:
    data: bytes = yaml.constructor.SafeConstructor.construct_yaml_binary(loader, node)
    return data.decode("utf-8", errors="replace")


def _construct_set(loader: Any, node: Any) -> dict[str, Any]:
    return loader.construct_mapping(node)


def _construct_timestamp(loader: Any, node: Any) -> str:
    return str(loader.construct_scalar(node))


def _construct_sequence(loader: Any, node: Any) -> list[Any]:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"expected a sequence, but found {node.id}", node.start_mark
        )
    return loader.construct_sequence(node, deep=True)


_YamlLoader.add_constructor("tag:yaml.org,2002:binary", _construct_binary)
_YamlLoader.add_constructor("tag:yaml.org,2002:omap", _construct_sequence)
_YamlLoader.add_constructor("tag:yaml.org,2002:pairs", _construct_sequence)
_YamlLoader.add_constructor("tag:yaml.org,2002:set", _construct_set)
_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


@dataclass(frozen=True)
class ResponseFormat:
    """What the client asked to receive."""

    media_type: str = JSON  # JSON or YAML
    table: bool = False
    partial_metadata: bool = False


def _params(part: str) -> tuple[str, dict[str, str]]:
    pieces = [p.strip() for p in part.split(";")]
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        if "=" in piece:
            key, value = piece.split("=", 1)
            params[key.strip().lower()] = value.strip().strip('"')
    return pieces[0].lower(), params


def negotiate_response(accept: str) -> ResponseFormat:
    """Pick the first acceptable media type in ``accept`` order (clients list preferences)."""
    if not accept:
        return ResponseFormat()
    for part in accept.split(","):
        media, params = _params(part)
        as_kind = params.get("as", "")
        if as_kind:
            if (
                media in (JSON, "*/*")
                and params.get("g") == "meta.k8s.io"
                and (params.get("v") in ("v1", "v1beta1"))
            ):
                if as_kind == "Table":
                    return ResponseFormat(JSON, table=True)
                if as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                    return ResponseFormat(JSON, partial_metadata=True)
            continue  # e.g. aggregated discovery or unknown "as": fall through to the next
        if media in (JSON, "application/*", "*/*", "application/json;stream=watch"):
            return ResponseFormat(JSON)
        if media in (YAML, "application/x-yaml", "text/yaml"):
            return ResponseFormat(YAML)
    raise errors.not_acceptable(accept)


def wants_aggregated_discovery(accept: str) -> bool:
    for part in accept.split(","):
        media, params = _params(part)
        if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
            return params.get("v") == "v2"
        if media in (JSON, "*/*"):
            return False
    return False


# What /openapi/v2 offers, in kube-openapi's order: (media type matched, Content-Type served).
_OPENAPI_V2_OFFERS: Final = (
    (JSON, JSON),
    (openapi_pb.PROTOBUF_MEDIA_TYPE_DEPRECATED, openapi_pb.PROTOBUF_MEDIA_TYPE),
    (openapi_pb.PROTOBUF_MEDIA_TYPE, openapi_pb.PROTOBUF_MEDIA_TYPE),
)


def _media_matches(pattern: str, media: str) -> bool:
    kind, _, sub = pattern.partition("/")
    offered_kind, _, offered_sub = media.partition("/")
    return kind in ("*", offered_kind) and sub in ("*", "", offered_sub)


def negotiate_openapi_v2(accept: str) -> str:
    """The Content-Type to answer ``/openapi/v2`` with: JSON or gnostic's protobuf.

    As kube-openapi's handler decides: Accept clauses by descending ``q`` (on a tie, concrete
    types before wildcards, then in the client's order), and the first that matches an
    offer wins; an empty Accept is ``*/*``. Nothing acceptable is 406.
    """
    clauses: list[tuple[float, bool, bool, int, str]] = []
    for index, part in enumerate((accept or "*/*").split(",")):
        media, params = _params(part)
        if not media:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            continue
        if q > 0:
            kind, _, sub = media.partition("/")
            clauses.append((-q, kind == "*", sub in ("*", ""), index, media))
    for *_, media in sorted(clauses):
        for offered, content_type in _OPENAPI_V2_OFFERS:
            if _media_matches(media, offered):
                return content_type
    raise errors.APIError(
        406,
        "NotAcceptable",
        f"only the following media types are accepted: {JSON}, "
        f"{openapi_pb.PROTOBUF_MEDIA_TYPE} (asked for {accept})",
    )


def body_media_type(content_type: str) -> str:
    media, _ = _params(content_type) if content_type else (JSON, {})
    return media


def decode_body(raw: bytes, content_type: str) -> Any:
    """Parse a create/update body; 415 for unknown types, 400 for unparsable bodies."""
    media = body_media_type(content_type)
    if protobuf.is_protobuf(media):
        # kubectl's typed commands (create configmap/deployment/...) send protobuf
        try:
            return protobuf.decode_protobuf_object(raw)
        except protobuf.ProtobufDecodeError as exc:
            raise errors.bad_request(f"error decoding protobuf body: {exc}") from None
    if media in (JSON, "*/*", ""):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"error decoding JSON body: {exc}") from None
    if media in (YAML, "application/x-yaml", "text/yaml"):
        return decode_yaml(raw)
    raise errors.unsupported_media_type(content_type)


def decode_yaml(raw: bytes) -> Any:
    """A YAML body as the JSON value sigs.k8s.io/yaml makes of it (see ``_YamlLoader``);
    a document that nests too deeply, refers to itself or expands past
    ``MAX_YAML_VALUES`` values through aliases is a 400."""
    try:
        loaded = yaml.load(raw, Loader=_YamlLoader)
        _check_expanded(loaded, _Budget(MAX_YAML_VALUES, MAX_YAML_EXPANDED_BYTES), set())
        return loaded
    except _TooLarge as exc:
        raise errors.bad_request(str(exc)) from None
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error converting YAML to JSON: {exc}") from None
    except RecursionError:
        raise errors.bad_request("error converting YAML to JSON: nested too deeply") from None


@dataclass
class _Budget:
    values: int
    text_bytes: int


def _check_expanded(value: Any, budget: _Budget, parents: set[int]) -> None:
    budget.values -= 1
    if budget.values < 0:
        raise _TooLarge(
            f"error converting YAML to JSON: more than {MAX_YAML_VALUES} values "
            "(excessive aliasing?)"
        )
    if isinstance(value, str):
        budget.text_bytes -= len(value)
        if budget.text_bytes < 0:
            raise _TooLarge(
                "error converting YAML to JSON: more than "
                f"{MAX_YAML_EXPANDED_BYTES} bytes of text once aliases are expanded "
                "(excessive aliasing?)"
            )
        return
    if not isinstance(value, dict | list):
        return
    if id(value) in parents:
        raise errors.bad_request("error converting YAML to JSON: an alias contains itself")
    parents.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            budget.text_bytes -= len(key)
            _check_expanded(item, budget, parents)
    else:
        for item in value:
            _check_expanded(item, budget, parents)
    parents.discard(id(value))


def _json_key(key: Any, node: Any) -> str:
    """sigs.k8s.io/yaml's key conversion: strings as they are, integers in decimal, booleans
    as ``true``/``false``, floats as go-yaml writes them; anything else is refused."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return _yaml_float_key(key)
    raise yaml.constructor.ConstructorError(
        None, None, f"unsupported map key {key!r}", node.start_mark
    )


def _yaml_float_key(value: float) -> str:
    """A float map key as go-yaml writes it: ``strconv.FormatFloat(value, 'g', -1, 32)``,
    with go-yaml's names for infinities and NaN."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return gofmt.format_float(value, 32)


def encode(obj: Any, fmt: ResponseFormat) -> tuple[bytes, str]:
    if fmt.media_type == YAML:
        return yaml.safe_dump(obj, sort_keys=False).encode(), YAML
    return orjson.dumps(obj), JSON
