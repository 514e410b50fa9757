"""What the etcd store does beyond the conformance suite (which it passes as SQLite does):
a watch that carries on across an etcd restart, reads at revisions etcd cannot answer, and
an etcd that is not there — each a StoreError that says what happened."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from setpoint.store.endpoint import EtcdTLS, open_store
from setpoint.store.etcd import EtcdStore, _ordered_progress
from setpoint.store.interface import (
    BackendError,
    CompactedError,
    EventType,
    FutureRevisionError,
    ValueTooLargeError,
    WatchEvent,
)
from tests.etcd import Etcd, make_certs, running_etcd, running_etcd_cluster
from tests.support import free_port

pytestmark = pytest.mark.xdist_group("etcd")


async def next_events(watch: object) -> list[WatchEvent]:
    while True:
        batch = await asyncio.wait_for(watch.__anext__(), timeout=20)  # type: ignore[attr-defined]
        if batch.events:
            return list(batch.events)


async def test_a_watch_resumes_after_etcd_restarts_without_losing_or_repeating(
    tmp_path: Path,
) -> None:
    with running_etcd(tmp_path / "etcd") as etcd:
        store = await EtcdStore.open(etcd.hosts)
        start = await store.current_revision()
        watch = store.watch("/r/", after_revision=start)
        await store.create("/r/a", b"1")
        assert [e.kv.key for e in await next_events(watch)] == ["/r/a"]
        ports = (etcd.client_port, etcd.peer_port)
        pending = asyncio.ensure_future(next_events(watch))
    # the member is gone; the watch waits, then resumes on the member started again
    with running_etcd(tmp_path / "etcd", ports=ports):
        written = None
        deadline = time.monotonic() + 20
        while written is None:
            try:
                written = await store.create("/r/b", b"2")
            except BackendError:
                assert time.monotonic() < deadline, "etcd did not take writes again"
                await asyncio.sleep(0.2)
        events = await pending
        assert [(e.type, e.kv.key, e.revision) for e in events] == [
            (EventType.PUT, "/r/b", written.mod_revision)
        ]
        await watch.aclose()  # type: ignore[attr-defined]
        await store.close()


async def test_reads_at_revisions_etcd_cannot_answer_say_why(tmp_path: Path) -> None:
    with running_etcd(tmp_path / "etcd") as etcd:
        store = await EtcdStore.open(etcd.hosts)
        try:
            first = await store.create("/r/a", b"1")
            for i in range(3):
                await store.update("/r/a", str(i).encode(), expected_revision=0)
            now = await store.current_revision()
            with pytest.raises(FutureRevisionError) as future:
                await store.scan("/r/", revision=now + 10)
            assert future.value.current == now
            await store.compact(now)
            await store.compact(first.mod_revision)  # older than the last: nothing to do
            with pytest.raises(CompactedError) as compacted:
                await store.scan("/r/", revision=first.mod_revision)
            assert (compacted.value.requested, compacted.value.compacted) == (
                first.mod_revision,
                now,
            )
            assert [kv.value for kv in (await store.scan("/r/", revision=now)).items] == [b"2"]
            await store.check_writable()
            # past etcd's limit (1.5 MiB), and past its gRPC server's (2 MiB)
            for size in (1600 * 1024, 2 * 1024 * 1024):
                with pytest.raises(ValueTooLargeError, match="max-request-bytes"):
                    await store.create("/r/big", b"x" * size)
            assert await store.get("/r/big") is None
        finally:
            await store.close()


async def test_an_etcd_that_is_not_there_is_a_backend_error_soon() -> None:
    began = time.monotonic()
    with pytest.raises(BackendError, match="is unavailable"):
        await EtcdStore.open((f"127.0.0.1:{free_port()}",))
    assert time.monotonic() - began < 5


def test_which_etcd_versions_send_progress_in_order_with_events() -> None:
    assert not _ordered_progress("3.4.23")
    assert _ordered_progress("3.4.25")
    assert not _ordered_progress("3.5.7")
    assert _ordered_progress("3.5.8")
    assert _ordered_progress("3.6.0-rc.1")
    assert not _ordered_progress("nonsense")


async def test_a_progress_claim_is_checked_against_the_keys_on_an_etcd_that_needs_it(
    tmp_path: Path,
) -> None:
    """etcd 3.4.23 (Debian's) may report progress past events it has not sent yet; the store
    passes a progress notification on only when no key under the prefix was written or
    deleted in between."""
    with running_etcd(tmp_path / "etcd") as etcd:
        store = await EtcdStore.open(etcd.hosts)
        try:
            await store.create("/r/mine/a", b"1")
            await store.create("/r/mine/b", b"1")
            before = await store.current_revision()
            await store.create("/r/other/x", b"1")
            assert await store._quiet("/r/mine/", before, await store.current_revision())
            await store.update("/r/mine/a", b"2", expected_revision=0)
            assert not await store._quiet("/r/mine/", before, await store.current_revision())
            after_update = await store.current_revision()
            await store.delete("/r/mine/b")
            assert not await store._quiet("/r/mine/", after_update, await store.current_revision())
            assert await store._quiet("/r/none/", 0, await store.current_revision())
        finally:
            await store.close()


async def open_on_cluster(members: list[Etcd]) -> EtcdStore:
    """A store on every member of a cluster just started, once the members elected a leader."""
    hosts = tuple(host for member in members for host in member.hosts)
    deadline = time.monotonic() + 30
    while True:
        try:
            return await EtcdStore.open(hosts)
        except BackendError:
            assert time.monotonic() < deadline, "the etcd cluster did not come up"


async def test_reads_writes_and_watches_carry_on_when_one_of_three_members_dies(
    tmp_path: Path,
) -> None:
    with running_etcd_cluster(tmp_path / "etcd", size=3) as members:
        store = await open_on_cluster(members)
        try:
            start = await store.current_revision()
            watch = store.watch("/r/", after_revision=start)
            first = await store.create("/r/a", b"1")
            assert [e.revision for e in await next_events(watch)] == [first.mod_revision]
            members[0].kill()
            # every write is tried once; one caught in flight by the kill may fail (its
            # outcome unknown to the client), those after it go to the living members
            written = []
            for i in range(20):
                try:
                    written.append(await store.create(f"/r/k{i}", b"v"))
                except BackendError:
                    assert i < 2, "writes still fail after the member died"
            assert len(written) >= 18
            assert (await store.count("/r/")) == 1 + len(written)
            seen: list[int] = []
            while len(seen) < len(written):
                seen += [e.revision for e in await next_events(watch)]
            assert seen == [kv.mod_revision for kv in written]
        finally:
            await watch.aclose()  # type: ignore[attr-defined]
            await store.close()


async def test_tls_to_etcd_with_a_client_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    with running_etcd(tmp_path / "etcd", certs=certs) as etcd:
        endpoint = f"etcds://127.0.0.1:{etcd.client_port}"
        tls = EtcdTLS(certs.ca, certs.client_cert, certs.client_key)
        store = await open_store(endpoint, etcd_tls=tls)
        try:
            created = await store.create("/r/a", b"1")
            assert (await store.scan("/r/")).items == [created]
        finally:
            await store.close()
        # without the client certificate etcd refuses the connection; over plain TCP too
        with pytest.raises(BackendError):
            await open_store(endpoint, etcd_tls=EtcdTLS(certs.ca))
        with pytest.raises(BackendError):
            await open_store(f"etcd://127.0.0.1:{etcd.client_port}")
        with pytest.raises(BackendError, match="cannot read"):
            await open_store(endpoint, etcd_tls=EtcdTLS(tmp_path / "missing.crt"))


async def test_after_a_long_etcd_outage_the_store_is_back_within_seconds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """gRPC's reconnect backoff (up to 120 s by default) is capped: once etcd is back, reads
    answer within seconds; a watch waits out the outage, re-watching with growing pauses
    (not four times a second), and delivers what was written after it."""
    caplog.set_level(logging.INFO, logger="setpoint.store.etcd")
    with running_etcd(tmp_path / "etcd") as etcd:
        store = await EtcdStore.open(etcd.hosts)
        watch = store.watch("/r/", after_revision=await store.current_revision())
        ports = (etcd.client_port, etcd.peer_port)
    pending = asyncio.ensure_future(next_events(watch))
    try:
        outage_ends = time.monotonic() + 12
        while time.monotonic() < outage_ends:  # clients keep trying meanwhile
            with pytest.raises(BackendError):
                await store.get("/r/a")
        rewatches = sum("etcd watch /r/ broke" in r.getMessage() for r in caplog.records)
        assert 3 <= rewatches <= 12, rewatches  # 0.25, 0.5, 1, 2, 2, ... s apart
        with running_etcd(tmp_path / "etcd", ports=ports):
            back = time.monotonic()
            written = None
            while written is None:
                try:
                    written = await store.create("/r/a", b"1")
                except BackendError:
                    assert time.monotonic() - back < 5, "etcd took no writes 5 s after its return"
            assert [e.kv.key for e in await pending] == ["/r/a"]
            assert time.monotonic() - back < 8
    finally:
        pending.cancel()
        await watch.aclose()  # type: ignore[attr-defined]
        await store.close()


async def etcd_leader(members: list[Etcd]) -> int:
    """The index of the member that leads, as each member's Status says."""
    for index, member in enumerate(members):
        async with grpc.aio.insecure_channel(member.hosts[0]) as channel:
            status = await rpc_pb2_grpc.MaintenanceStub(channel).Status(
                rpc_pb2.StatusRequest(), timeout=5
            )
            if status.leader == status.header.member_id:
                return index
    raise AssertionError("no member leads")


async def test_consistent_reads_ride_out_the_etcd_leaders_death(tmp_path: Path) -> None:
    """While the others elect a new leader, a member answers a linearizable read with an
    error (etcd 3.4: UNKNOWN "context deadline exceeded"); the store tries again instead of
    failing the read."""
    with running_etcd_cluster(tmp_path / "etcd", size=3) as members:
        store = await open_on_cluster(members)
        leader = await etcd_leader(members)
        failures: list[str] = []
        reading = True

        async def read() -> None:
            while reading:
                try:
                    await store.current_revision()
                    await store.get("/r/a")
                except BackendError as exc:
                    failures.append(str(exc))
                await asyncio.sleep(0.02)

        readers = [asyncio.create_task(read()) for _ in range(4)]
        try:
            await asyncio.sleep(0.3)
            members[leader].kill()
            await asyncio.sleep(6)  # an election, and the reads caught in it
        finally:
            reading = False
            await asyncio.gather(*readers)
            await store.close()
        assert not failures, failures
