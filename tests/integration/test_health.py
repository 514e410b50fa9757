"""/livez, /readyz and /healthz answer as kube-apiserver's do: ``ok``, or with ``?verbose``
every check in its ``[+]name ok`` form, ``?exclude`` to skip one, and ``/readyz/<check>``
(with a token) for one check and its reason."""

from __future__ import annotations

import pytest

from tests.support import Server


@pytest.mark.parametrize(
    ("path", "checks"),
    [
        ("/readyz", ["ping", "etcd", "etcd-readiness", "informer-sync"]),
        ("/livez", ["ping", "etcd"]),
        ("/healthz", ["ping", "etcd"]),
    ],
)
def test_verbose_lists_every_check(server: Server, path: str, checks: list[str]) -> None:
    status, body, headers = server.request("GET", f"{path}?verbose", token=None)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    name = path.strip("/")
    assert body == "".join(f"[+]{c} ok\n" for c in checks) + f"{name} check passed\n"


def test_excluded_checks_are_listed_and_unknown_ones_warned_about(server: Server) -> None:
    status, body, _ = server.request(
        "GET", "/readyz?verbose&exclude=etcd&exclude=no-such&exclude=other", token=None
    )
    assert status == 200
    assert body == (
        "[+]ping ok\n"
        "[+]etcd excluded: ok\n"
        "[+]etcd-readiness ok\n"
        "[+]informer-sync ok\n"
        'warn: some health checks cannot be excluded: no matches for "no-such","other"\n'
        "readyz check passed\n"
    )


def test_a_single_check_needs_a_token_and_unknown_ones_are_not_found(server: Server) -> None:
    status, _, _ = server.request("GET", "/readyz/etcd-readiness", token=None)
    assert status == 401
    status, body, _ = server.request("GET", "/readyz/etcd-readiness")
    assert (status, body) == (200, "ok")
    status, body, _ = server.request("GET", "/livez/ping")
    assert (status, body) == (200, "ok")
    status, _, _ = server.request("GET", "/livez/etcd-readiness")  # a readyz check only
    assert status == 404
