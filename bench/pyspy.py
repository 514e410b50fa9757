"""Sample the server with py-spy during a measured phase and summarise where its time goes.

``py-spy record --format raw`` writes collapsed stacks ("frame;frame;...;leaf count"); this
module keeps that file (``DIR/<bench>.raw.txt``, loadable by any flamegraph tool) and prints
and saves (``DIR/<bench>.top.txt``) the functions with the most samples: *self* (the leaf,
where the CPU actually was) and *total* (anywhere on the stack), as shares of all non-idle
samples, plus the share of each thread. py-spy is not a dependency: install it into the
virtualenv (``.venv/bin/pip install py-spy``) to use ``--profile``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Server

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
# Entry frames every sample of a thread passes through: left out of the "total" ranking.
_PLUMBING = re.compile(
    r"<frozen runpy>|click/core.py|asyncio/runners.py|threading.py|setpoint/cli/main.py"
    r"|^<module> |^main \(|^server \("
)


def find_py_spy() -> str:
    for candidate in (Path(sys.executable).with_name("py-spy"), shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")


@dataclass
class Profile:
    total: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    threads: Counter[str] = field(default_factory=Counter)

    def report(self, top: int = 20) -> str:
        if not self.total:
            return "no samples"
        out = [f"{self.total} non-idle samples"]
        out.append("threads:")
        for name, n in self.threads.most_common():
            out.append(f"  {n / self.total:6.1%}  {name}")
        ours = Counter({k: v for k, v in self.inclusive.items() if "setpoint/" in k})
        for title, counter in (
            ("self", self.self_time),
            ("total (incl. callees)", self.inclusive),
            ("total, setpoint's own functions", ours),
        ):
            out.append(f"top {top} by {title}:")
            for name, n in counter.most_common(top):
                out.append(f"  {n / self.total:6.1%}  {name}")
        return "\n".join(out)


def _frame_name(frame: str) -> str:
    """'func (path/file.py:123)' -> 'func (path/file.py)'; native frames unchanged."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def parse_raw(text: str) -> Profile:
    profile = Profile()
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        count = int(match["count"])
        frames = match["stack"].split(";")
        thread = "main"
        if frames and "thread" in frames[0] and "(" in frames[0] and ".py" not in frames[0]:
            thread = frames.pop(0).strip()
        if frames and frames[0].startswith("process "):
            frames.pop(0)
        if not frames:
            continue
        names = [_frame_name(f) for f in frames]
        profile.total += count
        profile.threads[thread] += count
        profile.self_time[names[-1]] += count
        for name in set(names):
            if not _PLUMBING.search(name):
                profile.inclusive[name] += count
    return profile


class Profiler:
    def __init__(
        self, out_dir: Path, *, native: bool = False, rate: int = 100, extra: tuple[str, ...] = ()
    ) -> None:
        self.out_dir = out_dir
        self.native = native
        self.rate = rate
        self.extra = extra  # more py-spy flags, e.g. ("--gil",) or ("--idle",)

    @contextlib.asynccontextmanager
    async def record(self, server: Server, label: str) -> AsyncIterator[None]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        raw = self.out_dir / f"{label}.raw.txt"
        raw.unlink(missing_ok=True)
        command = [
            find_py_spy(),
            "record",
            "--pid",
            str(server.pid),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--rate",
            str(self.rate),
            "--threads",
            "--nolineno",
        ]
        if self.native:
            command.append("--native")
        command += self.extra
        with open(self.out_dir / f"{label}.py-spy.log", "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        await asyncio.sleep(1.0)  # let it attach before the phase starts
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if proc.poll() is None:
                proc.kill()
            if raw.exists():
                summary = parse_raw(raw.read_text(encoding="utf-8", errors="replace")).report()
                (self.out_dir / f"{label}.top.txt").write_text(summary + "\n", encoding="utf-8")
                print(f"  py-spy profile of the server ({raw}):")
                print("\n".join("    " + line for line in summary.splitlines()), flush=True)
            else:
                print(f"  py-spy wrote no profile; see {self.out_dir / f'{label}.py-spy.log'}")
