"""Tests for setpoint.pki: server credentials, TLS contexts, tokens and kubeconfigs."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import shutil
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from setpoint.pki import (
    KubeconfigError,
    KubeconfigInfo,
    PKIError,
    ServerCredentials,
    ca_hash,
    client_ssl_context,
    ensure_server_credentials,
    issue_serving_certificate,
    load_kubeconfig,
    parse_node_token,
    tokens_equal,
    write_kubeconfig,
)

SERVER_URL = "https://127.0.0.1:6443"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> tuple[set[str], set[object]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "server"


@pytest.fixture
def creds(data_dir: Path) -> ServerCredentials:
    return ensure_server_credentials(data_dir, hosts=["127.0.0.1"])


def test_first_call_creates_private_files_and_directories(
    data_dir: Path, creds: ServerCredentials
) -> None:
    files = [
        data_dir / "tls" / "ca.crt",
        data_dir / "tls" / "ca.key",
        data_dir / "tls" / "serving.crt",
        data_dir / "tls" / "serving.key",
        data_dir / "token",
        data_dir / "node-token",
    ]
    for path in files:
        assert path.is_file(), path
        assert _mode(path) == 0o600, path
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "tls") == 0o700
    assert (creds.ca_cert, creds.ca_key, creds.serving_cert, creds.serving_key) == tuple(files[:4])
    assert sorted(p.name for p in (data_dir / "tls").iterdir()) == [
        "ca.crt",
        "ca.key",
        "serving.crt",
        "serving.key",
    ]


def test_ca_is_self_signed_p256_with_ca_constraints(creds: ServerCredentials) -> None:
    ca = _cert(creds.ca_cert)
    assert ca.subject == ca.issuer
    cn = ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str) and cn.startswith("setpoint-ca@")
    assert cn.removeprefix("setpoint-ca@").isdigit()
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    ca.verify_directly_issued_by(ca)
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert 3649 <= lifetime.days <= 3651


def test_tokens_have_k3s_formats(creds: ServerCredentials, data_dir: Path) -> None:
    assert len(creds.admin_token) == 64
    int(creds.admin_token, 16)
    assert (data_dir / "token").read_text().strip() == creds.admin_token

    assert creds.node_token.startswith("K10")
    digest, user, password = parse_node_token(creds.node_token)
    assert digest == ca_hash(creds.ca_pem())
    assert user == "server"
    int(password, 16)
    assert (data_dir / "node-token").read_text().strip() == creds.node_token
    assert not tokens_equal(password, creds.admin_token)

    assert len(creds.controller_token) == 64 and creds.controller_token != creds.admin_token
    assert (data_dir / "controller-token").read_text().strip() == creds.controller_token


def test_second_call_reuses_ca_serving_cert_and_tokens(
    data_dir: Path, creds: ServerCredentials
) -> None:
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}

    again = ensure_server_credentials(data_dir, hosts=["127.0.0.1"])

    assert again == creds
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == before


def test_serving_cert_verifies_against_ca_and_has_expected_sans(data_dir: Path) -> None:
    creds = ensure_server_credentials(data_dir, hosts=["10.1.2.3", "api.example.test", "fd00::7"])
    ca = _cert(creds.ca_cert)
    serving = _cert(creds.serving_cert)

    serving.verify_directly_issued_by(ca)
    dns, ips = _sans(serving)
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "api.example.test",
        socket.gethostname().lower(),
    } <= dns
    assert {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("fd00::7"),
    } <= ips
    # Addresses are IP SANs only, never DNS SANs.
    assert "10.1.2.3" not in dns
    eku = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not serving.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = serving.not_valid_after_utc - serving.not_valid_before_utc
    assert 364 <= lifetime.days <= 366


def test_wildcard_bind_address_is_not_a_san(data_dir: Path) -> None:
    creds = ensure_server_credentials(data_dir, hosts=["0.0.0.0", "::"])

    _, ips = _sans(_cert(creds.serving_cert))
    assert ipaddress.ip_address("0.0.0.0") not in ips
    assert ipaddress.ip_address("::") not in ips
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= ips


def test_new_host_reissues_serving_cert_with_same_ca(
    data_dir: Path, creds: ServerCredentials
) -> None:
    ca_before = creds.ca_cert.read_bytes()
    ca_key_before = creds.ca_key.read_bytes()
    serving_before = creds.serving_cert.read_bytes()

    again = ensure_server_credentials(data_dir, hosts=["127.0.0.1", "192.0.2.10"])

    assert again.ca_cert.read_bytes() == ca_before
    assert again.ca_key.read_bytes() == ca_key_before
    assert (again.admin_token, again.node_token, again.controller_token) == (
        creds.admin_token,
        creds.node_token,
        creds.controller_token,
    )
    assert again.serving_cert.read_bytes() != serving_before
    serving = _cert(again.serving_cert)
    serving.verify_directly_issued_by(_cert(again.ca_cert))
    _, ips = _sans(serving)
    assert ipaddress.ip_address("192.0.2.10") in ips
    assert _mode(again.serving_cert) == 0o600
    assert _mode(again.serving_key) == 0o600


def test_reissued_serving_cert_keeps_previous_hosts(data_dir: Path) -> None:
    ensure_server_credentials(data_dir, hosts=["192.0.2.10"])

    creds = ensure_server_credentials(data_dir, hosts=["192.0.2.20"])

    _, ips = _sans(_cert(creds.serving_cert))
    assert {ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("192.0.2.20")} <= ips


def test_serving_cert_not_signed_by_ca_is_reissued(
    data_dir: Path, creds: ServerCredentials, tmp_path: Path
) -> None:
    other = ensure_server_credentials(tmp_path / "other", hosts=["127.0.0.1"])
    creds.serving_cert.write_bytes(other.serving_cert.read_bytes())
    creds.serving_key.write_bytes(other.serving_key.read_bytes())

    again = ensure_server_credentials(data_dir, hosts=["127.0.0.1"])

    _cert(again.serving_cert).verify_directly_issued_by(_cert(again.ca_cert))


def test_ca_cert_without_key_is_an_error(data_dir: Path, creds: ServerCredentials) -> None:
    creds.ca_key.unlink()

    with pytest.raises(PKIError, match=r"ca\.key"):
        ensure_server_credentials(data_dir, hosts=["127.0.0.1"])


def test_hosts_given_as_a_single_string_is_rejected(data_dir: Path) -> None:
    with pytest.raises(TypeError):
        ensure_server_credentials(data_dir, hosts="127.0.0.1")


def test_issue_serving_certificate_uses_exactly_the_given_hosts(
    creds: ServerCredentials,
) -> None:
    cert_pem, key_pem = issue_serving_certificate(
        ca_cert_pem=creds.ca_pem(),
        ca_key_pem=creds.ca_key.read_bytes(),
        hosts=["node-1", "10.0.0.5"],
        common_name="system:node:node-1",
    )

    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(_cert(creds.ca_cert))
    assert _sans(cert) == ({"node-1"}, {ipaddress.ip_address("10.0.0.5")})
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "system:node:node-1"
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


async def _handshake(
    creds: ServerCredentials, client_ctx: ssl.SSLContext, server_hostname: str
) -> bytes:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=creds.ssl_context())
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname
            )
            try:
                version = writer.get_extra_info("ssl_object").version()
                assert version in ("TLSv1.2", "TLSv1.3")
                return await reader.read()
            finally:
                writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
async def test_tls_handshake_on_loopback_succeeds(
    creds: ServerCredentials, server_hostname: str
) -> None:
    data = await _handshake(creds, client_ssl_context(creds.ca_pem()), server_hostname)

    assert data == b"hello"


async def test_tls_handshake_rejects_server_from_another_ca(
    creds: ServerCredentials, tmp_path: Path
) -> None:
    other = ensure_server_credentials(tmp_path / "other", hosts=["127.0.0.1"])

    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(creds, client_ssl_context(other.ca_pem()), "localhost")


async def test_tls_handshake_rejects_unknown_hostname(creds: ServerCredentials) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(creds, client_ssl_context(creds.ca_pem()), "not-this-server.test")


def test_ssl_context_requires_tls12(creds: ServerCredentials) -> None:
    assert creds.ssl_context().minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client_ssl_context(creds.ca_pem()).minimum_version >= ssl.TLSVersion.TLSv1_2


def test_kubeconfig_round_trip(tmp_path: Path, creds: ServerCredentials) -> None:
    path = tmp_path / "kube" / "config.yaml"

    write_kubeconfig(path, server_url=SERVER_URL, ca_pem=creds.ca_pem(), token=creds.admin_token)

    assert _mode(path) == 0o600
    assert load_kubeconfig(path) == KubeconfigInfo(
        server_url=SERVER_URL, ca_pem=creds.ca_pem(), token=creds.admin_token
    )
    document = yaml.safe_load(path.read_text())
    assert document["apiVersion"] == "v1"
    assert document["kind"] == "Config"
    assert document["current-context"] == "setpoint"
    assert document["users"][0] == {"name": "admin", "user": {"token": creds.admin_token}}
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp files left


def test_rewriting_kubeconfig_replaces_it_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("old")
    path.chmod(0o644)

    write_kubeconfig(path, server_url=SERVER_URL, ca_pem=b"PEM", token="t")

    assert _mode(path) == 0o600
    assert load_kubeconfig(path).token == "t"


def test_load_kubeconfig_resolves_ca_file_and_token_file(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"CA PEM")
    (tmp_path / "token").write_text("secret-token\n")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": SERVER_URL, "certificate-authority": "ca.crt"}},
            {"name": "unused", "cluster": {"server": "https://other:1"}},
        ],
        "users": [{"name": "u", "user": {"tokenFile": str(tmp_path / "token")}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))

    assert load_kubeconfig(path) == KubeconfigInfo(
        server_url=SERVER_URL, ca_pem=b"CA PEM", token="secret-token"
    )


def test_load_kubeconfig_without_current_context_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": []}))

    with pytest.raises(KubeconfigError, match="current-context"):
        load_kubeconfig(path)


def _kubectl() -> str:
    candidate = Path(sys.executable).parent / "kubectl"
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed")
    return found


def _kubectl_config_view(kubeconfig: Path, jsonpath: str, *extra: str) -> str:
    result = subprocess.run(
        [_kubectl(), "config", "view", *extra, "--kubeconfig", str(kubeconfig), "-o", jsonpath],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"HOME": str(kubeconfig.parent), "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


def test_kubectl_reads_server_url_from_written_kubeconfig(
    tmp_path: Path, creds: ServerCredentials
) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server_url=SERVER_URL, ca_pem=creds.ca_pem(), token=creds.admin_token)

    assert _kubectl_config_view(path, "jsonpath={.clusters[0].cluster.server}") == SERVER_URL


def test_kubectl_reads_ca_token_and_context_from_written_kubeconfig(
    tmp_path: Path, creds: ServerCredentials
) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server_url=SERVER_URL, ca_pem=creds.ca_pem(), token=creds.admin_token)

    ca_data = _kubectl_config_view(
        path, "jsonpath={.clusters[0].cluster.certificate-authority-data}", "--raw"
    )
    assert base64.b64decode(ca_data) == creds.ca_pem()
    token = _kubectl_config_view(path, "jsonpath={.users[0].user.token}", "--raw")
    assert token == creds.admin_token
    assert _kubectl_config_view(path, "jsonpath={.current-context}") == "setpoint"


def test_tokens_equal_compares_exactly() -> None:
    assert tokens_equal("abc", "abc")
    assert not tokens_equal("abc", "abd")
    assert not tokens_equal("abc", "abcd")
    assert not tokens_equal("abc", "")
    assert tokens_equal("ünïcode", "ünïcode")
