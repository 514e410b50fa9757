"""Encryption at rest: the providers' storage format, which provider reads what, rotation's
stale flag, and the configuration file's errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from setpoint.api.encryption import (
    PLAIN,
    ConfigError,
    EncryptionConfig,
    TransformError,
    generate_config_text,
)

KEY = "/registry/core/secrets/ns/s"
DATA = b'{"metadata":{"name":"s"},"data":{"p":"c2VjcmV0"}}'


def config(*providers: Any, resources: tuple[str, ...] = ("secrets",)) -> EncryptionConfig:
    return EncryptionConfig.parse(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}],
        }
    )


def aesgcm(*keys: tuple[str, bytes]) -> dict[str, Any]:
    return {
        "aesgcm": {"keys": [{"name": n, "secret": base64.b64encode(k).decode()} for n, k in keys]}
    }


IDENTITY = {"identity": {}}


def test_aesgcm_values_carry_upstreams_prefix_and_read_back() -> None:
    secrets = config(aesgcm(("k1", b"1" * 32)), IDENTITY).for_resource("", "secrets")
    stored = secrets.to_storage(DATA, KEY)
    assert stored.startswith(b"k8s:enc:aesgcm:v1:k1:")
    assert len(stored) == len(b"k8s:enc:aesgcm:v1:k1:") + 12 + len(DATA) + 16
    assert b"c2VjcmV0" not in stored
    read = secrets.from_storage(stored, KEY)
    assert (read.data, read.stale) == (DATA, False)
    assert secrets.to_storage(DATA, KEY) != stored  # a new nonce each time


def test_the_store_key_is_authenticated() -> None:
    secrets = config(aesgcm(("k1", b"1" * 32))).for_resource("", "secrets")
    stored = secrets.to_storage(DATA, KEY)
    with pytest.raises(TransformError, match="message authentication failed"):
        secrets.from_storage(stored, "/registry/core/secrets/ns/other")
    tampered = stored[:-1] + bytes([stored[-1] ^ 1])
    with pytest.raises(TransformError, match="message authentication failed"):
        secrets.from_storage(tampered, KEY)


def test_rotation_reads_every_key_and_marks_old_values_stale() -> None:
    old = config(aesgcm(("old", b"o" * 32)), IDENTITY).for_resource("", "secrets")
    both = config(aesgcm(("new", b"n" * 32), ("old", b"o" * 32)), IDENTITY)
    rotated = both.for_resource("", "secrets")
    by_old = old.to_storage(DATA, KEY)
    assert rotated.from_storage(by_old, KEY).stale
    assert rotated.from_storage(DATA, KEY).stale  # plaintext from before encryption
    by_new = rotated.to_storage(DATA, KEY)
    assert by_new.startswith(b"k8s:enc:aesgcm:v1:new:")
    assert not rotated.from_storage(by_new, KEY).stale
    only_new = config(aesgcm(("new", b"n" * 32))).for_resource("", "secrets")
    with pytest.raises(TransformError, match="aesgcm key 'old', which is not configured"):
        only_new.from_storage(by_old, KEY)
    with pytest.raises(TransformError, match="not encrypted"):
        only_new.from_storage(DATA, KEY)


def test_identity_never_passes_encrypted_data_off_as_plain() -> None:
    plain = config(IDENTITY).for_resource("", "secrets")
    stored = config(aesgcm(("k", b"k" * 16))).for_resource("", "secrets").to_storage(DATA, KEY)
    with pytest.raises(TransformError, match="no matching prefix"):
        plain.from_storage(stored, KEY)
    assert plain.to_storage(DATA, KEY) == DATA


def test_resources_match_first_entry_and_wildcards() -> None:
    cfg = config(aesgcm(("k", b"k" * 24)), resources=("secrets", "deployments.apps", "*.batch"))
    assert cfg.for_resource("", "secrets") is not PLAIN
    assert cfg.for_resource("apps", "deployments") is not PLAIN
    assert cfg.for_resource("batch", "jobs") is not PLAIN
    assert cfg.for_resource("", "configmaps") is PLAIN
    assert cfg.for_resource("apps", "secrets") is PLAIN
    assert config(IDENTITY, resources=("*.*",)).for_resource("x.io", "foos") is not PLAIN


@pytest.mark.parametrize(
    ("provider", "message"),
    [
        ({"aescbc": {"keys": []}}, "provider 'aescbc' is not supported"),
        ({"kms": {}}, "provider 'kms' is not supported"),
        ({"rot13": {}}, "unknown provider 'rot13'"),
        (aesgcm(("k", b"short")), "secret is 5 bytes, must be 16, 24 or 32"),
        ({"aesgcm": {"keys": [{"name": "k", "secret": "!!"}]}}, "secret is not base64"),
        ({"aesgcm": {"keys": [{"name": "a:b", "secret": "AAAA"}]}}, "must not contain ':'"),
        ({"aesgcm": {"keys": []}}, "keys is empty"),
        ({"identity": {}, "aesgcm": {}}, "exactly one provider"),
    ],
)
def test_bad_configurations_say_what_is_wrong(provider: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(provider)


def test_the_generated_configuration_encrypts_secrets() -> None:
    doc = yaml.safe_load(generate_config_text())
    cfg = EncryptionConfig.parse(doc)
    secrets = cfg.for_resource("", "secrets")
    assert secrets.to_storage(DATA, KEY).startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert secrets.from_storage(DATA, KEY).data == DATA  # identity second
    assert generate_config_text() != generate_config_text()  # a new key each time
