"""What the fuzzing found, sent to a real server: each of these once crashed a handler
(a 500) or held a core for minutes; now each is answered at once, with the object or with
a Status saying what is wrong (docs/security-fuzzing.md)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Server


def post_yaml(server: Server, path: str, text: bytes) -> tuple[int, Any]:
    status, body, _ = server.request(
        "POST", path, raw=text, headers={"Content-Type": "application/yaml"}
    )
    return status, body


def assert_refused(status: int, body: Any, code: int, words: str) -> None:
    assert status == code, body
    assert isinstance(body, dict) and body["kind"] == "Status", body
    assert body["code"] == code
    assert words in body["message"], body["message"]


def test_a_yaml_binary_value_is_stored_as_its_text(server: Server, namespace: str) -> None:
    status, body = post_yaml(
        server,
        f"/api/v1/namespaces/{namespace}/configmaps",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: binary}\n"
        b"data: {greeting: !!binary aGVsbG8=}\n",
    )
    assert status == 201, body
    assert body["data"] == {"greeting": "hello"}


def test_a_yaml_set_is_a_mapping_to_nulls(server: Server, namespace: str) -> None:
    status, body = post_yaml(
        server,
        f"/api/v1/namespaces/{namespace}/configmaps",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: set}\ndata: !!set {a, b}\n",
    )
    assert status < 500, body
    assert body["kind"] in ("Status", "ConfigMap"), body


def test_one_long_string_behind_many_aliases_is_refused(server: Server, namespace: str) -> None:
    lines = [b"apiVersion: v1", b"kind: ConfigMap", b"metadata: {name: laughs}"]
    lines += [b"s: &s " + b"x" * 1_000_000, b"data:"]
    lines += [b"  k%d: *s" % i for i in range(20)]
    status, body = post_yaml(
        server, f"/api/v1/namespaces/{namespace}/configmaps", b"\n".join(lines) + b"\n"
    )
    assert_refused(status, body, 400, "excessive aliasing")


def test_a_merge_key_bomb_is_refused(server: Server, namespace: str) -> None:
    big = b"big: &big {" + b", ".join(b"k%d: x" % i for i in range(5000)) + b"}"
    lines = [b"apiVersion: v1", b"kind: ConfigMap", b"metadata: {name: merged}", big, b"items:"]
    lines += [b"- {<<: *big}"] * 400  # 2,000,000 pairs from 60 KB
    status, body = post_yaml(
        server, f"/api/v1/namespaces/{namespace}/configmaps", b"\n".join(lines) + b"\n"
    )
    assert_refused(status, body, 400, "excessive aliasing")


@pytest.mark.parametrize("quantity", ["1e99999999", "1" * 5000, "1e9223372036854775808"])
def test_a_quantity_past_what_can_be_computed_is_a_bad_request(
    server: Server, namespace: str, quantity: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "huge"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": quantity}},
                }
            ]
        },
    }
    status, body, _ = server.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    # a quantity that does not parse fails decoding, as Quantity.UnmarshalJSON does
    assert_refused(status, body, 400, "cannot be handled as a Pod")


@pytest.mark.parametrize(
    "schedule", ["TZ=" + "A" * 300 + " * * * * *", "@every 9999999999999h", "0 0 * * " + "1" * 5000]
)
def test_a_cron_schedule_that_crashed_the_parser_is_invalid(
    server: Server, namespace: str, schedule: str
) -> None:
    cron_job = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "odd"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox"}],
                        }
                    }
                }
            },
        },
    }
    status, body, _ = server.request(
        "POST", f"/apis/batch/v1/namespaces/{namespace}/cronjobs", cron_job
    )
    assert_refused(status, body, 422, "spec.schedule")


def test_an_unknown_field_named_with_control_characters_gets_no_warning_header(
    server: Server, namespace: str
) -> None:
    """The unknown-field warning would carry the name into a response header, where a line
    break is refused (the connection was dropped without an answer): it is left out, as
    Kubernetes' warning recorder leaves out text with control characters."""
    status, body, headers = server.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ctl"},
            "bad\r\nX-Injected: 1\u000b": {},
            "plain": 1,
        },
    )
    assert status == 201, body
    assert "X-Injected" not in headers
    assert 'unknown field \\"plain\\"' in headers.get("Warning", ""), headers
