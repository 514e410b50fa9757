"""RBAC changes take effect before the write that made them returns, on the API server that
made it.

The authorizer reads roles and bindings from the watch caches, which follow the store a
moment behind; without this, ``kubectl create rolebinding ...`` followed at once by a request
of the user it binds could still be refused. These write hooks of the four RBAC kinds wait,
once the write has landed, until this server's cache of the kind has seen the store's
revision (as a consistent read would), so the next request already sees it. Other API
servers catch up as their caches do, as Kubernetes' RBAC informers do.
"""

from __future__ import annotations

from typing import Any

from setpoint.api.watchcache import WatchCache
from setpoint.store.interface import Store


class _CacheCatchesUp:
    def __init__(self, cache: WatchCache, store: Store) -> None:
        self._cache, self._store = cache, store

    async def commit(self) -> None:
        await self._cache.wait_fresh(await self._store.current_revision())

    async def revert(self) -> None:
        return None


class _Nothing:
    async def commit(self) -> None:
        return None

    async def revert(self) -> None:
        return None


class EffectiveOnReturn:
    """The write hooks (``storage.WriteHooks``) of a Role, ClusterRole, RoleBinding or
    ClusterRoleBinding."""

    def __init__(self, cache: WatchCache, store: Store) -> None:
        self._done = _CacheCatchesUp(cache, store)

    async def begin_create(self, obj: dict[str, Any], *, dry_run: bool) -> Any:
        return _Nothing() if dry_run else self._done

    async def begin_update(self, new: dict[str, Any], old: dict[str, Any], *, dry_run: bool) -> Any:
        return _Nothing() if dry_run else self._done

    async def after_delete(self, obj: dict[str, Any]) -> None:
        await self._done.commit()
