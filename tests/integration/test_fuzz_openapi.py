"""Schemathesis against a real API server: requests generated from the OpenAPI v3 documents
the server itself serves (``/openapi/v3`` lists one document per group-version).

Every answer must be a success or a Kubernetes ``Status`` with the code of the response
(never a 5xx), every request must be answered within ``REQUEST_TIMEOUT`` seconds, the server
must still be ready afterwards with no traceback in its log, and a rejected write must leave
what it addressed as it was (the object's ``resourceVersion``, or every item's of the
collection, read consistently before and after).

Each operation is driven three ways: schema-valid requests against objects that exist
(``namespace=fuzz``, ``name=fuzz-target`` seeded for every kind), schema-violating requests
against the same objects, and schema-violating requests with generated path parameters.

In CI the campaign is bounded: ``CI_OPERATIONS`` operations sampled with a fixed seed, a few
examples each, no shrinking, no example database. A bigger campaign by hand::

    SETPOINT_FUZZ_EXAMPLES=25 SETPOINT_FUZZ_REPORT=/tmp/fuzz.json \\
        .venv/bin/pytest -q -s tests/integration/test_fuzz_openapi.py

runs every operation with that many examples per way and writes the counts to the report
(docs/security-fuzzing.md).
"""

from __future__ import annotations

import collections
import copy
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from tests.integration.samples import BODIES
from tests.support import Server, start_server

SEED = int(os.environ.get("SETPOINT_FUZZ_SEED", "15"))
EXAMPLES = int(os.environ.get("SETPOINT_FUZZ_EXAMPLES", "0"))
REPORT = os.environ.get("SETPOINT_FUZZ_REPORT", "")
CI_OPERATIONS = 30
CI_EXAMPLES = 3
REQUEST_TIMEOUT = 10.0
MAX_BODY = 4 << 20
CAMPAIGN_TIMEOUT = 240 if not EXAMPLES else 6 * 3600
NAMESPACE = "fuzz"
SUBRESOURCES = {
    "status", "scale", "binding", "eviction", "ephemeralcontainers", "finalize", "log",
    "exec", "attach", "portforward", "proxy",
}  # fmt: skip
TARGET = "fuzz-target"

# a fixed place to fuzz against: one object of each kind, named alike
pytestmark = pytest.mark.xdist_group("fuzz-openapi")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("fuzz") / "data")
    try:
        yield srv
    finally:
        code = srv.stop()
    assert code == 0, f"server exited uncleanly ({code}):\n{srv.log()[-5000:]}"
    assert "Traceback" not in srv.log(), srv.log()[-20000:]


@dataclass(frozen=True)
class Document:
    group_version: str
    raw: dict[str, Any]


@pytest.fixture(scope="module")
def documents(fuzz_server: Server) -> list[Document]:
    status, root, _ = fuzz_server.request("GET", "/openapi/v3")
    assert status == 200, root
    docs = []
    for group_version, ref in sorted(root["paths"].items()):
        status, doc, _ = fuzz_server.request("GET", ref["serverRelativeURL"])
        assert status == 200, doc
        docs.append(Document(group_version, doc))
    return docs


def _json_bodies(doc: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes documents a create or update body as ``*/*`` (the server takes JSON, YAML
    and protobuf); send JSON, the content type every client uses, rather than let the
    generator spend its examples on media types that are refused before the body is read."""
    doc = copy.deepcopy(doc)
    for item in doc.get("paths", {}).values():
        for op in item.values():
            content = op.get("requestBody", {}).get("content") if isinstance(op, dict) else None
            if content and "*/*" in content:
                content["application/json"] = content.pop("*/*")
    return doc


@pytest.fixture(scope="module")
def operations(documents: list[Document]) -> list[schemathesis.APIOperation]:
    ops = []
    for doc in documents:
        schema = schemathesis.openapi.from_dict(_json_bodies(doc.raw))
        ops += [result.ok() for result in schema.get_all_operations()]
    assert len(ops) > 100, "the server should document hundreds of operations"
    return sorted(ops, key=lambda op: op.label)


def _kind_of(op: dict[str, Any]) -> str:
    ref = op["requestBody"]["content"]["*/*"]["schema"]["$ref"]
    return str(ref.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def seeded(fuzz_server: Server, documents: list[Document]) -> None:
    """The namespace ``fuzz`` and an object named ``fuzz-target`` of every kind that can be
    created with a bare or sample body, for the fuzzer to read, replace, patch and delete."""
    fuzz_server.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}
    )
    status, body, _ = fuzz_server.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    assert status in (201, 409), body
    status, body, _ = fuzz_server.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TARGET}},
    )
    for doc in documents:
        group = "" if doc.group_version == "api/v1" else doc.group_version.split("/")[1]
        api_version = "v1" if not group else f"{group}/v1"
        for path, item in doc.raw["paths"].items():
            post = item.get("post")
            segments = path.split("/")
            if not post or "{name}" in path or segments[-1] == "namespaces":
                continue
            if "get" not in item:
                continue  # a review (TokenReview, SubjectAccessReview): answered, never stored
            if "{namespace}" in path and segments[-2] != "{namespace}":
                continue
            if "{namespace}" not in path and segments[-2] != "v1":
                continue
            plural = segments[-1]
            meta: dict[str, Any] = {"name": TARGET}
            body = copy.deepcopy(BODIES.get((group, plural), {}))
            for about in ("involvedObject", "regarding"):
                if about in body:
                    body[about]["namespace"] = NAMESPACE
            obj = {"apiVersion": api_version, "kind": _kind_of(post), "metadata": meta, **body}
            status, answer, _ = fuzz_server.request("POST", path.format(namespace=NAMESPACE), obj)
            assert status in (201, 409), (path, answer)


@dataclass
class Failure:
    operation: str
    way: str
    request: str
    problem: str

    def __str__(self) -> str:
        return f"{self.operation} [{self.way}] {self.problem}\n    {self.request}"


@dataclass
class Campaign:
    """Sends the cases and keeps the counts the report is made of."""

    server: Server
    session: requests.Session
    token: str | None
    requests: int = 0
    per_operation: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: list[Failure] = field(default_factory=list)
    unsatisfiable: int = 0

    def fingerprint(self, path: str) -> Any:
        """What a rejected write must leave as it was: the addressed object's
        resourceVersion, or each item's of the addressed collection (read consistently;
        a subresource is checked on its object)."""
        parts = path.split("?", 1)[0].rstrip("/").split("/")
        if len(parts) > 2 and parts[-1] in SUBRESOURCES and parts[-3] not in ("api", "apis"):
            parts = parts[:-1]
        answer = self.session.get(
            self.server.url + "/".join(parts),
            headers={"Authorization": f"Bearer {self.server.token}"},
            verify=str(self.server.ca_file),
            timeout=REQUEST_TIMEOUT,
        )
        if answer.status_code != 200:
            return answer.status_code
        body = answer.json()
        if "items" in body:
            return sorted(
                (
                    i["metadata"].get("namespace", ""),
                    i["metadata"]["name"],
                    i["metadata"]["resourceVersion"],
                )
                for i in body["items"]
            )
        return body.get("metadata", {}).get("resourceVersion")

    def send(self, case: schemathesis.Case, way: str) -> None:
        kwargs = case.as_transport_kwargs(base_url=self.server.url)
        headers = dict(kwargs.pop("headers", None) or {})
        headers.pop("Authorization", None)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        kwargs.pop("verify", None)
        kwargs.pop("timeout", None)
        method = str(kwargs["method"]).upper()
        write = method not in ("GET", "HEAD", "OPTIONS")
        described = f"{method} {case.formatted_path} query={case.query!r}"
        if not isinstance(case.body, NotSet):
            described += f" body={json.dumps(case.body, default=str)[:300]}"
        before = self.fingerprint(case.formatted_path) if write and self.token else None
        self.requests += 1
        self.per_operation[case.operation.label] += 1

        def fail(problem: str) -> None:
            failure = Failure(case.operation.label, way, described, problem)
            self.failures.append(failure)
            if EXAMPLES:  # a long campaign by hand: show them as they come
                print(f"FAILURE {failure}", flush=True)

        started = time.monotonic()
        try:
            answer = self.session.request(
                **kwargs,
                headers=headers,
                verify=str(self.server.ca_file),
                timeout=REQUEST_TIMEOUT,
                stream=True,
            )
        except requests.RequestException as exc:
            fail(f"no answer ({type(exc).__name__}: {exc})")
            return
        with answer:
            self.statuses[answer.status_code] += 1
            streaming = "watch" in answer.headers.get("Content-Type", "") or (
                answer.status_code == 200 and "watch" in described
            )
            payload = b""
            if not streaming:
                try:
                    for chunk in answer.iter_content(65536):
                        payload += chunk
                        if len(payload) > MAX_BODY or time.monotonic() - started > 30:
                            break
                except requests.RequestException as exc:
                    fail(f"answer cut off ({type(exc).__name__}: {exc})")
                    return
        code = answer.status_code
        if code >= 500:
            fail(f"{code}: {payload[:500]!r}")
            return
        if self.token is None and code != 401:
            fail(f"{code} without a token: {payload[:300]!r}")
        if code >= 400:
            try:
                status = json.loads(payload)
            except ValueError:
                fail(f"{code} with a body that is not JSON: {payload[:300]!r}")
                return
            if not (
                isinstance(status, dict)
                and status.get("kind") == "Status"
                and status.get("code") == code
            ):
                fail(f"{code} with a body that is not its Status: {payload[:300]!r}")
            if write and self.token and self.fingerprint(case.formatted_path) != before:
                fail(f"{code} but what it addressed changed")


def _sample(ops: list[schemathesis.APIOperation]) -> list[schemathesis.APIOperation]:
    if EXAMPLES:
        return ops
    return random.Random(SEED).sample(ops, CI_OPERATIONS)


def _run(campaign: Campaign, op: schemathesis.APIOperation, examples: int) -> None:
    fixed = {
        name: value
        for name, value in (("namespace", NAMESPACE), ("name", TARGET))
        if f"{{{name}}}" in op.path
    }
    ways = [
        ("valid", op.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed)),
        ("invalid", op.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed)),
        ("invalid-path", op.as_strategy(GenerationMode.NEGATIVE)),
    ]
    for way, strategy in ways:
        _drive(campaign, strategy, way, examples)


def _drive(campaign: Campaign, strategy: Any, way: str, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def drive(case: schemathesis.Case) -> None:
        campaign.send(case, way)

    try:
        drive()
    except Unsatisfiable:
        # nothing left to break: every parameter is fixed and there is no body
        campaign.unsatisfiable += 1


def _report(name: str, campaign: Campaign, seconds: float) -> None:
    summary = {
        "campaign": name,
        "seed": SEED,
        "operations": len(campaign.per_operation),
        "requests": campaign.requests,
        "seconds": round(seconds, 1),
        "statuses": dict(sorted(campaign.statuses.items())),
        "failures": [str(f) for f in campaign.failures],
        "per_operation": dict(sorted(campaign.per_operation.items())),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "per_operation"}, indent=1))
    if REPORT:
        path = Path(REPORT)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing[name] = summary
        path.write_text(json.dumps(existing, indent=1))


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_generated_requests_get_a_status_and_never_a_server_error(
    fuzz_server: Server, operations: list[schemathesis.APIOperation], seeded: None
) -> None:
    campaign = Campaign(fuzz_server, requests.Session(), fuzz_server.token)
    started = time.monotonic()
    try:
        for op in _sample(operations):
            _run(campaign, op, EXAMPLES or CI_EXAMPLES)
    finally:  # what was tried is worth reporting, even if the run was cut short
        _report("authenticated", campaign, time.monotonic() - started)
    status, body, _ = fuzz_server.request("GET", "/readyz", token=None)
    assert status == 200, body
    assert not campaign.failures, "\n".join(str(f) for f in campaign.failures)


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_generated_requests_without_a_token_are_unauthorized(
    fuzz_server: Server, operations: list[schemathesis.APIOperation]
) -> None:
    campaign = Campaign(fuzz_server, requests.Session(), None)
    started = time.monotonic()
    try:
        for op in _sample(operations):
            _run(campaign, op, 1 if not EXAMPLES else max(1, EXAMPLES // 5))
    finally:
        _report("unauthenticated", campaign, time.monotonic() - started)
    assert not campaign.failures, "\n".join(str(f) for f in campaign.failures)


def test_every_documented_operation_without_a_token_is_unauthorized(
    fuzz_server: Server, documents: list[Document]
) -> None:
    tried = 0
    for doc in documents:
        for path, item in doc.raw["paths"].items():
            concrete = path.replace("{namespace}", NAMESPACE).replace("{name}", TARGET)
            concrete = concrete.replace("{path}", "x")
            for method in ("get", "put", "post", "patch", "delete"):
                if method not in item:
                    continue
                status, body, _ = fuzz_server.request(
                    method.upper(), concrete, token=None, raw=b"{}" if method != "get" else None
                )
                tried += 1
                assert status == 401, (method, concrete, status, body)
                assert isinstance(body, dict) and body["kind"] == "Status", body
                assert body["code"] == 401 and body["reason"] == "Unauthorized", body
    assert tried > 100
