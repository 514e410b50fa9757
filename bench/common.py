"""What the benchmarks share: the server process, the client session, figures and helpers.

The server is started exactly as a user would (``setpoint server --data-dir DIR
--https-listen-port 0 --disable-agent``) as a child process, on a data directory of its
own; its URL, CA and token come from the kubeconfig it writes. Only loopback addresses are
ever contacted. Every wait here is bounded, so a broken server fails a benchmark instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from setpoint.agent.runtime import ContainerSpec, ensure_supervisor
from setpoint.pki import client_ssl_context, load_kubeconfig

NAMESPACE = "default"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    """One measured number, with the target it is held against (if any)."""

    bench: str
    name: str
    value: float
    unit: str = ""
    target: str = ""
    ok: bool | None = None  # None: informational, no target
    digits: int = 1
    check: bool = False  # a correctness check (all delivered, all durable), not a speed goal

    @property
    def text(self) -> str:
        return f"{self.value:,.{self.digits}f} {self.unit}".strip()

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return ""
        return "yes" if self.ok else "NO"


def at_least(bench: str, name: str, value: float, unit: str, goal: float, **kw: Any) -> Figure:
    return Figure(bench, name, value, unit, f">= {goal:,g} {unit}".strip(), value >= goal, **kw)


def below(bench: str, name: str, value: float, unit: str, goal: float, **kw: Any) -> Figure:
    return Figure(bench, name, value, unit, f"< {goal:,g} {unit}".strip(), value < goal, **kw)


def exactly(
    bench: str, name: str, value: float, unit: str, goal: float, *, check: bool = True, **kw: Any
) -> Figure:
    """``value`` must equal ``goal``: a correctness check unless ``check=False`` (then a
    target like any other, printed when missed but not a failure)."""
    return Figure(
        bench, name, value, unit, f"= {goal:,.0f}", value == goal, digits=0, check=check, **kw
    )


def info(bench: str, name: str, value: float, unit: str = "", **kw: Any) -> Figure:
    return Figure(bench, name, value, unit, **kw)


def percentiles(values: Sequence[float], points: Sequence[float]) -> list[float]:
    """Linear-interpolated percentiles (numpy's default method); NaN for no values."""
    if not values:
        return [math.nan for _ in points]
    ordered = sorted(values)
    last = len(ordered) - 1
    out = []
    for p in points:
        rank = p / 100 * last
        low = math.floor(rank)
        high = min(low + 1, last)
        out.append(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))
    return out


def percentile(values: Sequence[float], p: float) -> float:
    return percentiles(values, (p,))[0]


# --------------------------------------------------------------------------- server


def run_standalone(run: Callable[[Context], Awaitable[list[Figure]]]) -> int:
    """``python -m bench.<name>``: run one benchmark without the table or recording, print
    its figures; non-zero when one misses its target."""
    ctx = Context(work_dir=Path(tempfile.gettempdir()))
    figures = asyncio.run(run(ctx))
    for f in figures:
        print(f"{f.name:50} {f.text:>12}  {f.target} {f.verdict}")
    return 0 if all(f.ok is not False for f in figures) else 1


def require_loopback(url: str) -> None:
    """Refuse any server that is not on this machine's loopback interface."""
    host = urlsplit(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise RuntimeError(f"benchmarks only talk to loopback addresses, not {url}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # PR_SET_PDEATHSIG: if the benchmark dies (even by SIGKILL) the server gets SIGTERM.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """A child process of the benchmark (a server, an agent), its output appended to
    ``log_path``, in a session of its own (the terminal's Ctrl-C goes to the benchmark,
    which stops it) and SIGTERMed if the benchmark dies."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


class Server:
    """A ``setpoint server`` child process on ``data_dir``; restartable on the same dir."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        extra_args: Sequence[str] = (),
        verbose: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = tuple(extra_args)
        self.verbose = verbose  # ``setpoint -v``: INFO logs, its children's too
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.ca_pem = b""
        self.token = ""

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not running")
        return self.proc.pid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "setpoint.cli.main",
            *(["-v"] if self.verbose else []),
            "server",
            "--data-dir",
            str(self.data_dir),
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
            "0",
            "--disable-agent",
            *self.extra_args,
        ]

    async def start(self, *, timeout: float = 60.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("server already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = spawn(self.command(), self.log_path)
        deadline = time.monotonic() + timeout
        while b"listening on" not in self._log_tail(offset):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}:\n"
                    + self._log_tail(offset).decode(errors="replace")
                )
            if time.monotonic() > deadline:
                await self.kill()
                raise TimeoutError(f"server did not start within {timeout:.0f}s")
            await asyncio.sleep(0.05)
        info = load_kubeconfig(self.data_dir / "kubeconfig.yaml")
        require_loopback(info.server_url)
        self.url, self.ca_pem, self.token = info.server_url, info.ca_pem, info.token

    def _log_tail(self, offset: int) -> bytes:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return b""

    async def stop(self, *, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown), then SIGKILL if it takes longer than ``timeout``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGTERM)
        if not await self._wait(timeout):
            await self.kill()
        return proc.returncode

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, only what is on disk survives."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        await self._wait(10.0)

    async def _wait(self, timeout: float) -> bool:
        proc = self.proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -------------------------------------------------------------- /proc figures

    def rss_bytes(self) -> int:
        """Resident set size of the server process now."""
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE

    def cpu_seconds(self, tid: int | None = None) -> float:
        """User + system CPU time used so far by the server process (all its threads), or by
        one of its threads: ``tid=server.pid`` is the main thread, which runs the event loop."""
        path = f"/proc/{self.pid}/stat" if tid is None else f"/proc/{self.pid}/task/{tid}/stat"
        return _stat_cpu_seconds(path)

    def children(self) -> list[int]:
        """Pids of the server's child processes (the ``setpoint controller-manager``)."""
        return child_pids(self.pid)

    # -------------------------------------------------------------- client

    def session(
        self,
        *,
        connections: int,
        timeout: aiohttp.ClientTimeout | None = None,
        token: str | None = None,
    ) -> aiohttp.ClientSession:
        """A keep-alive session of up to ``connections`` connections, trusting only our CA,
        authenticated with ``token`` (default: the admin token)."""
        require_loopback(self.url)
        connector = aiohttp.TCPConnector(
            ssl=client_ssl_context(self.ca_pem),
            limit=connections,
            limit_per_host=connections,
            keepalive_timeout=120,
        )
        return aiohttp.ClientSession(
            base_url=self.url,
            connector=connector,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=timeout or aiohttp.ClientTimeout(total=60),
        )


def _stat_cpu_seconds(path: str) -> float:
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by any process (all its threads)."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def child_pids(pid: int) -> list[int]:
    """Pids of the direct children of ``pid`` (from ``/proc/<pid>/task/*/children``)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    return sorted(set(out))


class RSSSampler:
    """Samples the server's RSS every ``interval`` seconds in the background; keeps the peak."""

    def __init__(self, server: Server, interval: float = 0.2) -> None:
        self.server = server
        self.interval = interval
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.server.rss_bytes())
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> RSSSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError):
            self.peak = max(self.peak, self.server.rss_bytes())


# --------------------------------------------------------------------------- run context


@dataclass
class Phase:
    """Wall time and CPU use (server and this client) of one measured phase."""

    wall: float = 0.0
    server_cpu: float = 0.0
    loop_cpu: float = 0.0  # the server's main thread: the event loop (HTTP, TLS, handlers)
    client_cpu: float = 0.0
    machine_cpu: float = 0.0  # every process on the machine, from /proc/stat

    @property
    def server_cores(self) -> float:
        return self.server_cpu / self.wall if self.wall else 0.0

    @property
    def client_cores(self) -> float:
        return self.client_cpu / self.wall if self.wall else 0.0

    def figures(self, bench: str) -> list[Figure]:
        loop = self.loop_cpu / self.wall if self.wall else 0.0
        others = max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)
        others = others / self.wall if self.wall else 0.0
        return [
            info(bench, "server CPU during run", self.server_cores * 100, "% of a core", digits=0),
            info(bench, "server event-loop thread CPU", loop * 100, "% of a core", digits=0),
            info(bench, "client CPU during run", self.client_cores * 100, "% of a core", digits=0),
            info(bench, "other processes' CPU during run", others * 100, "% of a core", digits=0),
        ]


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / _CLK_TCK


ProfileHook = Callable[[Server, str], contextlib.AbstractAsyncContextManager[Any]]


@dataclass
class Context:
    """Per-run settings handed to every benchmark."""

    work_dir: Path
    profile: ProfileHook | None = None
    verbose: bool = True
    servers: list[Server] = field(default_factory=list)
    # where the benchmarks that take a store and a number of API servers (``write``) run:
    # ``python -m bench write --store etcd --servers 2``
    store: str = "sqlite"
    api_servers: int = 1

    def say(self, message: str) -> None:
        if self.verbose:
            print(f"  {message}", flush=True)

    def data_dir(self, name: str) -> Path:
        """The data dir :meth:`server` gives the server ``name``."""
        return self.work_dir / name / "data"

    @contextlib.asynccontextmanager
    async def server(
        self, name: str, *, extra_args: Sequence[str] = (), verbose: bool = False
    ) -> AsyncIterator[Server]:
        """A fresh server on an empty data dir under the work dir (unless something was put
        into :meth:`data_dir` first), stopped when the block ends.

        ``extra_args`` are added to the ``setpoint server`` command line; ``verbose`` runs
        it with ``-v``."""
        data_dir = self.data_dir(name)
        server = Server(
            data_dir, data_dir.parent / "server.log", extra_args=extra_args, verbose=verbose
        )
        self.servers.append(server)
        await server.start()
        self.say(f"server pid {server.pid} at {server.url} (data {server.data_dir})")
        try:
            yield server
        finally:
            await server.stop()

    @contextlib.asynccontextmanager
    async def measure(
        self, server: Server, label: str, *, others: Sequence[Server] = ()
    ) -> AsyncIterator[Phase]:
        """Time a phase and the CPU the server (with ``others``: all those servers together)
        and this client use in it; profile ``server`` if asked."""
        phase = Phase()
        servers = (server, *others)
        profiler = self.profile(server, label) if self.profile else contextlib.nullcontext()

        def server_cpu() -> tuple[float, float]:
            return (
                sum(s.cpu_seconds() for s in servers),
                sum(s.cpu_seconds(s.pid) for s in servers),
            )

        async with profiler:
            cpu0, loop0 = server_cpu()
            own0, all0, t0 = time.process_time(), machine_busy_seconds(), time.perf_counter()
            try:
                yield phase
            finally:
                phase.wall = time.perf_counter() - t0
                phase.client_cpu = time.process_time() - own0
                phase.machine_cpu = machine_busy_seconds() - all0
                with contextlib.suppress(OSError):
                    cpu1, loop1 = server_cpu()
                    phase.server_cpu, phase.loop_cpu = cpu1 - cpu0, loop1 - loop0


# --------------------------------------------------------------------------- workloads


def configmap_body(name: str, size: int = 1024) -> bytes:
    """A ConfigMap whose JSON encoding is ``size`` bytes (``size`` >= ~120)."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"payload": ""},
    }
    pad = max(0, size - len(orjson.dumps(doc)))
    seed = (name * (pad // max(len(name), 1) + 1))[:pad]
    doc["data"]["payload"] = seed
    return orjson.dumps(doc)


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
MERGE_PATCH = {"Content-Type": "application/merge-patch+json", "Accept": "application/json"}


async def warm_up(session: aiohttp.ClientSession, connections: int) -> None:
    """Open ``connections`` keep-alive connections (TLS handshakes) outside the measurement."""

    async def one() -> None:
        async with session.get("/version") as resp:
            await resp.read()
            resp.raise_for_status()

    for _ in range(2):
        await asyncio.gather(*(one() for _ in range(connections)))


@dataclass
class CreateRun:
    latencies: list[float] = field(default_factory=list)  # seconds, acknowledged creates
    acked: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)  # "status: reason" -> count


async def create_configmaps(
    session: aiohttp.ClientSession | Sequence[aiohttp.ClientSession],
    names: Sequence[str],
    *,
    concurrency: int,
    size: int = 1024,
    time_limit: float = 300.0,
) -> CreateRun:
    """POST one ConfigMap per name from ``concurrency`` workers (each one request at a time).

    With several sessions (one per API server) worker ``i`` uses session ``i mod n``, so the
    workers are split evenly between them. Bodies are encoded up front so the client spends
    its time on the wire, not in JSON.
    """
    sessions = [session] if isinstance(session, aiohttp.ClientSession) else list(session)
    bodies = [(name, configmap_body(name, size)) for name in names]
    run = CreateRun()
    next_index = 0
    deadline = time.monotonic() + time_limit

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(bodies) and time.monotonic() < deadline:
            name, body = bodies[next_index]
            next_index += 1
            start = time.perf_counter()
            try:
                async with session.post(CONFIGMAPS, data=body, headers=JSON_HEADERS) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                key = type(exc).__name__
                run.failures[key] = run.failures.get(key, 0) + 1
                continue
            elapsed = time.perf_counter() - start
            if status == 201:
                run.latencies.append(elapsed)
                run.acked.add(name)
            else:
                key = f"HTTP {status}"
                run.failures[key] = run.failures.get(key, 0) + 1

    await asyncio.gather(*(worker(sessions[i % len(sessions)]) for i in range(concurrency)))
    return run


async def numbered_patches(
    session: aiohttp.ClientSession,
    *,
    target: Callable[[int], str],
    body: Callable[[int], bytes],
    writers: int,
    updates: int,
    time_limit: float,
) -> tuple[int, list[float]]:
    """Send ``updates`` merge patches numbered 0, 1, ... from ``writers`` closed loops
    (one in flight each; writer ``i`` patches ``target(i)`` with ``body(seq)``, built just
    before it is sent); returns (acknowledged, latencies in seconds)."""
    next_seq = 0
    acked = 0
    latencies: list[float] = []
    deadline = time.monotonic() + time_limit

    async def writer(index: int) -> None:
        nonlocal next_seq, acked
        path = target(index)
        while next_seq < updates and time.monotonic() < deadline:
            seq = next_seq
            next_seq += 1
            data = body(seq)
            start = time.perf_counter()
            async with session.patch(path, data=data, headers=MERGE_PATCH) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"patch failed: HTTP {resp.status}")
            latencies.append(time.perf_counter() - start)
            acked += 1

    await asyncio.gather(*(writer(i) for i in range(writers)))
    return acked, latencies


async def list_names(session: aiohttp.ClientSession, query: str = "") -> tuple[set[str], str]:
    """Names of the ConfigMaps in the benchmark namespace, and the list's resourceVersion."""
    async with session.get(CONFIGMAPS + query, headers={"Accept": "application/json"}) as resp:
        resp.raise_for_status()
        body = orjson.loads(await resp.read())
    names = {item["metadata"]["name"] for item in body["items"]}
    return names, str(body["metadata"]["resourceVersion"])


def mib(n_bytes: float) -> float:
    return n_bytes / (1024 * 1024)


async def container_start_times(
    state_dir: Path, starts: int, *, wrap: Sequence[str] = (), netns: str | None = None
) -> list[float]:
    """Seconds each of ``starts`` starts of ``true`` takes a supervisor of its own (in
    ``state_dir``): asked for to the supervisor's answer; ``wrap`` goes before the argv
    (``nsenter ...``), ``netns`` is joined before exec."""
    runtime = await ensure_supervisor(state_dir)
    supervisor = (await runtime.info())["pid"]
    times = []
    try:
        for n in range(starts):
            spec = ContainerSpec(
                id=f"bench/{n}", argv=[*wrap, "true"], restart_policy="Never", netns=netns
            )
            started = time.perf_counter()
            await runtime.start_container(spec)
            times.append(time.perf_counter() - started)
            await runtime.remove(spec.id)
        return times
    finally:
        await runtime.close()
        os.kill(supervisor, signal.SIGTERM)
