"""Load is shed, not queued: requests over the in-flight limits get 429 with Retry-After at
once, node agents keep seats of their own, every request has a deadline, concurrent
unconditional writes of one object all succeed, and big lists are answered whole.

Seats are held deterministically by clients that send a request header and keep its body
back: the server holds the seat while it waits for the body.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from setpoint.api.inflight import PriorityLevel, priority_level
from tests import objects
from tests.support import (
    KUBECTL,
    Kubectl,
    Server,
    create_namespace,
    read_response,
    request_head,
    start_server,
    tls_connect,
    wait_for,
)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two seats per kind and priority level, and a 3 s request deadline."""
    srv = start_server(
        tmp_path_factory.mktemp("seats") / "data",
        extra=[
            "--max-requests-inflight",
            "2",
            "--max-mutating-requests-inflight",
            "2",
            "--request-timeout",
            "3s",
        ],
    )
    yield srv
    srv.stop()


def hold_mutating_seat(server: Server, namespace: str, name: str) -> tuple[ssl.SSLSocket, bytes]:
    """A create whose body has not arrived: the server holds a mutating seat for it."""
    body = json.dumps({"metadata": {"name": name}, "data": {"held": "yes"}}).encode()
    sock = tls_connect(server)
    sock.sendall(
        request_head(
            server,
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n",
        )
    )
    return sock, body


def node_token(server: Server, node: str) -> str:
    """The credential of the node ``node``, got by joining with the join token (which itself
    may only join)."""
    join = (server.data_dir / "node-token").read_text().strip()
    status, body, _ = server.request("POST", "/setpoint/v1/join", {"nodeName": node}, token=join)
    assert status == 200, body
    return str(body["token"])


def lease(name: str) -> dict[str, object]:
    """The heartbeat Lease of the node ``name``."""
    return objects.lease(
        name, namespace="kube-node-lease", holderIdentity=name, leaseDurationSeconds=40
    )


def test_over_the_limit_is_429_with_retry_after_while_nodes_keep_their_seats(
    small_server: Server,
) -> None:
    namespace = create_namespace(small_server)
    node = node_token(small_server, "shed-node")  # joining is a user's request: before the flood
    held = [hold_mutating_seat(small_server, namespace, f"held-{i}") for i in range(2)]
    try:
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        cm = {"metadata": {"name": "refused"}}

        def refused() -> tuple[int, dict, dict] | None:
            status, body, headers = small_server.request("POST", path, cm)
            return (status, body, headers) if status == 429 else None

        # the held requests take their seats once the server has read their headers
        _, body, headers = wait_for(refused, what="a create refused with 429")
        assert headers["Retry-After"] == "1"
        assert body["reason"] == "TooManyRequests"
        assert body["details"]["retryAfterSeconds"] == 1
        # reads have seats of their own
        assert small_server.request("GET", path)[0] == 200
        # so do node agents: a Lease renewal with the node's credentials goes through
        created, answer, _ = small_server.request(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            lease("shed-node"),
            token=node,
        )
        assert created == 201, answer
    finally:
        for sock, body in held:
            sock.sendall(body)
            assert read_response(sock)[0] == 201
            sock.close()
    # the seats are free again
    assert small_server.request("POST", path, cm)[0] == 201


def test_kubectl_rides_out_a_429_by_retrying(small_server: Server) -> None:
    namespace = create_namespace(small_server)
    kubectl = Kubectl(small_server, namespace)
    held = [hold_mutating_seat(small_server, namespace, f"held-{i}") for i in range(2)]
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    wait_for(
        lambda: small_server.request("POST", path, {"metadata": {"name": "probe"}})[0] == 429,
        what="the seats to be taken",
    )
    process = subprocess.Popen(
        [KUBECTL, "-n", namespace, "-v=6", "create", "configmap", "patient", "--from-literal=a=b"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl.env(),
    )
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(process.stderr or []), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: any("429 Too Many Requests" in line for line in log),
            what="kubectl to be told 429",
        )
    finally:
        for sock, body in held:
            sock.sendall(body)
            read_response(sock)
            sock.close()
    assert process.wait(timeout=30) == 0, "".join(log)
    assert small_server.request("GET", f"{path}/patient")[0] == 200


def test_request_that_outlives_its_deadline_is_504_and_frees_its_seat(
    small_server: Server,
) -> None:
    namespace = create_namespace(small_server)
    sock, _ = hold_mutating_seat(small_server, namespace, "never-finished")
    started = time.monotonic()
    with sock:
        status, _, body = read_response(sock)
    assert status == 504
    assert json.loads(body)["reason"] == "Timeout"
    assert time.monotonic() - started < 10
    wait_for(
        lambda: (
            small_server.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                {"metadata": {"name": "after"}},
            )[0]
            == 201
        ),
        what="the seat to be free again",
    )


def test_watches_and_logs_hold_no_seat(small_server: Server) -> None:
    streams = [
        small_server.watch("/api/v1/namespaces/default/configmaps?watch=true", timeout=10)
        for _ in range(4)
    ]
    try:
        assert all(stream.status == 200 for stream in streams)
        assert small_server.request("GET", "/api/v1/namespaces")[0] == 200
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ],
)
def test_concurrent_unconditional_patches_of_one_object_all_succeed(
    server: Server, namespace: str, content_type: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/hot"
    assert server.request("POST", path.rsplit("/", 1)[0], {"metadata": {"name": "hot"}})[0] == 201
    server.request(
        "PATCH",
        path,
        raw=b'{"data": {"seed": "0"}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )

    def patch(i: int) -> int:
        if content_type == "application/json-patch+json":
            doc: object = [{"op": "add", "path": f"/data/k{i}", "value": str(i)}]
        else:
            doc = {"data": {f"k{i}": str(i)}}
        status, _, _ = server.request(
            "PATCH", path, raw=json.dumps(doc).encode(), headers={"Content-Type": content_type}
        )
        return status

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(patch, range(100)))
    assert statuses == [200] * 100
    _, final, _ = server.request("GET", path)
    assert {f"k{i}" for i in range(100)} <= set(final["data"])


def test_a_list_larger_than_one_write_arrives_whole_and_in_order(
    server: Server, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"

    def create(i: int) -> int:
        body = {"metadata": {"name": f"cm-{i:04d}"}, "data": {"v": "x" * 400}}
        return server.request("POST", path, body)[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(create, range(1500))) == {201}
    status, listed, headers = server.request("GET", path)
    assert status == 200
    assert int(headers["Content-Length"]) > 600_000
    names = [item["metadata"]["name"] for item in listed["items"]]
    assert names == [f"cm-{i:04d}" for i in range(1500)]
    status, everywhere, _ = server.request("GET", "/api/v1/configmaps")
    mine = [i for i in everywhere["items"] if i["metadata"]["namespace"] == namespace]
    assert len(mine) == 1500


def test_node_heartbeats_are_never_refused_during_a_user_flood(tmp_path: Path) -> None:
    """A flood of concurrent creates far over the seats is answered 201 or 429; every
    Lease renewal of a node's heartbeat loop succeeds meanwhile."""
    server = start_server(tmp_path / "data", extra=["--max-mutating-requests-inflight", "10"])
    try:
        namespace = create_namespace(server)
        token = node_token(server, "busy-node")
        base = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        assert server.request("POST", base, lease("busy-node"), token=token)[0] == 201

        def flood(i: int) -> int:
            body = {"metadata": {"name": f"f-{i}"}, "data": {"v": "x" * 2000}}
            return server.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)[0]

        def heartbeat() -> list[int]:
            """A node's lease loop: one renewal after another, as a kubelet renews."""
            statuses = []
            for _ in range(20):
                status, current, _ = server.request("GET", f"{base}/busy-node", token=token)
                assert status == 200
                current["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z"
                statuses.append(server.request("PUT", f"{base}/busy-node", current, token=token)[0])
            return statuses

        with concurrent.futures.ThreadPoolExecutor(max_workers=120) as pool:
            floods = [pool.submit(flood, i) for i in range(600)]
            renewals = pool.submit(heartbeat)
            flood_statuses = [f.result() for f in floods]
            renewal_statuses = renewals.result()
        assert set(flood_statuses) <= {201, 429}
        assert renewal_statuses == [200] * 20
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("kubeconfig", "user"),
    [
        ("controller-manager.kubeconfig", "system:kube-controller-manager"),
        ("scheduler.kubeconfig", "system:kube-scheduler"),
    ],
)
def test_the_controller_manager_and_scheduler_have_identities_of_their_own(
    server: Server, kubeconfig: str, user: str
) -> None:
    """Each kubeconfig carries a client certificate of its own component (neither the
    admin's token nor a node's), whose requests count against the system level's seats."""
    config = yaml.safe_load((server.data_dir / kubeconfig).read_text())
    [entry] = config["users"]
    assert entry["name"] == user and "token" not in entry["user"]
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(entry["user"]["client-certificate-data"])
    )
    [common_name] = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert common_name.value == user
    assert priority_level(user, ()) is PriorityLevel.SYSTEM
    assert (server.data_dir / kubeconfig).stat().st_mode & 0o077 == 0
