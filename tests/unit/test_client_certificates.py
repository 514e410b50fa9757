"""Client certificates: issued by the cluster CA, read as users (CN, O) by the API server's
x509 authenticator, carried by kubeconfigs and re-issued only when they must be."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from setpoint.api.auth.user import UserInfo
from setpoint.api.auth.x509 import user_of_certificate
from setpoint.pki import (
    KubeconfigError,
    ServerCredentials,
    ensure_client_certificate,
    ensure_server_credentials,
    issue_client_certificate,
    issue_serving_certificate,
    load_kubeconfig,
    write_kubeconfig,
)


@pytest.fixture
def creds(tmp_path: Path) -> ServerCredentials:
    return ensure_server_credentials(tmp_path / "data", hosts=["127.0.0.1"])


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def issue(creds: ServerCredentials, name: str, *groups: str) -> tuple[bytes, bytes]:
    return issue_client_certificate(
        ca_cert_pem=creds.ca_cert.read_bytes(),
        ca_key_pem=creds.ca_key.read_bytes(),
        common_name=name,
        organizations=groups,
    )


def test_common_name_is_the_user_and_organizations_the_groups(creds: ServerCredentials) -> None:
    cert, _ = issue(creds, "alice", "dev", "ops")
    assert user_of_certificate(der(cert)) == UserInfo("alice", ("dev", "ops"))


def test_a_serving_certificate_of_the_same_ca_is_not_a_user(creds: ServerCredentials) -> None:
    cert, _ = issue_serving_certificate(
        ca_cert_pem=creds.ca_cert.read_bytes(),
        ca_key_pem=creds.ca_key.read_bytes(),
        hosts=["node-1"],
        common_name="system:node:node-1",
    )
    assert user_of_certificate(der(cert)) is None


def test_client_certificate_kubeconfig_round_trip(creds: ServerCredentials, tmp_path: Path) -> None:
    cert, key = issue(creds, "bob")
    path = tmp_path / "bob.kubeconfig"
    write_kubeconfig(
        path,
        server_url="https://127.0.0.1:6443",
        ca_pem=creds.ca_pem(),
        client_cert_pem=cert,
        client_key_pem=key,
        user_name="bob",
    )
    info = load_kubeconfig(path)
    assert (info.token, info.client_cert_pem, info.client_key_pem) == ("", cert, key)


def test_a_kubeconfig_needs_a_token_or_a_whole_certificate(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_kubeconfig(tmp_path / "k", server_url="https://x", ca_pem=b"ca")
    (tmp_path / "half").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority-data: Y2E=}}]\n"
        "users: [{name: u, user: {client-certificate-data: Y2E=}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    with pytest.raises(KubeconfigError, match="without its key"):
        load_kubeconfig(tmp_path / "half")


def test_ensure_client_certificate_reuses_and_reissues(creds: ServerCredentials) -> None:
    cert_path, key_path = ensure_client_certificate(
        creds, name="component", common_name="system:kube-scheduler"
    )
    assert cert_path.stat().st_mode & 0o777 == 0o600 and key_path.stat().st_mode & 0o777 == 0o600
    first = cert_path.read_bytes()
    ensure_client_certificate(creds, name="component", common_name="system:kube-scheduler")
    assert cert_path.read_bytes() == first
    ensure_client_certificate(creds, name="component", common_name="someone-else")
    assert user_of_certificate(der(cert_path.read_bytes())) == UserInfo("someone-else")
