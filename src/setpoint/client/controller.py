"""The controller shape, written once: informers -> keys -> work queue -> ``reconcile``.

A controller subclass names the informers it needs, maps informer events to keys of the
objects it owns (``enqueue``), and implements ``reconcile(key)``: read the cache, compare
desired with actual, act through the API, write status, and return what should happen to
the key next: ``None`` when it is done, a :class:`~setpoint.client.workqueue.Requeue` to
see it again. ``Controller.run`` starts the workers, which apply that result; errors retry
with per-key backoff; nothing here is specific to any kind. A controller reads the time from
its ``clock`` (:mod:`setpoint.meta.clock`), which tests may replace with a fake one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Generic, TypeVar

from setpoint.client.api import ApiClient
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler, Informer, object_key
from setpoint.client.workqueue import Requeue, WorkQueue, run_worker
from setpoint.meta.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class Controller(ABC, Generic[K]):
    """Work items are ``K``: object keys (``namespace/name``) for most controllers, richer
    references where one controller follows several resources (the garbage collector)."""

    name: str = "controller"
    workers: int = 4

    def __init__(
        self, informers: SharedInformers, recorder: EventRecorder, *, clock: Clock = REAL_CLOCK
    ) -> None:
        self.informers = informers
        self.clock = clock
        self.client: ApiClient = informers.client
        self.recorder = recorder
        self.queue: WorkQueue[K] = WorkQueue(self.name)
        self._tasks: list[asyncio.Task[None]] = []

    def watch_owned(self: Controller[str], informer: Informer) -> None:
        """Enqueue an object's own key on every change."""
        informer.add_handler(
            EventHandler(
                on_add=lambda o: self.queue.add(object_key(o)),
                on_update=lambda old, new: self.queue.add(object_key(new)),
                on_delete=lambda o: self.queue.add(object_key(o)),
            )
        )

    @abstractmethod
    async def reconcile(self, key: K) -> Requeue | None: ...

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(run_worker(self.queue, self.reconcile), name=f"{self.name}-{i}")
            for i in range(self.workers)
        ]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()

    async def stop(self) -> None:
        self.queue.shut_down()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
