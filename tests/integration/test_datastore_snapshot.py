"""`setpoint datastore snapshot save` while a server runs and writes, `snapshot restore` into
its stopped data dir: what was written before the snapshot is back, what came after is not,
revisions go on upward and clients holding later ones are told to re-list."""

from __future__ import annotations

import stat
import subprocess
import threading
from pathlib import Path

from tests.support import SETPOINT, Server, assert_watch_expired, start_server

CM = "/api/v1/namespaces/default/configmaps"


def datastore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SETPOINT, "datastore", "snapshot", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def create(server: Server, name: str) -> int:
    status, body, _ = server.request("POST", CM, {"metadata": {"name": name}, "data": {"k": name}})
    assert status == 201, body
    return int(body["metadata"]["resourceVersion"])


def names(server: Server) -> set[str]:
    status, body, _ = server.request("GET", CM)
    assert status == 200, body
    return {item["metadata"]["name"] for item in body["items"]}


def test_snapshot_taken_while_serving_restores_what_came_before_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    snap = tmp_path / "backups" / "snap.db"
    snap.parent.mkdir()
    server = start_server(data)
    try:
        for name in ("before-1", "before-2"):
            create(server, name)

        # a client writing one object after another while the snapshot is taken
        written: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set():
                create(server, f"during-{i}")
                written.append(f"during-{i}")
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            saved = datastore("save", str(snap), "--data-dir", str(data))
        finally:
            stop.set()
            thread.join()
        assert saved.returncode == 0, saved.stderr
        assert saved.stdout.startswith(f"Saved snapshot {snap}: revision ")
        assert stat.S_IMODE(snap.stat().st_mode) == 0o600

        after = create(server, "after")
        status, listing, _ = server.request("GET", CM)
        assert status == 200
        last_seen = int(listing["metadata"]["resourceVersion"])

        refused = datastore("restore", str(snap), "--data-dir", str(data))
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            f"Error: the store in {data / 'db'} is in use by setpoint server "
            f"(pid {server.process.pid})"
        )
        assert "after" in names(server)  # nothing was touched
    finally:
        assert server.stop() == 0

    restored = datastore("restore", str(snap), "--data-dir", str(data))
    assert restored.returncode == 0, restored.stderr
    assert "revisions continue at" in restored.stdout
    [previous] = (data / "db").glob("state.db.before-restore-*")
    assert "after" in previous.read_bytes().decode(errors="replace")  # kept, not deleted

    server = start_server(data)
    try:
        present = names(server)
        assert {"before-1", "before-2"} <= present
        assert "after" not in present
        # consistent: the writes in the snapshot are exactly the first k the writer made
        during = sorted((n for n in present if n.startswith("during-")), key=lambda n: int(n[7:]))
        assert during == written[: len(during)]
        # revisions continue above everything handed out before ...
        assert create(server, "new") > last_seen
        # ... and a client holding one from after the snapshot is told to re-list
        assert_watch_expired(server, f"{CM}?watch=1&resourceVersion={after}")
    finally:
        assert server.stop() == 0


def test_restoring_something_that_is_not_a_snapshot_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    result = datastore("restore", str(junk), "--data-dir", str(data))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: database file is corrupt: file is not a database ({junk})"
    )
    assert not (data / "db" / "state.db").exists()


def test_saving_without_a_database_says_so(tmp_path: Path) -> None:
    result = datastore("save", str(tmp_path / "snap.db"), "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "there is no database at" in result.stderr
