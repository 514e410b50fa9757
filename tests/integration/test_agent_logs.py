"""The agent's kubelet endpoint over real HTTPS: only the API server's client certificate
gets in, kubelet's answers, and the port a NodeAgent publishes on its Node."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from setpoint.agent.agent import NodeAgent
from setpoint.agent.pods import pod_log_dir
from setpoint.agent.remotecommand import ContainerContext
from setpoint.agent.runtime import ensure_supervisor
from setpoint.agent.server import KubeletServer, PodView
from setpoint.agent.supervisor import ContainerState
from setpoint.client.api import NODES, ApiClient
from setpoint.pki import ensure_self_signed_serving, issue_client_certificate
from tests import objects
from tests.support import kill_node_processes

TOKEN = "K10" + "0" * 64 + "::server:secret"
_CA_DIR = Path(tempfile.mkdtemp(prefix="sp-kubelet-ca-"))
# a cluster CA of the tests' own: made by the helper that makes a CA with a serving cert
ensure_self_signed_serving(_CA_DIR, hosts=["127.0.0.1"], name="cluster", common_name="x")
CA_PEM = (_CA_DIR / "cluster-ca.crt").read_bytes()


def client_cert(name: str, *groups: str) -> tuple[Path, Path]:
    """Files of a client certificate for ``name`` signed by the tests' cluster CA."""
    cert, key = issue_client_certificate(
        ca_cert_pem=CA_PEM,
        ca_key_pem=(_CA_DIR / "cluster-ca.key").read_bytes(),
        common_name=name,
        organizations=groups,
    )
    paths = (_CA_DIR / f"{name}.crt", _CA_DIR / f"{name}.key")
    paths[0].write_bytes(cert)
    paths[1].write_bytes(key)
    return paths


API_SERVER = client_cert("kube-apiserver-kubelet-client")
POD = objects.pod(
    "web",
    namespace="ns",
    metadata={"uid": "u1"},
    containers=[objects.container("app", "x", command=["sh"])],
)
RUNNING = ContainerState("u1/app", "running", 1, 1, 0, 0.0, None)


def insecure(cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


async def no_streaming(pod: Any, container: Any) -> ContainerContext:
    raise AssertionError("the log endpoint never enters a container")


@pytest.fixture
async def endpoint() -> AsyncIterator[KubeletServer]:
    data_dir = Path(tempfile.mkdtemp(prefix="sp-kubelet-"))
    log_dir = pod_log_dir(data_dir, POD) / "app"
    log_dir.mkdir(parents=True)
    (log_dir / "0.log").write_text(
        "2024-01-01T00:00:00.000000000Z stdout F one\n2024-01-01T00:00:01.000000000Z stdout F two\n"
    )
    view = PodView(
        pod=lambda key: POD if key == "ns/web" else None,
        states={"u1/app": RUNNING},
        config_errors={},
        data_dir=data_dir,
        context=no_streaming,
        stdin_fifo=lambda cid: data_dir / "stdin" / cid,
        netns=lambda pod: None,
    )
    server = KubeletServer(view, client_ca_pem=CA_PEM, port=0, cert_dir=data_dir / "pki")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def get(
    server: KubeletServer,
    path: str,
    *,
    cert: tuple[Path, Path] | None = API_SERVER,
    token: str | None = None,
) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"https://127.0.0.1:{server.port}{path}", headers=headers, ssl=insecure(cert)
        ) as response,
    ):
        return response.status, await response.text()


async def test_request_without_a_certificate_is_unauthorized(endpoint: KubeletServer) -> None:
    status = await get(endpoint, "/containerLogs/ns/web/app", cert=None)
    assert status == (401, "Unauthorized")


async def test_a_token_counts_for_nothing(endpoint: KubeletServer) -> None:
    status, _ = await get(endpoint, "/containerLogs/ns/web/app", cert=None, token=TOKEN)
    assert status == 401


async def test_a_node_certificate_of_the_cluster_ca_is_forbidden(
    endpoint: KubeletServer,
) -> None:
    node = client_cert("system:node:n1", "system:nodes")
    status, text = await get(endpoint, "/containerLogs/ns/web/app", cert=node)
    assert status == 403
    assert "system:node:n1" in text


async def test_the_api_servers_certificate_gets_the_log(endpoint: KubeletServer) -> None:
    assert await get(endpoint, "/containerLogs/ns/web/app?tailLines=1") == (200, "two\n")


async def test_unknown_pod_is_not_found_as_the_kubelet_says_it(endpoint: KubeletServer) -> None:
    assert await get(endpoint, "/containerLogs/ns/nope/app") == (404, 'pod "nope" does not exist')


async def test_unknown_container_is_not_found(endpoint: KubeletServer) -> None:
    status, text = await get(endpoint, "/containerLogs/ns/web/db")
    assert (status, text) == (404, 'container "db" not found in pod "web"')


async def test_endpoint_certificate_is_made_once_and_reused(endpoint: KubeletServer) -> None:
    cert = endpoint.cert_dir / "kubelet.crt"
    before = cert.read_bytes()
    endpoint.ssl_context()
    assert cert.read_bytes() == before


# --------------------------------------------------------------------------- a NodeAgent


@pytest.fixture
async def agent(client: ApiClient) -> AsyncIterator[NodeAgent]:
    data_dir = Path(tempfile.mkdtemp(prefix="sp-agent-logs-"))
    runtime = await ensure_supervisor(data_dir / "supervisor")
    agent = NodeAgent(
        client,
        node_name=f"agent-{uuid.uuid4().hex[:8]}",
        data_dir=data_dir,
        runtime=runtime,
        kubelet_port=0,
        kubelet_client_ca=CA_PEM,
    )
    task = asyncio.create_task(agent.run())
    try:
        async with asyncio.timeout(30):
            await agent.ready.wait()
        yield agent
    finally:
        await agent.stop()
        await task
        await runtime.close()
        kill_node_processes(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_node_publishes_the_port_the_agent_listens_on(agent: NodeAgent) -> None:
    node: dict[str, Any] = await agent.client.get(NODES, agent.node_name)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    assert port == agent.kubelet.port != 0
    status, _ = await get(agent.kubelet, "/containerLogs/ns/web/app", cert=None)
    assert status == 401
