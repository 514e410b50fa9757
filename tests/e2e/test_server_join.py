"""Several API servers of one cluster: `setpoint server --server URL --token-file FILE
--datastore-endpoint etcd://...` joins the server at URL, taking its CA, keys and tokens, so
that every credential one server hands out works on the other. Real processes: one etcd
member, server A, server B joined with A's server-token, the real kubectl."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from setpoint.cli.localnode import claim_node_name, lock_path
from setpoint.pki import ca_hash
from tests.disks import EXIT_CANNOT_START, run_server_expecting_refusal
from tests.etcd import Etcd, running_etcd
from tests.support import SETPOINT, Kubectl, Server, create_namespace, start_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("etcd")]


@dataclass
class Pair:
    etcd: Etcd
    a: Server
    b: Server
    root: Path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("join")
    with running_etcd(root / "etcd") as etcd:
        a = start_server(root / "a", extra=["--datastore-endpoint", etcd.endpoint])
        try:
            b = start_server(
                root / "b",
                extra=[
                    "--server",
                    a.url,
                    "--token-file",
                    str(a.data_dir / "server-token"),
                    "--datastore-endpoint",
                    etcd.endpoint,
                ],
            )
            try:
                yield Pair(etcd, a, b, root)
            finally:
                b.stop()
        finally:
            a.stop()


def pointed_at(kubeconfig: Path, server: Server, out: Path) -> Path:
    """A copy of ``kubeconfig`` that names ``server``'s URL."""
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = server.url
    out.write_text(yaml.safe_dump(config))
    return out


def refuse(pair: Pair, data_dir: Path, *extra: str) -> str:
    """The one line a server started on the pair's etcd with ``extra`` refuses with."""
    refusal = run_server_expecting_refusal(
        data_dir, "--datastore-endpoint", pair.etcd.endpoint, *extra
    )
    assert refusal.returncode == EXIT_CANNOT_START, refusal
    return refusal.line


def token_file(pair: Pair, name: str, text: str) -> str:
    path = pair.root / name
    path.write_text(text + "\n")
    return str(path)


def test_the_joined_server_shares_the_ca_keys_and_tokens(pair: Pair) -> None:
    for name in ("tls/ca.crt", "tls/ca.key", "tls/sa.key", "token", "node-token", "server-token"):
        assert (pair.b.data_dir / name).read_bytes() == (pair.a.data_dir / name).read_bytes()
        assert (pair.b.data_dir / name).stat().st_mode & 0o777 == 0o600
    assert (pair.b.data_dir / "tls").stat().st_mode & 0o777 == 0o700
    # each serves with a certificate of its own, from the shared CA
    serving = "tls/serving.crt"
    assert (pair.b.data_dir / serving).read_bytes() != (pair.a.data_dir / serving).read_bytes()


def test_the_admin_kubeconfig_of_one_server_works_against_the_other(pair: Pair) -> None:
    kubeconfig = pointed_at(pair.a.kubeconfig, pair.b, pair.root / "admin-at-b.yaml")
    result = Kubectl(pair.b)("get", "namespaces", env={"KUBECONFIG": str(kubeconfig)})
    assert "kube-system" in result.stdout


def test_an_object_written_through_one_server_is_read_through_the_other(pair: Pair) -> None:
    namespace = create_namespace(pair.a)
    Kubectl(pair.a, namespace)("create", "configmap", "shared", "--from-literal=k=v")
    at_b = Kubectl(pair.b, namespace)

    def read() -> str | None:
        result = at_b("get", "cm", "shared", "-o", "jsonpath={.data.k}", check=False)
        return result.stdout if result.returncode == 0 else None

    assert wait_for(read, timeout=10, what="server B to serve A's ConfigMap") == "v"


def test_a_service_account_token_from_one_server_is_accepted_by_the_other(pair: Pair) -> None:
    namespace = create_namespace(pair.a)
    at_a = Kubectl(pair.a, namespace)
    at_a("create", "serviceaccount", "robot")
    token = at_a("create", "token", "robot").stdout.strip()
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}

    def who() -> str | None:
        status, body, _ = pair.b.request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review, token=token
        )
        return body["status"]["userInfo"]["username"] if status == 201 else None

    user = wait_for(who, timeout=10, what="server B to accept A's ServiceAccount token")
    assert user == f"system:serviceaccount:{namespace}:robot"


def test_a_client_certificate_from_one_server_works_on_the_other(pair: Pair) -> None:
    made = pair.root / "alice.yaml"
    subprocess.run(
        [
            *(SETPOINT, "kubeconfig", "--user", "alice", "--group", "system:masters"),
            *("--data-dir", str(pair.a.data_dir), "-o", str(made)),
        ],
        check=True,
        capture_output=True,
    )
    kubeconfig = pointed_at(made, pair.b, pair.root / "alice-at-b.yaml")
    result = Kubectl(pair.b)(
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
        env={"KUBECONFIG": str(kubeconfig)},
    )
    assert result.stdout == "alice"


def test_only_the_server_token_fetches_the_bootstrap_data(pair: Pair) -> None:
    path = "/setpoint/v1/server-bootstrap"
    server_secret = (pair.a.data_dir / "server-token").read_text().strip().rsplit(":", 1)[1]
    node_secret = (pair.a.data_dir / "node-token").read_text().strip().rsplit(":", 1)[1]

    def basic(secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"server:{secret}".encode()).decode()}

    status, body, _ = pair.a.request("GET", path, token=None, headers=basic(server_secret))
    assert status == 200
    for refused in (
        {"token": None, "headers": basic(node_secret)},  # an agent must never become a server
        {"token": "admin"},  # nor may the admin read the cluster's keys
        {"token": (pair.a.data_dir / "node-token").read_text().strip()},
        {"token": None},
    ):
        status, body, _ = pair.a.request("GET", path, **refused)  # type: ignore[arg-type]
        assert status == 401, (refused, body)
        assert body["kind"] == "Status" and body["reason"] == "Unauthorized"


def test_a_wrong_server_token_is_refused(pair: Pair) -> None:
    right = (pair.a.data_dir / "server-token").read_text().strip()
    wrong = token_file(pair, "wrong-token", right.rsplit(":", 1)[0] + ":not-the-secret")
    line = refuse(pair, pair.root / "wrong", "--server", pair.a.url, "--token-file", wrong)
    assert "refused the token (401 Unauthorized)" in line
    # the node token is not a server token either
    node_token = str(pair.a.data_dir / "node-token")
    line = refuse(pair, pair.root / "node", "--server", pair.a.url, "--token-file", node_token)
    assert "refused the token (401 Unauthorized)" in line


def test_a_token_naming_another_ca_is_refused(pair: Pair) -> None:
    secret = (pair.a.data_dir / "server-token").read_text().strip().rsplit(":", 1)[1]
    other = token_file(pair, "other-ca-token", f"K10{'0' * 64}::server:{secret}")
    line = refuse(pair, pair.root / "other-ca", "--server", pair.a.url, "--token-file", other)
    assert "presents CA sha256" in line and "wrong server or wrong token" in line


def test_joining_needs_the_clusters_datastore(pair: Pair) -> None:
    token = str(pair.a.data_dir / "server-token")
    refusal = run_server_expecting_refusal(
        pair.root / "sqlite", "--server", pair.a.url, "--token-file", token
    )
    assert refusal.returncode == EXIT_CANNOT_START
    assert refusal.line == (
        "setpoint server: cannot start: a joining server must use the cluster's datastore: "
        "pass --datastore-endpoint etcd://..."
    )


def test_an_unreachable_server_is_refused(pair: Pair) -> None:
    token = str(pair.a.data_dir / "server-token")
    line = refuse(
        pair, pair.root / "unreachable", "--server", "https://127.0.0.1:1", "--token-file", token
    )
    assert "cannot reach the server at https://127.0.0.1:1" in line


def test_a_data_dir_of_another_cluster_is_refused(pair: Pair, tmp_path: Path) -> None:
    other = tmp_path / "other"
    start_server(other).stop()  # a cluster of its own, on its own SQLite store
    token = str(pair.a.data_dir / "server-token")
    line = refuse(pair, other, "--token-file", token)
    assert "holds a different cluster's CA" in line


def test_a_fresh_server_on_the_clusters_datastore_needs_the_token(pair: Pair) -> None:
    line = refuse(pair, pair.root / "tokenless")
    assert "the datastore already holds a cluster: join it with --token-file" in line


def test_a_server_joins_through_the_datastore_with_the_token_alone(pair: Pair) -> None:
    token = str(pair.a.data_dir / "server-token")
    c = start_server(
        pair.root / "c", extra=["--datastore-endpoint", pair.etcd.endpoint, "--token-file", token]
    )
    try:
        assert (c.data_dir / "tls/ca.crt").read_bytes() == (
            pair.a.data_dir / "tls/ca.crt"
        ).read_bytes()
        assert c.token == pair.a.token
    finally:
        assert c.stop() == 0
    # restarted, it uses its files on disk (still the datastore's cluster)
    again = start_server(pair.root / "c", extra=["--datastore-endpoint", pair.etcd.endpoint])
    try:
        assert Kubectl(again)("get", "ns", "kube-system", "-o", "name").stdout.strip()
    finally:
        assert again.stop() == 0


def test_a_second_local_agent_of_one_node_name_is_refused(pair: Pair) -> None:
    cluster = ca_hash((pair.a.data_dir / "tls" / "ca.crt").read_bytes())
    with claim_node_name(cluster, "busy-node"):  # as a server with that agent does
        refusal = subprocess.run(
            [
                *(SETPOINT, "server", "--data-dir", str(pair.root / "twin")),
                *("--https-listen-port", "0", "--node-name", "busy-node"),
                *("--disable-controller-manager", "--disable-scheduler"),
                *("--datastore-endpoint", pair.etcd.endpoint),
                *("--token-file", str(pair.a.data_dir / "server-token")),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    lock_path(cluster, "busy-node").unlink()
    assert refusal.returncode == EXIT_CANNOT_START, refusal
    assert refusal.stderr.strip().splitlines() == [
        f"setpoint server: cannot start: another server of this cluster on this machine "
        f"(pid {os.getpid()}) runs a node agent named 'busy-node': give this one --node-name "
        "NAME or --disable-agent"
    ]


def test_a_bare_secret_joins_but_warns_that_the_ca_is_not_checked(pair: Pair) -> None:
    secret = (pair.a.data_dir / "server-token").read_text().strip().rsplit(":", 1)[1]
    bare = token_file(pair, "bare-token", secret)
    d = start_server(
        pair.root / "d",
        extra=[
            *("--server", pair.a.url, "--token-file", bare),
            *("--datastore-endpoint", pair.etcd.endpoint),
        ],
    )
    try:
        assert d.token == pair.a.token
        assert "trusted without being checked" in d.log()
    finally:
        assert d.stop() == 0


def test_a_joined_server_restarts_while_the_server_it_joined_through_is_down(
    pair: Pair,
) -> None:
    """Its files are on disk: it checks them against the datastore and starts, without
    fetching them again through ``--server``."""
    token = str(pair.a.data_dir / "server-token")
    flags = ["--datastore-endpoint", pair.etcd.endpoint, "--token-file", token]
    e = start_server(pair.root / "e", extra=[*flags, "--server", pair.a.url])
    assert e.stop() == 0
    gone = start_server(pair.root / "e", extra=[*flags, "--server", "https://127.0.0.1:1"])
    try:
        assert gone.token == pair.a.token
    finally:
        assert gone.stop() == 0
