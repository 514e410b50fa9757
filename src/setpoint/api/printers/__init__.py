"""Server-side printing: the ``meta.k8s.io/v1 Table`` answers behind ``kubectl get``.

kubectl prints whatever columns the server sends, so the familiar ``NAME READY STATUS
RESTARTS AGE`` are computed here, as Kubernetes' ``pkg/printers/internalversion`` computes
them. The package has one module per part:

* :mod:`~setpoint.api.printers.tables` wraps rows into Table objects (lists, single objects,
  watch events), the only module the HTTP layer uses;
* :mod:`~setpoint.api.printers.registry` finds the printer of a resource type;
* :mod:`~setpoint.api.printers.base` holds the building blocks: :class:`Printer`, column
  definitions, ages, selectors;
* :mod:`~setpoint.api.printers.core` (pods, nodes, namespaces, config maps, secrets, service
  accounts), :mod:`~setpoint.api.printers.workloads` (deployments, replica sets, jobs, cron
  jobs, leases) and :mod:`~setpoint.api.printers.events` (both Event APIs) are the printers.
"""
