"""What a connection may cost the server: bodies read whole and bounded, headers bounded in
size and time, idle and silent connections dropped, and a cap on how many are open.

Raw TLS sockets play the clients that kubectl never is: ones that send in small pieces with
pauses, that send far too much, that never finish a header, or that never send at all.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import objects
from tests.support import (
    Server,
    closed_by_server,
    read_response,
    request_head,
    start_server,
    tls_connect,
    wait_for,
)

MIB = 1024 * 1024


def configmap_body(namespace: str, name: str, value: str) -> bytes:
    return json.dumps(objects.configmap(name, namespace=namespace, data={"value": value})).encode()


def send_in_pieces(sock: ssl.SSLSocket, data: bytes, *, piece: int, pause: float) -> None:
    for start in range(0, len(data), piece):
        sock.sendall(data[start : start + piece])
        time.sleep(pause)


def test_body_sent_in_small_pieces_with_pauses_arrives_whole(
    server: Server, namespace: str
) -> None:
    value = "v" * 200_000
    body = configmap_body(namespace, "pieces", value)
    head = request_head(
        server,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n",
    )
    with tls_connect(server) as sock:
        sock.sendall(head)
        send_in_pieces(sock, body, piece=20_000, pause=0.02)
        status, _, answer = read_response(sock)
    assert status == 201, answer
    _, got, _ = server.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/pieces")
    assert got["data"]["value"] == value


def test_chunked_body_in_small_chunks_with_pauses_arrives_whole(
    server: Server, namespace: str
) -> None:
    value = "w" * 150_000
    body = configmap_body(namespace, "chunks", value)
    head = request_head(
        server,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    framed = b"".join(
        f"{len(body[i : i + 7000]):x}\r\n".encode() + body[i : i + 7000] + b"\r\n"
        for i in range(0, len(body), 7000)
    )
    with tls_connect(server) as sock:
        sock.sendall(head)
        send_in_pieces(sock, framed + b"0\r\n\r\n", piece=5000, pause=0.01)
        status, _, answer = read_response(sock)
    assert status == 201, answer
    _, got, _ = server.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/chunks")
    assert got["data"]["value"] == value


def server_rss(server: Server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def read_available(sock: ssl.SSLSocket) -> bytes:
    """What the server has sent so far, without waiting (TLS records that carry no data,
    such as session tickets, are not an answer)."""
    sock.settimeout(0)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return b""
    finally:
        sock.settimeout(10)


def test_endless_chunked_body_is_413_without_being_buffered(server: Server, namespace: str) -> None:
    head = request_head(
        server,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    chunk = b"%x\r\n%s\r\n" % (MIB, b" " * MIB)
    rss_before = server_rss(server)
    sent = 0
    with tls_connect(server) as sock:
        # one thread sends and reads (an SSL socket is not for two threads at once): a
        # chunk at a time, until the answer is there to read
        sock.sendall(head)
        answer = b""
        while sent < 100 * MIB and not answer:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server closed the connection: its answer is waiting
            sent += MIB
            answer = read_available(sock)
        status, headers, body = read_response(sock, answer)
    assert status == 413
    assert headers["connection"].lower() == "close"
    assert json.loads(body)["reason"] == "RequestEntityTooLarge"
    assert sent < 100 * MIB, "the server should answer before the client is done"
    assert server_rss(server) - rss_before < 40 * MIB


def test_declared_length_over_the_limit_is_413_before_the_body(
    server: Server, namespace: str
) -> None:
    head = request_head(
        server,
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        f"Content-Type: application/json\r\nContent-Length: {100 * MIB}\r\n\r\n",
    )
    with tls_connect(server) as sock:
        sock.sendall(head)
        status, _, body = read_response(sock)
    assert status == 413
    assert json.loads(body)["message"] == "Request entity too large: limit is 3145728"


def test_long_url_is_served_and_an_over_long_one_is_a_431_status(server: Server) -> None:
    name = "a" * 20_000
    status, body, _ = server.request("GET", f"/api/v1/namespaces/default/configmaps/{name}")
    assert status == 404 and body["reason"] == "NotFound"
    with tls_connect(server) as sock:
        sock.sendall(request_head(server, "GET", "/api/v1/" + "b" * (MIB + 10_000)) + b"\r\n")
        status, headers, answer = read_response(sock)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(answer)["kind"] == "Status"


def test_headers_up_to_a_mebibyte_are_served_and_more_is_a_431_status(server: Server) -> None:
    big = "X-Big: " + "h" * 900_000 + "\r\n"
    with tls_connect(server) as sock:
        sock.sendall(request_head(server, "GET", "/api/v1/namespaces/default", big) + b"\r\n")
        status, _, _ = read_response(sock)
    assert status == 200
    many = "".join(f"X-Header-{i}: " + "h" * 60_000 + "\r\n" for i in range(20))
    with tls_connect(server) as sock:
        sock.sendall(request_head(server, "GET", "/api/v1/namespaces/default", many) + b"\r\n")
        status, _, answer = read_response(sock)
    assert status == 431
    assert json.loads(answer)["code"] == 431


def test_malformed_http_is_a_400_status(server: Server) -> None:
    with tls_connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["reason"] == "BadRequest"
    assert server.request("GET", "/readyz", token=None)[0] == 200


@pytest.fixture(scope="module")
def impatient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with short connection deadlines, so that waiting for them is quick."""
    srv = start_server(
        tmp_path_factory.mktemp("impatient") / "data",
        extra=[
            "--tls-handshake-timeout",
            "1s",
            "--request-header-timeout",
            "2s",
            "--idle-connection-timeout",
            "3s",
        ],
    )
    yield srv
    srv.stop()


def test_connection_that_never_starts_tls_is_dropped(impatient_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", impatient_server.port), timeout=10) as raw:
        raw.settimeout(5)
        started = time.monotonic()
        assert raw.recv(1) == b""
        assert time.monotonic() - started < 4


def test_connection_that_sends_nothing_after_tls_is_dropped(impatient_server: Server) -> None:
    with tls_connect(impatient_server) as sock:
        assert closed_by_server(sock, within=6)


def test_header_dribbled_a_byte_at_a_time_is_dropped(impatient_server: Server) -> None:
    head = request_head(impatient_server, "GET", "/api/v1/namespaces")
    with tls_connect(impatient_server) as sock:
        started = time.monotonic()
        closed = False
        for byte in head:  # a byte every 0.2 s: 2 s of header are ~10 bytes
            try:
                sock.sendall(bytes([byte]))
                closed = closed_by_server(sock, within=0.2)
            except OSError:
                closed = True
            if closed:
                break
        assert closed
        assert time.monotonic() - started < 4


def test_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(
    impatient_server: Server,
) -> None:
    get = request_head(impatient_server, "GET", "/api/v1/namespaces/default") + b"\r\n"
    with tls_connect(impatient_server) as sock:
        for _ in range(5):  # requests 1 s apart: never idle for the 3 s limit
            sock.sendall(get)
            assert read_response(sock)[0] == 200
            time.sleep(1)
        started = time.monotonic()
        assert closed_by_server(sock, within=8)
        assert 1.5 < time.monotonic() - started < 6


def test_connections_over_the_cap_are_closed_and_logged(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", extra=["--max-connections", "5"])
    held: list[ssl.SSLSocket] = []
    try:

        def refused() -> bool:
            """Open one more connection and keep it; True once the server closes one at
            once (it counts a connection when its handshake is done on its side)."""
            sock = tls_connect(server)
            held.append(sock)
            return closed_by_server(sock, within=1.0)

        wait_for(lambda: len(held) <= 8 and refused(), timeout=20, what="a refused connection")
        assert len(held) >= 6
        wait_for(lambda: "connection limit reached" in server.log(), what="the log line saying so")
        for sock in held:
            sock.close()
        wait_for(
            lambda: server.request("GET", "/readyz", token=None)[0] == 200,
            what="new connections once the held ones are gone",
        )
    finally:
        for sock in held:
            sock.close()
        server.stop()
