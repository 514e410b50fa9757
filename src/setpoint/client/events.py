"""EventRecorder: core/v1 Events about objects, aggregated like client-go's recorder.

``record(obj, "Normal", "ScalingReplicaSet", "Scaled up ...")`` creates an Event in the
object's namespace (``kubectl describe`` shows it). The same (object, type, reason,
message) seen again within the aggregation window bumps ``count`` and ``lastTimestamp`` on
the existing Event instead of creating another. Recording never raises: events are
best-effort, and a failure to record must not fail a reconcile.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime

from setpoint.client.api import EVENTS, ApiClient, ApiError, Obj
from setpoint.meta.timestamps import format_time

log = logging.getLogger(__name__)

AGGREGATION_WINDOW = 600.0


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, *, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int, float]] = {}

    def _source(self) -> dict[str, str]:
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        return source

    async def record(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        involved = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        key = (involved["uid"], event_type, reason, message)
        now = format_time(datetime.now(UTC))
        previous = self._seen.get(key)
        try:
            if previous and time.monotonic() - previous[3] < AGGREGATION_WINDOW:
                event_ns, event_name, count, _ = previous
                count += 1
                await self.client.patch(
                    EVENTS, event_name, {"count": count, "lastTimestamp": now}, event_ns
                )
                self._seen[key] = (event_ns, event_name, count, time.monotonic())
                return
            name = f"{involved['name']}.{secrets.token_hex(8)}"
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {k: v for k, v in involved.items() if v},
                "reason": reason,
                "message": message,
                "type": event_type,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "source": {
                    "component": self.component,
                    **({"host": self.host} if self.host else {}),
                },
                "reportingComponent": self.component,
                "reportingInstance": self.host or self.component,
            }
            await self.client.create(EVENTS, event, namespace)
            self._seen[key] = (namespace, name, 1, time.monotonic())
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except (ApiError, OSError) as exc:
            log.info("could not record event %s on %s: %s", reason, involved["name"], exc)
