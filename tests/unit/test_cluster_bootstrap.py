"""The cluster's shared secrets: join tokens, sealed bootstrap data, and how a server comes
to hold them from the datastore (``cli.clusterjoin.establish`` on a real SQLite store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from setpoint.api.serverbootstrap import BOOTSTRAP_KEY
from setpoint.cli.bootstrapdata import SHARED_FILES, BootstrapData, BootstrapDataError
from setpoint.cli.clusterjoin import JoinError, JoinSettings, establish
from setpoint.cli.security import SecurityConfig
from setpoint.pki import JoinToken, ca_hash, parse_join_token
from setpoint.store.interface import Store
from setpoint.store.sqlite import SQLiteStore

HASH = "ab" * 32


def test_a_full_token_names_the_ca_hash_user_and_secret() -> None:
    assert parse_join_token(f"K10{HASH}::server:s3cret\n") == JoinToken(HASH, "server", "s3cret")


def test_a_bare_secret_is_a_token_that_pins_no_ca() -> None:
    assert parse_join_token("s3cret") == JoinToken(None, "server", "s3cret")


@pytest.mark.parametrize("text", ["", "  \n", "two words", f"K10{HASH[:10]}::server:x"])
def test_malformed_tokens_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_join_token(text)


def sample() -> BootstrapData:
    return BootstrapData({"tls/ca.crt": b"-----BEGIN CERTIFICATE-----\n", "token": b"t\n"})


def test_sealed_data_opens_with_its_secret() -> None:
    data = sample()
    sealed = data.seal("s3cret")
    assert b"BEGIN CERTIFICATE" not in sealed
    assert BootstrapData.open(sealed, "s3cret") == data
    assert data.seal("s3cret") != sealed  # a fresh salt and nonce each time


def test_sealed_data_does_not_open_with_another_secret() -> None:
    with pytest.raises(BootstrapDataError, match="does not open"):
        BootstrapData.open(sample().seal("s3cret"), "guess")


@pytest.mark.parametrize("blob", [b"", b"garbage", b"salt:!!!", b"salt:AAAA", "é:x".encode()])
def test_what_is_not_sealed_data_is_refused(blob: bytes) -> None:
    with pytest.raises(BootstrapDataError):
        BootstrapData.open(blob, "s3cret")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    backend = await SQLiteStore.open(tmp_path / "state.db")
    try:
        yield backend
    finally:
        await backend.close()


async def start(data_dir: Path, store: Store, token: Path | None = None) -> None:
    await establish(data_dir, store, JoinSettings(token_file=token), security=SecurityConfig())


def write_token(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    return path


async def test_the_first_server_stores_every_shared_file_sealed(
    tmp_path: Path, store: Store
) -> None:
    await start(tmp_path / "a", store)
    ours = BootstrapData.read(tmp_path / "a")
    assert sorted(ours.files) == sorted(SHARED_FILES)
    token = parse_join_token((tmp_path / "a" / "server-token").read_text())
    assert token.ca_hash == ca_hash((tmp_path / "a" / "tls" / "ca.crt").read_bytes())
    assert token.password not in (tmp_path / "a" / "node-token").read_text()
    stored = await store.get(BOOTSTRAP_KEY)
    assert stored is not None
    assert BootstrapData.open(stored.value, token.password) == ours
    assert not (tmp_path / "a" / ".bootstrap-staging").exists()


async def test_a_server_joins_with_the_token_alone(tmp_path: Path, store: Store) -> None:
    await start(tmp_path / "a", store)
    await start(tmp_path / "b", store, tmp_path / "a" / "server-token")
    assert BootstrapData.read(tmp_path / "b") == BootstrapData.read(tmp_path / "a")
    assert (tmp_path / "b" / "tls").stat().st_mode & 0o777 == 0o700
    await start(tmp_path / "b", store)  # a restart needs no token


async def test_a_restart_with_another_clusters_ca_on_disk_is_refused(
    tmp_path: Path, store: Store
) -> None:
    await start(tmp_path / "a", store)
    elsewhere = await SQLiteStore.open(tmp_path / "other-db" / "state.db")
    try:
        await start(tmp_path / "other", elsewhere)
    finally:
        await elsewhere.close()
    # the other cluster's data dir, started on this datastore with its own server token
    with pytest.raises(JoinError, match="does not open"):
        await start(tmp_path / "other", store)
    # ... or with this cluster's token
    with pytest.raises(JoinError, match="holds a different cluster's CA"):
        await start(tmp_path / "other", store, tmp_path / "a" / "server-token")


async def test_a_token_naming_another_ca_is_refused(tmp_path: Path, store: Store) -> None:
    await start(tmp_path / "a", store)
    secret = parse_join_token((tmp_path / "a" / "server-token").read_text()).password
    token = write_token(tmp_path / "t", f"K10{HASH}::server:{secret}")
    with pytest.raises(JoinError, match="the token is another cluster's"):
        await start(tmp_path / "b", store, token)


async def test_a_first_server_given_a_secret_makes_its_server_token_with_it(
    tmp_path: Path, store: Store
) -> None:
    await start(tmp_path / "a", store, write_token(tmp_path / "t", "chosen-secret"))
    token = parse_join_token((tmp_path / "a" / "server-token").read_text())
    assert token.password == "chosen-secret"
    assert token.ca_hash == ca_hash((tmp_path / "a" / "tls" / "ca.crt").read_bytes())


async def test_first_servers_racing_with_one_token_end_up_in_one_cluster(
    tmp_path: Path, store: Store
) -> None:
    token = write_token(tmp_path / "t", "shared-secret")
    await asyncio.gather(*(start(tmp_path / name, store, token) for name in ("a", "b")))
    assert BootstrapData.read(tmp_path / "a") == BootstrapData.read(tmp_path / "b")


async def test_first_servers_racing_with_different_tokens_one_refuses(
    tmp_path: Path, store: Store
) -> None:
    results = await asyncio.gather(
        start(tmp_path / "a", store, write_token(tmp_path / "ta", "one")),
        start(tmp_path / "b", store, write_token(tmp_path / "tb", "two")),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, JoinError)]
    assert len(refused) == 1, results
    assert "another server bootstrapped the datastore first" in str(refused[0])
