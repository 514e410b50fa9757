"""Audit events as the API server's hooks produce them, without a server: the stages of a
plain and of a long-running request, Panic, a 401 without a user, impersonation, and the
writer's flush on close."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from setpoint.api.audit import AuditLog, Auditor, Level, Policy, PolicyRule
from setpoint.api.auth.attributes import request_attributes
from setpoint.api.auth.user import UserInfo
from setpoint.api.bodies import RAW_BODY_KEY

ALICE = UserInfo("alice", ("devs", "system:authenticated"))
EVERYTHING = Policy((PolicyRule(Level.REQUEST_RESPONSE),))


async def audited(
    tmp_path: Path,
    method: str,
    path: str,
    response: web.StreamResponse,
    *,
    long_running: bool = False,
    panic: bool = False,
    policy: Policy = EVERYTHING,
    impersonator: UserInfo | None = None,
    body: bytes = b"",
) -> list[dict[str, Any]]:
    log = tmp_path / "audit.log"
    auditor = Auditor(policy, AuditLog(log))
    await auditor.start()
    request = make_mocked_request(method, path, headers={"Content-Type": "application/json"})
    if body:
        request[RAW_BODY_KEY] = body
    attrs = request_attributes(ALICE, method, request.path, request.query)
    context = auditor.begin(request, attrs, long_running=long_running, impersonator=impersonator)
    if long_running:
        auditor.started(context, response)  # as the response's headers go out
    context.panicked = panic
    auditor.complete(context, request, response)
    await auditor.stop()
    return [json.loads(line) for line in log.read_text().splitlines()]


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


async def test_a_plain_request_is_received_then_complete(tmp_path: Path) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    events = await audited(
        tmp_path,
        "POST",
        "/api/v1/namespaces/d/configmaps",
        json_response(cm, 201),
        body=orjson.dumps(cm),
    )
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
    received, complete = events
    assert received["auditID"] == complete["auditID"]
    assert "responseStatus" not in received and "requestObject" not in received
    assert complete["requestObject"] == cm
    assert complete["responseObject"] == cm
    assert complete["objectRef"]["name"] == "c"


async def test_a_long_running_request_starts_its_response(tmp_path: Path) -> None:
    stream = web.StreamResponse(status=200)
    events = await audited(
        tmp_path,
        "GET",
        "/api/v1/namespaces/d/pods/p/log?follow=true",
        stream,
        long_running=True,
    )
    assert [e["stage"] for e in events] == [
        "RequestReceived",
        "ResponseStarted",
        "ResponseComplete",
    ]
    assert events[1]["responseStatus"] == {"metadata": {}, "code": 200}
    assert "responseObject" not in events[2]  # a stream is not a body to log


async def test_an_internal_error_is_logged_as_panic(tmp_path: Path) -> None:
    status = {"kind": "Status", "status": "Failure", "message": "boom", "code": 500}
    events = await audited(
        tmp_path, "GET", "/api/v1/namespaces", json_response(status, 500), panic=True
    )
    assert events[-1]["stage"] == "Panic"
    assert events[-1]["responseStatus"]["message"] == "boom"


async def test_impersonation_logs_both_users(tmp_path: Path) -> None:
    admin = UserInfo("admin", ("system:masters",))
    events = await audited(
        tmp_path, "GET", "/api/v1/namespaces", json_response({}), impersonator=admin
    )
    assert events[-1]["user"] == {"username": "admin", "groups": ["system:masters"]}
    assert events[-1]["impersonatedUser"]["username"] == "alice"


async def test_an_unauthenticated_request_has_no_user(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    auditor = Auditor(EVERYTHING, AuditLog(log))
    await auditor.start()
    request = make_mocked_request("GET", "/api/v1/pods", headers={"Authorization": "Bearer x"})
    auditor.unauthenticated(request, web.Response(status=401))
    await auditor.stop()
    [event] = [json.loads(line) for line in log.read_text().splitlines()]
    assert event["stage"] == "ResponseStarted"
    assert event["user"] == {}
    assert event["responseStatus"] == {
        "metadata": {},
        "message": "Authentication failed, attempted: bearer",
        "code": 401,
    }
    assert "Bearer x" not in log.read_text()


async def test_close_writes_everything_buffered(tmp_path: Path) -> None:
    sink = AuditLog(tmp_path / "a.log")
    sink.start()
    for i in range(1000):
        sink.write(b'{"n":%d}\n' % i)
    await sink.close()
    assert len((tmp_path / "a.log").read_text().splitlines()) == 1000
