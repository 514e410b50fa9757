"""A linearizability checker for histories of registers with compare-and-swap, in the spirit
of Jepsen's Knossos and porcupine (no maintained Python checker exists on PyPI).

A history is what concurrent clients saw: each :class:`Operation` has the time its client
invoked it and the time the answer came, and an outcome — ``ok`` (it happened, with this
result), ``fail`` (it definitely did not happen: a 409 Conflict for a compare-and-swap), or
``unknown`` (a timeout or a 5xx: it may or may not have happened, at any time after its
invocation, as Jepsen's ``:info``). The history is linearizable if the operations can be put
in one order that respects real time (an operation that completed before another began comes
first) and in which each operation's result is what a single register would have answered.

Each key is an independent register, so each is checked alone (linearizability is
compositional). The model is a register holding an integer (a counter in a ConfigMap):

* ``read`` of value v: the register holds v;
* ``cas`` from ``expected`` to ``new``: ok, the register held ``expected`` and now holds
  ``new``; fail, it did not hold ``expected``; unknown, if it held ``expected`` it may now
  hold ``new`` (an unknown operation is never required to have happened).

The search is Wing & Gong's, with Lowe's cache of (set of linearized operations, state)
pairs already explored ("Testing for linearizability", 2017), as porcupine implements it:
walk the history's events in time order; at a call, try to linearize that operation now
(the model accepts its result); at a return of an operation not yet linearized, undo the
last choice. Unknown operations return at infinity, so they never force an order, and the
search is done once every operation with a known outcome is linearized.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["ok", "fail", "unknown"]


@dataclass(frozen=True)
class Operation:
    """One client operation on the register ``key``: a ``read`` that saw ``value``, or a
    ``cas`` from ``expected`` to ``new``; ``call`` and ``ret`` are client clock times."""

    key: str
    kind: Literal["read", "cas"]
    outcome: Outcome
    call: float
    ret: float
    value: int = 0
    expected: int = 0
    new: int = 0


def step(state: int, op: Operation) -> int | None:
    """The register's state after ``op`` from ``state``, None if ``op``'s outcome is
    impossible from ``state``."""
    if op.kind == "read":
        return state if op.value == state else None
    if op.outcome == "ok":
        return op.new if state == op.expected else None
    if op.outcome == "fail":
        return state if state != op.expected else None
    return op.new if state == op.expected else state  # unknown: happened, or did nothing


class _Entry:
    """A call or return event in the doubly linked list the search walks and unlinks."""

    __slots__ = ("id", "is_call", "match", "next", "op", "prev", "time")

    def __init__(self, op: Operation | None, op_id: int, time: float, is_call: bool) -> None:
        self.op = op
        self.id = op_id
        self.time = time
        self.is_call = is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _linked(ops: list[Operation]) -> _Entry:
    """The events of ``ops`` in time order (calls before returns at equal times: concurrent
    is the lenient reading), as a list behind a head sentinel."""
    events: list[tuple[float, int, _Entry]] = []
    for op_id, op in enumerate(ops):
        call = _Entry(op, op_id, op.call, True)
        ret = _Entry(op, op_id, math.inf if op.outcome == "unknown" else op.ret, False)
        call.match = ret
        events += [(call.time, 0, call), (ret.time, 1, ret)]
    events.sort(key=lambda event: (event[0], event[1]))
    head = _Entry(None, -1, -math.inf, False)
    previous = head
    for _, _, entry in events:
        previous.next, entry.prev = entry, previous
        previous = entry
    return head


def _lift(entry: _Entry) -> None:
    """Unlink a call and its return."""
    for item in (entry, entry.match):
        assert item is not None and item.prev is not None
        item.prev.next = item.next
        if item.next is not None:
            item.next.prev = item.prev


def _unlift(entry: _Entry) -> None:
    for item in (entry.match, entry):
        assert item is not None and item.prev is not None
        item.prev.next = item
        if item.next is not None:
            item.next.prev = item


def check_register(ops: list[Operation], initial: int) -> bool:
    """Whether the history of one register, starting at ``initial``, is linearizable."""
    ops = [op for op in ops if not (op.kind == "read" and op.outcome != "ok")]
    head = _linked(ops)
    state, linearized = initial, 0
    seen: set[tuple[int, int]] = set()
    chosen: list[tuple[_Entry, int]] = []  # (call linearized, state before it)
    entry = head.next
    while entry is not None and entry.time != math.inf:
        if entry.is_call:
            assert entry.op is not None
            after = step(state, entry.op)
            mask = linearized | (1 << entry.id)
            if after is not None and (mask, after) not in seen:
                seen.add((mask, after))
                chosen.append((entry, state))
                state, linearized = after, mask
                _lift(entry)
                entry = head.next
            else:
                entry = entry.next
            continue
        # the return of an operation nothing linearized yet: undo the last choice
        if not chosen:
            return False
        undone, state = chosen.pop()
        linearized &= ~(1 << undone.id)
        _unlift(undone)
        entry = undone.next
    return True


def nonlinearizable_keys(ops: Iterable[Operation], initial: int = 0) -> list[str]:
    """The keys whose histories are not linearizable (each register starting at ``initial``)."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    return sorted(key for key, history in by_key.items() if not check_register(history, initial))
