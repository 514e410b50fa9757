"""Per-user limits of a real server: a client that floods gets 429 TooManyRequests with
Retry-After while another is served; a user's watches beyond the cap get 429 until one ends;
node agents are exempt; kubectl, retrying on Retry-After, still gets its answer. The admin
plays the limited user (system:masters is exempt by default, so the servers here exempt
nobody), since the cluster has no other identity yet."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Kubectl, Server, start_server, wait_for

pytestmark = pytest.mark.xdist_group("client-limits")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("limits") / "data"
    server = start_server(
        data,
        # the admin is the flooding client: limit system:masters too
        extra=["--client-qps", "2", "--client-burst", "10", "--client-limit-exempt-groups", ""],
    )
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.log()


def node_token(server: Server) -> str:
    """A node's own credential (the node token only joins)."""
    join = (server.data_dir / "node-token").read_text().strip()
    status, body, _ = server.request("POST", "/setpoint/v1/join", {"nodeName": "n1"}, token=join)
    assert status == 200, body
    return str(body["token"])


def test_a_flooding_client_gets_429_while_another_is_served(limited: Server) -> None:
    server = limited
    path = "/api/v1/namespaces/default/configmaps"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        flood = list(pool.map(lambda _: server.request("GET", path), range(30)))
        node = node_token(server)
        others = list(
            pool.map(lambda _: server.request("GET", "/api/v1/nodes", token=node), range(30))
        )
    codes = [status for status, _, _ in flood]
    assert codes.count(200) >= 10  # the burst
    assert 429 in codes
    _, body, headers = next(answer for answer in flood if answer[0] == 429)
    assert body["kind"] == "Status"
    assert body["reason"] == "TooManyRequests"
    assert body["message"] == "Too many requests, please try again later."
    assert body["details"]["retryAfterSeconds"] >= 1
    assert int(headers["Retry-After"]) == body["details"]["retryAfterSeconds"]
    # the node agent's identity is not limited per user
    assert {status for status, _, _ in others} == {200}

    # the bucket refills: the flooding client is served again a moment later
    wait_for(
        lambda: server.request("GET", path)[0] == 200, timeout=10, what="a token for the admin"
    )


def test_kubectl_retries_after_429(limited: Server) -> None:
    server = limited
    path = "/api/v1/namespaces"
    # empty the admin's bucket, then kubectl waits out Retry-After by itself
    wait_for(
        lambda: server.request("GET", path)[0] == 429, timeout=10, what="the admin to be limited"
    )
    result = Kubectl(server).run("get", "namespaces", "-o", "name", timeout=60)
    assert "namespace/default" in result.stdout


@pytest.fixture
def watch_capped(tmp_path: Path) -> Iterator[Server]:
    server = start_server(
        tmp_path / "data",
        extra=["--max-watches-per-user", "2", "--client-limit-exempt-groups", ""],
    )
    yield server
    assert server.stop() == 0


def test_watches_beyond_the_cap_get_429_until_one_ends(watch_capped: Server) -> None:
    server = watch_capped
    path = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=30"
    first = server.watch(path)
    second = server.watch(path)
    try:
        assert first.response.status == 200
        assert second.response.status == 200

        def third_refused() -> dict | None:
            status, body, headers = server.request("GET", path)
            if status == 429:
                assert headers["Retry-After"] == "1"
                return body
            raise AssertionError(f"a third watch was answered {status}")

        body = wait_for(third_refused, timeout=10, what="the third watch to be refused")
        assert body["reason"] == "TooManyRequests"
        assert body["message"].startswith('Too many watches: user "admin" has 2 open')
        # another user's watches are not counted against the admin's
        status, _, _ = server.request(
            "GET", "/api/v1/nodes?watch=true&timeoutSeconds=1", token=node_token(server)
        )
        assert status == 200
    finally:
        first.close()
    try:

        def third_allowed() -> bool:
            third = server.watch(path.replace("30", "1"))
            try:
                return bool(third.response.status == 200)
            finally:
                third.close()

        wait_for(third_allowed, timeout=10, what="a watch once one ended")
    finally:
        second.close()
