"""Node identities end to end, from the node's side: a real `setpoint server` with its local
agent (which joined with the server's node token and now speaks as
``system:node:node-server-node``), its credential as the agent stored it, real HTTPS and the
real kubectl.

What a node may read follows its pods (the Node authorizer), what it may write is its own
(NodeRestriction); the join token and bootstrap tokens may only join; the agent's endpoint
answers only the API server."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from setpoint.meta.timestamps import rfc3339
from setpoint.pki import issue_client_certificate, write_kubeconfig
from tests.cluster import ClusterNode
from tests.support import (
    SETPOINT,
    Kubectl,
    Server,
    create_namespace,
    free_port,
    kill_node_processes,
    start_server,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

NODE = "node-server-node"


def node_credential(server: Server) -> str:
    """The credential the local agent got when it joined (second line of its file)."""
    path = server.data_dir / "agent" / "node-credential"
    assert path.stat().st_mode & 0o077 == 0, "the node credential must be private"
    name, token = path.read_text().split()
    assert name == NODE
    return token


def join_token(server: Server) -> str:
    return (server.data_dir / "node-token").read_text().strip()


def pod(name: str, node: str, secret: str) -> dict[str, Any]:
    """A pod bound to ``node`` that mounts ``secret`` (it need not run)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "sleep", "command": ["sleep", "3600"]}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}],
            "restartPolicy": "Never",
        },
    }


def secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {}}


@pytest.fixture
def ns(node_server: Server) -> str:
    return create_namespace(node_server, "nid")


def test_the_agent_speaks_as_its_node_with_a_private_credential(node_server: Server) -> None:
    token = node_credential(node_server)
    status, body, _ = node_server.request("GET", f"/api/v1/nodes/{NODE}", token=token)
    assert status == 200, body


def test_node_reads_a_secret_only_while_its_pod_references_it(node_server: Server, ns: str) -> None:
    token = node_credential(node_server)
    path = f"/api/v1/namespaces/{ns}/secrets/mine"
    assert node_server.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("mine"))[0] == 201
    status, body, _ = node_server.request("GET", path, token=token)
    assert status == 403, body
    assert body["reason"] == "Forbidden"
    assert "no relationship found between node 'node-server-node'" in body["message"]
    created = node_server.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("p", NODE, "mine"))
    assert created[0] == 201, created[1]
    wait_for(
        lambda: node_server.request("GET", path, token=token)[0] == 200,
        timeout=10,
        what="the node to be allowed its pod's Secret",
    )
    node_server.request("DELETE", f"/api/v1/namespaces/{ns}/pods/p?gracePeriodSeconds=0")
    wait_for(
        lambda: node_server.request("GET", path, token=token)[0] == 403,
        timeout=30,
        what="the Secret to be out of reach once the pod is gone",
    )


def test_node_cannot_read_another_nodes_pods_secret(node_server: Server, ns: str) -> None:
    token = node_credential(node_server)
    node_server.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret("theirs"))
    node_server.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("q", "elsewhere", "theirs"))
    status, body, _ = node_server.request(
        "GET", f"/api/v1/namespaces/{ns}/secrets/theirs", token=token
    )
    assert status == 403, body
    # nor list them
    status, _, _ = node_server.request("GET", f"/api/v1/namespaces/{ns}/secrets", token=token)
    assert status == 403


def test_node_cannot_create_or_delete_another_node(node_server: Server) -> None:
    token = node_credential(node_server)
    other = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"evil-{uuid.uuid4().hex[:6]}"},
    }
    status, body, _ = node_server.request("POST", "/api/v1/nodes", other, token=token)
    assert status == 403, body
    assert "is not allowed to modify node" in body["message"]
    assert node_server.request("POST", "/api/v1/nodes", other)[0] == 201
    name = other["metadata"]["name"]
    status, body, _ = node_server.request("DELETE", f"/api/v1/nodes/{name}", token=token)
    assert status == 403, body
    status, body, _ = node_server.request(
        "PATCH",
        f"/api/v1/nodes/{name}",
        {"metadata": {"labels": {"x": "y"}}},
        token=token,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 403, body
    node_server.request("DELETE", f"/api/v1/nodes/{name}")


def test_node_may_not_change_its_own_restricted_labels(node_server: Server) -> None:
    token = node_credential(node_server)
    status, body, _ = node_server.request(
        "PATCH",
        f"/api/v1/nodes/{NODE}",
        {"metadata": {"labels": {"node-restriction.kubernetes.io/trusted": "yes"}}},
        token=token,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 403, body
    assert "node-restriction.kubernetes.io/trusted" in body["message"]


def test_node_cannot_create_pods_or_touch_another_nodes_pods(node_server: Server, ns: str) -> None:
    token = node_credential(node_server)
    status, body, _ = node_server.request(
        "POST", f"/api/v1/namespaces/{ns}/pods", pod("mine", NODE, "x"), token=token
    )
    assert status == 403, body
    assert "can not create pods" in body["message"]
    node_server.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("other", "elsewhere", "x"))
    status, body, _ = node_server.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/pods/other/status",
        {"status": {"phase": "Failed"}},
        token=token,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 403, body
    assert "spec.nodeName set to itself" in body["message"]
    status, body, _ = node_server.request(
        "DELETE", f"/api/v1/namespaces/{ns}/pods/other", token=token
    )
    assert status == 403, body


def test_node_cannot_create_secrets_in_kube_system(node_server: Server) -> None:
    token = node_credential(node_server)
    status, body, _ = node_server.request(
        "POST", "/api/v1/namespaces/kube-system/secrets", secret("planted"), token=token
    )
    assert status == 403, body


def test_join_token_can_only_join(node_server: Server) -> None:
    token = join_token(node_server)
    for method, path, body in (
        ("GET", "/api/v1/pods", None),
        ("GET", "/api/v1/namespaces/kube-system/secrets", None),
        ("POST", "/api/v1/namespaces/kube-system/secrets", secret("x")),
        ("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}),
    ):
        status, answer, _ = node_server.request(method, path, body, token=token)
        assert status == 403, (method, path, answer)
    status, answer, _ = node_server.request(
        "POST", "/setpoint/v1/join", {"nodeName": "joiner"}, token=token
    )
    assert status == 200, answer
    assert answer["user"] == "system:node:joiner"
    status, _, _ = node_server.request("GET", "/api/v1/nodes/joiner", token=answer["token"])
    assert status == 404  # may read its own Node (not registered yet)
    status, answer, _ = node_server.request(
        "POST", "/setpoint/v1/join", {"nodeName": "Not A Name"}, token=token
    )
    assert status == 400, answer


def test_a_node_may_not_get_another_nodes_credential(node_server: Server) -> None:
    token = node_credential(node_server)
    status, body, _ = node_server.request(
        "POST", "/setpoint/v1/join", {"nodeName": "someone-else"}, token=token
    )
    assert status == 403, body


def test_token_create_prints_a_working_bootstrap_token(node_server: Server) -> None:
    out = subprocess.run(
        [SETPOINT, "token", "create", "--data-dir", str(node_server.data_dir), "--ttl", "1h"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out.startswith("K10") and "::" in out
    status, body, _ = node_server.request(
        "POST", "/setpoint/v1/join", {"nodeName": "bootstrapped"}, token=out
    )
    assert status == 200, body
    status, _, _ = node_server.request("GET", "/api/v1/pods", token=out)
    assert status == 403


def test_expired_or_unusable_bootstrap_token_is_unauthorized(node_server: Server) -> None:
    def make(token_id: str, **data: str) -> str:
        fields = {"token-id": token_id, "token-secret": "0123456789abcdef", **data}
        obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"bootstrap-token-{token_id}"},
            "type": "bootstrap.kubernetes.io/token",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in fields.items()},
        }
        status, body, _ = node_server.request("POST", "/api/v1/namespaces/kube-system/secrets", obj)
        assert status == 201, body
        return f"{token_id}.0123456789abcdef"

    suffix = uuid.uuid4().hex[:3]
    expired = make(
        f"exp{suffix}",
        expiration=rfc3339(time.time() - 60),
        **{"usage-bootstrap-authentication": "true"},
    )
    unusable = make(f"unu{suffix}")  # no usage-bootstrap-authentication
    valid = make(
        f"val{suffix}",
        expiration=rfc3339(time.time() + 3600),
        **{"usage-bootstrap-authentication": "true"},
    )
    join = {"nodeName": "n1"}
    assert node_server.request("POST", "/setpoint/v1/join", join, token=expired)[0] == 401
    assert node_server.request("POST", "/setpoint/v1/join", join, token=unusable)[0] == 401
    assert node_server.request("POST", "/setpoint/v1/join", join, token=valid)[0] == 200
    wrong_secret = valid.split(".")[0] + ".ffffffffffffffff"
    assert node_server.request("POST", "/setpoint/v1/join", join, token=wrong_secret)[0] == 401


def client_cert(server: Server, name: str, *groups: str) -> tuple[bytes, bytes]:
    tls = server.data_dir / "tls"
    return issue_client_certificate(
        ca_cert_pem=(tls / "ca.crt").read_bytes(),
        ca_key_pem=(tls / "ca.key").read_bytes(),
        common_name=name,
        organizations=groups,
    )


def test_kubectl_with_a_client_certificate_kubeconfig(node_server: Server, tmp_path: Path) -> None:
    cert, key = client_cert(node_server, "alice", "system:masters")
    kubeconfig = tmp_path / "alice.kubeconfig"
    write_kubeconfig(
        kubeconfig,
        server_url=node_server.url,
        ca_pem=node_server.ca_file.read_bytes(),
        client_cert_pem=cert,
        client_key_pem=key,
        user_name="alice",
    )
    k = Kubectl(node_server)
    result = k("get", "namespace", "kube-system", "-o", "json", env={"KUBECONFIG": str(kubeconfig)})
    assert json.loads(result.stdout)["metadata"]["name"] == "kube-system"


def test_setpoint_kubeconfig_writes_a_client_certificate_kubeconfig(
    node_server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "bob.kubeconfig"
    command = [SETPOINT, "kubeconfig", "--data-dir", str(node_server.data_dir)]
    subprocess.run(
        [*command, "--user", "bob", "--group", "system:masters", "-o", str(path)],
        check=True,
        capture_output=True,
    )
    assert path.stat().st_mode & 0o777 == 0o600
    k = Kubectl(node_server)
    result = k("get", "nodes", NODE, "-o", "name", env={"KUBECONFIG": str(path)})
    assert result.stdout.strip() == f"node/{NODE}"


def test_a_client_certificate_of_another_ca_is_refused(node_server: Server, tmp_path: Path) -> None:
    from cryptography import x509  # noqa: F401 - the handshake refuses it before HTTP

    from setpoint.pki import ensure_self_signed_serving

    other_cert, other_key = ensure_self_signed_serving(
        tmp_path, hosts=["127.0.0.1"], name="other", common_name="intruder"
    )
    context = ssl.create_default_context(cafile=str(node_server.ca_file))
    context.load_cert_chain(other_cert, other_key)
    req = urllib.request.Request(node_server.url + "/api/v1/namespaces")
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(req, context=context, timeout=10)


# ------------------------------------------------------------------ the agent's endpoint


def kubelet_url(server: Server) -> str:
    status, node, _ = server.request("GET", f"/api/v1/nodes/{NODE}")
    assert status == 200
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    return f"https://127.0.0.1:{port}/containerLogs/default/nothing/app"


def call_kubelet(url: str, *, token: str = "", cert: tuple[Path, Path] | None = None) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(*cert)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), context=context, timeout=10
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_agent_endpoint_refuses_tokens_and_other_certificates(
    node_server: Server, tmp_path: Path
) -> None:
    url = kubelet_url(node_server)
    assert call_kubelet(url) == 401
    assert call_kubelet(url, token=node_server.token) == 401
    assert call_kubelet(url, token=node_credential(node_server)) == 401
    cert, key = client_cert(node_server, f"system:node:{NODE}", "system:nodes")
    (tmp_path / "n.crt").write_bytes(cert)
    (tmp_path / "n.key").write_bytes(key)
    assert call_kubelet(url, cert=(tmp_path / "n.crt", tmp_path / "n.key")) == 403


def test_agent_endpoint_answers_the_api_server(node_server: Server) -> None:
    tls = node_server.data_dir / "tls"
    cert = (tls / "apiserver-kubelet-client.crt", tls / "apiserver-kubelet-client.key")
    # authenticated: the agent looks the pod up (and has none of that name)
    assert call_kubelet(kubelet_url(node_server), cert=cert) == 404


# ------------------------------------------------------------------ an agent that joins


def lease_renewed(server: Server, name: str) -> str:
    status, lease, _ = server.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
    )
    return str(lease["spec"]["renewTime"]) if status == 200 else ""


def test_agent_joins_once_and_restarts_without_the_join_token(node_server: Server) -> None:
    work = Path(tempfile.mkdtemp(prefix="sp-agent-join-"))
    agent = ClusterNode(node_server, f"joiner-{uuid.uuid4().hex[:6]}", work / "agent", work / "log")
    agent.start()
    try:
        wait_for(lambda: lease_renewed(node_server, agent.name), timeout=30, what="a first lease")
        credential = work / "agent" / "node-credential"
        assert credential.stat().st_mode & 0o777 == 0o600
        assert credential.read_text().split()[0] == agent.name
        agent.stop()
        agent.join_token = False
        before = lease_renewed(node_server, agent.name)
        agent.start()
        wait_for(
            lambda: lease_renewed(node_server, agent.name) not in ("", before),
            timeout=30,
            what="the restarted agent to renew its lease as itself",
        )
        assert agent.running, agent.log()
    finally:
        agent.stop()
        kill_node_processes(agent.data_dir)
        node_server.request("DELETE", f"/api/v1/nodes/{agent.name}")
        shutil.rmtree(work, ignore_errors=True)
    assert "Traceback" not in agent.log(), agent.log()


def test_node_gets_tokens_only_for_its_pods_service_accounts(node_server: Server, ns: str) -> None:
    token = node_credential(node_server)
    wait_for(
        lambda: (
            node_server.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200
        ),
        timeout=30,
        what="the default ServiceAccount",
    )
    path = f"/api/v1/namespaces/{ns}/serviceaccounts/default/token"

    def request_for(pod_name: str) -> dict[str, Any]:
        status, pod_obj, _ = node_server.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod_name}")
        assert status == 200, pod_obj
        ref = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod_name,
            "uid": pod_obj["metadata"]["uid"],
        }
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"boundObjectRef": ref},
        }

    node_server.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("far", "elsewhere", "x"))
    # no pod of this node uses the ServiceAccount yet: the Node authorizer says no
    status, body, _ = node_server.request("POST", path, request_for("far"), token=token)
    assert status == 403, body
    node_server.request("POST", f"/api/v1/namespaces/{ns}/pods", pod("near", NODE, "x"))
    wait_for(
        lambda: node_server.request("POST", path, request_for("near"), token=token)[0] == 201,
        timeout=10,
        what="a token bound to the node's own pod",
    )
    # the ServiceAccount is now the node's to ask for, but not bound to another node's pod
    status, body, _ = node_server.request("POST", path, request_for("far"), token=token)
    assert status == 403, body
    assert "bound to a pod scheduled on a different node" in body["message"]


def test_agent_started_before_its_server_joins_once_the_server_is_up(tmp_path: Path) -> None:
    """As after a machine's reboot, where the agent may come up first: it keeps trying
    (the kubelet does too) instead of exiting, and joins and registers once it can."""
    port = free_port()
    server = start_server(tmp_path / "server", port=port)
    server.stop()
    agent = ClusterNode(server, "early-riser", tmp_path / "agent", tmp_path / "agent.log")
    agent.start()
    try:
        wait_for(
            lambda: "cannot join as node early-riser yet" in agent.log(),
            timeout=30,
            what="the agent to try and fail to reach the stopped server",
        )
        assert agent.running
        server = start_server(tmp_path / "server", port=port)
        wait_for(lambda: lease_renewed(server, agent.name), timeout=30, what="a first lease")
        assert agent.running
    finally:
        agent.stop()
        server.stop()
        kill_node_processes(tmp_path / "agent")


def test_an_agent_whose_port_is_taken_says_so_in_one_line(node_server: Server) -> None:
    """Two agents on one machine with the default port: the second one's refusal names the
    flag that fixes it, not a traceback."""
    work = Path(tempfile.mkdtemp(prefix="sp-agent-port-"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = ClusterNode(
            node_server,
            f"porty-{uuid.uuid4().hex[:6]}",
            work / "agent",
            work / "log",
            extra=["--kubelet-port", str(port)],
        )
        agent.start()
        try:
            assert agent.process is not None
            assert agent.process.wait(60) == 3
        finally:
            agent.stop()
            kill_node_processes(work / "agent")
    last = agent.log().strip().splitlines()[-1]
    assert last == (
        f"setpoint agent: cannot start: the agent's port 127.0.0.1:{port} is in use (another "
        "agent on this machine?): pass --kubelet-port PORT, or 0 for any free one"
    )
    assert "Traceback" not in agent.log()
    shutil.rmtree(work, ignore_errors=True)
