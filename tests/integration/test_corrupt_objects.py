"""One stored value that is not valid JSON (written into the database while the server was
stopped) does not keep the server down: everything else is served, and GET, LIST, WATCH and
DELETE touching it get a Status naming its key, as kube-apiserver reports corrupt objects
(KEP-3926) — which also gives the way out, an unsafe DELETE."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from tests import objects
from tests.support import Kubectl, Server, start_server

# one server for the module, on one worker; the unsafe DELETE at the end removes the corruption
pytestmark = pytest.mark.xdist_group("corrupt-objects")

KEY = "/registry/core/configmaps/broken-ns/victim"
UNSAFE = {"ignoreStoreReadErrorWithClusterBreakingPotential": True}


def cm_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps" + (f"/{name}" if name else "")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    """A server whose ``broken-ns/victim`` ConfigMap is garbage in the database; yields it
    and the garbage's revision."""
    data = tmp_path_factory.mktemp("corrupt") / "data"
    server = start_server(data)
    for namespace in ("broken-ns", "fine-ns"):
        status, body, _ = server.request("POST", "/api/v1/namespaces", objects.namespace(namespace))
        assert status == 201, body
    for namespace, name in (("broken-ns", "victim"), ("broken-ns", "good"), ("fine-ns", "other")):
        cm = objects.configmap(name, data={"k": "v"})
        status, body, _ = server.request("POST", cm_path(namespace), cm)
        assert status == 201, body
    assert server.stop() == 0

    db = sqlite3.connect(data / "db" / "state.db", isolation_level=None)
    [(revision,)] = db.execute("SELECT mod_rev FROM kv WHERE key = ?", (KEY,)).fetchall()
    db.execute("UPDATE kv SET value = ? WHERE key = ?", (b"\x00{not json", KEY))
    db.execute("UPDATE log SET value = ? WHERE rev = ?", (b"\x00{not json", revision))
    db.close()

    server = start_server(data, port=server.port)
    yield server, revision
    code = server.stop()
    assert code == 0, server.log()
    assert "Traceback" not in server.log()


def storage_error(revision: int) -> str:
    return (
        f"StorageError: corrupt object, Code: 7, Key: {KEY}, ResourceVersion: 0, "
        f"AdditionalErrorMsg: object not decodable revision={revision}: "
    )


def assert_list_error(body: dict, revision: int) -> None:
    assert body["code"] == 500
    assert body["reason"] == "StorageReadError"
    assert body["message"] == "failed to read one or more configmaps from the storage"
    details = body["details"]
    assert (details["name"], details.get("group"), details["kind"]) == ("list", None, "configmaps")
    [cause] = details["causes"]
    assert cause["reason"] == "UnexpectedServerResponse"
    assert cause["field"] == KEY
    assert cause["message"].startswith(storage_error(revision))


def test_the_server_starts_and_serves_everything_else(broken: tuple[Server, int]) -> None:
    server, _ = broken
    status, body, _ = server.request("GET", "/readyz", token=None)
    assert (status, body) == (200, "ok")
    status, body, _ = server.request("GET", cm_path("broken-ns", "good"))
    assert status == 200, body
    status, body, _ = server.request("GET", cm_path("fine-ns"))
    assert status == 200
    assert [item["metadata"]["name"] for item in body["items"]] == ["other"]
    status, body, _ = server.request("GET", "/api/v1/secrets")
    assert status == 200
    assert "corrupt object" in server.log() and KEY in server.log()


def test_get_names_the_corrupt_key(broken: tuple[Server, int]) -> None:
    server, revision = broken
    status, body, _ = server.request("GET", cm_path("broken-ns", "victim"))
    assert status == 500
    assert body["reason"] == "InternalError"
    assert body["message"].startswith("Internal error occurred: " + storage_error(revision))
    assert body["details"]["causes"][0]["message"].startswith(storage_error(revision))
    result = Kubectl(server, "broken-ns")("get", "configmap", "victim", check=False)
    assert result.returncode != 0
    assert KEY in result.stderr


@pytest.mark.parametrize("path", [cm_path("broken-ns"), "/api/v1/configmaps"])
def test_lists_over_the_corrupt_key_name_it(broken: tuple[Server, int], path: str) -> None:
    server, revision = broken
    status, body, _ = server.request("GET", path)
    assert status == 500
    assert_list_error(body, revision)
    status, body, _ = server.request("GET", path + "?labelSelector=app%3Dnone")
    assert status == 500  # a selector cannot be matched against an undecodable object


def test_watches_over_the_corrupt_key_name_it(broken: tuple[Server, int]) -> None:
    server, revision = broken
    status, body, _ = server.request("GET", cm_path("broken-ns") + "?watch=1")
    assert status == 500
    assert_list_error(body, revision)
    watch = server.watch(cm_path("fine-ns") + "?watch=1")
    try:
        assert watch.status == 200
        assert watch.next()["object"]["metadata"]["name"] == "other"
    finally:
        watch.close()


def test_writes_to_the_corrupt_object_name_it(broken: tuple[Server, int]) -> None:
    server, revision = broken
    status, body, _ = server.request(
        "PATCH",
        cm_path("broken-ns", "victim"),
        raw=b'{"data": {"k": "w"}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 500
    assert body["message"].startswith("Internal error occurred: " + storage_error(revision))
    status, body, _ = server.request("DELETE", cm_path("broken-ns", "victim"))
    assert status == 500
    assert KEY in body["message"]


def test_unsafe_delete_is_refused_for_an_object_that_decodes(broken: tuple[Server, int]) -> None:
    server, _ = broken
    status, body, _ = server.request("DELETE", cm_path("broken-ns", "good"), UNSAFE)
    assert status == 422
    assert body["message"] == (
        'configmaps "good" is invalid: ignoreStoreReadErrorWithClusterBreakingPotential: '
        "Invalid value: true: is exclusively used to delete corrupt object(s), try again by "
        "removing this option"
    )
    status, _, _ = server.request("GET", cm_path("broken-ns", "good"))
    assert status == 200


def test_unsafe_delete_removes_the_corrupt_object_and_reads_recover(
    broken: tuple[Server, int],
) -> None:
    server, _ = broken
    status, body, _ = server.request("DELETE", cm_path("broken-ns", "victim"), UNSAFE)
    assert status == 200, body
    assert body["status"] == "Success"
    status, _, _ = server.request("GET", cm_path("broken-ns", "victim"))
    assert status == 404
    status, body, _ = server.request("GET", cm_path("broken-ns"))
    assert status == 200
    assert [item["metadata"]["name"] for item in body["items"]] == ["good"]
    status, body, _ = server.request(
        "POST", cm_path("broken-ns"), {"metadata": {"name": "victim"}, "data": {"k": "new"}}
    )
    assert status == 201, body
