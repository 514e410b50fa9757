"""`setpoint server` and its database: a lost, emptied, corrupt or unwritable database stops
start-up with one line and exit status 3, `--cluster-reset` starts over without sending
resourceVersions backwards, and one data dir serves one server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests import objects
from tests.disks import EXIT_CANNOT_START, remount, run_server_expecting_refusal, tmpfs
from tests.support import Server, assert_watch_expired, free_port, start_server

CM = "/api/v1/namespaces/default/configmaps"


def create_configmap(server: Server, name: str) -> int:
    status, body, _ = server.request("POST", CM, objects.configmap(name, data={"k": "v"}))
    assert status == 201, body
    return int(body["metadata"]["resourceVersion"])


def configmap_names(server: Server) -> set[str]:
    status, body, _ = server.request("GET", CM)
    assert status == 200, body
    return {item["metadata"]["name"] for item in body["items"]}


def first_server(data: Path) -> tuple[int, int]:
    """A server that wrote something and stopped cleanly: (a configmap's resourceVersion,
    the list resourceVersion when it stopped)."""
    server = start_server(data)
    try:
        written = create_configmap(server, "before")
        status, body, _ = server.request("GET", CM)
        assert status == 200
        return written, int(body["metadata"]["resourceVersion"])
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_lost_database_stops_start_up_with_one_line(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    first_server(data)
    db = data / "db" / "state.db"
    if damage == "missing":
        db.unlink()
    else:
        db.write_bytes(b"")

    refusal = run_server_expecting_refusal(data)

    assert refusal.returncode == EXIT_CANNOT_START
    assert refusal.line.startswith(f"setpoint server: cannot start: the database {db} is {damage}")
    assert "--cluster-reset" in refusal.line
    assert db.exists() == (damage == "empty")  # nothing was created in its place


def test_cluster_reset_starts_over_above_every_revision_handed_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    written, last = first_server(data)
    (data / "db" / "state.db").unlink()

    server = start_server(data, extra=["--cluster-reset"])
    try:
        assert configmap_names(server) == set()
        assert create_configmap(server, "after") > last
        # a client still holding the old resourceVersion is told its history is gone
        assert_watch_expired(server, f"{CM}?watch=1&resourceVersion={written}")
    finally:
        assert server.stop() == 0
    # the reset database is the database now: later starts need no flag
    again = start_server(data)
    try:
        assert configmap_names(again) == {"after"}
    finally:
        again.stop()


def test_cluster_reset_keeps_a_healthy_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _, last = first_server(data)
    server = start_server(data, extra=["--cluster-reset"])
    try:
        assert configmap_names(server) == {"before"}
        # revisions go on from the kept database (the server's own start-up writes — the
        # `kubernetes` Service's endpoints — may come first), not from a reset's fresh start
        assert last < create_configmap(server, "after") < last + 50
    finally:
        server.stop()
    assert "state.db is healthy; keeping it (nothing to reset)" in server.log()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("header", "database file is corrupt: file is not a database"),
        ("pages", "database file is corrupt: database disk image is malformed"),
    ],
)
def test_a_corrupt_database_stops_start_up_naming_the_cause(
    tmp_path: Path, where: str, message: str
) -> None:
    data = tmp_path / "data"
    first_server(data)
    db = data / "db" / "state.db"
    content = bytearray(db.read_bytes())
    page = 4096
    assert len(content) > 4 * page
    if where == "header":
        content[:100] = os.urandom(100)
    else:  # every page after the first (the schema): tables and indexes
        content[page:] = os.urandom(len(content) - page)
    db.write_bytes(bytes(content))

    refusal = run_server_expecting_refusal(data)

    assert refusal.returncode == EXIT_CANNOT_START
    assert refusal.line == f"setpoint server: cannot start: {message} ({db})"


def test_cluster_reset_moves_a_corrupt_database_aside(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _, last = first_server(data)
    db = data / "db" / "state.db"
    corrupt = os.urandom(100) + db.read_bytes()[100:]
    db.write_bytes(corrupt)

    server = start_server(data, extra=["--cluster-reset"])
    try:
        assert configmap_names(server) == set()
        assert create_configmap(server, "after") > last
    finally:
        server.stop()
    [aside] = (data / "db").glob("state.db.corrupt-*")
    assert aside.read_bytes() == corrupt


def test_a_read_only_data_dir_stops_start_up_with_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", size="32m") as mnt:
        data = mnt / "data"
        first_server(data)
        remount(mnt, read_only=True)

        refusal = run_server_expecting_refusal(data)

        assert refusal.returncode == EXIT_CANNOT_START
        assert refusal.line.startswith("setpoint server: cannot start: read-only file system")
        assert str(data) in refusal.line


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    try:
        refusal = run_server_expecting_refusal(data)
        assert refusal.returncode == EXIT_CANNOT_START
        assert refusal.line == (
            "setpoint server: cannot start: the store in "
            f"{data / 'db'} is in use by setpoint server (pid {server.process.pid})"
        )
        assert create_configmap(server, "still-served")  # the first one is unharmed
    finally:
        server.stop()


def test_a_killed_server_leaves_no_lock_behind(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    first.stop(signal.SIGKILL)
    again = start_server(data)
    again.stop()


def test_the_store_can_live_where_datastore_endpoint_says(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "cluster.db"
    server = start_server(
        tmp_path / "data", extra=["--datastore-endpoint", f"sqlite://{elsewhere}"]
    )
    try:
        create_configmap(server, "there")
    finally:
        assert server.stop() == 0
    assert elsewhere.exists() and not (tmp_path / "data" / "db" / "state.db").exists()
    assert (elsewhere.parent.stat().st_mode & 0o077) == 0


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("etcds://127.0.0.1:PORT", "is unavailable"),
        ("etcd://127.0.0.1:PORT", "is unavailable"),  # nothing listens there
        ("mysql://root@tcp(127.0.0.1:3306)/k3s", "unknown scheme 'mysql'"),
    ],
)
def test_an_endpoint_setpoint_cannot_open_stops_start_up(
    tmp_path: Path, endpoint: str, says: str
) -> None:
    endpoint = endpoint.replace("PORT", str(free_port()))
    refusal = run_server_expecting_refusal(tmp_path / "data", "--datastore-endpoint", endpoint)
    assert refusal.returncode == EXIT_CANNOT_START
    assert says in refusal.line
