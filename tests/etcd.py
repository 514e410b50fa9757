"""A real etcd member for tests: Debian's ``etcd-server`` (``make system-deps`` installs it),
on loopback with free ports and a data dir of its own, killed when the test is done. Tests
that need it skip, saying why, when the binary is missing."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import free_port


def etcd_binary() -> str | None:
    return shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)


def require_etcd() -> str:
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd is not installed (make system-deps installs Debian's etcd-server)")
    return binary


@dataclass
class Etcd:
    process: subprocess.Popen[bytes]
    client_port: int
    peer_port: int
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"etcd://127.0.0.1:{self.client_port}"

    @property
    def hosts(self) -> tuple[str, ...]:
        return (f"127.0.0.1:{self.client_port}",)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@dataclass
class EtcdCerts:
    """A CA, etcd's serving certificate for 127.0.0.1, and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def tls_datastore_flags(etcd: Etcd, certs: EtcdCerts) -> list[str]:
    """The ``setpoint server``/``setpoint datastore`` flags that reach ``etcd`` over TLS
    with ``certs``' client certificate."""
    return [
        *("--datastore-endpoint", f"etcds://127.0.0.1:{etcd.client_port}"),
        *("--datastore-cafile", str(certs.ca)),
        *("--datastore-certfile", str(certs.client_cert)),
        *("--datastore-keyfile", str(certs.client_key)),
    ]


def make_certs(directory: Path) -> EtcdCerts:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        name: str, key: ec.EllipticCurvePrivateKey, signer: tuple[x509.Certificate, Any] | None
    ) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(signer[0].subject if signer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if signer is None:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                False,
            ).add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            )
        return builder.sign(signer[1] if signer else key, hashes.SHA256())

    def write(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, stem: str) -> None:
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("test-etcd-ca", ca_key, None)
    write(ca, ca_key, "ca")
    for stem in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        write(issue(f"etcd-{stem}", key, (ca, ca_key)), key, stem)
    return EtcdCerts(
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
        directory / "client.crt",
        directory / "client.key",
    )


def start_member(
    directory: Path,
    name: str,
    client: int,
    peer: int,
    initial_cluster: str,
    certs: EtcdCerts | None = None,
) -> Etcd:
    """Start one member (its data in ``directory/data``) and wait until it listens."""
    binary = require_etcd()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "etcd.log"
    scheme = "https" if certs else "http"
    tls = (
        [
            "--cert-file",
            str(certs.server_cert),
            "--key-file",
            str(certs.server_key),
            "--trusted-ca-file",
            str(certs.ca),
            "--client-cert-auth",
        ]
        if certs
        else []
    )
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [
                binary,
                *tls,
                "--name",
                name,
                "--data-dir",
                str(directory / "data"),
                "--listen-client-urls",
                f"{scheme}://127.0.0.1:{client}",
                "--advertise-client-urls",
                f"{scheme}://127.0.0.1:{client}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                initial_cluster,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    etcd = Etcd(process, client, peer, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"etcd exited ({process.returncode}):\n{etcd.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", client)) == 0:
                    return etcd
            if time.monotonic() > deadline:
                raise AssertionError(f"etcd did not listen within 20s:\n{etcd.log()}")
            time.sleep(0.05)
    except BaseException:
        etcd.kill()
        raise


@contextmanager
def running_etcd(
    directory: Path, ports: tuple[int, int] | None = None, certs: EtcdCerts | None = None
) -> Iterator[Etcd]:
    """One etcd member in ``directory``, answering on a free loopback port (or on the
    ``(client, peer)`` ports of an earlier run, to start a member again on its data); with
    ``certs``, clients speak TLS and must show a certificate."""
    client, peer = ports or (free_port(), free_port())
    etcd = start_member(directory, "test", client, peer, f"test=http://127.0.0.1:{peer}", certs)
    try:
        yield etcd
    finally:
        etcd.kill()


@contextmanager
def running_etcd_cluster(directory: Path, size: int = 3) -> Iterator[list[Etcd]]:
    """``size`` members of one cluster on loopback, each in ``directory/m<i>``."""
    ports = [(free_port(), free_port()) for _ in range(size)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    members: list[Etcd] = []
    try:
        for i, (client, peer) in enumerate(ports):
            members.append(start_member(directory / f"m{i}", f"m{i}", client, peer, initial))
        yield members
    finally:
        for member in members:
            member.kill()
