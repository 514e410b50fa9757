"""SharedInformers: one informer per resource, shared by every controller in a process.

Controllers ask the factory for the informers they need (with the indexes they need); the
factory starts each once, so ten controllers watching pods cost one pod watch.
"""

from __future__ import annotations

import asyncio

from setpoint.client.api import ApiClient, Resource
from setpoint.client.informer import IndexFunc, Informer


class SharedInformers:
    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[tuple[Resource, str, str], Informer] = {}
        self._started = False

    def informer(
        self,
        resource: Resource,
        *,
        indexers: dict[str, IndexFunc] | None = None,
        field_selector: str = "",
        label_selector: str = "",
    ) -> Informer:
        key = (resource, field_selector, label_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client,
                resource,
                field_selector=field_selector,
                label_selector=label_selector,
            )
            self._informers[key] = informer
            if self._started:
                informer.start()
        for name, func in (indexers or {}).items():
            if name not in informer.indexers:
                informer.indexers[name] = func
                informer.reindex(name)
        return informer

    def start(self) -> None:
        self._started = True
        for informer in self._informers.values():
            if informer._task is None:
                informer.start()

    async def wait_synced(self, timeout: float = 60) -> None:
        await asyncio.gather(*(i.wait_synced(timeout) for i in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
