"""The pure parts of exec, attach and port-forward: SPDY framing, the channel protocols'
statuses, stream options, how a command is made to join a container, and who may stream."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import pytest

from setpoint.agent import spdy
from setpoint.agent.channels import V1, V4, V5, protocol_named
from setpoint.agent.portforward import query_ports
from setpoint.agent.remotecommand import (
    ContainerContext,
    StreamRequestError,
    command_argv,
    exit_status,
    status_payload,
    stream_options,
)

# ------------------------------------------------------------------ SPDY


def test_the_spdy_dictionary_is_the_one_kubectl_compresses_against() -> None:
    assert len(spdy.DICTIONARY) == 1423
    digest = hashlib.sha256(spdy.DICTIONARY).hexdigest()
    assert digest == "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


def client_header_block(compressor: zlib._Compress, headers: dict[str, str]) -> bytes:
    block = struct.pack(">I", len(headers))
    for name, value in headers.items():
        for part in (name.encode(), value.encode()):
            block += struct.pack(">I", len(part)) + part
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


def syn_stream(compressor: zlib._Compress, stream_id: int, headers: dict[str, str]) -> bytes:
    payload = struct.pack(">IIH", stream_id, 0, 0) + client_header_block(compressor, headers)
    return spdy.control_frame(spdy.SYN_STREAM, payload)


class Recorder:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.streams: list[spdy.Stream] = []

    async def send(self, frame: bytes) -> None:
        self.frames.append(frame)


async def test_a_new_stream_is_answered_with_a_syn_reply_and_handed_on() -> None:
    out = Recorder()
    session = spdy.Session(out.send, out.streams.append)
    compressor = zlib.compressobj(zdict=spdy.DICTIONARY)
    frame = syn_stream(compressor, 1, {"streamtype": "data", "port": "8080", "requestid": "0"})
    await session.receive(frame[:5])  # frames arrive in any pieces
    await session.receive(frame[5:])
    assert [s.headers for s in out.streams] == [
        {"streamtype": "data", "port": "8080", "requestid": "0"}
    ]
    kind = struct.unpack(">HH", out.frames[0][:4])
    assert kind == (0x8000 | 3, spdy.SYN_REPLY)
    (stream_id,) = struct.unpack_from(">I", out.frames[0], 8)
    block = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(out.frames[0][12:])
    assert stream_id == 1 and block == b"\x00\x00\x00\x00"  # no headers


async def test_data_then_fin_reach_the_stream_and_writes_become_data_frames() -> None:
    out = Recorder()
    session = spdy.Session(out.send, out.streams.append)
    compressor = zlib.compressobj(zdict=spdy.DICTIONARY)
    await session.receive(syn_stream(compressor, 3, {"streamtype": "data"}))
    await session.receive(spdy.data_frame(3, b"hello") + spdy.data_frame(3, b"", spdy.FLAG_FIN))
    stream = out.streams[0]
    assert await stream.read() == b"hello"
    assert await stream.read() == b""
    await stream.write(b"x" * (spdy.MAX_DATA + 1))
    await stream.close()
    data = out.frames[1:]
    assert [len(f) - 8 for f in data] == [spdy.MAX_DATA, 1, 0]
    assert data[-1][4] == spdy.FLAG_FIN


async def test_a_ping_is_echoed_and_a_reset_ends_the_stream() -> None:
    out = Recorder()
    session = spdy.Session(out.send, out.streams.append)
    compressor = zlib.compressobj(zdict=spdy.DICTIONARY)
    await session.receive(spdy.control_frame(spdy.PING, struct.pack(">I", 7)))
    assert out.frames[-1] == spdy.control_frame(spdy.PING, struct.pack(">I", 7))
    await session.receive(syn_stream(compressor, 5, {"streamtype": "error"}))
    await session.receive(spdy.control_frame(spdy.RST_STREAM, struct.pack(">II", 5, 5)))
    assert await out.streams[0].read() == b""
    assert 5 not in session.streams


async def test_another_spdy_version_is_a_protocol_error() -> None:
    session = spdy.Session(Recorder().send, lambda stream: None)
    frame = struct.pack(">HHI", 0x8000 | 2, spdy.PING, 4) + b"\0\0\0\1"
    with pytest.raises(spdy.ProtocolError):
        await session.receive(frame)


# ------------------------------------------------------------------ channel protocols


def test_v4_and_later_report_the_exit_code_as_a_status() -> None:
    status = exit_status(3, ["sh", "-c", "exit 3"])
    payload = json.loads(status_payload(status, json_status=protocol_named(V5).json_status))
    assert payload["status"] == "Failure"
    assert payload["reason"] == "NonZeroExitCode"
    assert payload["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert json.loads(status_payload(exit_status(0, ["true"]), json_status=True)) == {
        "metadata": {},
        "status": "Success",
    }


def test_the_first_channel_protocol_reports_failures_as_text_and_success_as_nothing() -> None:
    v1 = protocol_named(V1)
    assert status_payload(exit_status(0, ["true"]), json_status=v1.json_status) == b""
    text = status_payload(exit_status(2, ["false"]), json_status=v1.json_status)
    assert text.startswith(b"command terminated with non-zero exit code")


def test_a_client_naming_no_protocol_gets_binary_channels() -> None:
    assert protocol_named(None).binary and not protocol_named(None).json_status
    assert protocol_named(V4).json_status and not protocol_named(V4).close_signal
    assert protocol_named(V5).close_signal


# ------------------------------------------------------------------ options and commands


def test_stream_options_need_a_stream_and_drop_stderr_with_a_tty() -> None:
    options = stream_options({"stdin": "1", "stdout": "1", "stderr": "1", "tty": "1"})
    assert (options.stdin, options.stdout, options.stderr, options.tty) == (
        True,
        True,
        False,
        True,
    )
    with pytest.raises(StreamRequestError, match="at least 1 of stdin, stdout, stderr"):
        stream_options({"tty": "1"})


def test_a_command_joins_the_cgroups_then_a_session_then_the_namespaces() -> None:
    def enter(argv: list[str], cwd: str | None) -> tuple[list[str], str | None]:
        return ["nsenter", "--mount=/ns/app", "--", *argv], cwd

    context = ContainerContext(
        env={}, cwd="/srv", enter=enter, cgroups=(Path("/cg/memory/x"), Path("/cg/pids/x"))
    )
    argv, cwd = command_argv(context, ["ls", "-l"], tty=True)
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == (
        'echo $$ > /cg/memory/x/cgroup.procs && echo $$ > /cg/pids/x/cgroup.procs && exec "$@"'
    )
    assert argv[3:] == ["sh", "setsid", "--ctty", "nsenter", "--mount=/ns/app", "--", "ls", "-l"]
    assert cwd == "/srv"


def test_a_container_without_cgroups_or_namespaces_only_gets_a_session() -> None:
    argv, cwd = command_argv(ContainerContext(env={}, cwd=None, enter=None), ["id"], tty=False)
    assert argv == ["setsid", "id"] and cwd == "/"


def test_port_forward_ports_are_checked_as_the_kubelet_checks_them() -> None:
    assert query_ports(["80,8080", "9090"]) == [80, 8080, 9090]
    with pytest.raises(StreamRequestError, match='query parameter "port" is required'):
        query_ports([])
    with pytest.raises(StreamRequestError, match='unable to parse "x" as a port'):
        query_ports(["x"])
    with pytest.raises(StreamRequestError, match='port "0" must be > 0'):
        query_ports(["0"])


# ------------------------------------------------------------------ who may stream
