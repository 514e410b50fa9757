"""The agent's token manager: what it asks the API server for a pod's projected token, and
when it asks again (at 80% of the token's lifetime, as the kubelet's)."""

from __future__ import annotations

import time
from typing import Any

from setpoint.agent.tokens import IssuedToken, TokenManager, token_key, token_sources
from setpoint.meta.timestamps import rfc3339

POD = {
    "metadata": {"name": "web", "namespace": "shop", "uid": "pod-uid"},
    "spec": {
        "serviceAccountName": "robot",
        "volumes": [
            {
                "name": "kube-api-access-abcde",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                    ]
                },
            }
        ],
    },
}


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None) -> dict[str, Any]:
        self.sent.append((method, path, body))
        expires = time.time() + body["spec"]["expirationSeconds"]
        return {"status": {"token": f"t{len(self.sent)}", "expirationTimestamp": rfc3339(expires)}}


async def test_token_is_bound_to_the_pod_and_kept_until_due() -> None:
    client = FakeClient()
    manager = TokenManager(client)  # type: ignore[arg-type]
    (source,) = token_sources(POD)
    key = token_key(POD, source)
    assert await manager.get(key) == "t1"
    assert await manager.get(key) == "t1"  # not due: no second request
    ((method, path, body),) = client.sent
    assert (method, path) == ("POST", "/api/v1/namespaces/shop/serviceaccounts/robot/token")
    assert body["spec"] == {
        "expirationSeconds": 3607,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid"},
    }
    manager.forget("pod-uid")
    assert await manager.get(key) == "t2"


def test_a_token_is_due_at_80_percent_of_its_lifetime() -> None:
    issued = IssuedToken("t", issued=1000.0, expires=2000.0)
    assert not issued.due(1799.0)
    assert issued.due(1800.0)
    day_long = IssuedToken("t", issued=0.0, expires=10 * 24 * 3600.0)
    assert day_long.due(0.8 * 24 * 3600)  # at most a day counts
