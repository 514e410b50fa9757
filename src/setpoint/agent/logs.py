"""Reading a container's log the way the kubelet serves ``kubectl logs``.

The supervisor writes each instance (restart) of a container to its own CRI-format file,
``<pod log dir>/<container>/<restart count>.log``, rotated by size into ``<n>.log.1`` (the
newest rotated file) ... ``<n>.log.<k>``. Every line of such a file is one *entry*::

    2024-05-01T10:00:00.123456789Z stdout F hello world
    <RFC3339Nano timestamp>        <stream> <tag> <content>

where the tag ``F`` ends a line and ``P`` (partial) says the content continues in the next
entry of the same stream. This module turns the entries of one instance, across its
rotated files in order, into what the kubelet's ``ReadLogs``
(pkg/kubelet/kuberuntime/logs/logs.go) sends back:

- the content of each entry, partial entries joined with the rest of their line (a ``P``
  entry contributes no newline);
- ``timestamps``: each line prefixed with its RFC3339Nano timestamp (fixed nine digits, as
  kubelet's ``RFC3339NanoFixed``) and a space — once per line, where kubelet prefixes every
  partial fragment too;
- ``since``: lines older than the time are skipped; ``tail_lines``: only the last N lines
  (kubelet counts file entries, we count whole lines, which differs only for partial
  entries); ``limit_bytes``: output stops after that many bytes, cutting the last line;
- ``streams``: stdout, stderr or both (``PodLogOptions.stream``);
- ``follow``: after the end, keep reading new lines as they are written, following a
  rotation to the new file, until ``is_active()`` says the instance is gone (it exited or
  the container was removed); then the rest is drained and the stream ends, as kubelet
  stops following a container that is no longer running.

Malformed lines are skipped, as the kubelet skips lines it cannot parse.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from setpoint.agent.supervisor import cri_timestamp

STREAMS = frozenset({"stdout", "stderr"})
FOLLOW_POLL_SECONDS = 0.1  # how often a follower looks for new lines at the end of the file
CHUNK_BYTES = 64 * 1024  # output is handed on in pieces of about this size
READ_BYTES = 256 * 1024

_TIMESTAMP = re.compile(
    rb"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$"
)


@dataclass(frozen=True)
class LogOptions:
    """Kubelet's ``LogOptions``: what to read and how to render it."""

    tail_lines: int | None = None  # None: all lines
    since_ns: int | None = None  # epoch nanoseconds; older lines are skipped
    timestamps: bool = False
    limit_bytes: int | None = None  # None: no limit
    follow: bool = False
    streams: frozenset[str] = STREAMS


@dataclass(frozen=True)
class Entry:
    """One line of a CRI log file."""

    timestamp_ns: int
    stream: str
    partial: bool
    content: bytes  # without the entry's newline


def parse_timestamp(text: bytes) -> int | None:
    """Nanoseconds since the epoch of an RFC3339(Nano) timestamp; None if malformed."""
    m = _TIMESTAMP.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    nanos = int((m.group(7) or b"").ljust(9, b"0"))
    zone = m.group(8)
    if zone != b"Z":
        sign = 1 if zone[:1] == b"+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + nanos


def parse_entry(line: bytes) -> Entry | None:
    """Parse one CRI log line (with or without its newline); None if it is not one."""
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tags = parts[0], parts[1].decode("ascii", "replace"), parts[2]
    timestamp = parse_timestamp(stamp)
    if timestamp is None or stream not in STREAMS:
        return None
    content = parts[3] if len(parts) > 3 else b""
    return Entry(timestamp, stream, tags.split(b":")[0] == b"P", content)


def instance_files(log_dir: Path, instance: int) -> list[Path]:
    """The files of one instance, oldest first: ``<n>.log.<k>`` ... ``<n>.log.1``,
    ``<n>.log`` (the current file comes last even if it does not exist yet)."""
    current = log_dir / f"{instance}.log"
    rotated: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for path in log_dir.iterdir():
            prefix, _, suffix = path.name.rpartition(".")
            if prefix == current.name and suffix.isdigit():
                rotated.append((int(suffix), path))
    return [path for _, path in sorted(rotated, reverse=True)] + [current]


@dataclass
class Renderer:
    """Turns entries into output bytes under the options (kubelet's ``logWriter``).

    It remembers, per stream, whether a line is open (its last entry was partial) and
    whether that line is shown, so a line's fragments are all shown or all skipped."""

    options: LogOptions
    remaining: int | None = None
    open_lines: dict[str, bool] = field(default_factory=dict)  # stream -> line shown

    def __post_init__(self) -> None:
        self.remaining = self.options.limit_bytes

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def render(self, entry: Entry) -> bytes:
        if entry.stream not in self.options.streams or self.exhausted:
            return b""
        starts_line = entry.stream not in self.open_lines
        if starts_line:
            since = self.options.since_ns
            shown = since is None or entry.timestamp_ns >= since
        else:
            shown = self.open_lines[entry.stream]
        if entry.partial:
            self.open_lines[entry.stream] = shown
        else:
            self.open_lines.pop(entry.stream, None)
        if not shown:
            return b""
        out = entry.content if entry.partial else entry.content + b"\n"
        if starts_line and self.options.timestamps:
            out = cri_timestamp(entry.timestamp_ns) + b" " + out
        if self.remaining is not None:
            out = out[: self.remaining]
            self.remaining -= len(out)
        return out


def _line_starts(path: Path, streams: frozenset[str]) -> list[int]:
    """Offsets in ``path`` of the entries that start a line of one of ``streams``."""
    starts: list[int] = []
    open_streams: set[str] = set()
    offset = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                entry = parse_entry(line)
                if entry is not None and entry.stream in streams:
                    if entry.stream not in open_streams:
                        starts.append(offset)
                    if entry.partial:
                        open_streams.add(entry.stream)
                    else:
                        open_streams.discard(entry.stream)
                offset += len(line)
    except FileNotFoundError:
        pass
    return starts


def tail_start(files: list[Path], lines: int, streams: frozenset[str]) -> tuple[int, int]:
    """Where reading must begin to see the last ``lines`` lines: (file index, offset).
    Looks at the newest files first and stops as soon as it has seen enough."""
    if lines <= 0:
        return len(files) - 1, _size(files[-1])
    wanted = lines
    for index in range(len(files) - 1, -1, -1):
        starts = _line_starts(files[index], streams)
        if len(starts) >= wanted:
            return index, starts[len(starts) - wanted]
        wanted -= len(starts)
    return 0, 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")  # the reader that asked closes it
    except FileNotFoundError:
        return None


class _Buffer:
    """Collects output and hands it on in pieces of about ``CHUNK_BYTES``."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        if data:
            self.parts.append(data)
            self.size += len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        return data


async def read_log(
    files: Callable[[], list[Path]],
    options: LogOptions,
    *,
    is_active: Callable[[], bool] = lambda: False,
    poll_seconds: float = FOLLOW_POLL_SECONDS,
) -> AsyncIterator[bytes]:
    """Yield the rendered log of one instance in chunks.

    ``files()`` lists the instance's files oldest first (see :func:`instance_files`); it is
    called again to find the new current file after a rotation. With ``options.follow``
    the generator keeps going while ``is_active()`` is true."""
    renderer = Renderer(options)
    paths = files()
    index, offset = 0, 0
    if options.tail_lines is not None:
        index, offset = tail_start(paths, options.tail_lines, options.streams)
    out = _Buffer()
    # Everything before the current file: complete, rotated files.
    for path in paths[index:-1]:
        handle = _open(path)
        if handle is None:
            continue
        with handle:
            handle.seek(offset)
            offset = 0
            for line in handle:
                out.add(_render(renderer, line))
                if renderer.exhausted:
                    yield out.take()
                    return
                if out.size >= CHUNK_BYTES:
                    yield out.take()
                    await asyncio.sleep(0)
    current = paths[-1]
    handle = _open(current)
    if handle is not None and index == len(paths) - 1:
        handle.seek(offset)
    async for chunk in _read_current(
        current, handle, renderer, out, options, is_active, poll_seconds
    ):
        yield chunk


def _render(renderer: Renderer, line: bytes) -> bytes:
    entry = parse_entry(line)
    return renderer.render(entry) if entry is not None else b""


async def _read_current(
    path: Path,
    handle: BinaryIO | None,
    renderer: Renderer,
    out: _Buffer,
    options: LogOptions,
    is_active: Callable[[], bool],
    poll_seconds: float,
) -> AsyncIterator[bytes]:
    """Read the current file to its end; when following, wait for more, switch to the new
    file after a rotation, and end once the instance is gone and everything is read.
    Owns ``handle`` (and closes it)."""
    pending = b""  # an entry whose newline has not been written yet
    try:
        while True:
            active = options.follow and is_active()  # asked before the last read: no loss
            if handle is not None:
                while data := handle.read(READ_BYTES):
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        out.add(_render(renderer, line))
                        if renderer.exhausted:
                            yield out.take()
                            return
                    if out.size >= CHUNK_BYTES:
                        yield out.take()
                        await asyncio.sleep(0)
            if not options.follow:
                break
            if out.size:
                yield out.take()
            rotated = _replaced(path, handle)
            if rotated:
                # The old file (now <n>.log.1) was read to its end above; go on in the new.
                if handle is not None:
                    handle.close()
                handle, pending = _open(path), b""
                continue
            if not active:
                break
            await asyncio.sleep(poll_seconds)
        if pending and not renderer.exhausted:
            out.add(_render(renderer, pending))
        if out.size:
            yield out.take()
    finally:
        if handle is not None:
            handle.close()


def _replaced(path: Path, handle: BinaryIO | None) -> bool:
    """Whether ``path`` now names another file than the one ``handle`` reads."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    if handle is None:
        return True
    before = os.fstat(handle.fileno())
    return (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino)
