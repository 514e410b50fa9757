"""``auditcost``: what the audit log, encryption at rest and the per-user rate limit add to
one request, measured in-process (no HTTP, no store), so the figure is the added work alone.

Method: an :class:`~setpoint.api.audit.Auditor` writing to a file in a temporary directory
audits ``REQUESTS`` creates of a ~1 KiB ConfigMap (request body and response as the server
has them) under the default policy (Metadata) and under RequestResponse, and as many reads
that the default policy does not log; then ``ROUNDS`` AES-GCM encryptions and decryptions of
a 1 KiB Secret through the generated encryption configuration, and token-bucket takes.
Each figure is microseconds per operation, the best of three runs (the machine is shared).

Standalone: ``python -m bench.auditcost``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from setpoint.api.audit import DEFAULT_POLICY, AuditLog, Auditor, Level, Policy, PolicyRule
from setpoint.api.auth.attributes import request_attributes
from setpoint.api.auth.user import UserInfo
from setpoint.api.bodies import RAW_BODY_KEY
from setpoint.api.encryption import EncryptionConfig, generate_config_text
from setpoint.api.ratelimit import ClientLimits, ClientRateLimiter

REQUESTS = 20_000
ROUNDS = 50_000
USER = UserInfo("alice", ("system:authenticated",))
CONFIGMAP = orjson.dumps(
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d"},
        "data": {"k": "x" * 800},
    }
)


async def best_of_three(run: Callable[[], Awaitable[float]]) -> float:
    return min([await run() for _ in range(3)])


async def audited(directory: Path, policy: Policy, method: str, status: int) -> float:
    auditor = Auditor(policy, AuditLog(directory / f"audit-{method}-{status}.log"))
    await auditor.start()
    path = "/api/v1/namespaces/d/configmaps" + ("/c" if method == "GET" else "")
    request = make_mocked_request(
        method, path, headers={"User-Agent": "kubectl/v1.37.1", "Content-Type": "application/json"}
    )
    if method == "POST":
        request[RAW_BODY_KEY] = CONFIGMAP
    response = web.Response(body=CONFIGMAP, status=status, content_type="application/json")
    attrs = request_attributes(USER, method, path, request.query)
    start = time.perf_counter()
    for _ in range(REQUESTS):
        context = auditor.begin(request, attrs, long_running=False)
        auditor.complete(context, request, response)
    elapsed = time.perf_counter() - start
    await auditor.stop()
    return elapsed / REQUESTS * 1e6


def per_op(op: Callable[[], object], rounds: int = ROUNDS) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        op()
    return (time.perf_counter() - start) / rounds * 1e6


async def main() -> None:
    everything = Policy((PolicyRule(Level.REQUEST_RESPONSE),))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        figures = {
            "audit, create at Metadata (default policy)": await best_of_three(
                lambda: audited(directory, DEFAULT_POLICY, "POST", 201)
            ),
            "audit, create at RequestResponse": await best_of_three(
                lambda: audited(directory, everything, "POST", 201)
            ),
            "audit, read the default policy does not log": await best_of_three(
                lambda: audited(directory, DEFAULT_POLICY, "GET", 200)
            ),
        }
    secrets = EncryptionConfig.parse(yaml.safe_load(generate_config_text())).for_resource(
        "", "secrets"
    )
    key = "/registry/core/secrets/d/s"
    plain = orjson.dumps({"metadata": {"name": "s"}, "data": {"k": "x" * 1000}})
    stored = secrets.to_storage(plain, key)
    figures["aesgcm encrypt, 1 KiB Secret"] = min(
        per_op(lambda: secrets.to_storage(plain, key)) for _ in range(3)
    )
    figures["aesgcm decrypt, 1 KiB Secret"] = min(
        per_op(lambda: secrets.from_storage(stored, key)) for _ in range(3)
    )
    limiter = ClientRateLimiter(ClientLimits(qps=1e9, burst=10**9))
    figures["per-user token bucket, one take"] = min(
        per_op(lambda: limiter.take(USER)) for _ in range(3)
    )
    for name, micros in figures.items():
        print(f"{name}: {micros:.1f} us")


if __name__ == "__main__":
    asyncio.run(main())
