"""Server-side printing: the columns behind ``kubectl get``, one printer per kind.

kubectl prints whatever columns the server sends, so the familiar ``NAME READY STATUS
RESTARTS AGE`` are computed here, as Kubernetes' ``pkg/printers/internalversion`` computes
them. Each kind's declaration names its printer (``ResourceType.printer``); the HTTP layer
wraps rows into Table objects (:mod:`setpoint.api.tables`).

* :mod:`~setpoint.resources.printers.base` holds the building blocks: :class:`Printer`,
  column definitions, ages, selectors, and ``DEFAULT_PRINTER`` (NAME and AGE);
* :mod:`~setpoint.resources.printers.core` (pods, nodes, namespaces, config maps, secrets,
  service accounts), :mod:`~setpoint.resources.printers.workloads` (deployments, replica
  sets, jobs, cron jobs, leases) and :mod:`~setpoint.resources.printers.events` (both Event
  APIs) are the printers.
"""
