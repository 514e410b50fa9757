"""Shared fixtures: one real server per test session (tests isolate by namespace), plus
fresh servers for tests that restart or break them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from setpoint.client.api import ApiClient, ClientConfig
from tests.support import Kubectl, Server, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("server") / "data")
    yield srv
    code = srv.stop()
    assert code == 0, f"server exited uncleanly ({code}):\n{srv.log()}"
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
def namespace(server: Server) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    status, body, _ = server.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    assert status == 201, body
    yield name


@pytest.fixture
def kubectl(server: Server, namespace: str) -> Kubectl:
    return Kubectl(server, namespace)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[ApiClient]:
    """setpoint's own API client, connected to the session server."""
    api = ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig))
    yield api
    await api.close()
