"""The node IPAM controller in-process against a real server of its own: Nodes are created
and deleted through the API, and their ``spec.podCIDR`` is what the controller wrote."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.client.api import EVENTS, NODES, ApiClient, ClientConfig
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.controllers.nodeipam import NodeIPAMController
from tests.support import Server, eventually, start_server

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def ipam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(Path(tmp_path_factory.mktemp("nodeipam")) / "data")
    yield srv
    assert srv.stop() == 0, srv.log()
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
async def client(ipam_server: Server) -> AsyncIterator[ApiClient]:
    api = ApiClient(ClientConfig.from_kubeconfig(ipam_server.kubeconfig))
    yield api
    for node in (await api.list(NODES)).get("items") or []:
        await api.delete(NODES, node["metadata"]["name"])
    await api.close()


class RunningIPAM:
    """A node IPAM controller (``/26`` of a ``/24``: four node subnets) that can be
    stopped and started again, as a controller manager restarts."""

    def __init__(self, client: ApiClient, cluster_cidr: str, mask: int) -> None:
        self.client, self.cluster_cidr, self.mask = client, cluster_cidr, mask
        self.informers: SharedInformers | None = None
        self.controller: NodeIPAMController | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.informers = SharedInformers(self.client)
        self.controller = NodeIPAMController(
            self.informers,
            EventRecorder(self.client, "cidrAllocator"),
            cluster_cidr=self.cluster_cidr,
            node_cidr_mask_size=self.mask,
        )
        self.informers.start()
        await self.informers.wait_synced()
        self.task = asyncio.create_task(self.controller.run())

    async def stop(self) -> None:
        assert self.controller and self.informers and self.task
        await self.controller.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.informers.stop()


@pytest.fixture
async def ipam(client: ApiClient) -> AsyncIterator[RunningIPAM]:
    running = RunningIPAM(client, "10.99.0.0/24", 26)
    await running.start()
    yield running
    await running.stop()


async def add_node(client: ApiClient, name: str = "") -> str:
    name = name or f"n-{uuid.uuid4().hex[:6]}"
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    return name


async def pod_cidr_of(client: ApiClient, name: str) -> str:
    async def has_one() -> str:
        node = await client.get(NODES, name)
        cidr = (node.get("spec") or {}).get("podCIDR")
        assert cidr, node
        assert node["spec"]["podCIDRs"] == [cidr]
        return str(cidr)

    return await eventually(has_one, timeout=20)


async def test_each_node_gets_its_own_subnet(client: ApiClient, ipam: RunningIPAM) -> None:
    names = [await add_node(client) for _ in range(3)]
    cidrs = [await pod_cidr_of(client, n) for n in names]
    assert sorted(cidrs) == ["10.99.0.0/26", "10.99.0.128/26", "10.99.0.64/26"]


async def test_a_restarted_controller_keeps_what_nodes_carry(
    client: ApiClient, ipam: RunningIPAM
) -> None:
    first = [await pod_cidr_of(client, await add_node(client)) for _ in range(2)]
    await ipam.stop()
    await ipam.start()
    later = await pod_cidr_of(client, await add_node(client))
    assert later not in first


async def test_exhausted_range_is_an_event_and_a_freed_subnet_is_given_out(
    client: ApiClient, ipam: RunningIPAM
) -> None:
    names = [await add_node(client) for _ in range(4)]
    cidrs = {n: await pod_cidr_of(client, n) for n in names}
    waiting = await add_node(client, "waiting-" + uuid.uuid4().hex[:4])

    async def not_available() -> bool:
        events = (await client.list(EVENTS, "default")).get("items") or []
        (event,) = [e for e in events if e["involvedObject"].get("name") == waiting]
        assert event["reason"] == "CIDRNotAvailable"
        assert event["message"] == f"Node {waiting} status is now: CIDRNotAvailable"
        assert event["source"]["component"] == "cidrAllocator"
        return True

    await eventually(not_available, timeout=20)
    assert not (await client.get(NODES, waiting)).get("spec", {}).get("podCIDR")
    await client.delete(NODES, names[1])
    assert await pod_cidr_of(client, waiting) == cidrs[names[1]]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--cluster-cidr", "10.96.0.0/12"], "overlaps --service-cluster-ip-range"),
        (["--cluster-cidr", "10.0.0.0/16", "--node-cidr-mask-size", "8"], "mask size 8"),
    ],
)
def test_bad_pod_ranges_stop_the_server_with_one_line(
    tmp_path: Path, flags: list[str], said: str
) -> None:
    import subprocess

    from tests.support import SETPOINT

    done = subprocess.run(
        [SETPOINT, "server", "--data-dir", str(tmp_path / "d"), "--disable-agent", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert said in done.stderr and "Traceback" not in done.stderr
