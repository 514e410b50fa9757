"""Repair: the allocation records agree with the Services again.

A Service and its allocation records are separate writes (see
:mod:`setpoint.api.services.allocator`), so a server that dies between them leaves a record
nobody owns (its value is lost until reclaimed) or a Service whose value has no record (it
could be handed out twice). Kubernetes runs repair controllers in the API server for this
(``pkg/registry/core/service/ipallocator/controller/repair*.go`` and
``portallocator/controller/repair.go``); :class:`AllocationRepair` is their counterpart, run
at start-up and then once per interval for the whole cluster (``store.clustertimer``):

* a value a Service holds but no record names is recorded again for it (a value another
  Service holds already is a double allocation: logged, for a person to resolve);
* a record no Service holds is deleted — but only when the same record (same revision) was
  already unowned on the previous pass, so that a Service being created right now, whose
  record is written a moment before the Service itself, is never robbed of its value.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from setpoint.api.services.allocation import ServiceAllocations
from setpoint.api.services.allocator import Owner, Record, RecordAllocator
from setpoint.resources import service as svcs
from setpoint.resources.registry import Obj

log = logging.getLogger(__name__)

ListServices = Callable[[], Awaitable[Iterable[Obj]]]
"""Every Service, as up to date as the store (the API server reads its watch cache)."""


class AllocationRepair:
    def __init__(self, allocations: ServiceAllocations, services: ListServices) -> None:
        self.allocations = allocations
        self.services = services
        self._suspects: set[tuple[str, str, int]] = set()

    async def run_once(self) -> int:
        """One pass; returns how many records it deleted or wrote."""
        ips: dict[str, Owner] = {}
        ports: dict[str, Owner] = {}
        for svc in await self.services():
            owner = Owner.of(svc)
            if svcs.cluster_ip(svc):
                ips[svcs.cluster_ip(svc)] = owner
            for port in svcs.node_ports(svc):
                ports[str(port)] = owner
        suspects: set[tuple[str, str, int]] = set()
        changed = 0
        for allocator, held in ((self.allocations.ips, ips), (self.allocations.node_ports, ports)):
            changed += await self._repair(allocator, held, suspects)
        self._suspects = suspects
        return changed

    async def _repair(
        self,
        allocator: RecordAllocator,
        held: dict[str, Owner],
        suspects: set[tuple[str, str, int]],
    ) -> int:
        changed = 0
        records = {record.value: record for record in await allocator.records()}
        for record in records.values():
            if record.value in held:
                continue  # held: by its owner, or a double allocation reported below
            key = (allocator.prefix, record.value, record.revision)
            if key in self._suspects:
                if await allocator.forget(record):
                    changed += 1
                    _log_leak(allocator, record)
            else:
                suspects.add(key)
        for value, owner in held.items():
            found = records.get(value)
            if found is not None:
                if found.owner.uid != owner.uid:
                    _log_double(allocator, value, owner, found.owner)
                continue
            if allocator.range.offset(value) is None:
                log.warning(
                    "repair: %s %s of Service %s/%s is not in the range %s; recreate the "
                    "Service to give it one that is",
                    allocator.what,
                    value,
                    owner.namespace,
                    owner.name,
                    allocator.range,
                )
                continue
            other = await allocator.restore(value, owner)
            if other is not None:
                _log_double(allocator, value, owner, other)
            else:
                changed += 1
                log.info(
                    "repair: recorded %s %s of Service %s/%s again",
                    allocator.what,
                    value,
                    owner.namespace,
                    owner.name,
                )
        await allocator.load()
        return changed


def _log_leak(allocator: RecordAllocator, record: Record) -> None:
    log.info(
        "repair: released %s %s, held by no Service (last owner %s/%s)",
        allocator.what,
        record.value,
        record.owner.namespace,
        record.owner.name,
    )


def _log_double(allocator: RecordAllocator, value: str, owner: Owner, other: Owner) -> None:
    log.warning(
        "repair: %s %s of Service %s/%s is also allocated to %s/%s",
        allocator.what,
        value,
        owner.namespace,
        owner.name,
        other.namespace,
        other.name,
    )
