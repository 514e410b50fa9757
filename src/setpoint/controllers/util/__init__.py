"""What every workload controller needs and Kubernetes keeps in one place.

Upstream's ``pkg/controller`` package holds the helpers its controllers share, so that a
ReplicaSet and a Job agree on what an active pod is or how an orphan is adopted. setpoint
keeps the same knowledge once, here, one module per idea:

- :mod:`~setpoint.controllers.util.pods`: facts about a pod (phase, active, ready,
  available) and the order in which active pods are given up (``controller_utils.go``,
  ``pkg/api/v1/pod/util.go``);
- :mod:`~setpoint.controllers.util.ownerrefs`: controller references, claiming objects by
  selector (adopt, keep, release) and the fresh re-read before adopting
  (``controller_ref_manager.go``);
- :mod:`~setpoint.controllers.util.expectations`: what a controller just asked for and has
  not seen in its cache yet (``ControllerExpectations`` and
  ``UIDTrackingControllerExpectations`` in ``controller_utils.go``);
- :mod:`~setpoint.controllers.util.conditions`: reading and writing ``status.conditions``.

Everything here is pure (dicts in, dicts out) except :func:`ownerrefs.claim` and
:func:`ownerrefs.recheck_deletion`, which talk to the API through the client they are given.
"""
