"""Write benchmark figures into the results table of ``docs/benchmarks.md``.

The table sits between two HTML comment markers. Rows are keyed by (benchmark, figure):
a recorded figure replaces its row, new figures are added after their benchmark's other
rows, and every other line of the page is left exactly as it was.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

from bench import BENCHMARKS
from bench.common import Figure

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:results:begin (python -m bench --record rewrites this table) -->"
END = "<!-- bench:results:end -->"
HEADER = (
    "| Benchmark | Figure | Value | Target | Met | Date | Commit | Machine |",
    "| --- | --- | ---: | --- | --- | --- | --- | --- |",
)


def commit() -> str:
    """The checked-out commit, with ``+dirty`` if ``src/`` has uncommitted changes."""
    root = DOC.parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            virtual = " hypervisor" in f.read()
    except OSError:
        virtual = False
    kind = "VM" if virtual else "machine"
    # the load generator runs on the same cores as the server
    return f"{os.cpu_count()}-core {kind}, Python {platform.python_version()}, client+server"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def render_row(figure: Figure, date: str, rev: str, where: str) -> str:
    cells = [figure.bench, figure.name, figure.text, figure.target, figure.verdict]
    cells += [date, rev, where]
    return "| " + " | ".join(cells) + " |"


def update_table(
    rows: list[str], figures: list[Figure], date: str, rev: str, where: str
) -> list[str]:
    """``rows``: the table's data lines (no header). Returns the new data lines."""
    keyed: dict[tuple[str, str], str] = {}
    order: list[tuple[str, str]] = []
    for line in rows:
        cells = _cells(line)
        if len(cells) < 2:
            continue
        key = (cells[0], cells[1])
        if key not in keyed:
            order.append(key)
        keyed[key] = line
    for figure in figures:
        key = (figure.bench, figure.name)
        if key not in keyed:
            order.append(key)
        keyed[key] = render_row(figure, date, rev, where)
    rank = {name: i for i, name in enumerate(BENCHMARKS)}
    # stable: keeps each benchmark's figures in the order they were first recorded
    order.sort(key=lambda k: rank.get(k[0], len(rank)))
    return [keyed[key] for key in order]


def record(figures: list[Figure], doc: Path = DOC, *, date: str | None = None) -> None:
    date = date or datetime.date.today().isoformat()
    text = doc.read_text(encoding="utf-8") if doc.exists() else ""
    lines = text.splitlines()
    if BEGIN in lines and END in lines and lines.index(BEGIN) < lines.index(END):
        start, end = lines.index(BEGIN), lines.index(END)
        body = [ln for ln in lines[start + 1 : end] if ln.startswith("|")][len(HEADER) :]
    else:  # no table yet: append one
        lines += ["", "## Results", "", BEGIN, END]
        start, end = len(lines) - 2, len(lines) - 1
        body = []
    new = update_table(body, figures, date, commit(), machine())
    lines[start : end + 1] = [BEGIN, *HEADER, *new, END]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines) + "\n", encoding="utf-8")
