"""The ServiceAccount admission plugin (``plugin/pkg/admission/serviceaccount``).

On the creation of a pod (not a mirror pod, not a subresource):

1. a pod without ``serviceAccountName`` gets ``default``;
2. the ServiceAccount must exist: looked up in the API server's cache, and for ``default``,
   which the ServiceAccounts controller makes in every namespace, asked again for up to 30 s
   (upstream retries for ~1.5 s; setpoint's controller manager starts after the API server
   answers, and a first pod right after start-up would race it); a missing one refuses the
   pod with 403
   ``error looking up service account <ns>/<name>: serviceaccount "<name>" not found``;
3. unless ``automountServiceAccountToken`` is false (the pod's word wins over the
   ServiceAccount's), the pod gets the projected volume ``kube-api-access-<5 random>`` — a
   ``serviceAccountToken`` (path ``token``, 3607 s), the ``kube-root-ca.crt`` ConfigMap's
   ``ca.crt`` and the pod's namespace from the downward API, ``defaultMode`` 0644 — mounted
   read-only at ``/var/run/secrets/kubernetes.io/serviceaccount`` in every init and app
   container that mounts nothing there yet;
4. a pod without ``imagePullSecrets`` gets the ServiceAccount's.

A ServiceAccount with the ``kubernetes.io/enforce-mountable-secrets: "true"`` annotation
limits the Secrets the pod's volumes and env may name to those it lists.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import Any

from setpoint.api import errors
from setpoint.api.admission import CREATE, AdmissionRequest
from setpoint.api.auth.serviceaccount import ObjectGetter

Obj = dict[str, Any]

DEFAULT_SERVICE_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_EXPIRATION_SECONDS = 3607  # WarnOnlyBoundTokenExpirationSeconds
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
# how long a pod waits for its namespace's `default` ServiceAccount: upstream asks ten times
# (~1.5 s); setpoint waits longer, since its controller manager starts after the API server
# answers, and a first `kubectl run` right after `setpoint server` would race it
DEFAULT_WAIT_SECONDS = 30.0
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # names.SimpleNameGenerator's


def token_volume_source() -> Obj:
    """``TokenVolumeSource``: what the projected volume of a pod's token holds."""
    return {
        "defaultMode": 0o644,
        "sources": [
            {
                "serviceAccountToken": {
                    "path": "token",
                    "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                }
            },
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }


def should_automount(account: Obj, spec: Obj) -> bool:
    """The pod's ``automountServiceAccountToken`` wins, then the ServiceAccount's; true."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mount_service_account_token(spec: Obj) -> None:
    """Add the token volume (or reuse a ``kube-api-access-`` one) and mount it in every
    container that has nothing at :data:`MOUNT_PATH` (``mountServiceAccountToken``)."""
    volumes = spec.get("volumes") or []
    existing = next(
        (v["name"] for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), None
    )
    name = existing or VOLUME_PREFIX + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    needs_volume = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            mounts = container.get("volumeMounts") or []
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [
                *mounts,
                {"name": name, "readOnly": True, "mountPath": MOUNT_PATH},
            ]
            needs_volume = True
    if existing is None and needs_volume:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]


def _secret_references(spec: Obj) -> list[tuple[str, str]]:
    """(what refers, secret name) of the pod's secret volumes and env vars."""
    found = []
    for volume in spec.get("volumes") or []:
        name = (volume.get("secret") or {}).get("secretName")
        if name:
            found.append((f'volume with secret.secretName="{name}"', name))
    for field, what in (("initContainers", "init container"), ("containers", "container")):
        for container in spec.get(field) or []:
            for env in container.get("env") or []:
                name = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
                if name:
                    found.append(
                        (
                            f"{what} {container.get('name')} with envVar {env.get('name')} "
                            f'referencing secret.secretName="{name}"',
                            name,
                        )
                    )
    return found


class ServiceAccountAdmission:
    """The plugin; ``objects`` reads ServiceAccounts (set once the API server exists)."""

    def __init__(
        self,
        objects: ObjectGetter | None = None,
        *,
        retry_seconds: float = 0.1,
        default_wait: float = DEFAULT_WAIT_SECONDS,
    ) -> None:
        self.objects = objects
        self.retry_seconds = retry_seconds
        self.default_wait = default_wait

    @staticmethod
    def _applies(request: AdmissionRequest) -> bool:
        return (
            request.operation == CREATE
            and request.user is not None  # (the API server's own writes pass)
            and request.resource == ("", "pods")
            and not request.subresource
            and request.obj is not None
        )

    async def admit(self, request: AdmissionRequest) -> None:
        if not self._applies(request):
            return
        pod = request.obj
        assert pod is not None
        annotations = pod["metadata"].get("annotations") or {}
        if MIRROR_POD_ANNOTATION in annotations:
            return
        spec = pod.setdefault("spec", {})
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccount"] = spec["serviceAccountName"]  # the deprecated alias follows
        account = await self._service_account(request, spec["serviceAccountName"])
        if should_automount(account, spec):
            mount_service_account_token(spec)
        if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [
                {"name": ref.get("name", "")} for ref in account["imagePullSecrets"]
            ]

    async def validate(self, request: AdmissionRequest) -> None:
        if not self._applies(request):
            return
        pod = request.obj
        assert pod is not None
        spec = pod.get("spec") or {}
        annotations = pod["metadata"].get("annotations") or {}
        if MIRROR_POD_ANNOTATION in annotations:
            if spec.get("serviceAccountName"):
                raise self._forbidden(request, "a mirror pod may not reference service accounts")
            return
        account = await self._service_account(request, spec.get("serviceAccountName", ""))
        enforce = ((account.get("metadata") or {}).get("annotations") or {}).get(
            ENFORCE_MOUNTABLE_SECRETS, ""
        )
        if enforce.lower() not in ("true", "1", "t"):
            return
        mountable = {ref.get("name") for ref in account.get("secrets") or []}
        for what, name in _secret_references(spec):
            if name not in mountable:
                raise self._forbidden(
                    request,
                    f"{what} is not allowed because service account "
                    f"{account['metadata']['name']} does not reference that secret",
                )

    async def _service_account(self, request: AdmissionRequest, name: str) -> Obj:
        namespace = request.namespace or ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.default_wait if name == DEFAULT_SERVICE_ACCOUNT else 0)
        while True:
            account = (
                await self.objects.get_object("serviceaccounts", namespace, name)
                if self.objects is not None
                else None
            )
            if account is not None:
                return account
            if loop.time() >= deadline:
                break
            # the ServiceAccounts controller makes `default` soon after the namespace
            await asyncio.sleep(self.retry_seconds * (1 + random.random()))
        raise self._forbidden(
            request,
            f"error looking up service account {namespace}/{name}: "
            f'serviceaccount "{name}" not found',
        )

    @staticmethod
    def _forbidden(request: AdmissionRequest, why: str) -> errors.APIError:
        return errors.forbidden_object(request.rtype, request.name, why)
