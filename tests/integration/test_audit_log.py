"""The audit log of a real server: audit.k8s.io/v1 Events for writes, 401s and 403s under
the default policy, a policy file's levels (first match wins), long-running requests'
ResponseStarted, never a Secret's data even at RequestResponse, rotation by size."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import objects
from tests.support import Kubectl, Server, start_server, wait_for

pytestmark = pytest.mark.xdist_group("audit-log")

SECRET_VALUE = "s3cret-audit-value-that-must-not-leak"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_events(path: Path, match: Any, *, count: int = 1) -> list[dict[str, Any]]:
    """Poll the log (it is flushed in the background) for ``count`` events ``match`` likes."""

    def found() -> list[dict[str, Any]] | None:
        hits = [e for e in events(path) if match(e)]
        return hits if len(hits) >= count else None

    return wait_for(found, timeout=10, what="audit events")


def assert_event_shape(event: dict[str, Any]) -> None:
    assert event["kind"] == "Event"
    assert event["apiVersion"] == "audit.k8s.io/v1"
    assert event["level"] in ("Metadata", "Request", "RequestResponse")
    assert re.fullmatch(r"[0-9a-f-]{36}", event["auditID"])
    assert event["stage"] in ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
    assert event["requestURI"].startswith("/")
    assert isinstance(event["verb"], str)
    assert isinstance(event["user"], dict)
    assert event["sourceIPs"] == ["127.0.0.1"]
    assert MICRO_TIME.match(event["requestReceivedTimestamp"])
    assert MICRO_TIME.match(event["stageTimestamp"])
    assert event["stageTimestamp"] >= event["requestReceivedTimestamp"]
    if event["stage"] != "RequestReceived":
        assert isinstance(event["responseStatus"]["code"], int)


def test_default_policy_logs_writes_and_refusals_not_reads(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "audit.log"
    server = start_server(tmp_path / "data", extra=["--audit-log-path", str(log)])
    try:
        kubectl = Kubectl(server, "default")
        kubectl("create", "configmap", "audited", "--from-literal=k=v")
        kubectl("label", "configmap", "audited", "x=y")
        kubectl("get", "configmap", "audited")
        kubectl("delete", "configmap", "audited")
        status, _, _ = server.request("GET", "/api/v1/namespaces", token="not-a-token")
        assert status == 401
        node_token = (server.data_dir / "node-token").read_text().strip()
        status, body, _ = server.request(
            "POST", "/api/v1/namespaces/default/pods/p/exec?command=true", token=node_token
        )
        assert status == 403, body

        def about_audited(e: dict[str, Any]) -> bool:
            return e.get("objectRef", {}).get("resource") == "configmaps"

        wait_events(log, lambda e: e["verb"] == "delete" and about_audited(e))
        wait_events(log, lambda e: e["responseStatus"]["code"] == 403, count=2)
        logged = events(log)
        for event in logged:
            assert_event_shape(event)
            assert event["level"] == "Metadata"
            assert event["stage"] != "RequestReceived"  # the default policy omits it
            assert "requestObject" not in event and "responseObject" not in event
        mine = [e for e in logged if about_audited(e)]
        assert [e["verb"] for e in mine] == ["create", "patch", "delete"]  # no get
        create = mine[0]
        assert create["stage"] == "ResponseComplete"
        assert create["requestURI"].startswith("/api/v1/namespaces/default/configmaps")
        assert create["user"] == {
            "username": "admin",
            "groups": ["system:masters", "system:authenticated"],
        }
        assert create["userAgent"].startswith("kubectl")
        assert create["objectRef"] == {
            "resource": "configmaps",
            "namespace": "default",
            "name": "audited",  # from the body, as upstream
            "apiVersion": "v1",
        }
        assert create["responseStatus"] == {"metadata": {}, "code": 201}
        assert create["annotations"] == {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "",
        }
        assert mine[2]["objectRef"]["name"] == "audited"

        [unauthorized] = [e for e in logged if e["responseStatus"]["code"] == 401]
        assert unauthorized["stage"] == "ResponseStarted"
        assert unauthorized["user"] == {}
        assert unauthorized["verb"] == "list"
        assert unauthorized["responseStatus"]["message"] == (
            "Authentication failed, attempted: bearer"
        )
        assert "annotations" not in unauthorized

        # exec is long-running: its response starts (here with the refusal) and completes
        refusals = [e for e in logged if e["responseStatus"]["code"] == 403]
        assert [e["stage"] for e in refusals] == ["ResponseStarted", "ResponseComplete"]
        assert refusals[0]["auditID"] == refusals[1]["auditID"]
        forbidden = refusals[1]
        assert forbidden["verb"] == "create"
        assert forbidden["user"]["username"] == "system:bootstrap:server"  # the join token
        assert forbidden["objectRef"]["subresource"] == "exec"
        assert forbidden["responseStatus"]["reason"] == "Forbidden"
        assert forbidden["annotations"]["authorization.k8s.io/decision"] == "forbid"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        assert server.stop() == 0


POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "namespaces": ["quiet"]},
        {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["*"]}]},
        {"level": "Metadata"},
    ],
}


@pytest.fixture
def verbose(tmp_path: Path) -> tuple[Server, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    log = tmp_path / "audit.log"
    server = start_server(
        tmp_path / "data",
        extra=["--audit-log-path", str(log), "--audit-policy-file", str(policy)],
    )
    yield server, log
    assert server.stop() == 0


def test_a_policy_file_decides_levels_first_match_wins(verbose: tuple[Server, Path]) -> None:
    server, log = verbose
    audit_ids = {}
    for namespace in ("loud", "quiet"):
        status, body, _ = server.request("POST", "/api/v1/namespaces", objects.namespace(namespace))
        assert status == 201, body
        cm = objects.configmap("c", data={"k": f"value-in-{namespace}"})
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        status, body, headers = server.request("POST", path, cm)
        assert status == 201, body
        audit_ids[namespace] = headers["Audit-ID"]
    status, _, _ = server.request("GET", "/apis/apps/v1/namespaces/loud/deployments")
    assert status == 200

    [create] = wait_events(
        log, lambda e: e["verb"] == "create" and e.get("objectRef", {}).get("namespace") == "loud"
    )
    assert create["level"] == "RequestResponse"
    assert create["auditID"] == audit_ids["loud"]  # the header the client got
    assert create["requestObject"]["data"] == {"k": "value-in-loud"}
    assert create["responseObject"]["metadata"]["uid"]
    assert create["responseObject"]["data"] == {"k": "value-in-loud"}
    Kubectl(server, "loud")("label", "configmap", "c", "audited=yes")
    [patch] = wait_events(log, lambda e: e["verb"] == "patch")
    assert patch["requestObject"] == {"metadata": {"labels": {"audited": "yes"}}}
    assert patch["responseObject"]["metadata"]["labels"] == {"audited": "yes"}
    assert patch["objectRef"]["name"] == "c"
    [apps] = wait_events(log, lambda e: e.get("objectRef", {}).get("apiGroup") == "apps")
    assert apps["level"] == "Metadata"  # not the core group: the last rule
    assert apps["verb"] == "list"
    logged = events(log)
    assert not any("value-in-quiet" in json.dumps(e) for e in logged)
    assert not any(e["requestURI"].startswith("/readyz") for e in logged)
    assert not any(e["stage"] == "RequestReceived" for e in logged)


def test_secret_data_never_reaches_the_log(verbose: tuple[Server, Path]) -> None:
    server, log = verbose
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    kubectl = Kubectl(server, "default")
    kubectl("create", "secret", "generic", "leak", f"--from-literal=password={SECRET_VALUE}")
    secret = kubectl("get", "secret", "leak", "-o", "json").json()
    assert secret["data"]["password"] == encoded
    kubectl("patch", "secret", "leak", "-p", json.dumps({"stringData": {"more": SECRET_VALUE}}))
    kubectl("get", "secrets")
    kubectl("delete", "secret", "leak")
    about = wait_events(
        log,
        lambda e: e.get("objectRef", {}).get("resource") == "secrets" and e["verb"] == "delete",
    )
    assert about
    text = "".join(p.read_text() for p in log.parent.glob("audit*.log"))
    assert SECRET_VALUE not in text
    assert encoded not in text
    secrets = [e for e in events(log) if e.get("objectRef", {}).get("resource") == "secrets"]
    assert {e["verb"] for e in secrets} >= {"create", "get", "patch", "list", "delete"}
    for event in secrets:
        assert event["level"] == "Metadata"
        assert "requestObject" not in event and "responseObject" not in event


def test_a_watch_is_logged_when_it_starts_and_when_it_ends(verbose: tuple[Server, Path]) -> None:
    server, log = verbose
    stream = server.watch("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
    try:
        stream.take(1)  # the kube-root-ca or an initial event; or nothing at all
    except Exception:
        pass
    finally:
        stream.close()

    def watch_of(stage: str) -> Any:
        return lambda e: e["verb"] == "watch" and e["stage"] == stage

    [started] = wait_events(log, watch_of("ResponseStarted"))
    [complete] = wait_events(log, watch_of("ResponseComplete"))
    assert started["auditID"] == complete["auditID"]
    assert started["responseStatus"]["code"] == 200
    assert started["stageTimestamp"] <= complete["stageTimestamp"]

    # a watch its client closes is complete too
    stream = server.watch("/api/v1/namespaces/default/configmaps?watch=true")
    audit_id = stream.response.getheader("Audit-ID")
    wait_events(log, lambda e: e["auditID"] == audit_id and e["stage"] == "ResponseStarted")
    stream.close()
    [closed] = wait_events(
        log, lambda e: e["auditID"] == audit_id and e["stage"] == "ResponseComplete"
    )
    assert closed["responseStatus"]["code"] == 200


def test_the_log_rotates_by_size(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "rules": [{"level": "RequestResponse", "verbs": ["create"]}],
            }
        )
    )
    log = tmp_path / "logs" / "audit.log"
    server = start_server(
        tmp_path / "data",
        extra=[
            *("--audit-log-path", str(log), "--audit-policy-file", str(policy)),
            *("--audit-log-maxsize", "1", "--audit-log-maxbackup", "2"),
        ],
    )
    try:
        big = "x" * 150_000  # twice in each event (request and response), twice per request
        for i in range(12):
            cm = objects.configmap(f"big-{i}", data={"k": big})
            status, body, _ = server.request("POST", "/api/v1/namespaces/default/configmaps", cm)
            assert status == 201, body

        def rotated() -> list[Path] | None:
            backups = sorted(log.parent.glob("audit-*.log"))
            return backups if len(backups) == 2 else None

        backups = wait_for(rotated, timeout=10, what="two rotated audit logs")
    finally:
        assert server.stop() == 0
    for path in [*backups, log]:
        assert path.stat().st_size <= 1024 * 1024
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for line in path.read_text().splitlines():
            assert json.loads(line)["kind"] == "Event"
    creates = [e for e in events(log) if e["verb"] == "create"]
    assert creates[-1]["objectRef"]["name"] == "big-11"  # the newest events are in the log


def test_admission_annotations_reach_the_audit_event(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    server = start_server(tmp_path / "data", extra=["--audit-log-path", str(log)])
    try:
        namespace = objects.namespace("watched")
        namespace["metadata"]["labels"] = {"pod-security.kubernetes.io/audit": "restricted"}
        status, body, _ = server.request("POST", "/api/v1/namespaces", namespace)
        assert status == 201, body
        status, body, _ = server.request(
            "POST", "/api/v1/namespaces/watched/pods", objects.pod("loose")
        )
        assert status == 201, body  # audit mode admits, and says so in the audit log
        [create] = wait_events(
            log,
            lambda e: e["verb"] == "create" and e.get("objectRef", {}).get("resource") == "pods",
        )
        annotations = create["annotations"]
        assert annotations["authorization.k8s.io/decision"] == "allow"
        assert annotations["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
        assert "restricted:latest" in annotations["pod-security.kubernetes.io/audit-violations"]
    finally:
        assert server.stop() == 0
