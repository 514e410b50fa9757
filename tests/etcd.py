"""A real etcd member for tests: Debian's ``etcd-server`` (``make system-deps`` installs it),
on loopback with free ports and a data dir of its own, killed when the test is done. Tests
that need it skip, saying why, when the binary is missing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port


def etcd_binary() -> str | None:
    return shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)


def require_etcd() -> str:
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd is not installed (make system-deps installs Debian's etcd-server)")
    return binary


@dataclass
class Etcd:
    process: subprocess.Popen[bytes]
    client_port: int
    peer_port: int
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"etcd://127.0.0.1:{self.client_port}"

    @property
    def hosts(self) -> tuple[str, ...]:
        return (f"127.0.0.1:{self.client_port}",)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_etcd(directory: Path, ports: tuple[int, int] | None = None) -> Iterator[Etcd]:
    """One etcd member in ``directory``, answering on a free loopback port (or on the
    ``(client, peer)`` ports of an earlier run, to start a member again on its data)."""
    binary = require_etcd()
    directory.mkdir(parents=True, exist_ok=True)
    client, peer = ports or (free_port(), free_port())
    log_path = directory / "etcd.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [
                binary,
                "--name",
                "test",
                "--data-dir",
                str(directory / "data"),
                "--listen-client-urls",
                f"http://127.0.0.1:{client}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{client}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"test=http://127.0.0.1:{peer}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    etcd = Etcd(process, client, peer, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"etcd exited ({process.returncode}):\n{etcd.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", client)) == 0:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"etcd did not listen within 20s:\n{etcd.log()}")
            time.sleep(0.05)
        yield etcd
    finally:
        process.kill()
        process.wait(timeout=10)
