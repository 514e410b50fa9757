"""Private directories and files on the node: made so whatever the umask, and tightened
when they already exist."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from setpoint.agent import supervisor
from setpoint.meta.privatefiles import open_private, private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everything through, so that only the code decides the modes."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("make", [private_dir, supervisor.private_dir])
def test_missing_directory_and_its_missing_parents_are_made_private(
    tmp_path: Path, open_umask: None, make: Callable[[Path], object]
) -> None:
    os.chmod(tmp_path, 0o755)
    target = tmp_path / "a" / "b" / "c"
    make(target)
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", target)] == [0o700] * 3
    assert mode(tmp_path) == 0o755  # a parent that existed is not ours to change


@pytest.mark.parametrize("make", [private_dir, supervisor.private_dir])
def test_existing_directory_is_tightened(tmp_path: Path, make: Callable[[Path], object]) -> None:
    target = tmp_path / "data"
    target.mkdir()
    os.chmod(target, 0o755)
    (target / "kept").write_text("x")
    make(target)
    assert mode(target) == 0o700
    assert (target / "kept").read_text() == "x"


@pytest.mark.parametrize("opener", [open_private, supervisor.open_private])
def test_private_file_is_made_and_tightened_0600(
    tmp_path: Path, open_umask: None, opener: Callable[[Path, int], int]
) -> None:
    new, old = tmp_path / "new.log", tmp_path / "old.log"
    old.write_text("before\n")
    os.chmod(old, 0o644)
    for path in (new, old):
        fd = opener(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"more\n")
        os.close(fd)
        assert mode(path) == 0o600
    assert old.read_text() == "before\nmore\n"
