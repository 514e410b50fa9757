"""`setpoint server --datastore-endpoint etcd://...`: the whole API on a real etcd (a test
member on loopback), driven by the real kubectl. No agent: the controllers make the pods,
which stay Pending without a node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.etcd import make_certs, running_etcd, tls_datastore_flags
from tests.support import Kubectl, Server, create_namespace, start_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("etcd")]


def stop_cleanly(server: Server) -> None:
    code = server.stop()
    assert code == 0, f"server exited uncleanly ({code}):\n{server.log()}"
    assert "Traceback" not in server.log(), server.log()


def big_pod(size: int) -> dict[str, Any]:
    container = {"name": "c", "image": "busybox", "env": [{"name": "BIG", "value": "x" * size}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big"},
        "spec": {"containers": [container]},
    }


def test_a_server_on_etcd_serves_kubectl_and_keeps_its_objects_there(tmp_path: Path) -> None:
    with running_etcd(tmp_path / "etcd") as etcd:
        server = start_server(
            tmp_path / "data", controllers=True, extra=["--datastore-endpoint", etcd.endpoint]
        )
        try:
            namespace = create_namespace(server)
            k = Kubectl(server, namespace)
            k("create", "deployment", "web", "--image=busybox", "--replicas=2", "--", "sleep", "9")

            def two_pods() -> list[str] | None:
                names = k("get", "pods", "-o", "name").stdout.split()
                return names if len(names) == 2 else None

            pods = wait_for(two_pods, timeout=30, what="the deployment's two pods")
            table = k("get", "pods").stdout
            assert all(name.removeprefix("pod/") in table for name in pods)
            assert "Pending" in table
            assert k("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "2"

            # an object the API takes (under 3 MiB) but etcd will not (over its 1.5 MiB):
            # 413 with the reason, as for a body over the API's own limit, never a 500
            status, body, _ = server.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", big_pod(2 * 1024 * 1024)
            )
            assert status == 413, body
            assert body["reason"] == "RequestEntityTooLarge"
            assert "--max-request-bytes" in body["message"]
        finally:
            stop_cleanly(server)
        # nothing was written to the embedded store: the objects live in etcd
        assert not (tmp_path / "data" / "db" / "state.db").exists()

        # a server started again on the same etcd finds them where it left them
        again = start_server(tmp_path / "data", extra=["--datastore-endpoint", etcd.endpoint])
        try:
            k = Kubectl(again, namespace)
            assert sorted(k("get", "pods", "-o", "name").stdout.split()) == sorted(pods)
            k("scale", "deployment", "web", "--replicas=3")
            assert k("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
        finally:
            stop_cleanly(again)


def test_a_server_on_etcd_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    with running_etcd(tmp_path / "etcd", certs=certs) as etcd:
        server = start_server(
            tmp_path / "data",
            extra=tls_datastore_flags(etcd, certs),
        )
        try:
            k = Kubectl(server, create_namespace(server))
            k("create", "configmap", "over-tls", "--from-literal=a=1")
            assert k("get", "cm", "over-tls", "-o", "jsonpath={.data.a}").stdout == "1"
        finally:
            stop_cleanly(server)
