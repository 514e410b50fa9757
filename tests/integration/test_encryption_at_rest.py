"""Secrets are encrypted at rest: a new server makes its own AES-GCM key, a Secret's value
is nowhere in the database files, kubectl still reads it; keys rotate across restarts
(new key first, rewrite everything, drop the old key); a server without the key reports the
Secret as a corrupt object, naming its key, and keeps serving everything else."""

from __future__ import annotations

import base64
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import objects
from tests.support import SETPOINT, Kubectl, Server, start_server

pytestmark = pytest.mark.xdist_group("encryption-at-rest")

VALUE = "correct-horse-battery-staple-4711"
PLAIN_MARK = "plainly-visible-configmap-value-0815"
KEY = "/registry/core/secrets/vault/door"


def write_config(path: Path, keys: list[tuple[str, bytes]], *, identity: bool = True) -> Path:
    providers: list[dict] = []
    if keys:
        secrets = [{"name": n, "secret": base64.b64encode(k).decode()} for n, k in keys]
        providers.append({"aesgcm": {"keys": secrets}})
    if identity:
        providers.append({"identity": {}})
    doc = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": providers}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def raw_bytes(data_dir: Path) -> bytes:
    """Everything the store has on disk: the database, its WAL and shared memory."""
    out = b""
    for path in sorted((data_dir / "db").iterdir()):
        if path.name.startswith("state.db"):
            out += path.read_bytes()
    return out


def stored_value(data_dir: Path, key: str = KEY) -> bytes:
    db = sqlite3.connect(f"file:{data_dir / 'db' / 'state.db'}?mode=ro", uri=True)
    try:
        [(value,)] = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchall()
    finally:
        db.close()
    return bytes(value)


def create_secret(server: Server, namespace: str, name: str, value: str) -> None:
    status, body, _ = server.request("POST", "/api/v1/namespaces", objects.namespace(namespace))
    assert status in (201, 409), body
    encoded = base64.b64encode(value.encode()).decode()
    secret = objects.secret(name, namespace=namespace, data={"password": encoded})
    status, body, _ = server.request("POST", f"/api/v1/namespaces/{namespace}/secrets", secret)
    assert status == 201, body


def read_password(server: Server, namespace: str = "vault", name: str = "door") -> str:
    result = Kubectl(server, namespace)("get", "secret", name, "-o", "json").json()
    return base64.b64decode(result["data"]["password"]).decode()


def rewrite_all_secrets(server: Server) -> None:
    """The upstream way to re-encrypt: read every Secret and replace it unchanged."""
    kubectl = Kubectl(server)
    listed = kubectl("get", "secrets", "--all-namespaces", "-o", "json").stdout
    kubectl("replace", "-f", "-", input=listed)


def test_secrets_are_encrypted_by_default_and_read_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    try:
        config = data / "encryption-config.yaml"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        create_secret(server, "vault", "door", VALUE)
        cm = objects.configmap("note", data={"text": PLAIN_MARK})
        status, body, _ = server.request("POST", "/api/v1/namespaces/vault/configmaps", cm)
        assert status == 201, body
        assert read_password(server) == VALUE
        # while it runs (the WAL holds the latest writes) and after it stopped
        encoded = base64.b64encode(VALUE.encode())
        for _ in range(2):
            raw = raw_bytes(data)
            assert PLAIN_MARK.encode() in raw  # the grep would see a plaintext value
            assert VALUE.encode() not in raw
            assert encoded not in raw
            if server.process.poll() is None:
                assert server.stop() == 0
        assert stored_value(data).startswith(b"k8s:enc:aesgcm:v1:key1:")
        # the key survives restarts
        server = start_server(data, port=server.port)
        assert read_password(server) == VALUE
    finally:
        server.stop()
    assert VALUE not in server.log()


def test_rotation_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old, new = b"o" * 32, b"n" * 32
    config = write_config(tmp_path / "enc.yaml", [("old", old)])
    flags = ["--encryption-provider-config", str(config)]
    server = start_server(data, extra=flags)
    try:
        create_secret(server, "vault", "door", VALUE)
        assert server.stop() == 0
        assert stored_value(data).startswith(b"k8s:enc:aesgcm:v1:old:")

        # 1. the new key first, the old one still there to read with
        write_config(config, [("new", new), ("old", old)])
        server = start_server(data, port=server.port, extra=flags)
        assert read_password(server) == VALUE
        # 2. rewrite everything: unchanged objects read with the old key are written anew
        rewrite_all_secrets(server)
        assert server.stop() == 0
        assert stored_value(data).startswith(b"k8s:enc:aesgcm:v1:new:")

        # 3. the old key goes
        write_config(config, [("new", new)])
        server = start_server(data, port=server.port, extra=flags)
        assert read_password(server) == VALUE
    finally:
        server.stop()


def test_plaintext_secrets_are_encrypted_by_a_rewrite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = write_config(tmp_path / "enc.yaml", [])  # identity only: stored as they are
    flags = ["--encryption-provider-config", str(config)]
    server = start_server(data, extra=flags)
    try:
        create_secret(server, "vault", "door", VALUE)
        assert server.stop() == 0
        assert stored_value(data).startswith(b"{")
        write_config(config, [("k", b"k" * 32)])
        server = start_server(data, port=server.port, extra=flags)
        assert read_password(server) == VALUE  # identity still reads it
        # setpoint's helper does what kubectl get | kubectl replace does
        done = subprocess.run(
            [SETPOINT, "datastore", "rewrite-secrets", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Rewrote ")
        assert stored_value(data).startswith(b"k8s:enc:aesgcm:v1:k:")
        assert read_password(server) == VALUE
    finally:
        server.stop()


def test_a_server_without_the_key_reports_the_secret_as_undecryptable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = write_config(tmp_path / "enc.yaml", [("lost", b"l" * 32)])
    flags = ["--encryption-provider-config", str(config)]
    server = start_server(data, extra=flags)
    try:
        create_secret(server, "vault", "door", VALUE)
        create_secret(server, "other", "fine", "whatever")
        assert server.stop() == 0
        # the key is gone; another one (or none) is configured
        write_config(config, [("another", b"a" * 32)])
        server = start_server(data, port=server.port, extra=flags)

        status, body, _ = server.request("GET", "/api/v1/namespaces/vault/secrets/door")
        assert status == 500, body
        assert body["reason"] == "InternalError"
        assert f"Key: {KEY}" in body["message"]
        assert "unable to transform key" in body["message"]
        assert "'lost', which is not configured" in body["message"]

        status, body, _ = server.request("GET", "/api/v1/namespaces/vault/secrets")
        assert status == 500, body
        assert body["reason"] == "StorageReadError"
        assert [c["field"] for c in body["details"]["causes"]] == [KEY]

        # everything else is served, the other namespace's secret too
        status, body, _ = server.request("GET", "/api/v1/namespaces")
        assert status == 200, body
        result = Kubectl(server, "other").run("get", "secret", "fine", "-o", "json", check=False)
        assert result.returncode == 1  # it was written with the lost key too
        assert "unable to transform key" in result.stderr

        # the way out of a lost key is upstream's: delete it unsafely, write it again
        status, body, _ = server.request(
            "DELETE",
            "/api/v1/namespaces/vault/secrets/door",
            {"ignoreStoreReadErrorWithClusterBreakingPotential": True},
        )
        assert status == 200, body
        create_secret(server, "vault", "door", VALUE)
        assert read_password(server) == VALUE
        assert server.process.poll() is None
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log
    assert VALUE not in log


def test_a_bad_encryption_config_stops_start_up_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "enc.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {
                        "resources": ["secrets"],
                        "providers": [{"aesgcm": {"keys": [{"name": "k", "secret": "c2hvcnQ="}]}}],
                    }
                ],
            }
        )
    )
    data = tmp_path / "data"
    args = ["server", "--data-dir", str(data), "--disable-agent", "--https-listen-port", "0"]
    args += ["--encryption-provider-config", str(config)]
    done = subprocess.run([SETPOINT, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("setpoint server: cannot start: encryption config ")
    assert line.endswith("aesgcm key 'k': secret is 5 bytes, must be 16, 24 or 32")
