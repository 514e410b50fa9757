"""Joining against a real server (``client.join``): a node's credential is got once, kept
private in the data dir, reused, and replaced when the server refuses it; hollow nodes that
join write as themselves."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from setpoint.client.api import LEASES, NODES, ApiClient, ApiError, ClientConfig
from setpoint.client.join import CREDENTIAL_FILE, join, stored_credential
from setpoint.sim.hollow import HollowNodes
from tests.support import Server


def join_config(server: Server) -> ClientConfig:
    token = (server.data_dir / "node-token").read_text().strip()
    return ClientConfig(server.url, token, server.ca_file.read_bytes(), "test-join")


async def test_join_stores_a_private_credential_and_reuses_it(
    server: Server, tmp_path: Path
) -> None:
    name = f"join-{uuid.uuid4().hex[:6]}"
    config = await join(join_config(server), node_name=name, data_dir=tmp_path)
    assert (tmp_path / CREDENTIAL_FILE).stat().st_mode & 0o777 == 0o600
    assert config.token == stored_credential(tmp_path, name)
    assert config.token.startswith("spnode.")
    again = await join(join_config(server), node_name=name, data_dir=tmp_path)
    assert again.token == config.token
    async with ApiClient(config) as client:
        try:
            await client.get(NODES, name)
        except ApiError as exc:
            assert exc.code == 404  # allowed to look, not registered


async def test_a_refused_credential_is_replaced_by_joining_again(
    server: Server, tmp_path: Path
) -> None:
    name = f"join-{uuid.uuid4().hex[:6]}"
    (tmp_path / CREDENTIAL_FILE).write_text(f"{name}\nspnode.{name}.{'0' * 64}\n")
    config = await join(join_config(server), node_name=name, data_dir=tmp_path)
    assert config.token != f"spnode.{name}.{'0' * 64}"
    assert stored_credential(tmp_path, name) == config.token


async def test_a_credential_for_another_name_is_not_used(server: Server, tmp_path: Path) -> None:
    first = await join(join_config(server), node_name="join-a", data_dir=tmp_path)
    second = await join(join_config(server), node_name="join-b", data_dir=tmp_path)
    assert first.token != second.token
    assert stored_credential(tmp_path, "join-b") == second.token


async def test_joined_hollow_nodes_register_and_renew_as_themselves(server: Server) -> None:
    prefix = f"hj-{uuid.uuid4().hex[:5]}"
    async with ApiClient(join_config(server)) as joiner:
        nodes = HollowNodes(joiner, count=3, name_prefix=prefix, join=True)
        task = asyncio.create_task(nodes.run())
        try:
            await nodes.wait_ready(timeout=30)
            async with ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig)) as admin:
                for i in range(3):
                    await admin.get(NODES, f"{prefix}-{i}")
                    await admin.get(LEASES, f"{prefix}-{i}", "kube-node-lease")
                # the join token itself could not have written them
                try:
                    await joiner.get(NODES, f"{prefix}-0")
                    raise AssertionError("the join token read a Node")
                except ApiError as exc:
                    assert exc.code == 403
        finally:
            await nodes.stop()
            await task


def test_many_nodes_join_in_one_request(server: Server) -> None:
    token = join_config(server).token
    names = [f"batch-{i}" for i in range(3)]
    status, body, _ = server.request("POST", "/setpoint/v1/join", {"nodeNames": names}, token=token)
    assert status == 200, body
    assert body["kind"] == "NodeCredentialList"
    assert [item["nodeName"] for item in body["items"]] == names
    first = body["items"][0]["token"]
    status, _, _ = server.request("GET", "/api/v1/nodes/batch-0", token=first)
    assert status == 404  # its own Node, not registered
    # a node asks only for itself
    status, body, _ = server.request(
        "POST", "/setpoint/v1/join", {"nodeNames": ["batch-0", "batch-1"]}, token=first
    )
    assert status == 403, body


def test_malformed_join_requests_are_bad_requests(server: Server) -> None:
    token = join_config(server).token
    for body in (
        {},
        {"nodeName": "a", "nodeNames": ["b"]},
        {"nodeNames": []},
        {"nodeNames": "a"},
        {"nodeNames": [f"n-{i}" for i in range(5001)]},
        {"nodeName": 7},
        {"nodeNames": ["UPPER"]},
        [],
    ):
        status, answer, _ = server.request("POST", "/setpoint/v1/join", body, token=token)
        assert status == 400, (
            body if not isinstance(body, dict) or len(str(body)) < 80 else "",
            answer,
        )
        assert answer["kind"] == "Status"
    status, answer, _ = server.request("GET", "/setpoint/v1/join", token=token)
    assert status == 403, answer  # a join token may only POST the join path
    assert answer["kind"] == "Status"
