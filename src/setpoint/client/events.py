"""EventRecorder: core/v1 Events about objects, correlated like client-go's recorder.

``record(obj, "Normal", "ScalingReplicaSet", "Scaled up ...")`` writes an Event in the
object's namespace (``kubectl describe`` and ``kubectl events`` show it). Before anything is
written, the :class:`EventCorrelator` decides what to write, with client-go's defaults
(``tools/record/events_cache.go``):

* **Deduplication.** The exact same event (source, object, type, reason, message) seen
  again bumps ``count`` and ``lastTimestamp`` of the Event already written (a PATCH)
  instead of creating another.
* **Aggregation.** Once 10 events about one object differ only by message within 10
  minutes, further ones are folded into a single Event whose message starts with
  ``(combined from similar events):`` and whose count grows: a ReplicaSet creating 3,000
  pods writes a dozen Events, not 3,000.
* **Spam filter.** A source may write 25 events about one object in a burst, then one
  every 5 minutes (a token bucket per source and object); the rest are dropped. This is
  what keeps a crash-looping pod from flooding the store.

Recording never raises: events are best-effort, and a failure to record must not fail a
reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from setpoint.client.api import EVENTS, ApiClient, ApiError, Obj
from setpoint.client.workqueue import TokenBucket
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.timestamps import format_time

log = logging.getLogger(__name__)

LRU_CACHE_ENTRIES = 4096
AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL_SECONDS = 600.0
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
AGGREGATE_MESSAGE_PREFIX = "(combined from similar events): "
QUEUE_LENGTH = 1000  # client-go's maxQueuedEvents
EVENT_QPS = 50.0  # the kubelet's --event-qps
EVENT_BURST = 100  # the kubelet's --event-burst
DROP_WARNING_INTERVAL = 10.0


K = TypeVar("K")
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """A bounded mapping that forgets the least recently used key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.size:
            self._data.popitem(last=False)


@dataclass
class _Aggregate:
    messages: set[str] = field(default_factory=set)
    last_seen: float = 0.0


@dataclass(frozen=True)
class Observation:
    """An Event written before: its name, namespace and count."""

    namespace: str
    name: str
    count: int
    first_timestamp: str


@dataclass(frozen=True)
class Correlation:
    """What to do with one event: drop it, create it, or bump an existing one."""

    skip: bool = False
    key: str = ""  # the dedup key this event is remembered under
    message: str = ""  # the message to write (aggregated events get a prefix)
    previous: Observation | None = None  # bump this one instead of creating


def _source_object_key(event: Obj) -> str:
    source, involved = event.get("source") or {}, event.get("involvedObject") or {}
    return "\x00".join(
        str(v)
        for v in (
            source.get("component", ""),
            source.get("host", ""),
            involved.get("kind", ""),
            involved.get("namespace", ""),
            involved.get("name", ""),
            involved.get("uid", ""),
            involved.get("apiVersion", ""),
        )
    )


class EventCorrelator:
    """client-go's ``EventCorrelator``: aggregation, deduplication and spam filtering,
    with an injectable monotonic ``clock`` for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._spam: _LRU[str, TokenBucket] = _LRU(LRU_CACHE_ENTRIES)
        self._aggregates: _LRU[str, _Aggregate] = _LRU(LRU_CACHE_ENTRIES)
        self._observed: _LRU[str, Observation] = _LRU(LRU_CACHE_ENTRIES)

    def correlate(self, event: Obj) -> Correlation:
        now = self.clock()
        object_key = _source_object_key(event)
        kind = f"{event.get('type', '')}\x00{event.get('reason', '')}"
        message = str(event.get("message", ""))
        aggregate_key = f"{object_key}\x00{kind}"
        record = self._aggregates.get(aggregate_key)
        if record is None or now - record.last_seen > AGGREGATE_INTERVAL_SECONDS:
            record = _Aggregate()
        record.messages.add(message)
        record.last_seen = now
        self._aggregates.put(aggregate_key, record)
        if len(record.messages) < AGGREGATE_MAX_EVENTS:
            key = f"{aggregate_key}\x00{message}"
        else:
            record.messages.pop()  # never grow the set past the threshold
            key, message = aggregate_key, AGGREGATE_MESSAGE_PREFIX + message
        bucket = self._spam.get(object_key)
        if bucket is None:
            bucket = TokenBucket(SPAM_QPS, SPAM_BURST, clock=self.clock)
            self._spam.put(object_key, bucket)
        if not bucket.try_accept():
            return Correlation(skip=True)
        return Correlation(key=key, message=message, previous=self._observed.get(key))

    def observed(self, key: str, observation: Observation) -> None:
        """Remember the Event now written for ``key`` (the server's answer)."""
        self._observed.put(key, observation)


class EventRecorder:
    """Writes Events from one ``component`` (``source.component``; ``host`` is the node
    for agents). Recorders made with :meth:`for_component` share the client."""

    def __init__(
        self,
        client: ApiClient,
        component: str,
        *,
        host: str = "",
        correlator: EventCorrelator | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock
        self.correlator = correlator or EventCorrelator()

    def for_component(self, component: str) -> EventRecorder:
        """A recorder for another component (each controller is its own event source, as
        in kube-controller-manager), with its own correlation state."""
        return EventRecorder(self.client, component, host=self.host, clock=self.clock)

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
        source = {"component": self.component, **({"host": self.host} if self.host else {})}
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": source,
        }
        verdict = self.correlator.correlate(event)
        if verdict.skip:
            log.debug("event %s on %s dropped by the spam filter", reason, involved["name"])
            return
        now = format_time(self.clock.now())
        try:
            previous = verdict.previous
            if previous is not None and previous.count > 0:
                count = previous.count + 1
                patch = {"count": count, "lastTimestamp": now, "message": verdict.message}
                try:
                    await self.client.patch(EVENTS, previous.name, patch, previous.namespace)
                    self.correlator.observed(verdict.key, replace(previous, count=count))
                    return
                except ApiError as exc:
                    if not exc.is_not_found:
                        raise
                    # expired (event TTL) or deleted: start a new Event below
            name = f"{involved['name']}.{secrets.token_hex(8)}"
            event["metadata"] = {"name": name, "namespace": namespace}
            event.update(
                message=verdict.message,
                count=1,
                firstTimestamp=now,
                lastTimestamp=now,
                reportingComponent=self.component,
                reportingInstance=self.host or self.component,
            )
            await self.client.create(EVENTS, event, namespace)
            self.correlator.observed(verdict.key, Observation(namespace, name, 1, now))
        except (ApiError, OSError) as exc:
            log.info("could not record event %s on %s: %s", reason, involved["name"], exc)


class _Outbox:
    """The queue and rate limit one sender drains for a family of queued recorders."""

    def __init__(self, backlog: int, qps: float, burst: int) -> None:
        self.queue: asyncio.Queue[tuple[EventRecorder, Obj, str, str, str]] = asyncio.Queue(backlog)
        self.limit = TokenBucket(qps, burst)
        self.dropped = 0
        self._last_warning = 0.0

    def put(self, item: tuple[EventRecorder, Obj, str, str, str]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_warning >= DROP_WARNING_INTERVAL:
                self._last_warning = now
                log.warning(
                    "event queue full (%d queued): dropping events, %d so far",
                    self.queue.qsize(),
                    self.dropped,
                )


class QueuedEventRecorder(EventRecorder):
    """An :class:`EventRecorder` whose :meth:`record` only queues the event; one sender,
    :meth:`run` (a task its owner starts and cancels), writes them in order.

    This is client-go's broadcaster as the kubelet and kube-controller-manager use it:
    ``Eventf`` returns at once and one goroutine writes to the API server, so a worker never
    waits for an event, and a burst of work (3,000 pods created and scheduled) does not turn
    into a burst of Event writes competing with the writes users wait for. Writes are rate
    limited (the kubelet's ``--event-qps`` 50, ``--event-burst`` 100 by default); a full
    queue drops the event (client-go's ``DropIfChannelFull``, with a warning at most every
    10 s); events still queued when the sender is cancelled are lost, as they are when the
    kubelet stops. Recorders made with :meth:`for_component` share the queue and sender."""

    def __init__(
        self,
        client: ApiClient,
        component: str,
        *,
        host: str = "",
        backlog: int = QUEUE_LENGTH,
        qps: float = EVENT_QPS,
        burst: int = EVENT_BURST,
        outbox: _Outbox | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(client, component, host=host, clock=clock)
        self._outbox = outbox or _Outbox(backlog, qps, burst)

    def for_component(self, component: str) -> QueuedEventRecorder:
        return QueuedEventRecorder(
            self.client, component, host=self.host, outbox=self._outbox, clock=self.clock
        )

    async def record(self, obj: Obj, event_type: str, reason: str, message: str) -> None:
        self._outbox.put((self, obj, event_type, reason, message))

    async def run(self) -> None:
        """Write queued events one at a time until cancelled."""
        outbox = self._outbox
        while True:
            recorder, obj, event_type, reason, message = await outbox.queue.get()
            await asyncio.sleep(outbox.limit.reserve())
            try:
                await EventRecorder.record(recorder, obj, event_type, reason, message)
            except Exception:  # a lost event must not stop the ones behind it
                log.exception("could not record event %s", reason)
