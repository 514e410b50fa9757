"""Tests for setpoint.api.protobuf: decoding kubectl's protobuf request bodies.

The files under data/protobuf/ are real bodies that kubectl v1.37.1 POSTed (NAME.bin) next to
what the same command printed with ``--dry-run=client -o json`` (NAME.json); CAPTURES lists the
commands. ``job_from_cronjob`` copies a CronJob that was stored with explicit zero values
(``backoffLimit: 0``, ``runAsUser: 0``, ``emptyDir: {}`` ...), which exercises Go pointers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setpoint.api.protobuf import (
    MAGIC,
    ProtobufDecodeError,
    decode_protobuf_object,
    is_protobuf,
)

DATA = Path(__file__).parent / "data" / "protobuf"
ROOT = Path(__file__).resolve().parents[2]

CAPTURES = {
    "configmap": "kubectl create configmap c1 --from-literal=a=b --from-literal=empty=",
    "cm_bin": "kubectl create configmap c2 --from-file=blob=blob.bin --from-literal=x=y",
    "namespace": "kubectl create namespace ns1",
    "deployment": "kubectl create deployment web --image=nginx:1.27 --replicas=3 --port=80",
    "deployment_zero": "kubectl create deployment zero --image=nginx --replicas=0",
    "deploy_multi": "kubectl create deployment multi --image=nginx --image=redis:7",
    "job": "kubectl create job j1 --image=busybox -- echo hi",
    "cronjob": (
        "kubectl create cronjob cj2 --image=busybox --schedule='*/1 * * * *'"
        " --restart=OnFailure -- date"
    ),
    "job_from_cronjob": "kubectl create job j2 --from=cronjob/rich",
    "secret": "kubectl create secret generic s1 --from-literal=user=admin --from-literal=pw=...",
    "secret_bin": "kubectl create secret generic s2 --from-file=blob=blob.bin",
    "secret_docker": "kubectl create secret docker-registry reg --docker-server=r.example ...",
    "serviceaccount": "kubectl create serviceaccount sa1",
}

# Non-pointer Go structs that Go's JSON encoder writes even when empty; the decoder leaves
# such zero values out (as it does ``creationTimestamp: null``).
GO_ZERO_STRUCTS = {"metadata", "spec", "status", "strategy", "resources"}


def without_go_zero_values(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: without_go_zero_values(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in out.items() if not (k in GO_ZERO_STRUCTS and v == {})}
    if isinstance(value, list):
        return [without_go_zero_values(v) for v in value]
    return value


def capture(name: str) -> bytes:
    return (DATA / f"{name}.bin").read_bytes()


def dry_run_json(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text())


# --------------------------------------------------------------------------- encoding helpers


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def field_varint(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def field_bytes(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return tag(number, 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes, *, extra: bytes = b"") -> bytes:
    type_meta = field_bytes(1, api_version) + field_bytes(2, kind)
    return MAGIC + field_bytes(1, type_meta) + field_bytes(2, raw) + extra


def metadata(name: str) -> bytes:
    return field_bytes(1, field_bytes(1, name))


def configmap(*fields: bytes) -> dict[str, Any]:
    """Decode a ConfigMap named c with the given extra top-level fields."""
    return decode_protobuf_object(envelope("v1", "ConfigMap", metadata("c") + b"".join(fields)))


def pod_with_security_context(security_context: bytes) -> dict[str, Any]:
    spec = field_bytes(14, security_context)  # PodSpec.securityContext
    return decode_protobuf_object(envelope("v1", "Pod", metadata("p") + field_bytes(2, spec)))


# --------------------------------------------------------------------------- content type


def test_is_protobuf_recognises_the_kubernetes_media_type_with_parameters() -> None:
    assert is_protobuf("application/vnd.kubernetes.protobuf")
    assert is_protobuf("Application/VND.Kubernetes.Protobuf; charset=utf-8")
    assert not is_protobuf("application/json")
    assert not is_protobuf("")
    assert not is_protobuf(None)


# --------------------------------------------------------------------------- real captures


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_captured_kubectl_body_decodes_to_its_dry_run_json(name: str) -> None:
    assert decode_protobuf_object(capture(name)) == without_go_zero_values(dry_run_json(name))


def test_captured_deployment_keeps_replicas_and_container_port() -> None:
    spec = decode_protobuf_object(capture("deployment"))["spec"]
    assert spec["replicas"] == 3
    assert spec["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]


def test_explicit_zero_replicas_survives_because_replicas_is_a_pointer() -> None:
    assert decode_protobuf_object(capture("deployment_zero"))["spec"]["replicas"] == 0


def test_non_pointer_zero_values_on_the_wire_are_left_out() -> None:
    # kubectl's protobuf encoder writes metadata.generation = 0, namespace = "" and an
    # empty creationTimestamp; the JSON encoder would omit all three.
    assert decode_protobuf_object(capture("namespace")) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ns1"},
    }


def test_pointer_zero_values_and_empty_pointer_structs_are_kept() -> None:
    spec = decode_protobuf_object(capture("job_from_cronjob"))["spec"]
    pod = spec["template"]["spec"]
    assert spec["backoffLimit"] == 0
    assert pod["terminationGracePeriodSeconds"] == 0
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == 0
    assert pod["volumes"][0] == {"name": "scratch", "emptyDir": {}}


def test_inlined_go_structs_are_merged_into_their_parent() -> None:
    container = decode_protobuf_object(capture("job_from_cronjob"))["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 5,
    }
    assert container["livenessProbe"] == {"tcpSocket": {"port": 8080}}


def test_quantities_decode_to_their_canonical_strings() -> None:
    container = decode_protobuf_object(capture("job_from_cronjob"))["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }


def test_secret_bytes_decode_to_base64_strings() -> None:
    assert decode_protobuf_object(capture("secret_bin"))["data"] == {"blob": "YmluAP/+gGRhdGEK"}


def test_configmap_keeps_an_empty_string_value_in_data() -> None:
    assert decode_protobuf_object(capture("configmap"))["data"] == {"a": "b", "empty": ""}


def test_accepts_bytearray_and_memoryview() -> None:
    body = capture("serviceaccount")
    expected = decode_protobuf_object(body)
    assert decode_protobuf_object(bytearray(body)) == expected
    assert decode_protobuf_object(memoryview(body)) == expected


# --------------------------------------------------------------------------- wire format


def test_multi_byte_varint_lengths_decode() -> None:
    value = "x" * 300  # length 300 needs a two-byte varint
    assert configmap(field_bytes(2, field_bytes(1, "k") + field_bytes(2, value)))["data"] == {
        "k": value
    }


def test_negative_int32_encoded_as_ten_byte_varint_decodes() -> None:
    assert len(varint(-1)) == 10
    spec = field_bytes(2, field_varint(1, -1))  # DeploymentSpec.replicas (int32)
    deployment = decode_protobuf_object(envelope("apps/v1", "Deployment", metadata("d") + spec))
    assert deployment["spec"]["replicas"] == -1


def test_max_uint64_varint_becomes_minus_one_for_int64_fields() -> None:
    body = envelope("v1", "ConfigMap", field_bytes(1, field_varint(7, (1 << 64) - 1)))
    assert decode_protobuf_object(body)["metadata"]["generation"] == -1


def test_varint_longer_than_ten_bytes_is_rejected() -> None:
    raw = field_bytes(1, tag(7, 0) + b"\xff" * 10 + b"\x01")
    with pytest.raises(ProtobufDecodeError, match="varint"):
        decode_protobuf_object(envelope("v1", "ConfigMap", raw))


def test_truncated_varint_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="truncated"):
        decode_protobuf_object(envelope("v1", "ConfigMap", field_bytes(1, tag(7, 0) + b"\x80")))


def test_length_beyond_the_end_of_the_message_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="truncated"):
        decode_protobuf_object(envelope("v1", "ConfigMap", tag(1, 2) + varint(50) + b"\x0a"))


def test_truncated_capture_is_rejected() -> None:
    body = capture("deployment")
    for cut in (5, len(body) // 2, len(body) - 1):
        with pytest.raises(ProtobufDecodeError):
            decode_protobuf_object(body[:cut])


def test_zero_length_nested_message_is_an_empty_object() -> None:
    assert decode_protobuf_object(envelope("v1", "ServiceAccount", field_bytes(1, b""))) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
    }


def test_packed_and_unpacked_repeated_integers_decode_alike() -> None:
    unpacked = b"".join(field_varint(4, g) for g in (1, 2, 300))  # supplementalGroups
    packed = field_bytes(4, varint(1) + varint(2) + varint(300))
    for encoding in (unpacked, packed):
        security = pod_with_security_context(encoding)["spec"]["securityContext"]
        assert security == {"supplementalGroups": [1, 2, 300]}


def test_unknown_field_numbers_of_every_wire_type_are_skipped() -> None:
    unknown = (
        field_varint(90, 1)
        + tag(91, 1)
        + b"\x00" * 8
        + field_bytes(92, b"junk")
        + tag(93, 5)
        + b"\x00" * 4
    )
    assert configmap(unknown, field_bytes(2, field_bytes(1, "k") + field_bytes(2, "v")))[
        "data"
    ] == {"k": "v"}


def test_wire_type_that_does_not_fit_the_field_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="wire type"):
        configmap(field_bytes(1, field_varint(1, 5)))  # ObjectMeta.name as a varint


def test_group_wire_types_are_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="wire type"):
        configmap(tag(2, 3))


def test_invalid_utf8_in_a_string_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="UTF-8"):
        configmap(field_bytes(1, field_bytes(1, b"\xff\xfe")))


def test_repeated_singular_field_keeps_the_last_value() -> None:
    meta = field_bytes(1, field_bytes(1, "first") + field_bytes(1, "second"))
    assert configmap(meta)["metadata"]["name"] == "second"


def test_repeated_occurrences_of_a_message_field_are_merged() -> None:
    first = field_bytes(1, field_bytes(1, "c"))
    second = field_bytes(1, field_bytes(11, field_bytes(1, "app") + field_bytes(2, "x")))
    obj = decode_protobuf_object(envelope("v1", "ConfigMap", first + second))
    assert obj["metadata"] == {"name": "c", "labels": {"app": "x"}}


def test_map_entries_with_missing_key_or_value_default_to_empty_strings() -> None:
    data = field_bytes(2, field_bytes(1, "only-key")) + field_bytes(2, field_bytes(2, "v"))
    assert configmap(data)["data"] == {"only-key": "", "": "v"}


# --------------------------------------------------------------------------- special types


def timestamp(seconds: int, nanos: int = 0) -> bytes:
    return field_varint(1, seconds) + (field_varint(2, nanos) if nanos else b"")


def test_time_decodes_to_rfc3339_seconds() -> None:
    meta = field_bytes(1, field_bytes(8, timestamp(1795629600, 123_000_000)))
    assert configmap(meta)["metadata"]["creationTimestamp"] == "2026-11-25T18:00:00Z"


def test_time_at_the_epoch_is_not_the_zero_time() -> None:
    meta = field_bytes(1, field_bytes(8, field_varint(1, 0)))
    assert configmap(meta)["metadata"]["creationTimestamp"] == "1970-01-01T00:00:00Z"


def test_empty_time_is_the_go_zero_time_and_is_dropped() -> None:
    meta = field_bytes(1, field_bytes(1, "c") + field_bytes(8, b"") + field_bytes(9, b""))
    assert configmap(meta)["metadata"] == {"name": "c"}


def test_micro_time_decodes_to_rfc3339_microseconds() -> None:
    raw = metadata("e") + field_bytes(2, timestamp(1795629600, 123_456_789))
    event = decode_protobuf_object(envelope("events.k8s.io/v1", "Event", raw))
    assert event["eventTime"] == "2026-11-25T18:00:00.123456Z"


def test_timestamp_out_of_range_is_rejected() -> None:
    meta = field_bytes(1, field_bytes(8, field_varint(1, 10**12)))
    with pytest.raises(ProtobufDecodeError, match="out of range"):
        configmap(meta)


def int_or_string_probe(value: bytes) -> Any:
    probe = field_bytes(1, field_bytes(3, field_bytes(1, value)))  # handler.tcpSocket.port
    container = field_bytes(1, "c") + field_bytes(10, probe)  # livenessProbe
    spec = field_bytes(2, container)
    pod = decode_protobuf_object(envelope("v1", "Pod", metadata("p") + field_bytes(2, spec)))
    return pod["spec"]["containers"][0]["livenessProbe"]["tcpSocket"]["port"]


def test_int_or_string_decodes_to_int_or_str() -> None:
    assert int_or_string_probe(field_varint(1, 0) + field_varint(2, 8080)) == 8080
    assert int_or_string_probe(field_varint(1, 1) + field_bytes(3, "http")) == "http"
    assert int_or_string_probe(b"") == 0


def test_int_or_string_with_an_unknown_type_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="IntOrString"):
        int_or_string_probe(field_varint(1, 7))


def test_fields_v1_decodes_to_its_embedded_json() -> None:
    entry = field_bytes(1, "kubectl") + field_bytes(7, field_bytes(1, b'{"f:data":{}}'))
    meta = field_bytes(1, field_bytes(1, "c") + field_bytes(17, entry))
    assert configmap(meta)["metadata"]["managedFields"] == [
        {"manager": "kubectl", "fieldsV1": {"f:data": {}}}
    ]


def test_fields_v1_that_is_not_json_is_rejected() -> None:
    entry = field_bytes(7, field_bytes(1, b"{nope"))
    with pytest.raises(ProtobufDecodeError, match="JSON"):
        configmap(field_bytes(1, field_bytes(17, entry)))


def test_delete_options_decode_under_any_group_version() -> None:
    raw = field_varint(1, 0) + field_bytes(4, "Foreground") + field_bytes(5, "All")
    assert decode_protobuf_object(envelope("apps/v1", "DeleteOptions", raw)) == {
        "apiVersion": "apps/v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


# --------------------------------------------------------------------------- envelope


def test_body_without_the_magic_prefix_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="prefix"):
        decode_protobuf_object(b'{"kind":"ConfigMap"}')


def test_magic_prefix_alone_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="empty"):
        decode_protobuf_object(MAGIC)


def test_empty_body_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError):
        decode_protobuf_object(b"")


def test_non_bytes_input_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="bytes"):
        decode_protobuf_object("k8s\x00")  # type: ignore[arg-type]


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="Widget"):
        decode_protobuf_object(envelope("example.com/v1", "Widget", b""))


def test_kind_served_in_another_group_version_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="no protobuf decoding"):
        decode_protobuf_object(envelope("apps/v1beta1", "Deployment", b""))


def test_envelope_without_kind_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="kind"):
        decode_protobuf_object(MAGIC + field_bytes(1, field_bytes(1, "v1")))


def test_envelope_with_a_content_encoding_is_rejected() -> None:
    with pytest.raises(ProtobufDecodeError, match="encoding"):
        decode_protobuf_object(envelope("v1", "ConfigMap", b"", extra=field_bytes(3, "gzip")))


def test_envelope_carrying_json_decodes_the_json() -> None:
    extra = field_bytes(4, "application/json")
    body = envelope("v1", "ConfigMap", b'{"data":{"a":"b"}}', extra=extra)
    assert decode_protobuf_object(body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {"a": "b"},
    }


# --------------------------------------------------------------------------- robustness


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_after_the_prefix_decode_or_raise_decode_error(tail: bytes) -> None:
    try:
        result = decode_protobuf_object(MAGIC + tail)
    except ProtobufDecodeError:
        return
    assert isinstance(result, dict)


KINDS = [
    ("v1", "ConfigMap"),
    ("v1", "Pod"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("events.k8s.io/v1", "Event"),
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(KINDS), st.binary(max_size=512))
def test_arbitrary_object_bytes_of_a_known_kind_decode_or_raise_decode_error(
    kind: tuple[str, str], raw: bytes
) -> None:
    try:
        result = decode_protobuf_object(envelope(*kind, raw))
    except ProtobufDecodeError:
        return
    assert result["kind"] == kind[1]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(sorted(CAPTURES)),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
)
def test_corrupted_captures_decode_or_raise_decode_error(
    name: str, edits: list[tuple[int, int]]
) -> None:
    body = bytearray(capture(name))
    for position, byte in edits:
        body[4 + position % (len(body) - 4)] = byte
    try:
        decode_protobuf_object(bytes(body))
    except ProtobufDecodeError:
        pass


# --------------------------------------------------------------------------- schema and generator


def schema() -> Any:
    return json.loads((ROOT / "src/setpoint/api/protobuf_schema.json").read_text())


def test_schema_is_closed_over_referenced_messages() -> None:
    doc = schema()
    messages = doc["messages"]
    scalars = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double"}
    for kinds in doc["kinds"].values():
        for message in kinds.values():
            assert message in messages
    for message, fields in messages.items():
        for number, (_name, typ, _repeated, _flags) in fields.items():
            value_type = typ.split(":")[-1]
            assert value_type in scalars or value_type in messages, (message, number, typ)


def test_schema_records_its_kubernetes_version() -> None:
    assert "v1.37.1" in schema()["source"]


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_protobuf_schema", ROOT / "scripts" / "gen_protobuf_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while loading
    spec.loader.exec_module(module)
    return module


def test_generator_parses_proto2_messages_maps_and_qualified_types() -> None:
    gen = load_generator()
    messages = gen.parse_proto(
        """
        syntax = "proto2";
        package k8s.io.api.demo.v1;
        // A comment with a } brace.
        message Thing {
          optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
          map<string, .k8s.io.apimachinery.pkg.api.resource.Quantity> limits = 2;
          repeated Part parts = 3;
          optional int64 count = 4;
        }
        message Part {
          repeated string names = 1;
        }
        """
    )
    thing = messages["k8s.io.api.demo.v1.Thing"]
    assert (thing[1].name, thing[1].type) == (
        "metadata",
        "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    )
    assert thing[2].type == "map:string:k8s.io.apimachinery.pkg.api.resource.Quantity"
    assert (thing[3].type, thing[3].repeated) == ("k8s.io.api.demo.v1.Part", True)
    assert (thing[4].type, thing[4].repeated) == ("int64", False)
    assert messages["k8s.io.api.demo.v1.Part"][1].repeated


def test_every_built_in_kind_declares_its_wire_schema_and_the_table_has_it() -> None:
    """A kind says which protobuf message it is (or that it is JSON-only), and the generated
    field table (scripts/gen_protobuf_schema.py) holds that message under the kind: adding a
    kind without regenerating the table fails here."""
    from setpoint.api.protobuf import message_for
    from setpoint.resources.catalog import KINDS
    from setpoint.resources.registry import JSON_ONLY

    table = json.loads(
        (Path(__file__).parents[2] / "src/setpoint/api/protobuf_schema.json").read_text()
    )
    for rtype in KINDS:
        assert rtype.protobuf is not None, f"{rtype.kind} declares no wire schema"
        if rtype.protobuf == JSON_ONLY:
            assert message_for(rtype.api_version, rtype.kind) is None
            continue
        assert message_for(rtype.api_version, rtype.kind) == rtype.protobuf, rtype.kind
        assert rtype.protobuf in table["messages"], rtype.protobuf
