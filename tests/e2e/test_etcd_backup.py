"""Backup and restore on etcd, as docs/backup.md tells an operator to do it: `setpoint
datastore snapshot save/restore --datastore-endpoint etcd://...` around real servers on real
etcd members, the rebuild of a cluster that lost a majority of its members, and `setpoint
datastore migrate --to etcd://...` from the embedded store; and the refusals, each one line."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.etcd import (
    Etcd,
    make_certs,
    running_etcd,
    running_etcd_cluster,
    tls_datastore_flags,
)
from tests.support import (
    SETPOINT,
    Kubectl,
    Server,
    assert_watch_expired,
    create_namespace,
    free_port,
    start_server,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("etcd")]


def datastore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SETPOINT, "datastore", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def endpoint(members: list[Etcd]) -> str:
    return "etcd://" + ",".join(host for member in members for host in member.hosts)


def stop(server: Server) -> None:
    assert server.stop() == 0, server.log()


def objects(k: Kubectl, kind: str) -> dict[str, dict[str, Any]]:
    """name -> metadata of every object of ``kind`` in the namespace."""
    items = json.loads(k("get", kind, "-o", "json").stdout)["items"]
    return {item["metadata"]["name"]: item["metadata"] for item in items}


def uids(k: Kubectl, kind: str) -> dict[str, str]:
    return {name: meta["uid"] for name, meta in objects(k, kind).items()}


def pods_of(k: Kubectl, count: int) -> dict[str, str]:
    def enough() -> dict[str, str] | None:
        found = uids(k, "pods")
        return found if len(found) == count else None

    return wait_for(enough, timeout=30, what=f"{count} pods")


def test_restore_into_the_same_etcd_is_exactly_the_snapshot(tmp_path: Path) -> None:
    snap = tmp_path / "backups" / "etcd.snap"
    snap.parent.mkdir()
    with running_etcd(tmp_path / "etcd") as etcd:
        flags = ["--datastore-endpoint", etcd.endpoint]
        server = start_server(tmp_path / "data", extra=flags)
        try:
            namespace = create_namespace(server)
            k = Kubectl(server, namespace)
            for name in ("kept", "changed", "deleted-later"):
                k("create", "configmap", name, f"--from-literal=v={name}")
            at_snapshot = uids(k, "configmaps")

            saved = datastore("snapshot", "save", str(snap), *flags)
            assert saved.returncode == 0, saved.stderr
            assert saved.stdout.startswith(f"Saved snapshot {snap}: revision "), saved.stdout
            assert stat.S_IMODE(snap.stat().st_mode) == 0o600

            k("create", "configmap", "after", "--from-literal=v=after")
            k("patch", "configmap", "changed", "-p", '{"data":{"v":"new"}}')
            k("delete", "configmap", "deleted-later")
            last_seen = objects(k, "configmaps")["after"]["resourceVersion"]

            line = refused(datastore("snapshot", "restore", str(snap), *flags))
            assert line.startswith("Error: etcd is in use: watch streams open on"), line
        finally:
            stop(server)

        restored = datastore("snapshot", "restore", str(snap), *flags)
        assert restored.returncode == 0, restored.stderr
        assert "earlier ones are compacted (clients re-list)" in restored.stdout

        server = start_server(tmp_path / "data", extra=flags)
        try:
            k = Kubectl(server, namespace)
            assert uids(k, "configmaps") == at_snapshot
            assert k("get", "cm", "changed", "-o", "jsonpath={.data.v}").stdout == "changed"
            # a client that saw a later resourceVersion is told to re-list
            assert_watch_expired(
                server,
                f"/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={last_seen}",
            )
        finally:
            stop(server)


def test_a_cluster_that_lost_its_majority_is_rebuilt_from_a_snapshot(tmp_path: Path) -> None:
    """docs/backup.md, "Rebuilding after losing a majority", step by step."""
    snap = tmp_path / "etcd.snap"
    with running_etcd_cluster(tmp_path / "old") as old:
        flags = ["--datastore-endpoint", endpoint(old)]
        server = start_server(tmp_path / "data", controllers=True, extra=flags)
        try:
            namespace = create_namespace(server)
            k = Kubectl(server, namespace)
            k("create", "configmap", "settings", "--from-literal=a=1")
            k("create", "deployment", "web", "--image=busybox", "--replicas=2", "--", "sleep", "9")
            pods = pods_of(k, 2)
            before = {kind: uids(k, kind) for kind in ("configmaps", "deployments", "replicasets")}
            assert datastore("snapshot", "save", str(snap), *flags).returncode == 0
            # two of three members are lost for good
            old[1].kill()
            old[2].kill()
        finally:
            stop(server)  # 1. stop every server
        old[0].kill()  # 2. the survivor cannot form a quorum: retire it too

    # 3. a new cluster of new members; 4. the snapshot into it; 5. the servers on it
    with running_etcd_cluster(tmp_path / "new") as new:
        flags = ["--datastore-endpoint", endpoint(new)]
        restored = datastore("snapshot", "restore", str(snap), *flags)
        assert restored.returncode == 0, restored.stderr
        server = start_server(tmp_path / "data", controllers=True, extra=flags)
        try:
            k = Kubectl(server, namespace)
            for kind, known in before.items():
                assert uids(k, kind) == known, kind
            assert uids(k, "pods") == pods
            # the controllers work on the restored objects, and replaced none
            k("scale", "deployment", "web", "--replicas=3")
            now = pods_of(k, 3)
            assert pods.items() <= now.items()
        finally:
            stop(server)


def test_migrate_moves_the_embedded_store_to_an_empty_etcd(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, controllers=True)
    try:
        namespace = create_namespace(server)
        k = Kubectl(server, namespace)
        for name in ("first", "second", "third"):
            k("create", "configmap", name, f"--from-literal=v={name}")
        k("create", "deployment", "web", "--image=busybox", "--replicas=2", "--", "sleep", "9")
        pods = pods_of(k, 2)
        before = {kind: objects(k, kind) for kind in ("configmaps", "deployments", "replicasets")}
    finally:
        stop(server)

    with running_etcd(tmp_path / "etcd") as etcd:
        moved = datastore("migrate", "--to", etcd.endpoint, "--data-dir", str(data))
        assert moved.returncode == 0, moved.stderr
        assert (
            f"setpoint server --datastore-endpoint {etcd.endpoint} --data-dir {data}"
            in moved.stdout
        )

        server = start_server(data, controllers=True, extra=["--datastore-endpoint", etcd.endpoint])
        try:
            k = Kubectl(server, namespace)
            for kind, known in before.items():
                found = objects(k, kind)
                assert {n: m["uid"] for n, m in found.items()} == {
                    n: m["uid"] for n, m in known.items()
                }, kind
                assert {n: m["creationTimestamp"] for n, m in found.items()} == {
                    n: m["creationTimestamp"] for n, m in known.items()
                }, kind
            configmaps = objects(k, "configmaps")
            order = sorted(configmaps, key=lambda n: int(configmaps[n]["resourceVersion"]))
            assert [n for n in order if n != "kube-root-ca.crt"][:3] == [
                "first",
                "second",
                "third",
            ]
            assert uids(k, "pods") == pods
            k("scale", "deployment", "web", "--replicas=3")
            assert pods.items() <= pods_of(k, 3).items()
        finally:
            stop(server)

        line = refused(datastore("migrate", "--to", etcd.endpoint, "--data-dir", str(data)))
        assert line.startswith(f"Error: etcd (127.0.0.1:{etcd.client_port}) is not empty ("), line
        assert line.endswith("keys): migrate into a new, empty etcd cluster"), line


def test_refusals_are_one_line_each(tmp_path: Path) -> None:
    nowhere = f"etcd://127.0.0.1:{free_port()}"
    snap = tmp_path / "etcd.snap"
    certs = make_certs(tmp_path / "certs")
    with running_etcd(tmp_path / "etcd", certs=certs) as etcd:
        tls = tls_datastore_flags(etcd, certs)
        assert datastore("snapshot", "save", str(snap), *tls).returncode == 0
        assert datastore("snapshot", "restore", str(snap), *tls).returncode == 0
        line = refused(datastore("migrate", "--to", *tls[1:], "--data-dir", str(tmp_path / "d")))
        assert line == f"Error: there is no database at {tmp_path / 'd' / 'db' / 'state.db'}"

    line = refused(
        datastore("snapshot", "save", str(tmp_path / "x"), "--datastore-endpoint", nowhere)
    )
    assert line.startswith(f"Error: etcd ({nowhere.removeprefix('etcd://')}) is unavailable"), line
    line = refused(datastore("migrate", "--to", nowhere, "--data-dir", str(tmp_path / "d")))
    assert "is unavailable" in line, line

    corrupt = tmp_path / "corrupt.snap"
    contents = bytearray(snap.read_bytes())
    contents[len(contents) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(contents))
    line = refused(datastore("snapshot", "restore", str(corrupt), "--datastore-endpoint", nowhere))
    assert line == f"Error: {corrupt} is corrupt: its sha256 does not match its contents", line

    line = refused(
        datastore("snapshot", "save", str(snap), "--datastore-endpoint", nowhere, *tls[2:4])
    )
    assert "--datastore-cafile/-certfile/-keyfile are for TLS to etcd" in line, line
