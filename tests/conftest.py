"""Shared fixtures: one real server per test session (tests isolate by namespace), plus
fresh servers for tests that restart or break them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import kubernetes
import pytest

from setpoint.client.api import ApiClient, ClientConfig
from tests.support import (
    Kubectl,
    Server,
    create_namespace,
    kill_node_processes,
    start_server,
    wait_for,
)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("server") / "data")
    yield srv
    code = srv.stop()
    assert code == 0, f"server exited uncleanly ({code}):\n{srv.log()}"
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="session")
def node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A whole single-machine cluster: `setpoint server` with its controllers, scheduler and
    local node agent (node ``node-server-node``) running real processes. Tests that use it
    share one xdist worker: mark them ``@pytest.mark.xdist_group("node")``."""
    data_dir = tmp_path_factory.mktemp("node") / "node-server"
    srv = start_server(data_dir, controllers=True, agent=True)
    try:

        def node_ready() -> bool:
            status, body, _ = srv.request("GET", "/api/v1/nodes/node-server-node")
            conditions = body.get("status", {}).get("conditions", []) if status == 200 else []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(node_ready, timeout=30, what="the local node to be Ready")
        yield srv
    finally:
        code = srv.stop()
        kill_node_processes(data_dir / "agent")
    assert code == 0, f"server exited uncleanly ({code}):\n{srv.log()}"
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
def namespace(server: Server) -> str:
    return create_namespace(server)


@pytest.fixture
def kubectl(server: Server, namespace: str) -> Kubectl:
    return Kubectl(server, namespace)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory on the host that pods can read and write: they run as users of their own,
    who cannot reach ``tmp_path`` (under the 0700 ``/tmp/pytest-of-<user>``)."""
    path = Path(tempfile.mkdtemp(prefix="sp-shared-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture
def core(server: Server) -> Iterator[kubernetes.client.CoreV1Api]:
    """The official Python client's core/v1 API, connected to the session server."""
    api = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    yield kubernetes.client.CoreV1Api(api)
    api.close()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[ApiClient]:
    """setpoint's own API client, connected to the session server."""
    api = ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig))
    yield api
    await api.close()
