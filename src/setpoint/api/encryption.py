"""Encryption at rest: how a stored value is turned into the bytes the store keeps, per kind.

kube-apiserver reads ``--encryption-provider-config``, an ``EncryptionConfiguration``
(``apiserver.config.k8s.io/v1``) that lists, for groups of resources, the providers their
values pass through on their way to and from etcd. setpoint reads the same file:

.. code-block:: yaml

    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
    - resources: [secrets]
      providers:
      - aesgcm:
          keys:
          - {name: key1, secret: <base64 of 16, 24 or 32 random bytes>}
      - identity: {}

The first provider of an entry encrypts every value written; every provider may decrypt,
each recognising its own values by their prefix (``k8s:enc:aesgcm:v1:<key name>:``, then
a 12-byte nonce and the AES-GCM ciphertext with its tag, the store key as additional
authenticated data, as upstream), ``identity`` taking what carries no prefix. That is what
makes rotation work: add a new key first, restart, rewrite every object (a value read with
anything but the first provider is *stale*, and an update of it is written even when nothing
changed), drop the old key.

A value no provider can read (a key that is no longer configured, a ciphertext that does not
authenticate) is a corrupt object (see ``corrupt``): the requests that touch it fail naming
its key, everything else is served. The value itself is never put in a message or a log.

Only ``aesgcm`` and ``identity`` are implemented; ``aescbc``, ``secretbox`` and ``kms`` are
refused with a message saying so.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENCRYPTED_PREFIX = b"k8s:enc:"
AESGCM_PREFIX = b"k8s:enc:aesgcm:v1:"
NONCE_SIZE = 12
KEY_SIZES = (16, 24, 32)
CONFIG_API_VERSION = "apiserver.config.k8s.io/v1"
CONFIG_KIND = "EncryptionConfiguration"
# the file ``setpoint server`` writes into its data dir when given none
DEFAULT_CONFIG_FILE = "encryption-config.yaml"
# what the generated configuration encrypts
DEFAULT_ENCRYPTED_RESOURCES = ("secrets",)


class TransformError(Exception):
    """A stored value no provider could read; the message never contains the value."""


class ConfigError(Exception):
    """An encryption configuration that cannot be used; the message says why."""


class Provider(Protocol):
    """One provider: writes values, and reads those carrying its prefix."""

    name: str

    def matches(self, data: bytes) -> bool: ...

    def encrypt(self, data: bytes, key: str) -> bytes: ...

    def decrypt(self, data: bytes, key: str) -> bytes: ...


class Identity:
    """Values stored as they are; reads anything that is not encrypted."""

    name = "identity"

    def matches(self, data: bytes) -> bool:
        # encrypted data is left to the providers that may know its key (else the error
        # names the key it needs)
        return not data.startswith(ENCRYPTED_PREFIX)

    def encrypt(self, data: bytes, key: str) -> bytes:
        return data

    def decrypt(self, data: bytes, key: str) -> bytes:
        if data.startswith(ENCRYPTED_PREFIX):
            raise TransformError("identity transformer tried to read encrypted data")
        return data


class AESGCMKey:
    """One named AES-GCM key: ``k8s:enc:aesgcm:v1:<name>:`` + nonce + ciphertext/tag."""

    def __init__(self, name: str, secret: bytes) -> None:
        if len(secret) not in KEY_SIZES:
            raise ConfigError(
                f"aesgcm key {name!r}: secret is {len(secret)} bytes, must be 16, 24 or 32"
            )
        self.name = f"aesgcm:{name}"
        self.prefix = AESGCM_PREFIX + name.encode() + b":"
        self._aead = AESGCM(secret)

    def matches(self, data: bytes) -> bool:
        return data.startswith(self.prefix)

    def encrypt(self, data: bytes, key: str) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return self.prefix + nonce + self._aead.encrypt(nonce, data, key.encode())

    def decrypt(self, data: bytes, key: str) -> bytes:
        body = data[len(self.prefix) :]
        if len(body) < NONCE_SIZE + 16:
            raise TransformError(f"{self.name}: the data is too short to be encrypted")
        try:
            return self._aead.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], key.encode())
        except InvalidTag:
            raise TransformError(f"{self.name}: cipher: message authentication failed") from None


@dataclass(frozen=True, slots=True)
class Read:
    data: bytes
    stale: bool  # not read by the first provider: the next update rewrites it


class ValueTransformer(Protocol):
    """What a kind's values pass through between the API server and the store."""

    def to_storage(self, data: bytes, key: str) -> bytes: ...

    def from_storage(self, data: bytes, key: str) -> Read: ...


class Plain:
    """No encryption (no configuration names the resource)."""

    def to_storage(self, data: bytes, key: str) -> bytes:
        return data

    def from_storage(self, data: bytes, key: str) -> Read:
        return Read(data, False)


PLAIN = Plain()


class Providers:
    """An entry's providers in order: the first writes, the first whose prefix matches reads
    (upstream's prefix transformers)."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        if not providers:
            raise ConfigError("an entry needs at least one provider")
        self.providers = list(providers)

    def to_storage(self, data: bytes, key: str) -> bytes:
        return self.providers[0].encrypt(data, key)

    def from_storage(self, data: bytes, key: str) -> Read:
        for index, provider in enumerate(self.providers):
            if provider.matches(data):
                return Read(provider.decrypt(data, key), index != 0)
        if data.startswith(AESGCM_PREFIX):
            name = data[len(AESGCM_PREFIX) :].split(b":", 1)[0][:64]
            raise TransformError(
                f"no matching prefix found: encrypted with aesgcm key "
                f"{name.decode(errors='replace')!r}, which is not configured"
            )
        if data.startswith(ENCRYPTED_PREFIX):
            raise TransformError("no matching prefix found: encrypted by a provider not configured")
        raise TransformError("no matching prefix found: the data is not encrypted")


@dataclass(frozen=True)
class EncryptionConfig:
    """Resource (``plural`` or ``plural.group``, ``*.group``, ``*.*``) -> its transformer,
    first match wins as upstream."""

    entries: tuple[tuple[tuple[str, ...], Providers], ...] = ()
    path: Path | None = None

    def for_resource(self, group: str, plural: str) -> ValueTransformer:
        exact = f"{plural}.{group}" if group else plural
        for names, providers in self.entries:
            for name in names:
                if name in (exact, "*.*") or (name == f"*.{group}" and group):
                    return providers
                if name == "*." and not group:  # upstream's spelling of the core group
                    return providers
        return PLAIN

    @classmethod
    def load(cls, path: Path) -> EncryptionConfig:
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(
                f"cannot read encryption config {path}: {exc.strerror or exc}"
            ) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"encryption config {path} is not YAML: {exc}") from None
        try:
            return cls.parse(doc, path=path)
        except ConfigError as exc:
            raise ConfigError(f"encryption config {path}: {exc}") from None

    @classmethod
    def parse(cls, doc: Any, *, path: Path | None = None) -> EncryptionConfig:
        if not isinstance(doc, dict):
            raise ConfigError("not a mapping")
        if doc.get("kind") != CONFIG_KIND or doc.get("apiVersion") != CONFIG_API_VERSION:
            raise ConfigError(f"want kind {CONFIG_KIND} of apiVersion {CONFIG_API_VERSION}")
        entries = []
        for i, entry in enumerate(_list(doc.get("resources"), "resources")):
            if not isinstance(entry, dict):
                raise ConfigError(f"resources[{i}] is not a mapping")
            names = tuple(str(n) for n in _list(entry.get("resources"), f"resources[{i}]"))
            if not names:
                raise ConfigError(f"resources[{i}].resources is empty")
            providers = [
                provider
                for j, p in enumerate(_list(entry.get("providers"), f"resources[{i}].providers"))
                for provider in _providers(p, f"resources[{i}].providers[{j}]")
            ]
            entries.append((names, Providers(providers)))
        return cls(tuple(entries), path)


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where} is not a list")
    return value


def _providers(spec: Any, where: str) -> list[Provider]:
    """One provider entry as providers: an aesgcm entry is one per key (the first key
    encrypts, every key decrypts its own values), as upstream builds them."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where} must name exactly one provider")
    [(kind, body)] = spec.items()
    if kind == "identity":
        return [Identity()]
    if kind == "aesgcm":
        keys = _list((body or {}).get("keys"), f"{where}.aesgcm.keys")
        if not keys:
            raise ConfigError(f"{where}.aesgcm.keys is empty")
        return [_aesgcm_key(k, f"{where}.aesgcm.keys[{n}]") for n, k in enumerate(keys)]
    if kind in ("aescbc", "secretbox", "kms"):
        raise ConfigError(f"{where}: provider {kind!r} is not supported by setpoint (use aesgcm)")
    raise ConfigError(f"{where}: unknown provider {kind!r}")


def _aesgcm_key(spec: Any, where: str) -> AESGCMKey:
    if not isinstance(spec, dict) or not spec.get("name") or not spec.get("secret"):
        raise ConfigError(f"{where} needs a name and a secret")
    name = str(spec["name"])
    if ":" in name:
        raise ConfigError(f"{where}.name must not contain ':'")
    try:
        secret = base64.b64decode(str(spec["secret"]), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}.secret is not base64") from None
    try:
        return AESGCMKey(name, secret)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def generate_config_text(resources: Sequence[str] = DEFAULT_ENCRYPTED_RESOURCES) -> str:
    """A new configuration: one random 32-byte AES-GCM key, then identity (so values
    written before encryption was on still read)."""
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    doc = {
        "apiVersion": CONFIG_API_VERSION,
        "kind": CONFIG_KIND,
        "resources": [
            {
                "resources": list(resources),
                "providers": [
                    {"aesgcm": {"keys": [{"name": "key1", "secret": secret}]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)
