"""``python -m bench [write|watch|list|scheduler|deployment|job ...] [--record] [--profile DIR]``.

Runs the named benchmarks (all of them by default) one after another, each against its own
fresh server, prints a table of figures and, with ``--record``, writes them into the results
table of ``docs/benchmarks.md``. ``write --store etcd --servers N`` runs ``write`` against N
API servers on an etcd member instead of one server on SQLite. ``--profile DIR`` samples
the server with py-spy during each measured phase and prints its hotspots (profiled runs are
slower, so they are not recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Protocol

import uvloop

from bench import BENCHMARKS
from bench.common import Context, Figure
from bench.record import DOC, commit, machine, record

# Hard ceiling per benchmark, on top of each benchmark's own bounded loops.
TIME_LIMITS = {
    "write": 600.0,
    "watch": 900.0,
    "list": 600.0,
    "scheduler": 420.0,
    "deployment": 480.0,
    "job": 300.0,
    "crash": 240.0,
    "logflood": 120.0,
    "podstartup": 240.0,
    "agentoverhead": 420.0,
    "memory": 420.0,
    "stuckwatchers": 360.0,
    "flood": 300.0,
    "biglist": 720.0,
    "patchstorm": 240.0,
    "nodefailure": 1500.0,
    "seedstory": 300.0,
    "supervisorloss": 240.0,
    "podnet": 180.0,
    "exec": 240.0,
    "servicepath": 300.0,
    "clusterdns": 240.0,
    "nodeauth": 300.0,
    "rbac": 600.0,
    "leaderfailover": 600.0,
    "agentfailover": 240.0,
}

# the benchmarks that take --store and --servers
STORE_BENCHMARKS = ("write",)


class Benchmark(Protocol):
    NAME: str

    async def run(self, ctx: Context) -> list[Figure]: ...


def table(figures: list[Figure]) -> str:
    rows = [("benchmark", "figure", "value", "target", "met")]
    rows += [(f.bench, f.name, f.text, f.target, f.verdict) for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(w) if i == 2 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def run_all(names: list[str], ctx: Context) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    failed: list[str] = []
    for name in names:
        module: Benchmark = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(TIME_LIMITS[name]):
                got = await module.run(ctx)
        except Exception as exc:  # report and go on with the next benchmark
            print(f"  FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed.append(name)
            continue
        print(f"  ({time.perf_counter() - started:.0f}s)", flush=True)
        figures += got
    return figures, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}; default all"
    )
    parser.add_argument("--record", action="store_true", help=f"write the figures into {DOC}")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server with py-spy; raw stacks and summaries go to DIR",
    )
    parser.add_argument(
        "--native", action="store_true", help="with --profile: include native (C) frames"
    )
    parser.add_argument(
        "--py-spy-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="with --profile: pass FLAG to py-spy record (e.g. --py-spy-flag=--gil)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' data dirs")
    parser.add_argument(
        "--store",
        choices=("sqlite", "etcd"),
        default="sqlite",
        help=f"the store of {', '.join(STORE_BENCHMARKS)} (etcd: a member the benchmark starts)",
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        metavar="N",
        help=f"API servers {', '.join(STORE_BENCHMARKS)} spreads its clients over (needs etcd)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = [n for n in BENCHMARKS if n in args.names] if args.names else list(BENCHMARKS)
    if args.record and args.profile:
        parser.error("--record and --profile do not mix: profiling slows the server down")
    if (args.store, args.servers) != ("sqlite", 1):
        if set(names) - set(STORE_BENCHMARKS):
            parser.error(f"--store and --servers apply to {', '.join(STORE_BENCHMARKS)} only")
        if args.servers < 1 or (args.store == "sqlite" and args.servers > 1):
            parser.error("--servers N needs N >= 1, and N > 1 needs --store etcd")

    work_dir = Path(tempfile.mkdtemp(prefix="setpoint-bench-"))
    ctx = Context(work_dir=work_dir, store=args.store, api_servers=args.servers)
    if args.profile:
        from bench.pyspy import Profiler

        ctx.profile = Profiler(
            args.profile, native=args.native, extra=tuple(args.py_spy_flag)
        ).record
    failed: list[str] = []
    try:
        figures, failed = uvloop.run(run_all(names, ctx))
    except BaseException:
        args.keep = True
        raise
    finally:
        if args.keep or failed:
            print(f"server data dirs and logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print()
    print(f"setpoint {commit()} on a {machine()}")
    print(table(figures))
    print()
    print("Client and server share this machine's cores; see docs/benchmarks.md.")
    if args.record and figures:
        record(figures)
        print(f"recorded in {DOC}")
    missed = [f for f in figures if f.ok is False]
    if missed:
        print(f"targets missed: {', '.join(f'{f.bench} {f.name}' for f in missed)}")
    broken = [f for f in missed if f.check]
    if failed or broken:
        # a benchmark that crashed or lost/miscounted data is a failure; a slow one is not
        print(
            f"FAILED: {', '.join(failed + [f'{f.bench} {f.name}' for f in broken])}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
