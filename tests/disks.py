"""Test support for real storage failures: small tmpfs mounts (full disks, read-only file
systems), and ``setpoint server`` runs that are expected to refuse to start.

Mounting needs root (CAP_SYS_ADMIN); tests that need it are skipped where it is missing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import SETPOINT

EXIT_CANNOT_START = 3


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``16m``) mounted at ``path`` for the block's duration."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def remount(path: Path, *, read_only: bool) -> None:
    flag = "ro" if read_only else "rw"
    subprocess.run(["mount", "-o", f"remount,{flag}", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` to the last byte; returns the filler file
    (remove it to give the space back)."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as handle:
        for size in (1 << 20, 4096, 1):
            block = chunk[:size]
            while True:
                try:
                    handle.write(block)
                except OSError:
                    break
    probe = directory / "probe"
    with contextlib.suppress(OSError), probe.open("wb", buffering=0) as handle:
        handle.write(b"x")
    assert not probe.exists() or probe.stat().st_size == 0, "the disk is not full"
    probe.unlink(missing_ok=True)
    return filler


@dataclass
class Refusal:
    returncode: int
    stdout: str
    stderr: str

    @property
    def line(self) -> str:
        """The one line the server printed about why it cannot start."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.stderr}"
        assert "Traceback" not in self.stderr + self.stdout
        return lines[0]


def run_server_expecting_refusal(data_dir: Path, *extra: str) -> Refusal:
    """Run ``setpoint server`` on ``data_dir`` (no agent, no controllers) and return how it
    exited; it must exit by itself (a server that starts is killed and fails the test)."""
    try:
        proc = subprocess.run(
            [
                SETPOINT,
                "server",
                "--data-dir",
                str(data_dir),
                "--https-listen-port",
                "0",
                "--disable-agent",
                "--disable-controller-manager",
                "--disable-scheduler",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the server did not refuse to start: {exc.stdout!r}") from None
    return Refusal(proc.returncode, proc.stdout, proc.stderr)
