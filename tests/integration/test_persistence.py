"""A restart finds every object exactly as it was; acknowledged writes survive a crash."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support import Server, start_server


def snapshot(server: Server) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in ("/api/v1/namespaces", "/api/v1/configmaps", "/apis/apps/v1/deployments"):
        status, body, _ = server.request("GET", path)
        assert status == 200
        out[path] = sorted(
            body["items"], key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )
    return out


def test_restart_finds_every_object_exactly_as_it_was(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    token, ca = first.token, first.ca_file.read_bytes()
    for i in range(20):
        status, _, _ = first.request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": f"cm{i}", "labels": {"i": str(i)}}, "data": {"v": str(i)}},
        )
        assert status == 201
    before = snapshot(first)
    assert first.stop() == 0
    second = start_server(data, port=first.port)
    try:
        assert second.token == token
        assert second.ca_file.read_bytes() == ca
        assert snapshot(second) == before
        status, body, _ = second.request(
            "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "after"}}
        )
        assert status == 201
        newest = max(int(o["metadata"]["resourceVersion"]) for o in before["/api/v1/configmaps"])  # type: ignore[attr-defined]
        assert int(body["metadata"]["resourceVersion"]) > newest
    finally:
        second.stop()


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)

    def create(i: int) -> int:
        status, _, _ = first.request(
            "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"k{i}"}}
        )
        return status

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(create, range(200)))
    acknowledged = {f"k{i}" for i, s in enumerate(statuses) if s == 201}
    assert len(acknowledged) == 200
    first.stop(signal.SIGKILL)
    second = start_server(data, port=first.port)
    try:
        status, body, _ = second.request("GET", "/api/v1/namespaces/default/configmaps")
        assert status == 200
        assert acknowledged <= {o["metadata"]["name"] for o in body["items"]}
    finally:
        second.stop()


def test_events_expire_after_the_event_ttl(tmp_path: Path) -> None:
    from tests.support import wait_for

    server = start_server(tmp_path / "data", extra=["--event-ttl", "2s"])
    try:
        old = {
            "metadata": {"name": "old"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Tested",
            "message": "from long ago",
            "type": "Normal",
            "lastTimestamp": "2020-01-01T00:00:00Z",
        }
        status, _, _ = server.request("POST", "/api/v1/namespaces/default/events", old)
        assert status == 201
        wait_for(
            lambda: server.request("GET", "/api/v1/namespaces/default/events/old")[0] == 404,
            timeout=15,
            what="the expired event to be removed",
        )
    finally:
        server.stop()


def test_child_processes_go_when_the_server_is_killed(tmp_path: Path) -> None:
    import subprocess

    from tests.support import wait_for

    server = start_server(tmp_path / "data", controllers=True)

    def children() -> list[str]:
        out = subprocess.run(
            ["pgrep", "-f", f"controller-manager --kubeconfig {server.data_dir}/"],
            capture_output=True,
            text=True,
        ).stdout
        return out.split()

    wait_for(children, what="the controller manager child")
    server.stop(signal.SIGKILL)
    wait_for(lambda: not children(), timeout=15, what="the child to exit with its server")
