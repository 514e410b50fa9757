"""What the API server allocates for a Service as it is written: the Service REST of
``pkg/registry/core/service/storage`` (``alloc.go``), as hooks on the generic storage.

On create, after validation and before the write (:meth:`ServiceAllocations.begin_create`):

* the IP family fields: ``ipFamilyPolicy`` defaults to ``SingleStack`` (``RequireDualStack``
  for a headless Service without a selector, as Kubernetes'), ``ipFamilies`` to the family of
  the cluster's range (a family the cluster does not serve, or dual stack required, is 422);
* a cluster IP — the one requested (422 ``provided IP is already allocated`` or ``... is not
  in the valid range``) or a free one (500 ``range is full``, as Kubernetes answers) — unless
  the Service is headless (``clusterIP: None``) or an ExternalName;
* for NodePort and LoadBalancer Services, a node port for each port: the one requested (422
  ``provided port is already allocated`` / ``... not in the valid range``) or a free one, one
  per port number (a TCP and a UDP port 53 share theirs).

On update (:meth:`begin_update`), only the difference: a type that now needs a cluster IP or
node ports gets them, and values the new spec no longer holds are released once the write
has succeeded. A write that fails gives back what was allocated for it. On delete
(:meth:`after_delete`), everything the Service held is released. Dry runs allocate nothing:
they check that the values are free and show the ones a real write would get.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from setpoint.api import errors
from setpoint.api.errors import APIError
from setpoint.api.services.allocator import (
    AllocationError,
    Owner,
    RangeFull,
    RecordAllocator,
)
from setpoint.api.services.ranges import IPRange, PortRange
from setpoint.meta.gofmt import sharp_v_string_slice
from setpoint.resources import service as svcs
from setpoint.resources.fielderrors import FieldError, invalid_rendered, invalid_value
from setpoint.resources.registry import Obj

log = logging.getLogger(__name__)

IPS_RECORDS = "serviceips"
NODE_PORTS_RECORDS = "servicenodeports"


@dataclass
class Allocation:
    """One write's allocations: given back on :meth:`revert`; the values it made obsolete
    are released on :meth:`commit`."""

    owner: Owner
    dry_run: bool
    allocated: list[tuple[RecordAllocator, str]] = field(default_factory=list)
    obsolete: list[tuple[RecordAllocator, str]] = field(default_factory=list)

    async def commit(self) -> None:
        if not self.dry_run:
            await _release_all(self.obsolete, self.owner)

    async def revert(self) -> None:
        if not self.dry_run:
            await _release_all(self.allocated, self.owner)


async def _release_all(values: list[tuple[RecordAllocator, str]], owner: Owner) -> None:
    for allocator, value in values:
        try:
            await allocator.release(value, owner)
        except Exception:  # a store failure: repair reclaims the value later
            log.warning(
                "could not release %s %s of %s/%s",
                allocator.what,
                value,
                owner.namespace,
                owner.name,
                exc_info=True,
            )


class ServiceAllocations:
    """The cluster-IP and node-port allocators, and the Service write hooks over them."""

    def __init__(self, ips: RecordAllocator, node_ports: RecordAllocator) -> None:
        self.ips = ips
        self.node_ports = node_ports

    @property
    def ip_range(self) -> IPRange:
        assert isinstance(self.ips.range, IPRange)
        return self.ips.range

    @property
    def port_range(self) -> PortRange:
        assert isinstance(self.node_ports.range, PortRange)
        return self.node_ports.range

    async def load(self) -> None:
        await self.ips.load()
        await self.node_ports.load()

    # ----------------------------------------------------------------- write hooks

    async def begin_create(self, svc: Obj, *, dry_run: bool) -> Allocation:
        txn = Allocation(Owner.of(svc), dry_run)
        try:
            self._init_ip_families(svc, None)
            if svcs.needs_cluster_ip(svc) and not svcs.is_headless(svc):
                await self._allocate_cluster_ip(svc, txn)
            if svcs.needs_node_ports(svc):
                await self._update_node_ports(svc, set(), txn)
        except BaseException:
            await txn.revert()
            raise
        return txn

    async def begin_update(self, svc: Obj, old: Obj, *, dry_run: bool) -> Allocation:
        txn = Allocation(Owner.of(svc), dry_run)
        try:
            self._init_ip_families(svc, old)
            old_ip, new_ip = svcs.cluster_ip(old), svcs.cluster_ip(svc)
            if svcs.needs_cluster_ip(svc) and not svcs.is_headless(svc) and not new_ip:
                await self._allocate_cluster_ip(svc, txn)  # e.g. from ExternalName
            elif new_ip and new_ip != old_ip:
                await self._allocate_cluster_ip(svc, txn)  # to a given IP from ExternalName
            if old_ip and old_ip != svcs.cluster_ip(svc):
                txn.obsolete.append((self.ips, old_ip))
            held = svcs.node_ports(old)
            if svcs.needs_node_ports(svc):
                await self._update_node_ports(svc, held, txn)
            kept = svcs.node_ports(svc)
            txn.obsolete += [(self.node_ports, str(p)) for p in sorted(held - kept)]
        except BaseException:
            await txn.revert()
            raise
        return txn

    async def after_delete(self, svc: Obj) -> None:
        owner = Owner.of(svc)
        held = [(self.node_ports, str(p)) for p in sorted(svcs.node_ports(svc))]
        if svcs.cluster_ip(svc):
            held.append((self.ips, svcs.cluster_ip(svc)))
        await _release_all(held, owner)

    # ------------------------------------------------------------------- helpers

    def _init_ip_families(self, svc: Obj, old: Obj | None) -> None:
        """``initIPFamilyFields`` for a single-stack cluster."""
        if not svcs.needs_cluster_ip(svc):
            return
        spec = svc.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        if not spec.get("ipFamilyPolicy"):
            if old_spec.get("ipFamilyPolicy"):
                spec["ipFamilyPolicy"] = old_spec["ipFamilyPolicy"]
            elif svcs.is_headless(svc) and not spec.get("selector"):
                spec["ipFamilyPolicy"] = "RequireDualStack"
            else:
                spec["ipFamilyPolicy"] = "SingleStack"
        family = self.ip_range.family
        problems: list[FieldError] = []
        headless_selectorless = svcs.is_headless(svc) and not spec.get("selector")
        for i, ip in enumerate(spec.get("clusterIPs") or []):
            if ip != svcs.CLUSTER_IP_NONE and svcs.ip_family(ip) != family:
                problems.append(
                    invalid_rendered(
                        f"spec.clusterIPs[{i}]",
                        sharp_v_string_slice(spec["clusterIPs"]),
                        f"{svcs.ip_family(ip)} is not configured on this cluster",
                    )
                )
        if not headless_selectorless:
            if spec["ipFamilyPolicy"] == "RequireDualStack":
                problems.append(
                    invalid_value(
                        "spec.ipFamilyPolicy",
                        "RequireDualStack",
                        "this cluster is not configured for dual-stack services",
                    )
                )
            for i, requested in enumerate(spec.get("ipFamilies") or []):
                if requested != family:
                    problems.append(
                        invalid_value(
                            f"spec.ipFamilies[{i}]", requested, "not configured on this cluster"
                        )
                    )
        if problems:
            raise _invalid(svc, problems)
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = [family]
        if headless_selectorless and spec["ipFamilyPolicy"] != "SingleStack":
            other = "IPv6" if family == "IPv4" else "IPv4"
            if len(spec["ipFamilies"]) < 2:
                spec["ipFamilies"] = [*spec["ipFamilies"], other]
        elif spec["ipFamilyPolicy"] != "SingleStack":
            spec["ipFamilies"] = spec["ipFamilies"][:1]  # PreferDualStack on a single stack

    async def _allocate_cluster_ip(self, svc: Obj, txn: Allocation) -> None:
        spec = svc["spec"]
        requested = str(spec.get("clusterIP") or "")
        if requested:
            try:
                await self.ips.allocate(requested, txn.owner, dry_run=txn.dry_run)
            except AllocationError as exc:
                raise _invalid(
                    svc,
                    [
                        invalid_rendered(
                            "spec.clusterIPs",
                            sharp_v_string_slice(spec.get("clusterIPs") or [requested]),
                            f"failed to allocate IP {requested}: {exc}",
                        )
                    ],
                ) from None
            ip = requested
        else:
            try:
                ip = await self.ips.allocate_next(txn.owner, dry_run=txn.dry_run)
            except RangeFull as exc:
                raise errors.internal(f"failed to allocate a serviceIP: {exc}") from None
        txn.allocated.append((self.ips, ip))
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]

    async def _update_node_ports(self, svc: Obj, held: set[int], txn: Allocation) -> None:
        """``initNodePorts`` / ``updateNodePorts``: every port gets a node port (requested,
        kept, or new), one per port number."""
        ports = [p for p in svc["spec"].get("ports") or [] if isinstance(p, dict)]
        by_number: dict[int, int] = {}
        for i, port in enumerate(ports):
            requested = int(port.get("nodePort") or 0)
            if not requested and not svcs.allocates_node_ports(svc):
                continue  # LoadBalancer without node ports: only requested ones
            if not requested and port.get("port") in by_number:
                port["nodePort"] = by_number[port["port"]]
                continue
            if requested and (requested in held or requested in by_number.values()):
                by_number.setdefault(port.get("port", 0), requested)
                continue
            if requested:
                try:
                    await self.node_ports.allocate(str(requested), txn.owner, dry_run=txn.dry_run)
                except AllocationError as exc:
                    raise _invalid(
                        svc, [invalid_value(f"spec.ports[{i}].nodePort", requested, str(exc))]
                    ) from None
                value = requested
            else:
                try:
                    value = int(await self.node_ports.allocate_next(txn.owner, dry_run=txn.dry_run))
                except RangeFull as exc:
                    raise errors.internal(f"failed to allocate a nodePort: {exc}") from None
                port["nodePort"] = value
            txn.allocated.append((self.node_ports, str(value)))
            by_number.setdefault(port.get("port", 0), value)


def _invalid(svc: Obj, problems: list[FieldError]) -> APIError:
    return errors.invalid_kind("Service", "", svc["metadata"].get("name", ""), problems)
