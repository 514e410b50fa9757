"""The work queue: de-duplication, one worker per key, backoff."""

from __future__ import annotations

import asyncio

import pytest

from setpoint.client.api import ApiError
from setpoint.client.workqueue import Requeue, ShutDown, WorkQueue, run_worker


async def test_a_waiting_key_is_held_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(3):
        queue.add("ns/a")
    queue.add("ns/b")
    assert len(queue) == 2
    assert await queue.get() == "ns/a"
    assert await queue.get() == "ns/b"


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("k")
    key = await queue.get()
    queue.add("k")  # changed again while a worker has it
    assert len(queue) == 0  # not handed to a second worker
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "k"


async def test_failures_back_off_exponentially_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01)
    assert [queue.item_backoff("k") for _ in range(4)] == [0.01, 0.02, 0.04, 0.08]
    queue.forget("k")
    assert queue.item_backoff("k") == 0.01


async def test_rate_limited_add_arrives_after_its_delay() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.05)
    loop = asyncio.get_running_loop()
    start = loop.time()
    queue.add_rate_limited("k")
    assert await asyncio.wait_for(queue.get(), 1) == "k"
    assert loop.time() - start >= 0.04


async def test_worker_retries_a_failing_reconcile_until_it_succeeds() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.001)
    attempts: list[str] = []

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        queue.shut_down()

    queue.add("k")
    await asyncio.wait_for(run_worker(queue, reconcile), 2)
    assert attempts == ["k", "k", "k"]
    assert queue.retries("k") == 0


async def test_worker_drops_a_key_whose_namespace_is_being_deleted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every create in a terminating namespace fails: client-go's controllers forget the key
    rather than retry it (and an API error is never worth a traceback)."""
    queue: WorkQueue[str] = WorkQueue(base_delay=0.001)
    attempts: list[str] = []
    terminating = ApiError(
        403,
        {
            "reason": "Forbidden",
            "details": {"causes": [{"reason": "NamespaceTerminating", "message": "going"}]},
        },
    )

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if key == "a":
            raise terminating
        if key == "b" and attempts.count("b") == 1:
            raise ApiError(409, {"reason": "Conflict"})
        if attempts.count("b") == 2:
            queue.shut_down()

    queue.add("a")
    queue.add("b")
    await asyncio.wait_for(run_worker(queue, reconcile), 2)
    assert attempts == ["a", "b", "b"]
    assert queue.retries("a") == 0
    # a conflict is retried without a warning: two writers racing is routine
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


async def test_an_unreachable_api_server_is_retried_with_one_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.001)
    attempts: list[str] = []

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if len(attempts) == 1:
            raise ConnectionRefusedError(111, "Connection refused")
        queue.shut_down()

    queue.add("k")
    await asyncio.wait_for(run_worker(queue, reconcile), 2)
    assert attempts == ["k", "k"]
    assert "Connection refused" in caplog.text
    assert not any(record.exc_info for record in caplog.records)


async def test_requeue_without_delay_backs_off_further_each_time() -> None:
    """``Requeue()`` (controller-runtime's ``Requeue: true``) is rate-limited and the worker
    does not forget the key first, so consecutive requests wait 1x, 2x, 4x, ... the base."""
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01)
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, float]] = []

    async def reconcile(key: str) -> Requeue | None:
        seen.append((queue.retries(key), loop.time()))
        if len(seen) < 5:
            return Requeue()
        queue.shut_down()
        return None

    queue.add("k")
    await asyncio.wait_for(run_worker(queue, reconcile), 5)
    assert [retries for retries, _ in seen] == [0, 1, 2, 3, 4]
    last_wait = seen[4][1] - seen[3][1]
    assert last_wait >= 0.08 * 0.9  # the fourth wait is 0.01 * 2**3
    assert queue.retries("k") == 0  # the reconcile that ended well forgot the backoff


async def test_requeue_after_forgets_the_backoff_and_comes_back_later() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.01)
    loop = asyncio.get_running_loop()
    calls: list[float] = []

    async def reconcile(key: str) -> Requeue | None:
        calls.append(loop.time())
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        if len(calls) == 2:
            assert queue.retries(key) == 1
            return Requeue(after=0.1)
        assert queue.retries(key) == 0
        queue.shut_down()
        return None

    queue.add("k")
    await asyncio.wait_for(run_worker(queue, reconcile), 5)
    assert len(calls) == 3
    assert calls[2] - calls[1] >= 0.1 * 0.9


async def test_get_after_shutdown_raises() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.shut_down()
    with pytest.raises(ShutDown):
        await queue.get()
