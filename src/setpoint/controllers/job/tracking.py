"""Exact accounting of finished pods: the job-tracking finalizer and what stands in for it.

Every pod the Job controller creates carries the finalizer ``batch.kubernetes.io/job-tracking``,
so a finished pod cannot vanish before it is counted. The controller records a finished
pod's uid in ``status.uncountedTerminatedPods``, then removes the finalizer, then moves the
uid into ``status.succeeded``/``failed`` (``trackJobStatusAndRemoveFinalizers`` in
:mod:`~setpoint.controllers.job.controller`). Between removing a finalizer and the pod
informer showing it gone, :class:`FinalizerExpectations` remembers the uid so the pod is not
counted twice. Follows ``pkg/controller/job/tracking_utils.go``.
"""

from __future__ import annotations

from setpoint.client.api import Obj

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"


def has_tracking_finalizer(pod: Obj) -> bool:
    return JOB_TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


class FinalizerExpectations:
    """The uids of pods whose tracking finalizer this process removed and whose update the
    pod informer has not delivered yet (upstream's ``uidTrackingExpectations`` in
    ``tracking_utils.go``): until it does, the cache still shows the finalizer, and the pod
    must not be counted twice."""

    def __init__(self) -> None:
        self._removed: dict[str, set[str]] = {}

    def removed(self, key: str) -> set[str]:
        return self._removed.get(key, set())

    def expect_removal(self, key: str, uid: str) -> None:
        self._removed.setdefault(key, set()).add(uid)

    def removal_observed(self, key: str, uid: str) -> None:
        uids = self._removed.get(key)
        if uids is not None:
            uids.discard(uid)

    def delete_expectations(self, key: str) -> None:
        self._removed.pop(key, None)


def compact_status(status: Obj) -> None:
    """Drop empty uncounted lists, as the API omits them."""
    uncounted = status.get("uncountedTerminatedPods")
    if isinstance(uncounted, dict):
        for kind in ("succeeded", "failed"):
            if not uncounted.get(kind):
                uncounted.pop(kind, None)
