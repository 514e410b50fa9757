"""The Store protocol on etcd v3: a thin asyncio layer on ``grpc.aio``.

No ready-made Python etcd client covers what the store needs (range with limit at a
revision, watch progress requests, revisions on every answer), so this module talks to
etcd's gRPC API directly, with the generated etcd v3 stubs that the pinned ``aetcd`` package
ships (``aetcd.rpc``; nothing else of aetcd is used).

The semantics are the embedded store's, held to the same conformance suite:

* a revision is etcd's revision; an object's ``resourceVersion`` is its key's mod_revision;
* create / update / delete are one Txn each, comparing the key's create_revision (absent) or
  mod_revision (the revision the caller read); a failed compare reads the key in the same
  Txn, so the error says why (exists, not found, or conflict with the current value);
* scan is a Range with a limit at one revision: a later page names the first page's revision,
  so pages agree;
* watch asks for the changes after a revision (with the previous value, so a DELETE carries
  the last value) and, when the stream breaks, resumes from the last revision it delivered
  + 1, for as long as it takes (the API server's watch cache must outlive any etcd outage),
  pausing longer while etcd stays away; history etcd has compacted away is
  :class:`CompactedError`, as for SQLite;
* a watch requires a leader: a member cut off from the quorum ends it, so that it moves to a
  member of the majority instead of going quiet while the cluster moves on;
* quiet watches get progress notifications: every ``PROGRESS_INTERVAL`` the watch asks etcd
  for one (a WatchProgressRequest) and passes it on as an empty batch when the store revision
  has moved.

All member addresses go into one gRPC target (round-robin, keepalive, a member that is down
dialled again every 2 s at most rather than after gRPC's default backoff of up to 120 s).
Reads get a short timeout per attempt and are retried on another member; writes are tried
once (a write whose answer was lost may have been applied, so only the caller can decide to
retry), with a longer timeout, and fail with a :class:`BackendError` that names the cause.
Without a quorum, then, a write fails after ``WRITE_TIMEOUT`` and a read after ``READ_DEADLINE``,
while watches wait: the API server's watch cache keeps serving what it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aetcd.rpc import kv_pb2, rpc_pb2, rpc_pb2_grpc

from setpoint.store.endpoint import EtcdTLS
from setpoint.store.interface import (
    BackendError,
    CompactedError,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionConflictError,
    StoreError,
    ValueTooLargeError,
    WatchBatch,
    WatchEvent,
)

log = logging.getLogger(__name__)

READ_TIMEOUT = 1.0  # seconds per attempt of a read
# a read is tried again (pausing 0.2 s, doubling up to 1 s) for this long: an etcd leader's
# death leaves the cluster without one for an election timeout or two, which a read rides out
READ_DEADLINE = 5.0
RETRY_PAUSE = (0.2, 1.0)
WRITE_TIMEOUT = 5.0  # one attempt: a write is not retried
PROGRESS_INTERVAL = 1.0  # how often a watch asks etcd where the store revision is
WRITE_OUTCOME_FRESH = 5.0  # check_writable trusts a write outcome this recent
RECONNECT_BACKOFF_MS = (250, 2_000)  # a member that is down is dialled again within 2 s
# a broken watch is resumed after 0.25 s, doubling while etcd stays away, up to 2 s
WATCH_RETRY_PAUSE = (0.25, 2.0)
REQUIRE_LEADER = (("hasleader", "true"),)  # etcd's rpctypes.MetadataRequireLeaderKey
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# a read also tries again on UNKNOWN: how etcd 3.4 answers a linearizable read that timed out
# on the member while a new leader was being elected ("context deadline exceeded")
READ_RETRYABLE = (*RETRYABLE, grpc.StatusCode.UNKNOWN)

T = TypeVar("T")


def _key(text: str) -> bytes:
    return text.encode()


def _range_end(prefix: str) -> bytes:
    """etcd's range end for a prefix: the prefix with its last byte incremented (UTF-8 keeps
    code point order, so this is :func:`interface.prefix_end` in bytes)."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\x00"  # every key
    raw[-1] += 1
    return bytes(raw)


def _low(prefix: str) -> bytes:
    """etcd's range start for a prefix: an empty one (every key) is the lowest key, NUL."""
    return _key(prefix) or b"\x00"


def _kv(kv: Any) -> KeyValue:
    return KeyValue(kv.key.decode(), bytes(kv.value), kv.create_revision, kv.mod_revision)


def grpc_target(hosts: tuple[str, ...]) -> str:
    """One gRPC target naming every member, so a channel balances across them and moves on
    when one is down. Host names are resolved now (gRPC's address lists take addresses)."""
    addresses: list[str] = []
    for host in hosts:
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise StoreError(f"etcd member {host!r}: expected host:port")
        name = name.strip("[]")
        try:
            ipaddress.ip_address(name)
            found = [name]
        except ValueError:
            try:
                infos = socket.getaddrinfo(name, int(port), type=socket.SOCK_STREAM)
            except OSError as exc:
                raise BackendError(f"etcd member {host!r}: cannot resolve {name}: {exc}") from exc
            found = sorted({str(info[4][0]) for info in infos})
        for address in found:
            addresses.append(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
    return (
        "ipv6:" + ",".join(addresses)
        if any(a.startswith("[") for a in addresses)
        else ("ipv4:" + ",".join(addresses))
    )


def _credentials(tls: EtcdTLS) -> grpc.ChannelCredentials:
    if (tls.cert_file is None) != (tls.key_file is None):
        raise BackendError("TLS to etcd: a client certificate needs its key, and a key its cert")

    def read(path: Path | None) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BackendError(
                f"TLS to etcd: cannot read {path}: {exc.strerror}", path=str(path)
            ) from exc

    return grpc.ssl_channel_credentials(
        root_certificates=read(tls.ca_file),
        private_key=read(tls.key_file),
        certificate_chain=read(tls.cert_file),
    )


class EtcdStore:
    """A :class:`setpoint.store.interface.Store` on an etcd v3 cluster."""

    def __init__(self, hosts: tuple[str, ...], tls: EtcdTLS | None = None) -> None:
        self._hosts = hosts
        self._tls = tls
        self._where = ",".join(hosts)
        options: list[tuple[str, Any]] = [
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # gRPC's reconnect backoff grows to 120 s: after an etcd outage of a minute the
            # store would stay away for as long again; members are worth asking every 2 s
            # (not grpc.min_reconnect_backoff_ms: that is the time a connection attempt gets)
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
        ]
        target = grpc_target(hosts)
        if tls is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            # the target holds addresses; the members' certificates name the first host
            name = hosts[0].rpartition(":")[0].strip("[]")
            options.append(("grpc.ssl_target_name_override", name))
            self._channel = grpc.aio.secure_channel(target, _credentials(tls), options=options)
        self._kv = rpc_pb2_grpc.KVStub(self._channel)
        self._watch = rpc_pb2_grpc.WatchStub(self._channel)
        self._maintenance = rpc_pb2_grpc.MaintenanceStub(self._channel)
        self._last_write: tuple[float, BackendError | None] | None = None
        self._ordered_progress: bool | None = None
        self._closed = False

    @classmethod
    async def open(cls, hosts: tuple[str, ...], tls: EtcdTLS | None = None) -> EtcdStore:
        """Connect and check that the cluster answers a read (BackendError if it does not)."""
        store = cls(hosts, tls)
        try:
            await store.check_readable()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def hosts(self) -> tuple[str, ...]:
        """The members, as named (host:port)."""
        return self._hosts

    @property
    def tls(self) -> EtcdTLS | None:
        """How it speaks TLS to the members (None: plain HTTP/2)."""
        return self._tls

    # ------------------------------------------------------------------ plumbing

    def _failure(self, exc: grpc.aio.AioRpcError) -> BackendError:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return BackendError(f"etcd ({self._where}) did not answer in time")
        if code == grpc.StatusCode.UNAVAILABLE:
            return BackendError(f"etcd ({self._where}) is unavailable: {exc.details()}")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return BackendError(f"etcd ({self._where}) is out of space: {exc.details()}")
        return BackendError(f"etcd ({self._where}): {exc.details()}")

    async def _read(self, call: Callable[[float], Awaitable[T]]) -> T:
        """A read, tried again (on another member) while etcd does not answer, for up to
        ``READ_DEADLINE`` in all."""
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_DEADLINE
        pause = RETRY_PAUSE[0]
        while True:
            try:
                return await call(max(min(READ_TIMEOUT, deadline - loop.time()), 0.1))
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in READ_RETRYABLE or loop.time() + pause >= deadline:
                    raise self._failure(exc) from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_PAUSE[1])

    async def _txn(self, key: str, value: bytes, request: Any) -> Any:
        if self._closed:
            raise StoreError("store is closed")
        try:
            response = await self._kv.Txn(request, timeout=WRITE_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            # etcd past --max-request-bytes, or its gRPC server past that plus 512 KiB
            if (exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "too large" in details) or (
                exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
            ):
                raise ValueTooLargeError(key, len(value), f"etcd: {details}") from None
            failure = self._failure(exc)
            self._last_write = (time.monotonic(), failure)
            raise failure from exc
        self._last_write = (time.monotonic(), None)
        return response

    async def _range(self, request: Any) -> Any:
        try:
            return await self._read(lambda timeout: self._kv.Range(request, timeout=timeout))
        except BackendError as exc:
            cause = exc.__cause__
            if isinstance(cause, grpc.aio.AioRpcError):
                details = cause.details() or ""
                if "compacted" in details:
                    raise CompactedError(request.revision, await self._compacted_floor()) from None
                if "future revision" in details:
                    raise FutureRevisionError(
                        request.revision, await self.current_revision()
                    ) from None
            raise

    async def _compacted_floor(self) -> int:
        """The revision etcd compacted at (a watch from revision 1 is refused with it)."""
        with contextlib.suppress(BackendError, StopAsyncIteration, TimeoutError):
            async with asyncio.timeout(READ_TIMEOUT):
                stream = self._watch.Watch()
                create = rpc_pb2.WatchCreateRequest(key=b"\x00", start_revision=1)
                await stream.write(rpc_pb2.WatchRequest(create_request=create))
                async for response in stream:
                    if response.compact_revision or response.canceled:
                        stream.cancel()
                        return int(response.compact_revision)
                    if not response.created:
                        break
                stream.cancel()
        return 0

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _get_op(key: bytes) -> Any:
        return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))

    def _current_from(self, response: Any) -> KeyValue | None:
        kvs = response.responses[0].response_range.kvs
        return _kv(kvs[0]) if kvs else None

    async def create(self, key: str, value: bytes) -> KeyValue:
        raw = _key(key)
        response = await self._txn(
            key,
            value,
            rpc_pb2.TxnRequest(
                compare=[
                    rpc_pb2.Compare(
                        key=raw,
                        target=rpc_pb2.Compare.CREATE,
                        result=rpc_pb2.Compare.EQUAL,
                        create_revision=0,
                    )
                ],
                success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=raw, value=value))],
            ),
        )
        if not response.succeeded:
            raise KeyExistsError(key)
        revision = response.header.revision
        return KeyValue(key, value, revision, revision)

    def _guard(self, raw: bytes, expected_revision: int) -> Any:
        if expected_revision:
            return rpc_pb2.Compare(
                key=raw,
                target=rpc_pb2.Compare.MOD,
                result=rpc_pb2.Compare.EQUAL,
                mod_revision=expected_revision,
            )
        return rpc_pb2.Compare(
            key=raw,
            target=rpc_pb2.Compare.CREATE,
            result=rpc_pb2.Compare.GREATER,
            create_revision=0,
        )

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        raw = _key(key)
        put = rpc_pb2.PutRequest(key=raw, value=value, prev_kv=True)
        response = await self._guarded(
            key, value, expected_revision, rpc_pb2.RequestOp(request_put=put)
        )
        previous = response.responses[0].response_put.prev_kv
        return KeyValue(key, value, previous.create_revision, response.header.revision)

    async def _guarded(self, key: str, value: bytes, expected_revision: int, operation: Any) -> Any:
        """``operation`` on ``key`` in one transaction, if the key exists and (unless
        ``expected_revision`` is 0) is at that revision; else KeyNotFoundError or
        RevisionConflictError with the key's current value."""
        raw = _key(key)
        response = await self._txn(
            key,
            value,
            rpc_pb2.TxnRequest(
                compare=[self._guard(raw, expected_revision)],
                success=[operation],
                failure=[self._get_op(raw)],
            ),
        )
        if not response.succeeded:
            current = self._current_from(response)
            if current is None:
                raise KeyNotFoundError(key)
            raise RevisionConflictError(key, current)
        return response

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        delete = rpc_pb2.DeleteRangeRequest(key=_key(key), prev_kv=True)
        response = await self._guarded(
            key, b"", expected_revision, rpc_pb2.RequestOp(request_delete_range=delete)
        )
        previous = response.responses[0].response_delete_range.prev_kvs[0]
        return KeyValue(
            key, bytes(previous.value), previous.create_revision, response.header.revision
        )

    async def compact(self, revision: int) -> None:
        if self._closed:
            raise StoreError("store is closed")
        try:
            await self._kv.Compact(
                rpc_pb2.CompactionRequest(revision=revision), timeout=WRITE_TIMEOUT
            )
        except grpc.aio.AioRpcError as exc:
            if "compacted" in (exc.details() or ""):
                return  # already compacted at or past it: nothing to forget
            if "future revision" in (exc.details() or ""):
                raise FutureRevisionError(revision, await self.current_revision()) from None
            raise self._failure(exc) from exc

    async def write_batch(
        self, puts: Sequence[tuple[str, bytes]], deletes: Sequence[str] = ()
    ) -> int:
        """Put and delete keys in one Txn, unconditionally (a bulk load into a cluster that
        nothing else writes: a restore or a migration); the revision it made. One Txn holds
        at most etcd's ``--max-txn-ops`` (128 by default) and ``--max-request-bytes``."""
        ops = [
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=_key(key), value=value))
            for key, value in puts
        ] + [
            rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=_key(key)))
            for key in deletes
        ]
        # a batch too large for etcd is reported against its largest value
        key, value = max(puts, key=lambda put: len(put[1])) if puts else (deletes[0], b"")
        response = await self._txn(key, value, rpc_pb2.TxnRequest(success=ops))
        return int(response.header.revision)

    async def snapshot(self) -> AsyncIterator[bytes]:
        """etcd's snapshot of its backend (Maintenance.Snapshot) as it streams in: the bbolt
        database followed by its sha256, from whichever member answers."""
        if self._closed:
            raise StoreError("store is closed")
        try:
            async for response in self._maintenance.Snapshot(rpc_pb2.SnapshotRequest()):
                yield bytes(response.blob)
        except grpc.aio.AioRpcError as exc:
            raise self._failure(exc) from exc

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> KeyValue | None:
        response = await self._range(rpc_pb2.RangeRequest(key=_key(key)))
        return _kv(response.kvs[0]) if response.kvs else None

    async def scan(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> ListResult:
        low = max(prefix, start_after + "\x00") if start_after else prefix
        response = await self._range(
            rpc_pb2.RangeRequest(
                key=_low(low), range_end=_range_end(prefix), limit=limit, revision=revision
            )
        )
        at = revision or response.header.revision
        return ListResult([_kv(kv) for kv in response.kvs], at, bool(limit) and response.more)

    async def count(self, prefix: str) -> int:
        response = await self._range(
            rpc_pb2.RangeRequest(key=_low(prefix), range_end=_range_end(prefix), count_only=True)
        )
        return int(response.count)

    async def current_revision(self) -> int:
        response = await self._range(rpc_pb2.RangeRequest(key=b"\x00", count_only=True, limit=1))
        return int(response.header.revision)

    # ------------------------------------------------------------------ watch

    async def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[WatchBatch]:
        if self._closed:
            raise StoreError("store is closed")
        last = after_revision
        pause = WATCH_RETRY_PAUSE[0]
        while True:
            # a member that loses its leader ends the watch ("no leader") rather than keep it
            # open and silent while the rest of the cluster moves on (clientv3's
            # WithRequireLeader, as kube-apiserver watches); the watch resumes on another
            stream = self._watch.Watch(metadata=REQUIRE_LEADER)
            asker: asyncio.Task[None] | None = None
            heard = [time.monotonic()]  # when events last came: no progress is asked for then
            try:
                create = rpc_pb2.WatchCreateRequest(
                    key=_key(prefix),
                    range_end=_range_end(prefix),
                    start_revision=last + 1,
                    prev_kv=True,
                )
                await stream.write(rpc_pb2.WatchRequest(create_request=create))
                asker = asyncio.ensure_future(self._ask_progress(stream, heard))
                async for response in stream:
                    if response.compact_revision:
                        raise CompactedError(last, int(response.compact_revision))
                    if response.canceled:
                        raise BackendError(
                            f"etcd ({self._where}) cancelled the watch on {prefix}: "
                            f"{response.cancel_reason or 'no reason given'}"
                        )
                    if response.created:
                        pause = WATCH_RETRY_PAUSE[0]  # a working stream: retry soon if it breaks
                        continue
                    if response.events:
                        events = [_event(e) for e in response.events]
                        # nothing may fall behind a progress notification already passed on
                        # (etcd before 3.4.25 could send one ahead of buffered events):
                        # such an event is still delivered, never dropped, and logged
                        if events[0].revision <= last:
                            log.warning(
                                "etcd watch %s: event at revision %d after progress at %d",
                                prefix,
                                events[0].revision,
                                last,
                            )
                        last = max(last, events[-1].revision)
                        heard[0] = time.monotonic()
                        yield WatchBatch(events, last)
                    elif response.header.revision > last and await self._quiet_or_unsure(
                        prefix, last, response.header.revision
                    ):
                        last = response.header.revision
                        yield WatchBatch([], last)
                raise BackendError(f"etcd ({self._where}) closed the watch on {prefix}")
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or self._closed:
                    raise self._failure(exc) from exc
                log.info(
                    "etcd watch %s broke (%s: %s); resuming after %d in %.2fs",
                    prefix,
                    exc.code().name,
                    exc.details(),
                    last,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, WATCH_RETRY_PAUSE[1])
            finally:
                if asker is not None:
                    asker.cancel()
                stream.cancel()

    async def _quiet_or_unsure(self, prefix: str, after: int, upto: int) -> bool:
        """:meth:`_quiet`, false when etcd cannot say now: a progress notification is only
        ever skipped (the next one comes a second later), a watch never ended for it."""
        try:
            return await self._quiet(prefix, after, upto)
        except BackendError as exc:
            log.info("etcd watch %s: progress at %d not confirmed: %s", prefix, upto, exc)
            return False

    async def _quiet(self, prefix: str, after: int, upto: int) -> bool:
        """Whether nothing under ``prefix`` changed in (after, upto]: a progress notification
        to pass on. etcd before 3.4.25 / 3.5.8 answers a progress request with the store
        revision even while the watcher is still catching up, and may send it ahead of
        events it already holds (etcd issue 15220), so with those versions the claim is
        checked: no key written since ``after``, and as many keys as then (none deleted)."""
        if await self._progress_is_ordered():
            return True
        low, high = _key(prefix), _range_end(prefix)
        written = await self._range(
            rpc_pb2.RangeRequest(
                key=low, range_end=high, revision=upto, keys_only=True, min_mod_revision=after + 1
            )
        )
        if written.kvs:
            return False
        try:
            then = (
                await self._range(
                    rpc_pb2.RangeRequest(key=low, range_end=high, revision=after, count_only=True)
                )
                if after > 0
                else None  # before the first revision: no keys
            )
            now = await self._range(
                rpc_pb2.RangeRequest(key=low, range_end=high, revision=upto, count_only=True)
            )
        except CompactedError:
            return True  # nothing to compare with; no key was written, which is most of it
        return (then.count if then is not None else 0) == now.count

    async def _progress_is_ordered(self) -> bool:
        """Whether this etcd sends progress notifications in order with events (3.4.25+,
        3.5.8+); asked once."""
        if self._ordered_progress is None:
            status = await self._read(
                lambda timeout: self._maintenance.Status(rpc_pb2.StatusRequest(), timeout=timeout)
            )
            self._ordered_progress = _ordered_progress(status.version)
        return self._ordered_progress

    async def _ask_progress(self, stream: Any, heard: list[float]) -> None:
        """Ask for a progress notification once a ``PROGRESS_INTERVAL`` passes without events
        (a watch that is receiving events knows where it is)."""
        request = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
        # the stream ending (closed, broken, cancelled) ends the asking; the watch notices
        with contextlib.suppress(grpc.RpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            while True:
                await asyncio.sleep(max(heard[0] + PROGRESS_INTERVAL - time.monotonic(), 0.05))
                if time.monotonic() - heard[0] >= PROGRESS_INTERVAL:
                    await stream.write(request)
                    heard[0] = time.monotonic()

    # ------------------------------------------------------------------ health

    async def check_readable(self) -> None:
        await self.current_revision()

    async def check_writable(self) -> None:
        """From the last write if recent; otherwise etcd's own account: a leader, and no
        alarm (NOSPACE, CORRUPT) that makes it refuse writes."""
        if self._closed:
            raise StoreError("store is closed")
        last = self._last_write
        if last is not None and time.monotonic() - last[0] < WRITE_OUTCOME_FRESH:
            if last[1] is not None:
                raise last[1]
            return
        alarms = await self._read(
            lambda timeout: self._maintenance.Alarm(
                rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET), timeout=timeout
            )
        )
        if alarms.alarms:
            names = sorted({rpc_pb2.AlarmType.Name(a.alarm) for a in alarms.alarms})
            raise BackendError(f"etcd ({self._where}) refuses writes: alarm {', '.join(names)}")
        status = await self._read(
            lambda timeout: self._maintenance.Status(rpc_pb2.StatusRequest(), timeout=timeout)
        )
        if not status.leader:
            raise BackendError(f"etcd ({self._where}) has no leader")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._channel.close()


def _ordered_progress(version: str) -> bool:
    """etcd versions whose requested progress notifications wait for the watcher to catch up
    and come in order with its events: 3.4.25 and later 3.4s, 3.5.8 and later."""
    try:
        major, minor, patch = (int(part) for part in version.split("-")[0].split(".")[:3])
    except ValueError:
        return False
    if (major, minor) == (3, 4):
        return patch >= 25
    if (major, minor) == (3, 5):
        return patch >= 8
    return (major, minor) > (3, 5)


def _event(event: Any) -> WatchEvent:
    if event.type == kv_pb2.Event.DELETE:
        previous = event.prev_kv
        return WatchEvent(
            EventType.DELETE,
            KeyValue(
                event.kv.key.decode(),
                bytes(previous.value),
                previous.create_revision,
                event.kv.mod_revision,
            ),
        )
    return WatchEvent(EventType.PUT, _kv(event.kv))
