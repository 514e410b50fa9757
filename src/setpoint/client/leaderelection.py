"""Leader election through a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection.

Several ``setpoint server`` processes may run; exactly one runs the controllers and the
scheduler. Each candidate tries to take the Lease: free or expired (``renewTime`` +
``leaseDurationSeconds`` in the past) it writes its identity with an optimistic-concurrency
update, so only one wins. The leader renews every ``retry_period``; if it cannot renew
within ``renew_deadline`` it stops leading (its work is cancelled) and goes back to trying.
Followers retry every ``retry_period``, and once more at the moment the lease they saw
expires, so a successor takes over within ``lease_duration`` of the leader's last renewal
rather than up to a ``retry_period`` later. As client-go's ``Run``, :meth:`LeaderElector.run`
returns once leadership is lost: a component then exits and starts afresh (as
kube-controller-manager does) rather than leading again on state from its first term.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from setpoint.client.api import LEASES, ApiClient, ApiError, Obj
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.meta.timestamps import format_micro_time, parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderElectionConfig:
    lease_name: str
    identity: str
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    def __init__(
        self, client: ApiClient, config: LeaderElectionConfig, *, clock: Clock = REAL_CLOCK
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.is_leader = False
        # when the lease another candidate holds runs out, as last seen
        self._others_expiry: datetime | None = None

    def _spec(self, now: datetime, *, acquire: bool, transitions: int) -> Obj:
        spec: Obj = {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": int(self.config.lease_duration),
            "renewTime": format_micro_time(now),
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = format_micro_time(now)
        return spec

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True if we hold the lease afterwards."""
        cfg = self.config
        now = self.clock.now()
        try:
            lease = await self.client.get(LEASES, cfg.lease_name, cfg.namespace)
        except ApiError as exc:
            if not exc.is_not_found:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.lease_name, "namespace": cfg.namespace},
                "spec": self._spec(now, acquire=True, transitions=0),
            }
            try:
                await self.client.create(LEASES, body, cfg.namespace)
                return True
            except ApiError as create_error:
                if create_error.is_already_exists:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        ours = holder == cfg.identity
        expired = renewed is None or renewed + timedelta(seconds=duration) < now
        if not ours and holder and not expired:
            assert renewed is not None
            self._others_expiry = renewed + timedelta(seconds=duration)
            return False
        self._others_expiry = None
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        lease["spec"] = {**spec, **self._spec(now, acquire=not ours, transitions=transitions)}
        try:
            await self.client.update(LEASES, lease)
        except ApiError as exc:
            if exc.is_conflict:
                return False
            raise
        return True

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Acquire the lease, run ``lead()`` while renewing it, and cancel it and return when
        leadership is lost (or ``lead()`` ends)."""
        cfg = self.config
        while not await self._attempt():
            await asyncio.sleep(self._until_next_attempt())
        log.info("%s became leader of %s", cfg.identity, cfg.lease_name)
        self.is_leader = True
        work: asyncio.Task[None] = asyncio.create_task(lead(), name=f"leading-{cfg.lease_name}")
        try:
            await self._renew_until_lost(work)
        finally:
            self.is_leader = False
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
        log.warning("%s lost leadership of %s", cfg.identity, cfg.lease_name)

    def _until_next_attempt(self) -> float:
        """A retry period, or less when the holder's lease runs out sooner."""
        period = self.config.retry_period
        if self._others_expiry is None:
            return period
        left = (self._others_expiry - self.clock.now()).total_seconds()
        return min(period, max(left, 0.0) + 0.01)  # just past the expiry, not at it

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (TimeoutError, ApiError, OSError) as exc:
            log.info("leader election attempt failed: %s", exc)
            return False

    async def _renew_until_lost(self, work: asyncio.Task[None]) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        last_renewal = loop.time()
        while not work.done():
            await asyncio.sleep(cfg.retry_period)
            if await self._attempt():
                last_renewal = loop.time()
            elif loop.time() - last_renewal > cfg.renew_deadline:
                return
        if work.done() and not work.cancelled() and work.exception() is not None:
            log.error("leader work failed", exc_info=work.exception())

    async def release(self) -> None:
        """Give the lease up at shutdown so a successor need not wait for expiry."""
        cfg = self.config
        with contextlib.suppress(ApiError, OSError, asyncio.TimeoutError):
            lease = await self.client.get(LEASES, cfg.lease_name, cfg.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") == cfg.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.client.update(LEASES, lease)
