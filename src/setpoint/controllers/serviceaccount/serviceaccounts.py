"""The ServiceAccounts controller (``serviceaccounts_controller.go``): every active namespace
has a ServiceAccount named ``default``, made when the namespace appears and again whenever it
is deleted, so that pods, which run as ``default`` unless they name another, can be admitted.

Work items are namespace names. A namespace being deleted is left alone (its objects are
going, and the API server would refuse new ones anyway).
"""

from __future__ import annotations

import logging

from setpoint.client.api import NAMESPACES, SERVICEACCOUNTS, ApiError, Obj
from setpoint.client.controller import Controller
from setpoint.client.events import EventRecorder
from setpoint.client.factory import SharedInformers
from setpoint.client.informer import EventHandler
from setpoint.client.workqueue import Requeue
from setpoint.meta.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

DEFAULT_SERVICE_ACCOUNT = "default"


def namespace_active(namespace: Obj | None) -> bool:
    """The namespace exists and is not being deleted."""
    if namespace is None or namespace["metadata"].get("deletionTimestamp"):
        return False
    return (namespace.get("status") or {}).get("phase", "Active") == "Active"


class ServiceAccountsController(Controller[str]):
    name = "serviceaccount"

    def __init__(
        self,
        informers: SharedInformers,
        recorder: EventRecorder,
        *,
        accounts: tuple[str, ...] = (DEFAULT_SERVICE_ACCOUNT,),
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(informers, recorder, clock=clock)
        self.accounts = accounts
        self.namespaces = informers.informer(NAMESPACES)
        self.service_accounts = informers.informer(SERVICEACCOUNTS)
        self.namespaces.add_handler(
            EventHandler(
                on_add=self._enqueue_namespace,
                on_update=lambda old, new: self._enqueue_namespace(new),
            )
        )
        self.service_accounts.add_handler(EventHandler(on_delete=self._on_account_deleted))

    def _enqueue_namespace(self, namespace: Obj) -> None:
        self.queue.add(namespace["metadata"]["name"])

    def _on_account_deleted(self, account: Obj) -> None:
        if account["metadata"].get("name") in self.accounts:
            self.queue.add(account["metadata"].get("namespace", ""))

    async def reconcile(self, key: str) -> Requeue | None:
        if not namespace_active(self.namespaces.get(key)):
            return None
        for name in self.accounts:
            if self.service_accounts.get(f"{key}/{name}") is not None:
                continue
            account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
            try:
                await self.client.create(SERVICEACCOUNTS, account, key)
            except ApiError as exc:
                # made meanwhile (by us before the cache saw it, or by someone else), or the
                # namespace began to go: either way there is nothing to do
                if exc.code == 409 or exc.is_namespace_terminating:
                    continue
                if exc.is_not_found:
                    continue
                raise
        return None
