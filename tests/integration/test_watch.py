"""Watch semantics served from the watch cache: resume, selectors, bookmarks, 410 Gone."""

from __future__ import annotations

import pytest

from tests.support import Server

CM = "/api/v1/namespaces/{ns}/configmaps"


def create(server: Server, ns: str, name: str, labels: dict[str, str] | None = None) -> dict:
    status, body, _ = server.request(
        "POST", CM.format(ns=ns), {"metadata": {"name": name, "labels": labels or {}}}
    )
    assert status == 201, body
    return body


def relabel(server: Server, ns: str, name: str, labels: dict[str, str | None]) -> dict:
    status, body, _ = server.request(
        "PATCH",
        CM.format(ns=ns) + f"/{name}",
        raw=f'{{"metadata":{{"labels":{_j(labels)}}}}}'.encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200, body
    return body


def _j(value: object) -> str:
    import json

    return json.dumps(value)


def test_watch_without_resource_version_starts_with_current_objects(
    server: Server, namespace: str
) -> None:
    create(server, namespace, "a")
    create(server, namespace, "b")
    stream = server.watch(CM.format(ns=namespace) + "?watch=true")
    try:
        first = stream.take(2)
        assert {e["type"] for e in first} == {"ADDED"}
        assert {e["object"]["metadata"]["name"] for e in first} == {"a", "b"}
        create(server, namespace, "c")
        assert stream.next()["object"]["metadata"]["name"] == "c"
    finally:
        stream.close()


def test_watch_from_resource_version_replays_only_later_changes(
    server: Server, namespace: str
) -> None:
    a = create(server, namespace, "a")
    create(server, namespace, "b")
    rv = a["metadata"]["resourceVersion"]
    stream = server.watch(CM.format(ns=namespace) + f"?watch=true&resourceVersion={rv}")
    try:
        event = stream.next()
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "b")
    finally:
        stream.close()


def test_object_leaving_a_label_selector_is_deleted_for_that_watcher(
    server: Server, namespace: str
) -> None:
    create(server, namespace, "x", {"color": "red"})
    stream = server.watch(CM.format(ns=namespace) + "?watch=true&labelSelector=color%3Dred")
    try:
        assert stream.next()["type"] == "ADDED"
        relabel(server, namespace, "x", {"color": "blue"})
        event = stream.next()
        assert event["type"] == "DELETED"
        assert event["object"]["metadata"]["labels"] == {"color": "blue"}
        relabel(server, namespace, "x", {"color": "red"})
        assert stream.next()["type"] == "ADDED"
    finally:
        stream.close()


def test_watch_ends_after_timeout_seconds(server: Server, namespace: str) -> None:
    stream = server.watch(CM.format(ns=namespace) + "?watch=true&timeoutSeconds=1")
    try:
        with pytest.raises(EOFError):
            stream.next()
    finally:
        stream.close()


def test_send_initial_events_ends_with_a_bookmark(server: Server, namespace: str) -> None:
    create(server, namespace, "a")
    stream = server.watch(
        CM.format(ns=namespace) + "?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    )
    try:
        added = stream.next()
        assert added["type"] == "ADDED"
        bookmark = stream.next()
        assert bookmark["type"] == "BOOKMARK"
        annotations = bookmark["object"]["metadata"]["annotations"]
        assert annotations == {"k8s.io/initial-events-end": "true"}
    finally:
        stream.close()


def test_table_watch_sends_rows(server: Server, namespace: str) -> None:
    create(server, namespace, "a")
    import http.client

    conn = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=server.ssl_context(), timeout=10
    )
    conn.request(
        "GET",
        CM.format(ns=namespace) + "?watch=true",
        headers={
            "Authorization": f"Bearer {server.token}",
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        },
    )
    response = conn.getresponse()
    try:
        import json

        event = json.loads(response.readline())
        assert event["object"]["kind"] == "Table"
        assert event["object"]["rows"][0]["cells"][0] == "a"
    finally:
        conn.close()


def test_a_watcher_that_disconnects_mid_stream_leaves_no_error(fresh_server: Server) -> None:
    for round_ in range(5):
        stream = fresh_server.watch("/api/v1/namespaces/default/configmaps?watch=true")
        stream.close()  # gone while the server is about to write to it
        for i in range(20):
            create(fresh_server, "default", f"r{round_}-{i}")
    status, _, _ = fresh_server.request("GET", "/readyz", token=None)
    assert status == 200
    assert "Traceback" not in fresh_server.log()


def test_a_get_reads_resource_version_as_kubernetes_does(server: Server, namespace: str) -> None:
    """ "" most recent, "0" whatever the cache holds (no store read: served while etcd has
    no quorum), "N" not older than N (504 ResourceVersionTooLarge if it never comes)."""
    written = create(server, namespace, "a")
    path = CM.format(ns=namespace) + "/a"
    rv = written["metadata"]["resourceVersion"]
    for asked in ("", "0", rv):
        status, body, _ = server.request("GET", f"{path}?resourceVersion={asked}")
        assert status == 200 and body["metadata"]["resourceVersion"] == rv, (asked, body)
    status, body, _ = server.request("GET", f"{path}?resourceVersion={int(rv) + 10**9}")
    assert status == 504, body
    assert body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge", body
    status, body, _ = server.request("GET", f"{path}?resourceVersion=x")
    assert status == 400 and "resourceVersion" in body["message"], body
