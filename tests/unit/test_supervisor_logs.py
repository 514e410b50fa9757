"""How the supervisor writes a container's log: CRI entries, size rotation at entry
boundaries, and the per-container log budget (pure parts, no processes)."""

from __future__ import annotations

import re
from pathlib import Path

from setpoint.agent.supervisor import LogFile, LogRate, StreamPump

CRI = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout ([FP]) (.*)$")


def entries(path: Path) -> list[tuple[bytes, bytes]]:
    lines = path.read_bytes().splitlines()
    matches = [CRI.match(line) for line in lines]
    assert all(matches), lines
    return [(m.group(1), m.group(2)) for m in matches if m]


def pump(tmp_path: Path, log: LogFile) -> StreamPump:
    return StreamPump(tmp_path / "stdout.fifo", b"stdout", log)


def test_a_read_becomes_one_entry_per_line_and_a_partial_for_the_rest(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "0.log", max_bytes=1 << 20, max_files=2)
    written = pump(tmp_path, log)._emit(b"one\n\ntwo\nprompt> ")
    assert entries(log.path) == [(b"F", b"one"), (b"F", b""), (b"F", b"two"), (b"P", b"prompt> ")]
    assert written == log.path.stat().st_size


def test_rotation_never_splits_an_entry(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "0.log", max_bytes=200, max_files=3)
    out = pump(tmp_path, log)
    for n in range(4):
        out._emit(b"".join(b"line %d.%d\n" % (n, i) for i in range(5)))
    files = [tmp_path / name for name in ("0.log.2", "0.log.1", "0.log")]
    assert all(0 < f.stat().st_size <= 200 for f in files)
    texts = [text for f in files for _, text in entries(f)]
    assert texts[-1] == b"line 3.4"
    assert texts == sorted(texts)  # the newest entries, in order, none torn


def test_an_entry_larger_than_a_file_gets_a_file_of_its_own(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "0.log", max_bytes=50, max_files=3)
    out = pump(tmp_path, log)
    out._emit(b"short\n")
    out._emit(b"x" * 100 + b"\nafter\n")
    assert entries(tmp_path / "0.log.2") == [(b"F", b"short")]
    assert entries(tmp_path / "0.log.1") == [(b"F", b"x" * 100)]
    assert entries(tmp_path / "0.log") == [(b"F", b"after")]


def test_log_budget_allows_a_second_worth_at_once_then_paces() -> None:
    rate = LogRate(1000)
    assert rate.spend(1000, now=10.0) == 0.0
    assert rate.spend(500, now=10.0) == 0.5  # in debt: wait until it is paid back
    assert rate.spend(0, now=10.5) == 0.0
    assert rate.spend(250, now=10.75) == 0.0


def test_an_idle_log_budget_refills_to_one_second_worth_only() -> None:
    rate = LogRate(1000)
    rate.spend(0, now=0.0)
    assert rate.spend(1000, now=3600.0) == 0.0
    assert rate.spend(1000, now=3600.0) == 1.0
