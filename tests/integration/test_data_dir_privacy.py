"""Nothing a server keeps in its data dir is readable by another local user: a Secret written
through the API cannot be read back by ``nobody`` from the database, its write-ahead log or
anything else, and a data dir left 0755 by an older version (or by hand) is tightened."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import start_server, wait_for

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

# Runs as nobody: try to list every directory and read every file it is given; report what
# it could read and which of those hold the needle.
PROBE = """
import json, os, sys
needles = [n.encode() for n in json.loads(sys.argv[1])]
report = {"listed": [], "read": [], "found": []}
for path in json.loads(sys.stdin.read()):
    try:
        if os.path.isdir(path):
            os.listdir(path)
            report["listed"].append(path)
            continue
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        continue
    report["read"].append(path)
    if any(n in data for n in needles):
        report["found"].append(path)
print(json.dumps(report))
"""


def as_nobody(paths: list[Path], needles: list[str]) -> dict[str, list[str]]:
    proc = subprocess.run(
        [*NOBODY, "/usr/bin/python3", "-I", "-c", PROBE, json.dumps(needles)],
        input=json.dumps([str(p) for p in paths]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, list[str]] = json.loads(proc.stdout)
    return report


@pytest.fixture
def public_base() -> Iterator[Path]:
    """A directory every local user may enter (pytest's tmp_path is 0700, which would keep
    nobody out whatever the server does): only the server's own modes protect its files."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    base = Path(tempfile.mkdtemp(prefix="setpoint-privacy-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def serving_metrics_at(path: Path) -> bool:
    """Someone listens on the Unix socket ``path`` (a previous run's leaves a dead one)."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def everything_under(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def test_no_local_user_can_read_a_secret_from_the_data_dir(public_base: Path) -> None:
    value = "hunter2-" + os.urandom(8).hex()
    needles = [value, base64.b64encode(value.encode()).decode()]
    data = public_base / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # as an older version or an operator left it
    canary = public_base / "canary"
    canary.write_text(value)
    canary.chmod(0o644)

    def serving_metrics() -> bool:
        return serving_metrics_at(data / "controller-manager.sock")

    def write_secret_and_check(name: str) -> None:
        server = start_server(data, controllers=True)  # its metrics socket lives here too
        try:
            wait_for(serving_metrics, timeout=30, what="the controller manager's socket")
            status, body, _ = server.request(
                "POST",
                "/api/v1/namespaces/default/secrets",
                {"metadata": {"name": name}, "stringData": {"password": value}},
            )
            assert status == 201, body
            # Secrets are encrypted at rest (encryption-at-rest.md): the same value in a
            # ConfigMap puts it on disk in the clear, so that the probe has something to find
            status, body, _ = server.request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                {"metadata": {"name": name}, "data": {"password": value}},
            )
            assert status == 201, body
            paths = everything_under(data)
            # the value is on disk (so looking for it means something) ...
            assert any(
                any(n.encode() in p.read_bytes() for n in needles)
                for p in paths
                if p.is_file() and not p.is_socket()
            )
            # ... and the probe can read what others may read
            control = as_nobody([canary], needles)
            assert control["found"] == [str(canary)]

            report = as_nobody(paths, needles)
            assert report == {"listed": [], "read": [], "found": []}
            modes = {
                str(p.relative_to(public_base)): oct(stat.S_IMODE(p.lstat().st_mode)) for p in paths
            }
            expected = {
                str(p.relative_to(public_base)): oct(0o700 if p.is_dir() else 0o600) for p in paths
            }
            assert modes == expected
            assert (data / "db" / "state.db-wal").exists()
        finally:
            server.stop()

    write_secret_and_check("first")

    # an older version's modes: everything readable by everyone
    for path in everything_under(data):
        path.chmod(0o755 if path.is_dir() else 0o644)
    write_secret_and_check("second")
