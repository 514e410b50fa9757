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

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def start_member(directory: Path, name: str, client: int, peer: int, initial_cluster: str) -> Etcd:
    """Start one member (its data in ``directory/data``) and wait until it listens."""
    binary = require_etcd()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "etcd.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [
                binary,
                "--name",
                name,
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
                initial_cluster,
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
                    return etcd
            if time.monotonic() > deadline:
                raise AssertionError(f"etcd did not listen within 20s:\n{etcd.log()}")
            time.sleep(0.05)
    except BaseException:
        etcd.kill()
        raise


@contextmanager
def running_etcd(directory: Path, ports: tuple[int, int] | None = None) -> Iterator[Etcd]:
    """One etcd member in ``directory``, answering on a free loopback port (or on the
    ``(client, peer)`` ports of an earlier run, to start a member again on its data)."""
    client, peer = ports or (free_port(), free_port())
    etcd = start_member(directory, "test", client, peer, f"test=http://127.0.0.1:{peer}")
    try:
        yield etcd
    finally:
        etcd.kill()


@contextmanager
def running_etcd_cluster(directory: Path, size: int = 3) -> Iterator[list[Etcd]]:
    """``size`` members of one cluster on loopback, each in ``directory/m<i>``."""
    ports = [(free_port(), free_port()) for _ in range(size)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    members: list[Etcd] = []
    try:
        for i, (client, peer) in enumerate(ports):
            members.append(start_member(directory / f"m{i}", f"m{i}", client, peer, initial))
        yield members
    finally:
        for member in members:
            member.kill()
