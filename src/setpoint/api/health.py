"""Health endpoints, served as kube-apiserver serves them (``k8s.io/apiserver/pkg/server/healthz``).

``/livez``, ``/readyz`` and ``/healthz`` each run a list of named checks. The plain endpoint
answers ``ok`` or 500; ``?verbose`` lists every check (``[+]etcd ok``, ``[-]etcd-readiness
failed: reason withheld``) and ends ``readyz check passed`` / ``readyz check failed``; a
failure is always listed. ``?exclude=NAME`` (repeatable) skips a check (``[+]etcd excluded:
ok``) and warns about names it does not know. Because these three paths answer without a
token, they never say why a check failed; ``/readyz/<check>`` (one check, token required, as
kube-apiserver's RBAC only opens the three root paths to everyone) answers ``ok`` or
``internal server error: <reason>``, and the server logs the reasons of a failing probe.

The checks, with kube-apiserver's names so probes and dashboards written for it work:

* ``ping`` — the server answers at all;
* ``etcd`` — the store answers reads (the embedded SQLite store keeps the name, as k3s does);
* ``etcd-readiness`` (readyz) — the store takes writes: from the outcome of recent writes,
  probing with a real write only when there were none (``Store.check_writable``), so a server
  whose every write fails stops being ready, and becomes ready again once one succeeds;
* ``informer-sync`` (readyz) — the watch caches have loaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], Awaitable[None]]  # raises if unhealthy; str() of the error is why


class HealthEndpoints:
    def __init__(self, endpoints: dict[str, Sequence[Check]]) -> None:
        self.endpoints = endpoints

    def find(self, which: str, check: str) -> Check | None:
        return next((c for c in self.endpoints.get(which, ()) if c.name == check), None)

    async def serve_one(self, check: Check) -> web.Response:
        """``/readyz/<check>``: the reason is shown, so the caller must be authenticated."""
        try:
            await check.run()
        except Exception as exc:
            return _text(f"internal server error: {exc}\n", status=500)
        return _text("ok")

    async def serve(self, which: str, request: web.BaseRequest) -> web.Response:
        """``/livez``, ``/readyz``, ``/healthz`` (``which`` without the slash)."""
        excluded = set(request.query.getall("exclude", []))
        lines: list[str] = []
        reasons: list[str] = []
        for check in self.endpoints[which]:
            if check.name in excluded:
                excluded.discard(check.name)
                lines.append(f"[+]{check.name} excluded: ok\n")
                continue
            try:
                await check.run()
            except Exception as exc:
                # public endpoint: the reason goes to the log, not to the caller
                lines.append(f"[-]{check.name} failed: reason withheld\n")
                reasons.append(f"[-]{check.name} failed: {exc}")
            else:
                lines.append(f"[+]{check.name} ok\n")
        if excluded:
            names = ",".join(json.dumps(name) for name in sorted(excluded))
            lines.append(f"warn: some health checks cannot be excluded: no matches for {names}\n")
        if reasons:
            log.info("%s check failed: %s", which, "; ".join(reasons))
            return _text("".join(lines) + f"{which} check failed\n", status=500)
        if "verbose" not in request.query:
            return _text("ok")
        return _text("".join(lines) + f"{which} check passed\n")


def _text(body: str, *, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )
