"""Per-kind table columns, as Kubernetes' ``pkg/printers/internalversion`` defines them.

A :class:`~setpoint.api.printers.base.Printer` names its columns (name, type, format,
description, priority: 0 for ``kubectl get``, 1 for ``-o wide`` only) and computes one row's
cells from an object, always including the wide ones, as Kubernetes' API server does.
:func:`printer_for` is the entry point: it finds the printer of a resource type in
:data:`PRINTERS`, keyed by (group, kind). Kinds without a printer of their own get ``NAME``
and ``AGE``, as Kubernetes' default table convertor does.

The printers themselves live in :mod:`setpoint.api.printers.core` (pods, nodes, namespaces,
config maps, secrets, service accounts), :mod:`setpoint.api.printers.events` (both Event APIs)
and :mod:`setpoint.api.printers.workloads` (deployments, replica sets, jobs, cron jobs, leases);
the shared pieces (column definitions, ages, selectors) in :mod:`setpoint.api.printers.base`.
"""

from __future__ import annotations

from setpoint.api.printers.base import Printer
from setpoint.api.printers.core import CORE_PRINTERS
from setpoint.api.printers.events import EVENT_PRINTERS
from setpoint.api.printers.workloads import WORKLOAD_PRINTERS
from setpoint.resources.registry import ResourceType

__all__ = ["DEFAULT_PRINTER", "PRINTERS", "printer_for"]

DEFAULT_PRINTER = Printer()

PRINTERS: dict[tuple[str, str], Printer] = {**CORE_PRINTERS, **EVENT_PRINTERS, **WORKLOAD_PRINTERS}


def printer_for(rtype: ResourceType) -> Printer:
    """The printer of a resource type, or the NAME/AGE default."""
    return PRINTERS.get((rtype.group, rtype.kind), DEFAULT_PRINTER)
