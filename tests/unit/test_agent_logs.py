"""Reading CRI logs as the kubelet serves them: tail, since, timestamps, limitBytes, partial
lines, streams, rotated files, and following a file that grows and rotates."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.agent.logs import (
    LogOptions,
    instance_files,
    parse_entry,
    parse_timestamp,
    read_log,
)
from setpoint.agent.server import RequestError, log_instance, log_options
from setpoint.agent.supervisor import ContainerState, ExitRecord

T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z


def stamp(seconds: float) -> str:
    ns = T0 + int(seconds * 1_000_000_000)
    whole, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{frac:09d}Z"


def entry(seconds: float, text: str, *, stream: str = "stdout", tag: str = "F") -> str:
    return f"{stamp(seconds)} {stream} {tag} {text}\n"


def write(path: Path, *entries: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write("".join(entries))
    return path


async def read(log_dir: Path, options: LogOptions | None = None, instance: int = 0) -> str:
    chunks = [
        c
        async for c in read_log(lambda: instance_files(log_dir, instance), options or LogOptions())
    ]
    return b"".join(chunks).decode()


# --------------------------------------------------------------------------- parsing


def test_cri_timestamp_with_nanoseconds_is_parsed() -> None:
    assert parse_timestamp(b"2023-11-14T22:13:20.000000001Z") == T0 + 1


def test_timestamp_with_offset_and_short_fraction_is_parsed() -> None:
    assert parse_timestamp(b"2023-11-15T00:13:20.5+02:00") == T0 + 500_000_000


def test_malformed_line_is_not_an_entry() -> None:
    assert parse_entry(b"not a log line\n") is None
    assert parse_entry(b"2023-11-14T22:13:20Z stdin F x\n") is None


# --------------------------------------------------------------------------- reading


async def test_log_is_the_content_of_each_line(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "one"), entry(1, "two", stream="stderr"))
    assert await read(tmp_path) == "one\ntwo\n"


async def test_partial_entries_are_joined_into_one_line(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "hel", tag="P"), entry(1, "lo"), entry(2, "next"))
    assert await read(tmp_path) == "hello\nnext\n"


async def test_partial_lines_of_two_streams_do_not_mix(tmp_path: Path) -> None:
    write(
        tmp_path / "0.log",
        entry(0, "out-", tag="P"),
        entry(1, "err", stream="stderr"),
        entry(2, "end"),
    )
    assert await read(tmp_path, LogOptions(streams=frozenset({"stdout"}))) == "out-end\n"


async def test_stream_filter_keeps_only_that_stream(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "out"), entry(1, "err", stream="stderr"))
    assert await read(tmp_path, LogOptions(streams=frozenset({"stderr"}))) == "err\n"


async def test_timestamps_prefix_each_line_once(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0.5, "a", tag="P"), entry(1, "b"))
    assert await read(tmp_path, LogOptions(timestamps=True)) == f"{stamp(0.5)} ab\n"


async def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    write(tmp_path / "0.log", *(entry(i, f"line {i}") for i in range(10)))
    assert await read(tmp_path, LogOptions(tail_lines=2)) == "line 8\nline 9\n"


async def test_tail_zero_returns_nothing(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "one"))
    assert await read(tmp_path, LogOptions(tail_lines=0)) == ""


async def test_tail_counts_a_partial_line_once(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "a"), entry(1, "b", tag="P"), entry(2, "c"))
    assert await read(tmp_path, LogOptions(tail_lines=1)) == "bc\n"


async def test_since_skips_older_lines(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "old"), entry(10, "new"))
    assert await read(tmp_path, LogOptions(since_ns=T0 + 5_000_000_000)) == "new\n"


async def test_limit_bytes_cuts_the_output(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "abcdef"), entry(1, "ghi"))
    assert await read(tmp_path, LogOptions(limit_bytes=4)) == "abcd"


async def test_rotated_files_are_read_oldest_first(tmp_path: Path) -> None:
    write(tmp_path / "0.log.2", entry(0, "first"))
    write(tmp_path / "0.log.1", entry(1, "second"))
    write(tmp_path / "0.log", entry(2, "third"))
    write(tmp_path / "1.log", entry(3, "another instance"))
    assert await read(tmp_path) == "first\nsecond\nthird\n"


async def test_tail_reaches_into_rotated_files(tmp_path: Path) -> None:
    write(tmp_path / "0.log.1", entry(0, "a"), entry(1, "b"))
    write(tmp_path / "0.log", entry(2, "c"))
    assert await read(tmp_path, LogOptions(tail_lines=2)) == "b\nc\n"


async def test_each_instance_has_its_own_log(tmp_path: Path) -> None:
    write(tmp_path / "0.log", entry(0, "first run"))
    write(tmp_path / "1.log", entry(1, "second run"))
    assert await read(tmp_path, instance=1) == "second run\n"


# --------------------------------------------------------------------------- following


class Follower:
    """``read_log`` following instance 0 under ``directory`` in a task, collecting chunks
    until :attr:`active` is cleared (the instance has ended)."""

    def __init__(self, directory: Path) -> None:
        self.active = True
        self.got: list[bytes] = []
        self.task = asyncio.create_task(self._follow(directory))

    async def _follow(self, directory: Path) -> None:
        async for chunk in read_log(
            lambda: instance_files(directory, 0),
            LogOptions(follow=True),
            is_active=lambda: self.active,
            poll_seconds=0.01,
        ):
            self.got.append(chunk)

    def seen(self, text: bytes) -> bool:
        return text in b"".join(self.got)


async def test_follow_streams_new_lines_until_the_instance_ends(tmp_path: Path) -> None:
    path = write(tmp_path / "0.log", entry(0, "before"))
    follower = Follower(tmp_path)
    task, got = follower.task, follower.got
    await until(lambda: follower.seen(b"before"))
    write(path, entry(1, "after"))
    await until(lambda: follower.seen(b"after"))
    assert not task.done()
    write(path, entry(2, "last words"))
    follower.active = False
    async with asyncio.timeout(5):
        await task
    assert b"".join(got) == b"before\nafter\nlast words\n"


async def test_follow_goes_on_in_the_new_file_after_a_rotation(tmp_path: Path) -> None:
    path = write(tmp_path / "0.log", entry(0, "one"))
    follower = Follower(tmp_path)
    task, got = follower.task, follower.got
    await until(lambda: follower.seen(b"one"))
    write(path, entry(1, "two"))
    os.replace(path, tmp_path / "0.log.1")  # as the supervisor rotates
    write(path, entry(2, "three"))
    await until(lambda: follower.seen(b"three"))
    follower.active = False
    async with asyncio.timeout(5):
        await task
    assert b"".join(got) == b"one\ntwo\nthree\n"


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- which instance

POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}, "spec": {}}
APP = {"name": "app", "image": "x", "command": ["sh"]}


def exit_record(restart_count: int) -> ExitRecord:
    return ExitRecord(137, 9, "Error", 1, 1, 0.0, 1.0, restart_count)


def state(
    kind: str, restarts: int, last: int | None, previous: int | None = None
) -> ContainerState:
    last_exit = exit_record(last) if last is not None else None
    previous_exit = exit_record(previous) if previous is not None else None
    return ContainerState(
        "u1/app", kind, None, None, restarts, None, last_exit, previous_exit=previous_exit
    )


def test_running_container_logs_its_current_instance() -> None:
    assert log_instance(POD, APP, state("running", 2, 1)) == 2


def test_previous_is_the_last_terminated_instance() -> None:
    assert log_instance(POD, APP, state("running", 2, 1), previous=True) == 1


def test_previous_of_an_exited_container_is_the_instance_before_its_last() -> None:
    assert log_instance(POD, APP, state("exited", 1, 1, previous=0)) == 1
    assert log_instance(POD, APP, state("exited", 1, 1, previous=0), previous=True) == 0


def test_crash_looping_container_logs_its_last_terminated_instance() -> None:
    assert log_instance(POD, APP, state("waiting", 3, 3)) == 3


def test_previous_without_a_terminated_instance_is_refused() -> None:
    with pytest.raises(RequestError, match='previous terminated container "app" in pod "web"'):
        log_instance(POD, APP, state("running", 0, None), previous=True)


def test_container_not_started_yet_is_waiting_to_start() -> None:
    with pytest.raises(RequestError) as caught:
        log_instance(POD, APP, None)
    assert caught.value.code == 400
    assert caught.value.message == (
        'container "app" in pod "web" is waiting to start: ContainerCreating'
    )


# --------------------------------------------------------------------------- query


def test_query_becomes_log_options() -> None:
    options, previous = log_options(
        {"tailLines": "2", "timestamps": "true", "follow": "true", "previous": "true"}, now=100.0
    )
    assert (options.tail_lines, options.timestamps, options.follow, previous) == (
        2,
        True,
        True,
        True,
    )


def test_since_seconds_counts_back_from_now() -> None:
    options, _ = log_options({"sinceSeconds": "10"}, now=100.0)
    assert options.since_ns == 90 * 1_000_000_000


def test_negative_tail_lines_is_invalid() -> None:
    with pytest.raises(RequestError) as caught:
        log_options({"tailLines": "-1"}, now=0.0)
    assert caught.value.code == 422
