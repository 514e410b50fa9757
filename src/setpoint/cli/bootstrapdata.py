"""Bootstrap data: the files every server of a cluster shares, and how they are sealed.

A cluster's servers must hold the same CA (``tls/ca.crt``, ``tls/ca.key``), ServiceAccount
signing key (``tls/sa.key``), node credential key (``tls/node-credential.key``), generated
encryption config (``encryption-config.yaml``) and tokens (``token``, ``node-token``,
``controller-token``, ``server-token``): then an admin kubeconfig, a ServiceAccount token,
a node credential or a client certificate made by one server is accepted by all, and every
server reads the Secrets another encrypted. What each server makes for itself from the
shared CA — its serving certificate (its own SANs) and its client certificates — is not
shared. With ``--encryption-provider-config`` there is no generated config to share: every
server must then be given the same file.

The files travel as :class:`BootstrapData`, sealed as k3s seals its bootstrap data
(``pkg/cluster/encrypt.go``): a key derived from the server token's secret with PBKDF2 and a
random salt, then AES-256-GCM; the text stored is ``<salt hex>:<base64 of nonce and
ciphertext>``. k3s derives with 4096 rounds of PBKDF2-HMAC-SHA1; setpoint takes
:data:`PBKDF2_ROUNDS` rounds of SHA-256 (about 0.05 s here, once per start), since the
secret is all that guards the copy in the datastore. Only someone who holds the server token opens
it; a wrong token fails GCM's authentication, never yields garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from setpoint.api.auth.nodecredentials import KEY_FILE as NODE_KEY_FILE
from setpoint.api.auth.tokens import SIGNING_KEY_FILE
from setpoint.api.encryption import DEFAULT_CONFIG_FILE
from setpoint.meta.privatefiles import private_dir, write_private_file
from setpoint.pki import (
    ADMIN_TOKEN_FILE,
    CA_CERT_FILE,
    CA_KEY_FILE,
    CONTROLLER_TOKEN_FILE,
    NODE_TOKEN_FILE,
    SERVER_TOKEN_FILE,
    TLS_DIR,
    ca_hash,
)

CA_CERT = f"{TLS_DIR}/{CA_CERT_FILE}"
#: What a cluster's servers share, as paths under the data dir.
SHARED_FILES: tuple[str, ...] = (
    CA_CERT,
    f"{TLS_DIR}/{CA_KEY_FILE}",
    f"{TLS_DIR}/{SIGNING_KEY_FILE}",
    f"{TLS_DIR}/{NODE_KEY_FILE}",
    DEFAULT_CONFIG_FILE,
    ADMIN_TOKEN_FILE,
    NODE_TOKEN_FILE,
    CONTROLLER_TOKEN_FILE,
    SERVER_TOKEN_FILE,
)
PBKDF2_ROUNDS = 200_000
_SALT_BYTES = 8
_NONCE_BYTES = 12
_AAD = b"setpoint bootstrap data v1"


class BootstrapDataError(Exception):
    """Bootstrap data that cannot be opened or is incomplete; ``str()`` says why."""


@dataclass(frozen=True)
class BootstrapData:
    """The shared files' contents, by path under the data dir (see :data:`SHARED_FILES`)."""

    files: Mapping[str, bytes]

    @property
    def ca_pem(self) -> bytes:
        return self.files[CA_CERT]

    @property
    def ca_hash(self) -> str:
        return ca_hash(self.ca_pem)

    @classmethod
    def read(cls, data_dir: Path) -> BootstrapData:
        """The shared files found in ``data_dir`` (those missing are left out)."""
        files = {}
        for name in SHARED_FILES:
            path = data_dir / name
            if path.is_file():
                files[name] = path.read_bytes()
        if CA_CERT not in files:
            raise BootstrapDataError(f"{data_dir} holds no cluster CA ({CA_CERT})")
        return cls(files)

    def write(self, data_dir: Path, *, only_missing: bool = False) -> list[str]:
        """Write the files into ``data_dir`` (0600, ``tls/`` 0700); with ``only_missing``,
        those it lacks. Returns the paths written."""
        private_dir(data_dir)
        private_dir(data_dir / TLS_DIR)
        written = []
        for name, content in sorted(self.files.items()):
            path = data_dir / name
            if only_missing and path.exists():
                continue
            write_private_file(path, content)
            written.append(name)
        return written

    def seal(self, secret: str) -> bytes:
        """The files encrypted under ``secret`` (see the module's docs)."""
        salt = secrets.token_hex(_SALT_BYTES)
        nonce = os.urandom(_NONCE_BYTES)
        plain = orjson.dumps({name: base64.b64encode(c).decode() for name, c in self.files.items()})
        sealed = nonce + AESGCM(_key(secret, salt)).encrypt(nonce, plain, _AAD)
        return f"{salt}:{base64.b64encode(sealed).decode()}".encode()

    @classmethod
    def open(cls, blob: bytes, secret: str) -> BootstrapData:
        """The files sealed in ``blob``; BootstrapDataError if ``secret`` is not the one they
        were sealed with, or ``blob`` is not sealed bootstrap data."""
        try:
            salt, _, encoded = blob.decode("ascii").partition(":")
            sealed = base64.b64decode(encoded, validate=True)
        except (UnicodeDecodeError, binascii.Error):
            raise BootstrapDataError("the bootstrap data is not in setpoint's format") from None
        if not salt or len(sealed) <= _NONCE_BYTES:
            raise BootstrapDataError("the bootstrap data is not in setpoint's format")
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            plain = AESGCM(_key(secret, salt)).decrypt(nonce, ciphertext, _AAD)
        except InvalidTag:
            raise BootstrapDataError(
                "the server token does not open the cluster's bootstrap data (wrong token?)"
            ) from None
        files = {name: base64.b64decode(text) for name, text in orjson.loads(plain).items()}
        if CA_CERT not in files:
            raise BootstrapDataError(f"the bootstrap data holds no {CA_CERT}")
        return cls(files)


def _key(secret: str, salt: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), PBKDF2_ROUNDS, 32)
