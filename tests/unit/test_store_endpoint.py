"""--datastore-endpoint: a URL scheme picks the store, spelled as k3s (kine) spells it."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.store.endpoint import (
    Endpoint,
    EndpointError,
    EtcdTLS,
    default_endpoint,
    open_store,
    parse_endpoint,
)


def test_sqlite_endpoint_names_an_absolute_file() -> None:
    assert parse_endpoint("sqlite:///var/lib/setpoint/db/state.db") == Endpoint(
        "sqlite", path=Path("/var/lib/setpoint/db/state.db")
    )
    # kine's pragmas in the query are accepted (the store sets its own)
    assert parse_endpoint("sqlite:///x/state.db?_journal=WAL&cache=shared").path == Path(
        "/x/state.db"
    )


def test_the_default_is_the_file_in_the_data_dir(tmp_path: Path) -> None:
    assert parse_endpoint(default_endpoint(tmp_path)).path == tmp_path / "db" / "state.db"


def test_etcd_endpoints_list_their_members() -> None:
    assert parse_endpoint("etcd://10.0.0.1:2379,10.0.0.2:2379").hosts == (
        "10.0.0.1:2379",
        "10.0.0.2:2379",
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("sqlite://state.db", "absolute path"),
        ("sqlite://relative/state.db", "absolute path"),
        ("postgres://db:5432/k3s", "unknown scheme 'postgres'"),
        ("/var/lib/state.db", "unknown scheme ''"),
        ("etcd://", "no etcd member"),
    ],
)
def test_endpoints_that_name_no_store_say_why(text: str, says: str) -> None:
    with pytest.raises(EndpointError, match=says):
        parse_endpoint(text)


async def test_tls_files_need_an_etcds_endpoint(tmp_path: Path) -> None:
    tls = EtcdTLS(ca_file=tmp_path / "ca.crt")
    with pytest.raises(EndpointError, match="etcds://"):
        await open_store("etcd://127.0.0.1:2379", etcd_tls=tls)
    with pytest.raises(EndpointError, match="etcds://"):
        await open_store(f"sqlite://{tmp_path}/state.db", etcd_tls=tls)


async def test_cluster_reset_is_refused_for_etcd() -> None:
    with pytest.raises(EndpointError, match="etcd's own tools"):
        await open_store("etcd://127.0.0.1:2379", reset=True)
