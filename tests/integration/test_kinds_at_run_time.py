"""A kind registered while the server runs is served like any other — create, list, watch,
``kubectl explain`` — and goes again when it is removed: the seam CustomResourceDefinitions
and new API groups plug into.

The API server runs in this test's event loop (there is no public API to register a kind
yet: CRDs will be it), served over TLS on loopback to the real kubectl.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from setpoint.api.auth.authn import StaticTokens
from setpoint.api.server import APIServer
from setpoint.api.serving import ServingLimits, TLSSite
from setpoint.pki import client_ssl_context, ensure_server_credentials, write_kubeconfig
from setpoint.resources.catalog import KINDS
from setpoint.resources.registry import Registry, ResourceType
from setpoint.store.sqlite import SQLiteStore
from tests.support import KUBECTL

LEASE = next(t for t in KINDS if t.kind == "Lease")

LEASE_YAML = """
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: runtime, namespace: default}
spec: {holderIdentity: first}
"""


@dataclass
class Served:
    api: APIServer
    url: str
    token: str
    ca_pem: bytes
    home: Path

    async def kubectl(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            KUBECTL,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(),
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        code = process.returncode or 0
        if check:
            assert code == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return code, out.decode(), err.decode()

    async def apply(self, manifest: str) -> None:
        process = await asyncio.create_subprocess_exec(
            KUBECTL,
            "apply",
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(),
        )
        _, err = await asyncio.wait_for(process.communicate(manifest.encode()), 60)
        assert process.returncode == 0, err.decode()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.home / "kubeconfig.yaml")
        env["HOME"] = str(self.home)
        return env

    async def get(self, path: str) -> tuple[int, bytes, str]:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=client_ssl_context(self.ca_pem))
            ) as session,
            session.get(
                self.url + path, headers={"Authorization": f"Bearer {self.token}"}
            ) as response,
        ):
            return response.status, await response.read(), response.headers.get("ETag", "")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    credentials = ensure_server_credentials(tmp_path, hosts=["127.0.0.1"])
    store = await SQLiteStore.open(tmp_path / "db" / "state.db")
    registry = Registry(t for t in KINDS if t is not LEASE)
    api = APIServer(
        store,
        registry,
        authenticator=StaticTokens([StaticTokens.admin(credentials.admin_token)]),
    )
    await api.start()
    runner = web.ServerRunner(api.http_server(ServingLimits()), handle_signals=False)
    await runner.setup()
    site = TLSSite(
        runner, "127.0.0.1", 0, ssl_context=credentials.ssl_context(), handshake_timeout=10
    )
    await site.start()
    url = f"https://127.0.0.1:{site.port}"
    write_kubeconfig(
        tmp_path / "kubeconfig.yaml",
        server_url=url,
        ca_pem=credentials.ca_pem(),
        token=credentials.admin_token,
    )
    try:
        yield Served(api, url, credentials.admin_token, credentials.ca_pem(), tmp_path)
    finally:
        api.close_watches()
        await runner.cleanup()
        await api.stop()
        await store.close()


async def watch_for(lines: asyncio.StreamReader, text: str) -> str:
    while True:
        line = (await asyncio.wait_for(lines.readline(), 60)).decode()
        if not line:
            raise EOFError(f"the watch ended before {text!r}")
        if text in line:
            return line


async def test_a_kind_added_while_serving_is_served_until_it_is_removed(served: Served) -> None:
    code, _, err = await served.kubectl("get", "leases", check=False)
    assert code != 0 and "leases" in err
    _, _, root_etag = await served.get("/openapi/v3")

    await served.api.add_kind(LEASE)

    status, groups, _ = await served.get("/apis")
    assert status == 200 and b"coordination.k8s.io" in groups
    _, _, new_etag = await served.get("/openapi/v3")
    assert new_etag != root_etag
    await served.apply(LEASE_YAML)
    _, names, _ = await served.kubectl("get", "leases", "-n", "default", "-o", "name")
    assert names.split() == ["lease.coordination.k8s.io/runtime"]
    watch = await asyncio.create_subprocess_exec(
        KUBECTL,
        "get",
        "leases",
        "-n",
        "default",
        "--watch-only",
        "--output-watch-events",
        "-o",
        "custom-columns=EVENT:type,HOLDER:object.spec.holderIdentity",
        "-v=6",  # it logs its watch request: the update must come after it
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=served.env(),
    )
    assert watch.stdout is not None and watch.stderr is not None
    try:
        await watch_for(watch.stderr, "watch=true")
        await served.apply(LEASE_YAML.replace("holderIdentity: first", "holderIdentity: second"))
        line = await watch_for(watch.stdout, "second")
        assert line.split() == ["MODIFIED", "second"]
        _, explained, _ = await served.kubectl("explain", "lease.spec.holderIdentity")
        assert "holderIdentity" in explained and "string" in explained

        await served.api.remove_kind(LEASE)

        # its watch ends, and it is no longer there to ask for
        assert await asyncio.wait_for(watch.wait(), 20) is not None
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
    code, _, err = await served.kubectl("get", "leases", "-n", "default", check=False)
    assert code != 0 and "leases" in err
    status, _, _ = await served.get("/openapi/v3/apis/coordination.k8s.io/v1")
    assert status == 404

    # its objects stayed in the store: served again, there it is
    await served.api.add_kind(LEASE)
    _, holder, _ = await served.kubectl(
        "get", "lease", "runtime", "-n", "default", "-o", "jsonpath={.spec.holderIdentity}"
    )
    assert holder == "second"


async def test_a_kind_cannot_take_a_name_that_is_served(served: Served) -> None:
    from dataclasses import replace

    from setpoint.resources.registry import RegistryConflict

    configmaps = served.api.registry.lookup("", "v1", "configmaps")
    assert isinstance(configmaps, ResourceType)
    with pytest.raises(RegistryConflict):
        await served.api.add_kind(replace(configmaps, kind="Other"))
    status, _, _ = await served.get("/api/v1/namespaces/default/configmaps")
    assert status == 200
