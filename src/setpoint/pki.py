"""Server credentials: the cluster CA, TLS serving certificates, bearer tokens and kubeconfigs.

Like k3s, ``setpoint server`` needs no externally prepared PKI. On first start this
module creates a private certificate authority, a serving certificate signed by it,
an admin bearer token and a node join token, all under the server's data directory,
and every later start reuses them unchanged, so kubeconfigs handed out earlier keep
working. The only thing ever re-issued is the serving certificate: when it no longer
names every address the server is asked to listen on (for example after a restart with
a different ``--bind-address``), when the machine's hostname changed, or when it is
within 90 days of expiry. A re-issued serving certificate is signed by the same CA, so
clients notice nothing. The CA itself is never replaced automatically.

The on-disk layout below ``data_dir`` is::

    data_dir/              mode 0700
        token              admin bearer token, 64 hex characters (32 random bytes)
        controller-token   the controller manager's bearer token (same form)
        node-token         node join token, K10<sha256 of ca.crt>::server:<random hex>
        server-token       server join token, the same form with a secret of its own: it lets
                           another server fetch the cluster's shared secrets
                           (``cli.clusterbootstrap``), which the node token never does
        tls/               mode 0700
            ca.crt         self-signed CA certificate (EC P-256, 10 years)
            ca.key         CA private key (PKCS#8 PEM)
            serving.crt    API serving certificate (EC P-256, 1 year, signed by the CA)
            serving.key    its private key (PKCS#8 PEM)

Every file is written atomically (temporary file, fsync, ``os.replace``) with mode
0600. ``ca.crt`` and ``ca.key`` may also be supplied by an operator before the first
start (any key type ``cryptography`` can sign with); they are then used as they are.
Directories and files found looser than 0700/0600 (made by an older version, by hand, or
by an operator's ``cp``) are tightened on every start: the keys and tokens are the
cluster's, and whoever reads them is its administrator.
Concurrent calls on the same data directory are serialised with an ``flock`` on the
``tls`` directory.

Besides creating credentials the module owns the client side of the same material:
writing and reading kubeconfig files, building TLS contexts for servers and clients,
issuing further serving certificates (for node agents) from the CA, and comparing
tokens in constant time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import fcntl
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import socket
import ssl
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.privatefiles import (
    PRIVATE_FILE_MODE,
    private_dir,
    tighten,
    write_private_file,
)

__all__ = [
    "JoinToken",
    "KubeconfigError",
    "KubeconfigInfo",
    "PKIError",
    "ServerCredentials",
    "ca_hash",
    "certificate_user",
    "client_ssl_context",
    "ensure_client_certificate",
    "ensure_self_signed_serving",
    "ensure_server_credentials",
    "issue_client_certificate",
    "issue_serving_certificate",
    "load_client_certificate",
    "load_kubeconfig",
    "parse_join_token",
    "parse_node_token",
    "tokens_equal",
    "write_kubeconfig",
]

logger = logging.getLogger(__name__)

TLS_DIR = "tls"
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVING_CERT_FILE = "serving.crt"
SERVING_KEY_FILE = "serving.key"
ADMIN_TOKEN_FILE = "token"
CONTROLLER_TOKEN_FILE = "controller-token"
NODE_TOKEN_FILE = "node-token"
SERVER_TOKEN_FILE = "server-token"

SERVING_COMMON_NAME = "setpoint"
#: Names every API serving certificate carries, whatever the bind address.
DEFAULT_SERVING_HOSTS: tuple[str, ...] = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "127.0.0.1",
    "::1",
)

_CA_VALIDITY = datetime.timedelta(days=3650)
_SERVING_VALIDITY = datetime.timedelta(days=365)
_CLIENT_VALIDITY = datetime.timedelta(days=365)
_RENEW_BEFORE = datetime.timedelta(days=90)
# Tolerate modest clock skew between this machine and its clients.
_BACKDATE = datetime.timedelta(minutes=5)
# what a serving or client certificate's key may do: sign (the TLS handshake), nothing else
_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)

_NODE_TOKEN_PREFIX = "K10"
_NODE_TOKEN_USER = "server"
_NODE_TOKEN_RE = re.compile(r"^K10(?P<hash>[0-9a-f]{64})::(?P<user>[^:]+):(?P<password>.+)$")


class PKIError(Exception):
    """The credentials on disk are unusable and cannot be repaired automatically."""


class KubeconfigError(PKIError):
    """A kubeconfig file is missing something setpoint needs, or is malformed."""


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class ServerCredentials:
    """Where the server's TLS material lives, and its tokens."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_token: str
    node_token: str
    controller_token: str
    server_token: str

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side TLS context (TLS 1.2 or later) presenting the serving certificate.
        A client may present a certificate (``CERT_OPTIONAL``); one that is presented must be
        signed by the cluster CA, and then names who the client is (see
        :mod:`setpoint.api.auth.x509`)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=self.serving_cert, keyfile=self.serving_key)
        context.load_verify_locations(cafile=self.ca_cert)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def ca_pem(self) -> bytes:
        """The CA certificate(s) in PEM form, as clients should trust them."""
        return self.ca_cert.read_bytes()


@dataclass(frozen=True)
class KubeconfigInfo:
    """What a client needs from a kubeconfig's current context."""

    server_url: str
    ca_pem: bytes
    token: str
    client_cert_pem: bytes = b""  # a client certificate instead of (or besides) the token
    client_key_pem: bytes = b""


# --------------------------------------------------------------------------- server credentials


def ensure_server_credentials(
    data_dir: Path, *, hosts: Sequence[str], clock: Clock = REAL_CLOCK
) -> ServerCredentials:
    """Create the server's CA, serving certificate and tokens under ``data_dir``, or reuse them.

    ``hosts`` are the names and addresses clients will use to reach the server (bind
    address, ``--tls-san`` values, ...). Each becomes an IP SAN if it parses as an IP
    address and a DNS SAN otherwise; the wildcard addresses ``0.0.0.0`` and ``::`` are
    replaced by this machine's non-loopback addresses. The serving certificate always
    also names ``localhost``, ``kubernetes``, ``kubernetes.default``,
    ``kubernetes.default.svc``, the hostname, ``127.0.0.1`` and ``::1``.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts must be a sequence of host names, not a single string")
    data_dir = Path(data_dir)
    tls_dir = data_dir / TLS_DIR
    private_dir(data_dir)
    private_dir(tls_dir)

    with _locked(tls_dir):
        ca_cert_path = tls_dir / CA_CERT_FILE
        ca_key_path = tls_dir / CA_KEY_FILE
        ca_cert, ca_key, ca_cert_pem = _ensure_ca(ca_cert_path, ca_key_path, clock)

        serving_cert_path = tls_dir / SERVING_CERT_FILE
        serving_key_path = tls_dir / SERVING_KEY_FILE
        wanted = _san_entries([*DEFAULT_SERVING_HOSTS, *_hostname(), *hosts])
        _ensure_serving(
            serving_cert_path,
            serving_key_path,
            ca_cert=ca_cert,
            ca_key=ca_key,
            wanted=wanted,
            clock=clock,
        )

        admin_token = _ensure_random_token(data_dir / ADMIN_TOKEN_FILE, "admin")
        controller_token = _ensure_random_token(
            data_dir / CONTROLLER_TOKEN_FILE, "controller manager"
        )
        node_token = _ensure_k10_token(
            data_dir / NODE_TOKEN_FILE, "node", ca_cert_pem=ca_cert_pem, secret_bytes=16
        )
        server_token = _ensure_k10_token(
            data_dir / SERVER_TOKEN_FILE, "server", ca_cert_pem=ca_cert_pem, secret_bytes=32
        )
        # every key and certificate in tls/ (client certificates, signing keys made by
        # later code included) and the tokens beside it
        for path in (
            *(entry for entry in tls_dir.iterdir() if entry.is_file()),
            data_dir / ADMIN_TOKEN_FILE,
            data_dir / CONTROLLER_TOKEN_FILE,
            data_dir / NODE_TOKEN_FILE,
            data_dir / SERVER_TOKEN_FILE,
        ):
            tighten(path, PRIVATE_FILE_MODE)

    return ServerCredentials(
        ca_cert=ca_cert_path,
        ca_key=ca_key_path,
        serving_cert=serving_cert_path,
        serving_key=serving_key_path,
        admin_token=admin_token,
        node_token=node_token,
        controller_token=controller_token,
        server_token=server_token,
    )


def issue_serving_certificate(
    *,
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    hosts: Sequence[str],
    common_name: str,
    clock: Clock = REAL_CLOCK,
) -> tuple[bytes, bytes]:
    """Issue a one-year TLS server certificate for ``hosts``, signed by the given CA.

    Returns ``(certificate PEM, private key PEM)``; the new key is EC P-256. Each host
    becomes an IP SAN if it parses as an IP address and a DNS SAN otherwise; the
    wildcard addresses ``0.0.0.0`` and ``::`` are replaced by this machine's
    non-loopback addresses. Nothing else is added, so callers list every name
    themselves.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts must be a sequence of host names, not a single string")
    ca_cert = _load_certificate(ca_cert_pem, what="CA certificate")
    ca_key = _as_issuer_key(
        serialization.load_pem_private_key(ca_key_pem, password=None), what="CA key"
    )
    _check_key_matches(ca_cert, ca_key, what="CA")
    cert, key = _issue_serving(
        ca_cert=ca_cert,
        ca_key=ca_key,
        sans=_san_entries(hosts),
        common_name=common_name,
        clock=clock,
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_client_certificate(
    *,
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    common_name: str,
    organizations: Sequence[str] = (),
    validity: datetime.timedelta = _CLIENT_VALIDITY,
    clock: Clock = REAL_CLOCK,
) -> tuple[bytes, bytes]:
    """Issue a TLS client certificate signed by the given CA: subject ``CN=common_name``
    with one ``O=`` per organization, as kube-apiserver's x509 authenticator reads a user
    (CN the user name, O the groups). Extended key usage clientAuth only. Returns
    ``(certificate PEM, private key PEM)``; the key is EC P-256."""
    if not common_name:
        raise ValueError("a client certificate needs a common name (the user name)")
    ca_cert = _load_certificate(ca_cert_pem, what="CA certificate")
    ca_key = _as_issuer_key(
        serialization.load_pem_private_key(ca_key_pem, password=None), what="CA key"
    )
    _check_key_matches(ca_cert, ca_key, what="CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _whole_seconds(clock)
    subject = x509.Name(
        [
            *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
        .sign(ca_key, _signature_hash(ca_key))
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def ensure_client_certificate(
    credentials: ServerCredentials,
    *,
    name: str,
    common_name: str,
    organizations: Sequence[str] = (),
    clock: Clock = REAL_CLOCK,
) -> tuple[Path, Path]:
    """A client certificate ``tls/<name>.crt``/``.key`` for ``CN=common_name,O=...`` signed
    by the cluster CA, made once and re-issued when its subject differs, it no longer
    verifies against the CA, or it nears expiry (the API server's kubelet client
    certificate, a component's own). Returns (certificate path, key path)."""
    directory = credentials.ca_cert.parent
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    with _locked(directory):
        ca_pem = credentials.ca_cert.read_bytes()
        ca_cert = _load_certificate(ca_pem, what="CA certificate")
        wanted = (common_name, tuple(organizations))
        if _client_subject(cert_path, key_path, ca_cert, clock) != wanted:
            cert_pem, key_pem = issue_client_certificate(
                ca_cert_pem=ca_pem,
                ca_key_pem=credentials.ca_key.read_bytes(),
                common_name=common_name,
                organizations=organizations,
                clock=clock,
            )
            write_private_file(key_path, key_pem)
            write_private_file(cert_path, cert_pem)
    return cert_path, key_path


def _client_subject(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate, clock: Clock
) -> tuple[str, tuple[str, ...]] | None:
    """(CN, Os) of a usable client certificate at ``cert_path``, else None."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return None
    if not _public_keys_equal(cert, key):
        return None
    if cert.not_valid_after_utc - _whole_seconds(clock) < _RENEW_BEFORE:
        return None
    return certificate_user(cert)


def certificate_user(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(CN, the Os in order) of a certificate's subject: the user and groups it names."""
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(common[0].value) if common else ""), tuple(str(o.value) for o in orgs)


def ensure_self_signed_serving(
    directory: Path, *, hosts: Sequence[str], name: str, common_name: str, clock: Clock = REAL_CLOCK
) -> tuple[Path, Path]:
    """A serving certificate ``<name>.crt``/``<name>.key`` for ``hosts`` under ``directory``,
    signed by a CA of its own (``<name>-ca.crt``/``.key``) that nobody else trusts, as the
    kubelet makes itself one when given no certificate. Reused on later calls, re-issued
    when a host is missing or it nears expiry. Returns (certificate path, key path)."""
    private_dir(directory)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    with _locked(directory):
        ca_cert, ca_key, _ = _ensure_ca(
            directory / f"{name}-ca.crt", directory / f"{name}-ca.key", clock
        )
        wanted = _san_entries(hosts)
        existing = _usable_serving_sans(cert_path, key_path, ca_cert, clock)
        if existing is None or any(san not in existing for san in wanted):
            cert, key = _issue_serving(
                ca_cert=ca_cert, ca_key=ca_key, sans=wanted, common_name=common_name, clock=clock
            )
            write_private_file(key_path, _key_pem(key))
            write_private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def ca_hash(ca_pem: bytes) -> str:
    """The SHA-256 hex digest of the CA PEM bytes, as embedded in node tokens (as k3s does)."""
    return hashlib.sha256(ca_pem).hexdigest()


def parse_node_token(token: str) -> tuple[str, str, str]:
    """Split a ``K10<ca hash>::<user>:<password>`` node token into its three parts."""
    match = _NODE_TOKEN_RE.match(token.strip())
    if match is None:
        raise ValueError("not a node token of the form K10<sha256 hex>::<user>:<password>")
    return match["hash"], match["user"], match["password"]


@dataclass(frozen=True)
class JoinToken:
    """A token another server or an agent joins with: k3s's full ``K10<CA hash>::<user>:
    <password>`` form, or the bare password (then ``ca_hash`` is None: the joiner cannot
    check the CA it is shown)."""

    ca_hash: str | None
    user: str
    password: str


def parse_join_token(text: str) -> JoinToken:
    """Read a join token in either of k3s's forms (see :class:`JoinToken`); ValueError if it
    is empty, or starts as a full token but is malformed."""
    text = text.strip()
    if text.startswith(_NODE_TOKEN_PREFIX) and "::" in text:
        digest, user, password = parse_node_token(text)
        return JoinToken(digest, user, password)
    if not text or any(c.isspace() for c in text):
        raise ValueError("a join token is K10<sha256 hex>::<user>:<password> or a bare password")
    return JoinToken(None, _NODE_TOKEN_USER, text)


def tokens_equal(a: str, b: str) -> bool:
    """Compare two tokens in constant time (for the length of the shorter one)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# --------------------------------------------------------------------------- TLS contexts


def client_ssl_context(
    ca_pem: bytes, *, client_cert_pem: bytes = b"", client_key_pem: bytes = b""
) -> ssl.SSLContext:
    """A client-side TLS context that trusts exactly ``ca_pem`` and checks the hostname,
    presenting ``client_cert_pem`` (with its key) when given."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem.decode("ascii"))
    except (UnicodeDecodeError, ssl.SSLError) as exc:
        raise PKIError(f"invalid CA PEM data: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if client_cert_pem:
        load_client_certificate(context, client_cert_pem, client_key_pem)
    return context


def load_client_certificate(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Make ``context`` present ``cert_pem`` with ``key_pem``. Python's ``ssl`` loads a
    certificate chain only from files, so they pass through a private temporary directory
    that is removed at once."""
    with tempfile.TemporaryDirectory(prefix="setpoint-client-") as scratch:
        cert_file, key_file = Path(scratch) / "client.crt", Path(scratch) / "client.key"
        write_private_file(cert_file, cert_pem)
        write_private_file(key_file, key_pem)
        try:
            context.load_cert_chain(certfile=cert_file, keyfile=key_file)
        except ssl.SSLError as exc:
            raise PKIError(f"unusable client certificate or key: {exc}") from exc


# --------------------------------------------------------------------------- kubeconfig


def write_kubeconfig(
    path: Path,
    *,
    server_url: str,
    ca_pem: bytes,
    token: str = "",
    client_cert_pem: bytes = b"",
    client_key_pem: bytes = b"",
    cluster_name: str = "setpoint",
    user_name: str = "admin",
) -> None:
    """Atomically write a kubeconfig (mode 0600) for ``server_url`` that authenticates with
    a bearer token, or with a client certificate and its key (inline, as
    ``client-certificate-data``/``client-key-data``).

    The context is named after the cluster and made current. Parent directories are
    created as needed.
    """
    if not token and not (client_cert_pem and client_key_pem):
        raise ValueError("a kubeconfig needs a token or a client certificate and key")
    user: dict[str, str] = {}
    if client_cert_pem:
        user["client-certificate-data"] = base64.b64encode(client_cert_pem).decode("ascii")
        user["client-key-data"] = base64.b64encode(client_key_pem).decode("ascii")
    if token:
        user["token"] = token
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                },
            }
        ],
        "users": [{"name": user_name, "user": user}],
        "contexts": [
            {"name": cluster_name, "context": {"cluster": cluster_name, "user": user_name}}
        ],
        "current-context": cluster_name,
        "preferences": {},
    }
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, text.encode("utf-8"))


def load_kubeconfig(path: Path, *, context: str | None = None) -> KubeconfigInfo:
    """Read the server URL, CA and bearer token of a kubeconfig's current context.

    ``context`` selects another context by name. The CA may be given inline
    (``certificate-authority-data``) or as a file (``certificate-authority``), the
    token inline (``token``) or as a file (``tokenFile``); relative file paths are
    resolved against the kubeconfig's directory, as kubectl does.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if not isinstance(document, Mapping):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")

    context_name = context or document.get("current-context")
    if not context_name:
        raise KubeconfigError(f"kubeconfig {path} has no current-context")
    ctx = _named_entry(document, "contexts", "context", context_name, path)
    cluster = _named_entry(document, "clusters", "cluster", ctx.get("cluster"), path)
    user = _named_entry(document, "users", "user", ctx.get("user"), path)

    server_url = cluster.get("server")
    if not isinstance(server_url, str) or not server_url:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} in {path} has no server")

    base = path.parent
    if cluster.get("certificate-authority-data"):
        try:
            ca_pem = base64.b64decode(str(cluster["certificate-authority-data"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KubeconfigError(f"certificate-authority-data in {path} is not base64") from exc
    elif cluster.get("certificate-authority"):
        ca_pem = _read_referenced(base, str(cluster["certificate-authority"]), path)
    else:
        raise KubeconfigError(f"cluster {ctx.get('cluster')!r} in {path} has no CA")

    cert_pem = _inline_or_file(user, "client-certificate", base, path)
    key_pem = _inline_or_file(user, "client-key", base, path)
    if bool(cert_pem) != bool(key_pem):
        raise KubeconfigError(
            f"user {ctx.get('user')!r} in {path} has a client certificate without its key "
            "or a key without its certificate"
        )
    if user.get("token"):
        token = str(user["token"])
    elif user.get("tokenFile"):
        token = _read_referenced(base, str(user["tokenFile"]), path).decode("utf-8").strip()
    elif cert_pem:
        token = ""
    else:
        raise KubeconfigError(f"user {ctx.get('user')!r} in {path} has no token")
    if not token and not cert_pem:
        raise KubeconfigError(f"user {ctx.get('user')!r} in {path} has an empty token")

    return KubeconfigInfo(
        server_url=server_url,
        ca_pem=ca_pem,
        token=token,
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
    )


def _inline_or_file(user: Mapping[str, Any], field: str, base: Path, kubeconfig: Path) -> bytes:
    """``<field>-data`` (base64) or the file ``<field>`` of a kubeconfig user, else b""."""
    if user.get(f"{field}-data"):
        try:
            return base64.b64decode(str(user[f"{field}-data"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KubeconfigError(f"{field}-data in {kubeconfig} is not base64") from exc
    if user.get(field):
        return _read_referenced(base, str(user[field]), kubeconfig)
    return b""


def _named_entry(
    document: Mapping[str, Any], section: str, key: str, name: object, path: Path
) -> Mapping[str, Any]:
    for entry in document.get(section) or ():
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(key)
            if not isinstance(value, Mapping):
                raise KubeconfigError(f"{section[:-1]} {name!r} in {path} is empty")
            return value
    raise KubeconfigError(f"kubeconfig {path} has no {section[:-1]} named {name!r}")


def _read_referenced(base: Path, reference: str, kubeconfig: Path) -> bytes:
    target = Path(reference).expanduser()
    if not target.is_absolute():
        target = base / target
    try:
        return target.read_bytes()
    except OSError as exc:
        raise KubeconfigError(f"{kubeconfig} refers to unreadable {target}: {exc}") from exc


# --------------------------------------------------------------------------- CA


def _ensure_ca(
    cert_path: Path, key_path: Path, clock: Clock
) -> tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes, bytes]:
    if cert_path.exists():
        if not key_path.exists():
            raise PKIError(
                f"{cert_path} exists but its key {key_path} is missing; restore the key, "
                "or remove the whole tls directory to create a new CA"
            )
        cert_pem = cert_path.read_bytes()
        cert = _load_certificate(cert_pem, what=f"CA certificate {cert_path}")
        try:
            key = _as_issuer_key(
                serialization.load_pem_private_key(key_path.read_bytes(), password=None),
                what=f"CA key {key_path}",
            )
        except (ValueError, TypeError) as exc:
            raise PKIError(f"cannot load CA key {key_path}: {exc}") from exc
        _check_key_matches(cert, key, what=f"CA in {cert_path.parent}")
        if not _is_ca(cert):
            raise PKIError(f"{cert_path} is not a CA certificate (basicConstraints CA:false)")
        if cert.not_valid_after_utc <= _whole_seconds(clock):
            logger.warning("cluster CA %s expired at %s", cert_path, cert.not_valid_after_utc)
        return cert, key, cert_pem

    # No certificate: either a first start, or a creation interrupted after the key was
    # written. Either way nobody can have trusted a CA whose certificate never existed.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = _whole_seconds(clock)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"setpoint-ca@{int(clock.time())}")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    write_private_file(key_path, _key_pem(ca_key))
    write_private_file(cert_path, cert_pem)
    logger.info("created cluster CA %s (%s)", cert_path, name.rfc4514_string())
    return ca_cert, ca_key, cert_pem


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


# --------------------------------------------------------------------------- serving certificate

# A SAN entry: ("ip", IPv4Address | IPv6Address) or ("dns", lower-case name).
_San = tuple[str, Any]


def _ensure_serving(
    cert_path: Path,
    key_path: Path,
    *,
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    wanted: list[_San],
    clock: Clock,
) -> None:
    existing = _usable_serving_sans(cert_path, key_path, ca_cert, clock)
    if existing is not None:
        missing = [san for san in wanted if san not in existing]
        if not missing:
            return
        logger.info(
            "re-issuing serving certificate %s to add %s",
            cert_path,
            ", ".join(str(value) for _, value in missing),
        )
        # Keep the names the old certificate had, so clients using them keep working.
        wanted = _dedupe([*existing, *wanted])
    else:
        logger.info("issuing serving certificate %s", cert_path)
    cert, key = _issue_serving(
        ca_cert=ca_cert, ca_key=ca_key, sans=wanted, common_name=SERVING_COMMON_NAME, clock=clock
    )
    write_private_file(key_path, _key_pem(key))
    write_private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _usable_serving_sans(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate, clock: Clock
) -> list[_San] | None:
    """The SANs of the existing serving certificate, or None if it must be replaced."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not _public_keys_equal(cert, key):
        return None
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return None
    if cert.not_valid_after_utc - _whole_seconds(clock) < _RENEW_BEFORE:
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    entries: list[_San] = [("ip", ip) for ip in san.get_values_for_type(x509.IPAddress)]
    entries += [("dns", name.lower()) for name in san.get_values_for_type(x509.DNSName)]
    return entries


def _issue_serving(
    *,
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    sans: list[_San],
    common_name: str,
    clock: Clock,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not sans:
        raise ValueError("a serving certificate needs at least one host name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _whole_seconds(clock)
    not_after = min(now + _SERVING_VALIDITY, ca_cert.not_valid_after_utc)
    general_names: list[x509.GeneralName] = [
        x509.IPAddress(value) if kind == "ip" else x509.DNSName(value) for kind, value in sans
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
        .sign(ca_key, _signature_hash(ca_key))
    )
    return cert, key


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


# --------------------------------------------------------------------------- SAN handling


def _san_entries(hosts: Sequence[str]) -> list[_San]:
    """Classify hosts as IP or DNS SANs, expanding wildcard addresses, without duplicates."""
    entries: list[_San] = []
    for raw in hosts:
        host = raw.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host:
            continue
        ip = _parse_ip(host)
        if ip is None:
            entries.append(("dns", _dns_name(host)))
        elif ip.is_unspecified:
            entries += [("ip", address) for address in _local_addresses()]
        else:
            entries.append(("ip", ip))
    return _dedupe(entries)


def _parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _dns_name(host: str) -> str:
    name = host.lower().rstrip(".")
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"{host!r} is neither an IP address nor a valid DNS name") from exc
    if not name or any(ch.isspace() or ch in "/:@" for ch in name):
        raise ValueError(f"{host!r} is neither an IP address nor a valid DNS name")
    return name


def _dedupe(entries: Sequence[_San]) -> list[_San]:
    seen: set[_San] = set()
    result: list[_San] = []
    for entry in entries:
        if entry not in seen:
            seen.add(entry)
            result.append(entry)
    return result


def _hostname() -> list[str]:
    try:
        name = socket.gethostname()
    except OSError:
        return []
    return [name] if name and name != "localhost" else []


def _local_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This machine's non-loopback addresses, as far as they are cheap to find out.

    Uses the source address of the default routes (a UDP ``connect`` sends nothing)
    and whatever the hostname resolves to locally. Failures yield fewer addresses,
    never an error.
    """
    found: list[str] = []
    probes = ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1"))
    for family, probe in probes:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                found.append(str(sock.getsockname()[0]))
        except OSError:
            pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM):
            found.append(str(info[4][0]))
    except (OSError, UnicodeError):
        pass
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in found:
        ip = _parse_ip(text)
        if ip is None or ip.is_loopback or ip.is_unspecified or ip.is_link_local:
            continue
        if ip not in addresses:
            addresses.append(ip)
    return addresses


# --------------------------------------------------------------------------- tokens


def _ensure_random_token(path: Path, whose: str) -> str:
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise PKIError(f"{whose} token file {path} is empty; remove it to create a new token")
        return token
    token = secrets.token_hex(32)
    write_private_file(path, (token + "\n").encode("ascii"))
    logger.info("created %s token %s", whose, path)
    return token


def _ensure_k10_token(path: Path, whose: str, *, ca_cert_pem: bytes, secret_bytes: int) -> str:
    """The ``K10<CA hash>::server:<secret>`` token at ``path``, made with a random secret of
    ``secret_bytes`` if missing."""
    digest = ca_hash(ca_cert_pem)
    if path.exists():
        current = path.read_text(encoding="utf-8").strip()
        try:
            token_hash, user, password = parse_node_token(current)
        except ValueError as exc:
            raise PKIError(f"{whose} token file {path} is malformed: {exc}") from exc
        if token_hash == digest:
            return current
        # The CA was recreated: keep the secret, point the token at the new CA.
        logger.warning("%s token %s named another CA; updating its CA hash", whose, path)
    else:
        user, password = _NODE_TOKEN_USER, secrets.token_hex(secret_bytes)
    token = f"{_NODE_TOKEN_PREFIX}{digest}::{user}:{password}"
    write_private_file(path, (token + "\n").encode("ascii"))
    return token


# --------------------------------------------------------------------------- helpers


def _whole_seconds(clock: Clock) -> datetime.datetime:
    """The clock's time without microseconds (certificates store whole seconds)."""
    return clock.now().replace(microsecond=0)


def _key_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_certificate(pem: bytes, *, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PKIError(f"cannot load {what}: {exc}") from exc


def _as_issuer_key(key: PrivateKeyTypes, *, what: str) -> CertificateIssuerPrivateKeyTypes:
    if isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        return key
    raise PKIError(f"{what} is a {type(key).__name__}, which cannot sign certificates")


def _public_keys_equal(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    try:
        return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    except (ValueError, TypeError):
        return False


def _check_key_matches(cert: x509.Certificate, key: PrivateKeyTypes, *, what: str) -> None:
    if not _public_keys_equal(cert, key):
        raise PKIError(f"{what}: the private key does not belong to the certificate")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
