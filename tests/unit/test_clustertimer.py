"""ClusterTimer: work done once per round among every process sharing a store, by a
compare-and-swap of one key (kube-apiserver's compaction clock); on SQLite and on etcd (the
``store`` fixture of ``conftest.py``), where several servers share one store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from setpoint.store.clustertimer import ClusterTimer
from setpoint.store.interface import Store


def recorder(
    log: list[tuple[str, bytes | None]], who: str
) -> Callable[[bytes | None], Awaitable[None]]:
    async def act(previous: bytes | None) -> None:
        log.append((who, previous))

    return act


async def test_one_server_of_several_does_each_round(store: Store) -> None:
    done: list[tuple[str, bytes | None]] = []
    counter = iter(range(100))

    async def record() -> bytes:
        return str(next(counter)).encode()

    servers = [
        ClusterTimer(store, "chore", 60, recorder(done, name), record=record)
        for name in ("a", "b", "c")
    ]
    for _round in range(4):  # each round, every server's timer fires (in some order)
        won = [await timer.tick() for timer in servers]
        assert won.count(True) <= 1
    # a fresh cluster: "a" created the clock; after that exactly one server per round
    assert len(done) == 4
    # each winner is handed what the previous winner recorded
    assert done[0][1] is None
    assert all(previous is not None for _, previous in done[1:])


async def test_a_restarted_server_learns_the_clock_before_it_acts(store: Store) -> None:
    done: list[tuple[str, bytes | None]] = []
    first = ClusterTimer(store, "chore", 60, recorder(done, "first"))
    assert await first.tick()
    again = ClusterTimer(store, "chore", 60, recorder(done, "again"))
    assert not await again.tick()  # learns where the clock stands
    assert await again.tick()
    assert [who for who, _ in done] == ["first", "again"]


async def test_compaction_reaches_the_revision_seen_a_round_before(store: Store) -> None:
    compacted: list[int] = []

    async def revision_now() -> bytes:
        return str(await store.current_revision()).encode()

    async def compact(recorded: bytes | None) -> None:
        if recorded:
            compacted.append(int(recorded))

    timer = ClusterTimer(store, "compaction", 300, compact, record=revision_now)
    await store.create("/registry/core/configmaps/default/a", b"{}")
    assert await timer.tick()
    seen = await store.current_revision()
    await store.create("/registry/core/configmaps/default/b", b"{}")
    assert await timer.tick()
    assert compacted and compacted[0] <= seen
