"""ServiceAccount tokens for pods, as the kubelet's token manager gets them
(``pkg/kubelet/token/token_manager.go``).

A projected volume's ``serviceAccountToken`` source is a token of the pod's ServiceAccount
bound to the pod: the agent asks the API server for one (``POST
/api/v1/namespaces/<ns>/serviceaccounts/<sa>/token`` with a TokenRequest naming the pod, by
name and uid, in ``boundObjectRef``, the source's ``audience`` and ``expirationSeconds``),
keeps it, and asks again once 80% of its lifetime has passed (or 24 hours, whichever comes
first), so the file the pod reads is always fresh. The token is valid only as long as the
pod exists: the API server checks the bound pod on every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from setpoint.client.api import SERVICEACCOUNTS, ApiClient, Obj

# where the ServiceAccount admission mounts a pod's token volume in every container
SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
REFRESH_FRACTION = 0.8
MAX_TTL_SECONDS = 24 * 3600.0
DEFAULT_EXPIRATION_SECONDS = 3600


@dataclass(frozen=True)
class TokenKey:
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    audience: str
    expiration_seconds: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    issued: float
    expires: float

    def due(self, now: float) -> bool:
        """``requiresRefresh``: 80% of the lifetime (at most 24 h) has passed."""
        ttl = min(self.expires - self.issued, MAX_TTL_SECONDS)
        return now >= self.issued + ttl * REFRESH_FRACTION


def token_key(pod: Obj, source: Obj) -> TokenKey:
    """What a ``serviceAccountToken`` projection of ``pod`` asks for."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    return TokenKey(
        namespace=str(meta.get("namespace") or ""),
        service_account=str(spec.get("serviceAccountName") or "default"),
        pod_name=str(meta.get("name") or ""),
        pod_uid=str(meta.get("uid") or ""),
        audience=str(source.get("audience") or ""),
        expiration_seconds=int(source.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS),
    )


def token_sources(pod: Obj) -> list[Obj]:
    """The pod's ``serviceAccountToken`` projections."""
    found = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in source:
                found.append(source["serviceAccountToken"] or {})
    return found


class TokenManager:
    """Tokens for the pods of this node, each fetched once and refreshed when due."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._tokens: dict[TokenKey, IssuedToken] = {}

    async def get(self, key: TokenKey) -> str:
        """A valid token for ``key`` (ApiError when the API server refuses one)."""
        now = time.time()
        issued = self._tokens.get(key)
        if issued is not None and not issued.due(now):
            return issued.token
        request: Obj = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [key.audience] if key.audience else None,
                "expirationSeconds": key.expiration_seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": key.pod_name,
                    "uid": key.pod_uid,
                },
            },
        }
        if not key.audience:
            del request["spec"]["audiences"]
        path = SERVICEACCOUNTS.path(key.namespace, key.service_account, "token")
        answer = await self.client.request("POST", path, body=request)
        token = str((answer.get("status") or {}).get("token") or "")
        expires = _epoch((answer.get("status") or {}).get("expirationTimestamp"))
        self._tokens[key] = IssuedToken(token, now, expires or now + key.expiration_seconds)
        return token

    def forget(self, pod_uid: str) -> None:
        """Drop the tokens of a pod that is gone (``DeleteServiceAccountToken``)."""
        for key in [k for k in self._tokens if k.pod_uid == pod_uid]:
            del self._tokens[key]


def _epoch(text: object) -> float:
    from datetime import datetime

    if not isinstance(text, str) or not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
