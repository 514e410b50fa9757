"""How a server comes to hold its cluster's shared secrets: bootstrap, join, or check.

Run once per start, after the datastore opens and before anything makes credentials, as
k3s's ``pkg/cluster/bootstrap.go`` does. With the datastore's bootstrap data
(:data:`~setpoint.api.serverbootstrap.BOOTSTRAP_KEY`, see :mod:`.bootstrapdata`):

* **absent** — this is the cluster's first server. A fresh data dir makes the shared files
  in a staging dir first (with the secret of ``--token-file`` when given, as k3s's
  ``--token``), then writes them to the datastore *create-if-absent*: of two first servers
  racing on one datastore exactly one wins, and the other adopts the winner's files if its
  token opens them (both were given the same token) or refuses. A data dir that already
  holds a cluster (made before servers shared secrets) publishes its own.
* **present** — the server joins or restarts. It opens the data with the token of
  ``--token-file``, else the ``server-token`` on disk; a fresh data dir takes every file, one
  that holds a cluster must hold the *same* CA (a different one refuses to start: it is
  another cluster's data dir, or the datastore is another cluster's).

``--server URL`` first fetches the data from a running server
(:mod:`setpoint.api.serverbootstrap`): its CA from ``/cacerts``, checked against the hash in
a ``K10<hash>::server:<secret>`` token before it is trusted (a bare secret cannot pin the
CA: a warning says so, as k3s's), then the sealed data with Basic ``server:<secret>``. The
files land in the data dir (0600, ``tls/`` 0700) before anything else is made. Only a data
dir that holds no cluster yet fetches: a joined server restarts from its own files, checked
against the datastore, whether or not the server it joined through is up. Every
failure is a :class:`JoinError`, whose message is the one line the server prints.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from setpoint.api.auth.nodecredentials import KEY_FILE as NODE_KEY_FILE
from setpoint.api.auth.nodecredentials import ensure_key
from setpoint.api.auth.tokens import load_or_create_signing_key
from setpoint.api.encryption import DEFAULT_CONFIG_FILE
from setpoint.api.serverbootstrap import (
    BOOTSTRAP_KEY,
    CACERTS_PATH,
    SERVER_BOOTSTRAP_PATH,
    SERVER_USER,
)
from setpoint.cli.bootstrapdata import BootstrapData, BootstrapDataError
from setpoint.cli.security import SecurityConfig, encryption_config
from setpoint.meta.privatefiles import write_private_file
from setpoint.pki import (
    CA_CERT_FILE,
    SERVER_TOKEN_FILE,
    TLS_DIR,
    JoinToken,
    PKIError,
    ca_hash,
    client_ssl_context,
    ensure_server_credentials,
    parse_join_token,
)
from setpoint.store.interface import KeyExistsError, KeyValue, Store

log = logging.getLogger(__name__)

STAGING_DIR = ".bootstrap-staging"
FETCH_TIMEOUT = 30.0


class JoinError(Exception):
    """The server cannot take part in the cluster; ``str()`` is the one line that says why."""


@dataclass(frozen=True)
class JoinSettings:
    """``--server`` (a running server to fetch the bootstrap data from) and
    ``--token-file`` (the cluster's server token)."""

    server: str | None = None
    token_file: Path | None = None


def read_token_file(path: Path) -> JoinToken:
    try:
        return parse_join_token(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JoinError(f"--token-file {path}: {(exc.strerror or str(exc)).lower()}") from None
    except ValueError as exc:
        raise JoinError(f"--token-file {path}: {exc}") from None


def make_shared_files(data_dir: Path, security: SecurityConfig) -> None:
    """Make whichever of the shared files ``data_dir`` lacks, with the same helpers the
    server serves with (the CA and tokens, the signing and node credential keys, the
    generated encryption config)."""
    ensure_server_credentials(data_dir, hosts=())
    load_or_create_signing_key(data_dir / TLS_DIR)
    ensure_key(data_dir / TLS_DIR / NODE_KEY_FILE)
    encryption_config(security, data_dir)


async def establish(
    data_dir: Path,
    store: Store,
    join: JoinSettings,
    *,
    security: SecurityConfig,
) -> None:
    """Leave ``data_dir`` holding the cluster's shared files (see the module's docs)."""
    token = read_token_file(join.token_file) if join.token_file is not None else None
    own = _on_disk(data_dir)
    if join.server is not None and token is None:
        raise JoinError("--server needs --token-file: the cluster's server token")
    if join.server is not None and token is not None and not _joined(own):
        fetched = await fetch(join.server, token)
        _adopt(fetched, own, data_dir, security)
        own = _on_disk(data_dir)
    stored = await store.get(BOOTSTRAP_KEY)
    lost_race = False
    if stored is None:
        lost = await _bootstrap(data_dir, store, own, token, security)
        if lost is None:
            return
        (stored, token), lost_race = lost, True
    if token is None:
        if own is None or SERVER_TOKEN_FILE not in own.files:
            raise JoinError(
                "the datastore already holds a cluster: join it with --token-file FILE "
                f"(the {SERVER_TOKEN_FILE} in one of its servers' data dir)"
            )
        token = _token_of(own)
    try:
        cluster = BootstrapData.open(stored.value, token.password)
    except BootstrapDataError as exc:
        if lost_race:
            raise JoinError(
                "another server bootstrapped the datastore first, with another token: "
                f"join it with --token-file FILE (its {SERVER_TOKEN_FILE})"
            ) from None
        raise JoinError(f"the datastore's bootstrap data: {exc}") from None
    if token.ca_hash is not None and token.ca_hash != cluster.ca_hash:
        raise JoinError(
            f"the token names CA sha256 {token.ca_hash[:12]}…, the datastore's cluster has "
            f"{cluster.ca_hash[:12]}…: the token is another cluster's"
        )
    _adopt(cluster, own, data_dir, security)


def _joined(own: BootstrapData | None) -> bool:
    """The data dir holds a cluster's files already (a restart): ``--server`` need not be
    up, since the files are checked against the datastore's bootstrap data below."""
    return own is not None and SERVER_TOKEN_FILE in own.files


async def fetch(server: str, token: JoinToken) -> BootstrapData:
    """The bootstrap data of the server at ``server``, fetched as the module's docs say."""
    base = server.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(base + CACERTS_PATH, ssl=False) as response:
                if response.status != 200:
                    raise JoinError(f"{base}{CACERTS_PATH} answered {response.status}")
                ca_pem = await response.read()
            served_hash = ca_hash(ca_pem)
            if token.ca_hash is None:
                log.warning(
                    "the token names no CA hash: the CA of %s is trusted without being "
                    "checked; use the full K10... token of the first server's %s",
                    base,
                    SERVER_TOKEN_FILE,
                )
            elif served_hash != token.ca_hash:
                raise JoinError(
                    f"the server at {base} presents CA sha256 {served_hash[:12]}…, the token "
                    f"names {token.ca_hash[:12]}…: wrong server or wrong token"
                )
            async with session.get(
                base + SERVER_BOOTSTRAP_PATH,
                ssl=client_ssl_context(ca_pem),
                auth=aiohttp.BasicAuth(SERVER_USER, token.password),
            ) as response:
                if response.status == 401:
                    raise JoinError(
                        f"the server at {base} refused the token (401 Unauthorized): pass "
                        f"its {SERVER_TOKEN_FILE}"
                    )
                if response.status != 200:
                    raise JoinError(f"{base}{SERVER_BOOTSTRAP_PATH} answered {response.status}")
                blob = await response.read()
    except (aiohttp.ClientError, TimeoutError, PKIError) as exc:
        raise JoinError(f"cannot reach the server at {base}: {exc or type(exc).__name__}") from None
    try:
        data = BootstrapData.open(blob, token.password)
    except BootstrapDataError as exc:
        raise JoinError(f"the bootstrap data from {base}: {exc}") from None
    if data.ca_hash != served_hash:
        raise JoinError(f"the bootstrap data from {base} holds another CA than it serves")
    return data


async def _bootstrap(
    data_dir: Path,
    store: Store,
    own: BootstrapData | None,
    token: JoinToken | None,
    security: SecurityConfig,
) -> tuple[KeyValue, JoinToken] | None:
    """Be the cluster's first server: store the shared files (a fresh data dir's made in
    staging) create-if-absent. None once stored; if another server stored its first, its
    data and the token to try opening it with (the one given, else this server's own)."""
    if token is not None and token.ca_hash is not None and own is None:
        raise JoinError(
            "the datastore holds no cluster, but the token names one's CA: is "
            "--datastore-endpoint the cluster's datastore?"
        )
    staged = _stage(data_dir, security, token) if own is None else None
    if staged is None:
        make_shared_files(data_dir, security)  # made before servers shared secrets
    ours = staged or BootstrapData.read(data_dir)
    try:
        await store.create(BOOTSTRAP_KEY, ours.seal(_token_of(ours).password))
    except KeyExistsError:
        winner = await store.get(BOOTSTRAP_KEY)
        if winner is None:
            raise JoinError("the datastore's bootstrap data vanished while starting") from None
        log.warning("another server bootstrapped the datastore first; taking its data")
        return winner, token or _token_of(ours)
    if staged is not None:
        staged.write(data_dir)
    log.info("stored the cluster's bootstrap data in the datastore")
    return None


def _on_disk(data_dir: Path) -> BootstrapData | None:
    """The shared files in ``data_dir``, None if it holds no cluster (no CA)."""
    if not (data_dir / TLS_DIR / CA_CERT_FILE).is_file():
        return None
    return BootstrapData.read(data_dir)


def _token_of(data: BootstrapData) -> JoinToken:
    try:
        return parse_join_token(data.files[SERVER_TOKEN_FILE].decode(errors="replace"))
    except ValueError as exc:
        raise JoinError(f"the cluster's {SERVER_TOKEN_FILE} is malformed: {exc}") from None


def _stage(data_dir: Path, security: SecurityConfig, token: JoinToken | None) -> BootstrapData:
    """A new cluster's shared files, made in a scratch dir (removed again) so that a server
    that loses the race to bootstrap the datastore has nothing of its own to undo."""
    staging = data_dir / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    try:
        make_shared_files(staging, security)
        if token is not None:  # the cluster's secret is the one the operator chose
            ca_pem = (staging / TLS_DIR / CA_CERT_FILE).read_bytes()
            text = f"K10{ca_hash(ca_pem)}::{SERVER_USER}:{token.password}\n"
            write_private_file(staging / SERVER_TOKEN_FILE, text.encode())
        return BootstrapData.read(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _adopt(
    cluster: BootstrapData, own: BootstrapData | None, data_dir: Path, security: SecurityConfig
) -> None:
    """Write the cluster's files into ``data_dir``: all of them into a fresh one; into one
    that holds the same cluster, those it lacks. A different CA refuses."""
    if own is not None and own.ca_pem != cluster.ca_pem:
        raise JoinError(
            f"{data_dir} holds a different cluster's CA (sha256 {own.ca_hash[:12]}…) than "
            f"the cluster's (sha256 {cluster.ca_hash[:12]}…): use a fresh --data-dir to join"
        )
    generated_config = DEFAULT_CONFIG_FILE in cluster.files
    if own is None and not generated_config and security.encryption_provider_config is None:
        raise JoinError(
            "the cluster's servers encrypt with --encryption-provider-config: pass the "
            "same file to this server"
        )
    written = cluster.write(data_dir, only_missing=own is not None)
    if written:
        log.info("wrote the cluster's shared files: %s", ", ".join(written))
