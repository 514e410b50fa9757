"""The disruption controller: PodDisruptionBudget status, for the eviction subresource to spend.

A PodDisruptionBudget limits voluntary disruptions of the pods it selects; the API server's
eviction subresource (``pods/eviction``, what ``kubectl drain`` uses) allows an eviction only
while the budget's ``status.disruptionsAllowed`` is above zero, and spends one when it does.
This controller is the other half: it keeps that status true to the pods — how many are
expected, how many must be healthy, how many are — and forgets evictions that never became
deletions. It mirrors upstream's ``pkg/controller/disruption``:

- :mod:`~setpoint.controllers.disruption.controller`: informers, handlers, ``trySync`` and the
  scale finders (``disruption.go``);
- :mod:`~setpoint.controllers.disruption.budget`: the status arithmetic as pure functions
  (also ``disruption.go``, and component-helpers' ``poddisruptionbudget``).
"""

from setpoint.controllers.disruption.controller import DisruptionController

__all__ = ["DisruptionController"]
