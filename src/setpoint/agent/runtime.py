"""The process runtime as the agent sees it: an async client of the per-node supervisor.

The agent never owns workload processes; ``setpoint.agent.supervisor`` does, and outlives
the agent. ``ensure_supervisor(state_dir)`` connects to the supervisor serving ``state_dir``
or, if none does, starts one detached (its own session, orphaned by a double fork) so that
it survives the agent, and returns a ``Runtime`` connected to it. The agent then drives
containers through ``start_container``, ``stop_container`` and ``remove``, learns where they
are with ``list()`` (which includes every exit it missed while it was down: restart counts
and the last exit of each container) and follows their changes with ``events()``.

Requests travel as JSON lines over one connection and are answered by id, so a slow
``stop_container`` (which waits out a grace period) does not hold up other calls; each
``events()`` stream uses a connection of its own.

A supervisor can die (``kill -9``, the OOM killer). Its containers keep running, but while
no supervisor runs nothing restarts them or records their exits, so the agent treats the
loss as a node fault and calls :meth:`Runtime.reconnect`, which starts a new supervisor (it
re-adopts the live containers and records the exits it missed) and moves the same
``Runtime`` object onto it: whoever holds it (the agent, its probe manager) carries on. A
call made while the connection is down fails with :class:`RuntimeUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from setpoint.agent.supervisor import (
    LOG_NAME,
    SOCKET_NAME,
    VERSION,
    ContainerSpec,
    ContainerState,
    ExitRecord,
    stdin_fifo,
)
from setpoint.meta.privatefiles import open_private, private_dir

__all__ = [
    "ContainerSpec",
    "ContainerState",
    "ExitRecord",
    "Runtime",
    "RuntimeUnavailableError",
    "SupervisorError",
    "ensure_supervisor",
    "stdin_fifo",
]

LINE_LIMIT = 64 * 1024 * 1024  # a list of many containers is one line


class SupervisorError(Exception):
    """The supervisor refused a request (unknown container, duplicate id, bad spec ...)."""


class RuntimeUnavailableError(ConnectionError):
    """No supervisor answers: the connection to it broke (it died) and is not back yet."""


async def open_socket(state_dir: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = state_dir / SOCKET_NAME
    if len(os.fsencode(path)) < 100:
        return await asyncio.open_unix_connection(path, limit=LINE_LIMIT)
    # Unix socket paths are limited to 108 bytes; reach a deep one through a directory fd.
    dir_fd = os.open(state_dir, os.O_PATH)
    try:
        return await asyncio.open_unix_connection(
            f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}", limit=LINE_LIMIT
        )
    finally:
        os.close(dir_fd)


class Runtime:
    """A connection to the supervisor of one node. Close it with ``close()`` (or use it as
    an async context manager); closing it stops nothing on the node."""

    def __init__(
        self, state_dir: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.state_dir = state_dir
        self._ids = itertools.count(1)
        self._attach(reader, writer)

    def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._receiver = asyncio.create_task(self._receive(), name="runtime-receiver")

    @property
    def connected(self) -> bool:
        """False once the supervisor's end of the connection went away."""
        return not self._receiver.done()

    async def responsive(self, *, timeout: float = 2.0) -> bool:
        """Whether the supervisor answers on this runtime's connection."""
        if not self.connected:
            return False
        try:
            await asyncio.wait_for(self.info(), timeout)
        except (ConnectionError, SupervisorError, TimeoutError):
            return False
        return True

    async def reconnect(self, *, timeout: float = 10.0) -> None:
        """Attach this runtime to the node's supervisor again, starting a new one if none
        serves (:func:`ensure_supervisor`). A connection that still works is kept, so calls
        in flight on it (a stop waiting out its grace period) are not cut."""
        if await self.responsive(timeout=timeout):
            return
        fresh = await ensure_supervisor(self.state_dir, timeout=timeout)
        for receiver in (fresh._receiver, self._receiver):  # one reader per connection
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        self._writer.close()
        self._attach(fresh._reader, fresh._writer)

    @classmethod
    async def connect(cls, state_dir: Path | str) -> Runtime:
        state_dir = Path(state_dir)
        reader, writer = await open_socket(state_dir)
        return cls(state_dir, reader, writer)

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._receiver
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _receive(self) -> None:
        try:
            while line := await self._reader.readline():
                answer = json.loads(line)
                future = self._pending.pop(answer.get("id"), None)
                if future is None or future.done():
                    continue
                if answer.get("ok"):
                    future.set_result(answer.get("result"))
                else:
                    future.set_exception(SupervisorError(answer.get("error", "failed")))
        except (ConnectionError, ValueError) as exc:
            error = RuntimeUnavailableError(f"supervisor connection broken: {exc}")
        else:
            error = RuntimeUnavailableError("supervisor closed the connection")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _call(self, op: str, **args: Any) -> Any:
        if self._receiver.done():
            raise RuntimeUnavailableError("supervisor connection is closed")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n")
            await self._writer.drain()
        except ConnectionError as exc:
            self._pending.pop(request_id, None)
            raise RuntimeUnavailableError(f"supervisor connection broken: {exc}") from exc
        try:
            return await future
        finally:  # given up on (a timeout): its answer, or its failure, goes unread
            self._pending.pop(request_id, None)

    async def start_container(self, spec: ContainerSpec) -> ContainerState:
        """Start a new container (its id must not exist yet) and return it running."""
        return ContainerState.from_dict(await self._call("start", spec=spec.to_dict()))

    async def stop_container(self, container_id: str, *, grace_seconds: float) -> ContainerState:
        """SIGTERM the container's process group, wait up to ``grace_seconds``, then SIGKILL
        the group; the container is not restarted again. Returns it exited."""
        result = await self._call("stop", container=container_id, grace_seconds=grace_seconds)
        return ContainerState.from_dict(result)

    async def kill_instance(
        self, container_id: str, *, grace_seconds: float, restart_count: int | None = None
    ) -> ContainerState:
        """Kill the container's current instance (the one with ``restart_count``, if given)
        like ``stop_container`` does, but leave it to its restart policy: a crash, not a
        stop. Returns the state right after (often already the next instance)."""
        result = await self._call(
            "kill",
            container=container_id,
            grace_seconds=grace_seconds,
            restart_count=restart_count,
        )
        return ContainerState.from_dict(result)

    async def remove(self, container_id: str) -> None:
        """Forget a container and its state files (killing it first if it still runs)."""
        await self._call("remove", container=container_id)

    async def list(self) -> list[ContainerState]:
        return [ContainerState.from_dict(s) for s in await self._call("list")]

    async def info(self) -> dict[str, Any]:
        """The supervisor's pid, container count and code version."""
        result: dict[str, Any] = await self._call("info")
        return result

    async def upgrade(self) -> dict[str, Any]:
        """Ask the supervisor to re-exec the installed code (its pid and containers stay);
        this connection ends with it. Use :func:`ensure_supervisor`, which reconnects."""
        result: dict[str, Any] = await self._call("upgrade")
        return result

    async def events(self) -> AsyncGenerator[ContainerState, None]:
        """Every container's current state, then each change as it happens (starts, exits,
        backoffs). Ends when the supervisor goes away or cuts a too-slow reader off; re-list
        and subscribe again then."""
        reader, writer = await open_socket(self.state_dir)
        try:
            writer.write(json.dumps({"id": 0, "op": "watch"}).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline() or b"{}")
            if not answer.get("ok"):
                raise SupervisorError(answer.get("error", "watch refused"))
            while line := await reader.readline():
                yield ContainerState.from_dict(json.loads(line)["event"])
        finally:
            writer.close()


async def ensure_supervisor(
    state_dir: Path | str, *, timeout: float = 10.0, version: str = VERSION
) -> Runtime:
    """Connect to the supervisor serving ``state_dir``, starting it first if none does, and
    upgrading it in place first if it runs other code than ``version`` (the installed one):
    an upgraded agent must not talk to yesterday's supervisor, nor restart its containers.

    A started supervisor runs in a session of its own and is orphaned (``--detach`` forks
    once more and the intermediate process exits when the daemon serves), so it is nobody's
    child and survives the agent. Its output goes to ``state_dir/supervisor.log``; the
    state dir and the log are private (0700, 0600), created or tightened here."""
    state_dir = Path(state_dir).absolute()
    with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
        runtime = await Runtime.connect(state_dir)
        info = await runtime.info()
        if info.get("version") == version:
            return runtime
        try:
            return await _upgrade(runtime, timeout=timeout)
        except SupervisorError:
            if "version" in info:
                raise
            # older than in-place upgrades: stop it (its containers keep running) and let
            # a new supervisor re-adopt them below; only their exit statuses are lost
            await _stop_old_supervisor(runtime, int(info["pid"]), timeout=timeout)
    private_dir(state_dir)
    with os.fdopen(open_private(state_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND), "ab") as log:
        launcher = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "setpoint.agent.supervisor",
            "--state-dir",
            str(state_dir),
            "--detach",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    async with asyncio.timeout(timeout):
        code = await launcher.wait()
    if code != 0:
        raise SupervisorError(f"supervisor failed to start; see {state_dir / LOG_NAME}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Runtime.connect(state_dir)
        except (FileNotFoundError, ConnectionRefusedError):
            # Lost a race with another starter whose supervisor holds the lock but is not
            # yet serving.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)


async def _upgrade(runtime: Runtime, *, timeout: float) -> Runtime:
    """Ask the supervisor to re-exec the installed code and connect to it again once it
    serves (same pid, same containers)."""
    state_dir, old = runtime.state_dir, await runtime.upgrade()
    await runtime.close()
    deadline = time.monotonic() + timeout
    while True:
        # until the new image serves: refused, or accepted by the old image's listener
        # and then reset by the exec
        with contextlib.suppress(OSError, SupervisorError):
            fresh = await Runtime.connect(state_dir)
            try:
                info = await fresh.info()
                if info["pid"] == old["pid"] and info["image_started"] != old["image_started"]:
                    return fresh
            except (OSError, SupervisorError):
                pass
            await fresh.close()
        if time.monotonic() > deadline:
            raise SupervisorError(f"supervisor {old['pid']} did not come back from its upgrade")
        await asyncio.sleep(0.02)


async def _stop_old_supervisor(runtime: Runtime, pid: int, *, timeout: float) -> None:
    await runtime.close()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
