"""``kubectl exec`` and ``kubectl attach`` on the node: a command in a container, streamed.

The API server relays the client's WebSocket to the agent's ``/exec/{namespace}/{pod}/
{container}`` and ``/attach/...`` (the kubelet's paths), whose query says which streams the
client wants (``stdin``, ``stdout``, ``stderr``, ``tty`` as ``1``; at least one of the
first three, and ``stderr`` is dropped with a ``tty``, as the kubelet's ``NewOptions``
does) and, for exec, the ``command``. The channels are :mod:`setpoint.agent.channels`'.

**Exec** runs the command as one of the container's own processes would run, which for a
host-process runtime means entering each part of the container by hand, as ``nsenter``
and a runtime's exec do (:func:`command_argv`):

- its cgroups: a tiny ``sh`` writes its own pid into the container's ``cgroup.procs`` (one
  per hierarchy) and then execs the rest, so the command and all it forks count against the
  container's limits and die with it (a container is its cgroup);
- a session of its own (``setsid``), with the pty as controlling terminal for a ``tty``
  (``setsid --ctty``), so Ctrl-C reaches the foreground job and a shell does job control;
- the container's namespaces: its mount namespace today, and every namespace the sandbox
  lists (:meth:`setpoint.agent.sandbox.Sandboxes.namespaces`), through ``nsenter`` (a
  ``workingDir`` inside a volume is entered there, as for the container itself);
- its environment (``env``, ``envFrom``, Downward API, as built for the container) and
  ``workingDir`` (``/`` without one, as an image without ``WORKDIR`` has).

Each step is an ``exec``, so the pid the agent waits for is the command's own: its exit code
is reported on the error channel as the kubelet reports it — ``Success``, or ``Failure``
with reason ``NonZeroExitCode`` and an ``ExitCode`` cause (128 + the signal for a command
killed by one, as runc reports it); a command that cannot be started is an
``InternalError`` (``error executing command in container: ...``). When the command has
exited, output still buffered is sent (a background child that keeps the pipes open is
waited for at most ``OUTPUT_DRAIN_SECONDS``), then the status, then the WebSocket closes. A
client that goes away first takes the command with it: its session is killed.

With a ``tty`` the command gets a pty: stdin and output go through its master, the resize
channel (``{"Width": w, "Height": h}``) sets its window size. Without one, stdin, stdout
and stderr are pipes; v5's CLOSE signal on stdin closes the command's stdin (EOF), which is
how ``kubectl exec -i ... < file`` and ``kubectl cp`` (tar over exec) end their input.

**Attach** streams what the container's main process writes, from now on: its log file as
the supervisor writes it, stdout and stderr apart, until that instance stops running; for
a container with ``stdin: true`` the client's stdin goes to the container's stdin FIFO
(kept by the supervisor, :func:`setpoint.agent.supervisor.stdin_fifo`). Containers with
``tty: true`` get no pty in setpoint (they run with pipes), so attach never offers one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import termios
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from setpoint.agent.channels import ERROR, RESIZE, STDERR, STDIN, STDOUT, Channels
from setpoint.agent.probes import process_exited

OUTPUT_DRAIN_SECONDS = 1.0  # after the command exited, for output its children still hold
READ_BYTES = 32 * 1024  # kubectl's websocket buffers hold 32 KiB of data per message
_TRUE = "1"

# (argv, cwd) -> the same command made to run inside the container's namespaces
EnterNamespaces = Callable[[list[str], str | None], tuple[list[str], str | None]]


class StreamRequestError(Exception):
    """A request refused before any stream opened: ``code`` and a plain-text message, as
    the kubelet answers (the API server turns it into a Status)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StreamOptions:
    """Which streams the client asked for (the kubelet's ``remotecommand.Options``)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def stream_options(query: Mapping[str, str]) -> StreamOptions:
    tty = query.get("tty") == _TRUE
    stdin = query.get("stdin") == _TRUE
    stdout = query.get("stdout") == _TRUE
    stderr = query.get("stderr") == _TRUE and not tty  # a tty has no separate stderr
    if not (stdin or stdout or stderr):
        raise StreamRequestError(400, "you must specify at least 1 of stdin, stdout, stderr")
    return StreamOptions(stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)


# ------------------------------------------------------------------ statuses


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The kubelet's status for a command that ended: Success, or NonZeroExitCode."""
    if code == 0:
        return success_status()
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: command {' '.join(command)!r} "
            f"exited with {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def cannot_execute(why: str) -> dict[str, Any]:
    return internal_error_status(f"error executing command in container: {why}")


def status_payload(status: dict[str, Any], *, json_status: bool) -> bytes:
    """What the error channel carries: the Status as JSON (v4 and later), or, for the
    older protocols, a failure's message and nothing for a success."""
    if json_status:
        return json.dumps(status, separators=(",", ":")).encode()
    return b"" if status["status"] == "Success" else str(status.get("message", "")).encode()


# ------------------------------------------------------------------ where the command runs


@dataclass(frozen=True)
class ContainerContext:
    """What a process joining a container takes from it: the container's environment and
    working directory, its namespaces (``enter`` wraps a command to run inside them) and
    its cgroup directories."""

    env: Mapping[str, str]
    cwd: str | None
    enter: EnterNamespaces | None
    cgroups: tuple[Path, ...] = ()
    own_mounts: bool = False  # it has a mount namespace: files may exist only in there


def command_argv(
    context: ContainerContext, command: list[str], *, tty: bool
) -> tuple[list[str], str]:
    """The argv (and host working directory) that runs ``command`` as a process of the
    container: cgroups, then a session of its own, then its namespaces (see above)."""
    argv, cwd = list(command), context.cwd or "/"
    if context.enter is not None:
        argv, entered_cwd = context.enter(argv, cwd)
        cwd = entered_cwd or "/"
    argv = ["setsid", *(["--ctty"] if tty else []), *argv]
    if context.cgroups:
        joins = " && ".join(
            f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in context.cgroups
        )
        argv = ["sh", "-c", f'{joins} && exec "$@"', "sh", *argv]
    return argv, cwd


def missing_executable(context: ContainerContext, command: list[str]) -> str | None:
    """Why ``command`` cannot start, as runc says it (None: it can, or it lives inside a
    namespace where only the command itself can look)."""
    name = command[0]
    if context.own_mounts:
        return None  # only the command itself can look inside the mount namespace
    if "/" in name:
        return None if os.path.exists(name) else f"exec: {name!r}: no such file or directory"
    if shutil.which(name, path=context.env.get("PATH", os.defpath)) is None:
        return f"exec: {name!r}: executable file not found in $PATH"
    return None


# ------------------------------------------------------------------ fds


async def _fd_ready(fd: int, *, write: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if write else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def read_chunks(fd: int) -> AsyncIterator[bytes]:
    """What is written to ``fd`` (a pipe or a pty master), chunk by chunk, until EOF (for a
    pty: until its last slave is closed, EIO)."""
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            await _fd_ready(fd, write=False)
            continue
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not data:
            return
        yield data


async def write_all(fd: int, data: bytes) -> None:
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await _fd_ready(fd, write=True)
            continue
        view = view[written:]


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def set_window_size(fd: int, message: bytes) -> None:
    """Apply a resize message, ``{"Width": 80, "Height": 24}``; a bad one is ignored."""
    try:
        size = json.loads(message)
        width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
    except (ValueError, TypeError, AttributeError):
        return
    if 0 < width < 65536 and 0 < height < 65536:
        with contextlib.suppress(OSError):
            termios.tcsetwinsize(fd, (height, width))


# ------------------------------------------------------------------ exec


class CommandProcess:
    """A started command: its stdin, output fds and pid. :meth:`kill` ends its session."""

    def __init__(
        self, argv: list[str], *, env: Mapping[str, str], cwd: str, options: StreamOptions
    ) -> None:
        tty = options.tty
        self.tty = tty
        self.stdin: int | None = None
        self.outputs: list[tuple[int, int]] = []  # (fd, channel)
        child: list[int] = []
        try:
            if tty:
                master, slave = os.openpty()
                self.stdin = master
                self.outputs = [(master, STDOUT)]
                child = [slave]
                stdio = (slave, slave, slave)
            else:
                stdio_fds: list[int] = []
                for wanted, channel in (
                    (options.stdin, STDIN),
                    (options.stdout, STDOUT),
                    (options.stderr, STDERR),
                ):
                    if not wanted:
                        stdio_fds.append(subprocess.DEVNULL)
                        continue
                    read_end, write_end = os.pipe()
                    if channel == STDIN:
                        self.stdin = write_end
                        stdio_fds.append(read_end)
                        child.append(read_end)
                    else:
                        self.outputs.append((read_end, channel))
                        stdio_fds.append(write_end)
                        child.append(write_end)
                stdio = (stdio_fds[0], stdio_fds[1], stdio_fds[2])
            self.process = subprocess.Popen(
                argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], env=dict(env), cwd=cwd
            )
        except BaseException:
            self.close()
            raise
        finally:
            for fd in child:
                _close(fd)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self) -> int:
        """Until the command exits: its exit code, 128 + the signal that killed it."""
        await process_exited(self.pid)
        code = self.process.wait()
        return 128 - code if code < 0 else code

    def close_stdin(self) -> None:
        if self.stdin is not None and not self.tty:
            _close(self.stdin)
            self.stdin = None

    def kill(self) -> None:
        """SIGKILL the command's session (its own process group, from ``setsid`` on), and
        the command itself if it has not reached ``setsid`` yet."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        fds = {fd for fd, _ in self.outputs}
        if self.stdin is not None:
            fds.add(self.stdin)
        for fd in fds:
            _close(fd)
        self.stdin, self.outputs = None, []


async def _pump(chunks: AsyncIterator[bytes], channels: Channels, channel: int) -> None:
    async for chunk in chunks:
        await channels.send(channel, chunk)


async def _feed_input(
    channels: Channels,
    *,
    write: Callable[[bytes], Any] | None,
    close: Callable[[], None],
    resize: Callable[[bytes], None] | None,
) -> None:
    """Client frames to the command until the client goes away (then returns)."""
    while (frame := await channels.receive()) is not None:
        if frame.channel == STDIN:
            if frame.closed:
                close()
            elif write is not None and frame.data:
                try:
                    await write(frame.data)
                except OSError:  # the command closed its stdin: what follows is dropped
                    write = None
        elif frame.channel == RESIZE and resize is not None and not frame.closed:
            resize(frame.data)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def announce(channels: Channels, options: StreamOptions) -> None:
    """The kubelet's "connection is established" signal: an empty message on the lowest
    writable channel."""
    channel = STDOUT if options.stdout else STDERR if options.stderr else ERROR
    await channels.send(channel, b"")


async def finish(channels: Channels, status: dict[str, Any]) -> None:
    payload = status_payload(status, json_status=channels.protocol.json_status)
    with contextlib.suppress(ConnectionError, RuntimeError):
        if payload:
            await channels.send(ERROR, payload)
        await channels.ws.close()


async def run_exec(
    channels: Channels, options: StreamOptions, context: ContainerContext, command: list[str]
) -> None:
    """One exec session over an accepted WebSocket, start to close."""
    await announce(channels, options)
    problem = missing_executable(context, command)
    if problem is not None:
        await finish(channels, cannot_execute(problem))
        return
    argv, cwd = command_argv(context, command, tty=options.tty)
    try:
        process = CommandProcess(argv, env=context.env, cwd=cwd, options=options)
    except (OSError, subprocess.SubprocessError) as exc:
        await finish(channels, cannot_execute(str(exc)))
        return
    try:
        stdin = process.stdin

        async def write(data: bytes) -> None:
            assert stdin is not None
            await write_all(stdin, data)

        def resize(data: bytes) -> None:
            assert stdin is not None  # a tty's master
            set_window_size(stdin, data)

        pumps = [
            asyncio.create_task(_pump(read_chunks(fd), channels, channel))
            for fd, channel in process.outputs
        ]
        feeding = asyncio.create_task(
            _feed_input(
                channels,
                write=write if options.stdin and stdin is not None else None,
                close=process.close_stdin,
                resize=resize if process.tty else None,
            )
        )
        exiting = asyncio.create_task(process.wait())
        try:
            await asyncio.wait({exiting, feeding}, return_when=asyncio.FIRST_COMPLETED)
            if not exiting.done():  # the client went away: the command goes with it
                process.kill()
                await exiting
                return
            if pumps:
                await asyncio.wait(pumps, timeout=OUTPUT_DRAIN_SECONDS)
            await _stop(feeding)  # no reader while closing: aiohttp then waits for the reply
            await finish(channels, exit_status(exiting.result(), command))
        finally:
            for task in (*pumps, feeding, exiting):
                task.cancel()
            await asyncio.gather(*pumps, feeding, exiting, return_exceptions=True)
    finally:
        process.kill()
        process.close()


# ------------------------------------------------------------------ attach


@dataclass(frozen=True)
class AttachTarget:
    """The running instance of a container to attach to: its output as the supervisor
    logs it (``output(stream)`` follows from now while the instance runs) and, for a
    container with ``stdin: true``, its stdin FIFO."""

    output: Callable[[str], AsyncIterator[bytes]]
    stdin_fifo: Path | None


async def run_attach(channels: Channels, options: StreamOptions, target: AttachTarget) -> None:
    """One attach session: output until the instance stops (then Success), stdin to its
    FIFO; a client that goes away leaves the container running."""
    await announce(channels, options)
    fifo: int | None = None
    if options.stdin and target.stdin_fifo is not None:
        with contextlib.suppress(OSError):  # nobody reads it (the container is gone)
            fifo = os.open(target.stdin_fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    streams = [("stdout", STDOUT)] if options.stdout else []
    if options.stderr:
        streams.append(("stderr", STDERR))
    pumps = [
        asyncio.create_task(_pump(target.output(name), channels, channel))
        for name, channel in streams
    ]

    async def write(data: bytes) -> None:
        assert fifo is not None
        await write_all(fifo, data)

    feeding = asyncio.create_task(
        _feed_input(
            channels, write=write if fifo is not None else None, close=lambda: None, resize=None
        )
    )
    try:
        if not pumps:  # nothing to show: the session lasts until the client goes
            await feeding
            return
        running = set(pumps)
        while running and not feeding.done():
            done, _ = await asyncio.wait({feeding, *running}, return_when=asyncio.FIRST_COMPLETED)
            running -= done
        if not running:  # the instance stopped running
            await _stop(feeding)
            await finish(channels, success_status())
    finally:
        for task in (*pumps, feeding):
            task.cancel()
        await asyncio.gather(*pumps, feeding, return_exceptions=True)
        _close(fifo)


async def accept(
    request: web.Request, protocols: tuple[str, ...]
) -> tuple[web.WebSocketResponse, str]:
    """Upgrade to a WebSocket, choosing among ``protocols`` as wsstream does; returns it
    and the chosen protocol ("" for none)."""
    ws = web.WebSocketResponse(protocols=protocols, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    return ws, ws.ws_protocol or ""
