"""A disk that fills up while the server runs: writes fail with a Status that says so, reads
go on, and writes work again once there is space."""

from __future__ import annotations

from pathlib import Path

from tests.disks import EXIT_CANNOT_START, fill, run_server_expecting_refusal, tmpfs
from tests.support import Server, start_server, wait_for

CM = "/api/v1/namespaces/default/configmaps"
# small enough to arrive in one TLS record: the body reader of this version takes only the
# first chunk of a larger body (being fixed separately); any write needs new pages anyway
BLOB = 8_000


def create(server: Server, name: str, size: int = 0) -> tuple[int, dict]:
    status, body, _ = server.request(
        "POST", CM, {"metadata": {"name": name}, "data": {"blob": "x" * size}}
    )
    return status, body


def test_a_full_disk_fails_writes_with_the_cause_and_they_work_again_after(
    tmp_path: Path,
) -> None:
    # the data dir is the mount point: the server's log (beside it) stays off the full disk
    with tmpfs(tmp_path / "data", size="24m") as data:
        server = start_server(data)
        try:
            status, before = create(server, "before")
            assert status == 201, before
            filler = fill(data)

            status, body = create(server, "too-much", size=BLOB)
            assert status == 500, body["message"]
            assert body["reason"] == "InternalError"
            assert body["message"] == "Internal error occurred: database or disk is full"

            # reads are served meanwhile
            status, got, _ = server.request("GET", f"{CM}/before")
            assert status == 200, got
            assert got["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
            status, listing, _ = server.request("GET", CM)
            assert status == 200
            assert [item["metadata"]["name"] for item in listing["items"]] == ["before"]

            filler.unlink()

            def created_again() -> dict | None:
                status, body = create(server, "after", size=BLOB)
                return body if status == 201 else None

            after = wait_for(created_again, timeout=20, what="a write once there is space")
            assert int(after["metadata"]["resourceVersion"]) > int(
                before["metadata"]["resourceVersion"]
            )
        finally:
            assert server.stop() == 0
        log = server.log()
        assert "store: writes are failing: database or disk is full" in log
        assert "store: writes work again" in log
        assert "Traceback" not in log


def test_readyz_fails_while_the_store_cannot_write_and_recovers_without_a_client_write(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "data", size="24m") as data:
        server = start_server(data)
        try:
            filler = fill(data)

            def readyz() -> tuple[int, str]:
                status, body, _ = server.request("GET", "/readyz?verbose", token=None)
                return status, body

            # nobody writes: the store's own probe finds out once its last write is stale
            def failing() -> str | None:
                status, body = readyz()
                return body if status == 500 else None

            body = wait_for(failing, timeout=20, what="/readyz to fail")
            assert body == (
                "[+]ping ok\n"
                "[+]etcd ok\n"
                "[-]etcd-readiness failed: reason withheld\n"
                "[+]informer-sync ok\n"
                "readyz check failed\n"
            )
            status, reason, _ = server.request("GET", "/readyz/etcd-readiness")
            assert (status, reason) == (500, "internal server error: database or disk is full\n")
            status, body, _ = server.request("GET", "/livez", token=None)
            assert (status, body) == (200, "ok")  # restarting would not help: still live

            filler.unlink()
            wait_for(lambda: readyz()[0] == 200, timeout=20, what="/readyz to pass again")
        finally:
            assert server.stop() == 0


def test_a_full_disk_stops_start_up_with_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", size="24m") as data:
        server = start_server(data)
        assert server.stop() == 0
        filler = fill(data)
        try:
            refusal = run_server_expecting_refusal(data)
        finally:
            filler.unlink()
        assert refusal.returncode == EXIT_CANNOT_START
        assert refusal.line.startswith("setpoint server: cannot start: database or disk is full (")
        again = start_server(data)  # with the space back, nothing was lost
        try:
            status, body, _ = again.request("GET", "/api/v1/namespaces/default")
            assert status == 200, body
        finally:
            again.stop()
