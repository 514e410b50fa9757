"""The admission plugins setpoint runs on every write (see :mod:`setpoint.api.admission`), one
module each, in kube-apiserver's order: LimitRanger (defaults, then per-object bounds),
ServiceAccount (a pod's ServiceAccount and its token volume), PodSecurity (the namespace's Pod
Security level), ResourceQuota (last, so it charges what the others let through).

Plugins read other objects (LimitRanges, quotas, namespaces) from the API server's own
storages, found by a :data:`StorageLookup` given after the storages exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from setpoint.api.admission import AdmissionPlugin
from setpoint.api.auth.serviceaccount import ObjectGetter
from setpoint.api.storage import ResourceStorage
from setpoint.meta.clock import REAL_CLOCK, Clock
from setpoint.resources.registry import Registry, ResourceType

StorageLookup = Callable[[str], "ResourceStorage | None"]
"""The storage of a core (``v1``) resource by its plural, or None if not served."""


def core_storages(
    storages: Mapping[ResourceType, ResourceStorage], registry: Registry
) -> StorageLookup:
    """A :data:`StorageLookup` over an API server's storages (read when a plugin asks, so
    kinds added later are found)."""

    def lookup(plural: str) -> ResourceStorage | None:
        rtype = registry.lookup("", "v1", plural)
        return storages.get(rtype) if rtype is not None else None

    return lookup


def default_plugins(
    storages: StorageLookup,
    *,
    clock: Clock = REAL_CLOCK,
    service_accounts: ObjectGetter | None = None,
) -> list[AdmissionPlugin]:
    """LimitRanger, ServiceAccount (when ``service_accounts`` reads them: see
    :mod:`.serviceaccount`), PodSecurity and ResourceQuota, in that order."""
    from setpoint.api.admission_plugins.limitranger import LimitRanger
    from setpoint.api.admission_plugins.podsecurity import PodSecurity
    from setpoint.api.admission_plugins.resourcequota import ResourceQuotaAdmission
    from setpoint.api.admission_plugins.serviceaccount import ServiceAccountAdmission

    plugins: list[AdmissionPlugin] = [LimitRanger(storages)]
    if service_accounts is not None:
        plugins.append(ServiceAccountAdmission(service_accounts))
    return [*plugins, PodSecurity(storages), ResourceQuotaAdmission(storages, clock=clock)]
