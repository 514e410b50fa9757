"""Expectations: what a controller just asked for and has not yet seen in its cache.

The informer cache lags a controller's own writes: right after creating three pods the cache
may still show none, and a naive second reconcile would create three more. So before acting a
controller records what it expects to observe (``N`` creations, or the keys of the objects it
deletes) under its owner's key, the informer's event handlers lower those counts as the
events arrive, and the controller does not create or delete for that owner again until its
expectations are *satisfied*: fulfilled, or older than ``ttl`` (five minutes, as Kubernetes'
``ExpectationsTimeout``: a safety net for events lost on the way).

:class:`ControllerExpectations` counts (upstream's ``ControllerExpectations``); setting
expectations replaces whatever was recorded before, observations only lower them.
:class:`UIDTrackingControllerExpectations` also remembers *which* objects it deletes
(``UIDTrackingControllerExpectations``), so that a pod seen terminating and later seen gone
is counted once, not twice: graceful deletion reports the same deletion in two events. Both
follow ``pkg/controller/controller_utils.go``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expectation:
    adds: int = 0
    deletes: int = 0
    stamp: float = 0.0

    def fulfilled(self) -> bool:
        return self.adds <= 0 and self.deletes <= 0


class ControllerExpectations:
    """Per-owner counts of creations and deletions still in flight."""

    def __init__(
        self, ttl: float = EXPECTATIONS_TIMEOUT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._records: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        """``SatisfiedExpectations``: nothing recorded, all observed, or expired."""
        record = self._records.get(key)
        if record is None or record.fulfilled():
            return True
        return self.clock() - record.stamp > self.ttl

    def set_expectations(self, key: str, adds: int, deletes: int) -> None:
        """Forget what was expected for ``key`` and expect this instead."""
        self._records[key] = _Expectation(adds=adds, deletes=deletes, stamp=self.clock())

    def expect_creations(self, key: str, count: int) -> None:
        self.set_expectations(key, count, 0)

    def expect_deletions(self, key: str, count: int) -> None:
        self.set_expectations(key, 0, count)

    def lower_expectations(self, key: str, adds: int, deletes: int) -> None:
        record = self._records.get(key)
        if record is not None:
            record.adds = max(0, record.adds - adds)
            record.deletes = max(0, record.deletes - deletes)

    def creation_observed(self, key: str) -> None:
        self.lower_expectations(key, 1, 0)

    def deletion_observed(self, key: str) -> None:
        self.lower_expectations(key, 0, 1)

    def delete_expectations(self, key: str) -> None:
        """The owner is gone: forget it."""
        self._records.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected for ``key``."""
        record = self._records.get(key)
        return (record.adds, record.deletes) if record else (0, 0)


class UIDTrackingControllerExpectations:
    """Counts of creations, and the keys of the objects being deleted: a deletion counts
    only for a key the controller itself deleted, and only once."""

    def __init__(
        self, ttl: float = EXPECTATIONS_TIMEOUT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._counts = ControllerExpectations(ttl, clock)
        self._deleting: dict[str, set[str]] = {}

    def satisfied(self, key: str) -> bool:
        return self._counts.satisfied(key)

    def expect_creations(self, key: str, count: int) -> None:
        self._counts.expect_creations(key, count)

    def creation_observed(self, key: str) -> None:
        self._counts.creation_observed(key)

    def lower_creations(self, key: str, count: int) -> None:
        """Creations that were expected but will never be observed (they failed)."""
        self._counts.lower_expectations(key, count, 0)

    def expect_deletions(self, key: str, deleted_keys: Iterable[str]) -> None:
        expected = set(deleted_keys)
        self._deleting[key] = expected
        self._counts.expect_deletions(key, len(expected))

    def deletion_observed(self, key: str, deleted_key: str) -> None:
        expected = self._deleting.get(key)
        if expected is not None and deleted_key in expected:
            expected.discard(deleted_key)
            self._counts.deletion_observed(key)

    def delete_expectations(self, key: str) -> None:
        self._counts.delete_expectations(key)
        self._deleting.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        return self._counts.pending(key)
