"""The Job controller: run pods until a number of them succeed, within a failure budget.

A Job asks for ``completions`` successful pods, running at most ``parallelism`` at a time
(``active = min(parallelism, completions - succeeded)``). Without ``completions`` it is a
work queue: ``parallelism`` pods run and the Job is done once any succeeds and the rest have
finished. In ``Indexed`` completion mode each pod gets a completion index (annotation and
label ``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX``, hostname
``<job>-<index>``) and the Job is done when every index ``0..completions-1`` has succeeded;
``status.completedIndexes`` lists them in the compressed form ``"0-2,4"``.

*Exact accounting.* Every pod the controller creates carries the finalizer
``batch.kubernetes.io/job-tracking``, so a finished pod cannot vanish before it is counted.
Counting follows Kubernetes' three steps, each safe to repeat after a crash: (1) the uids of
newly finished pods go to ``status.uncountedTerminatedPods`` in a status write; (2) their
finalizers are removed; (3) uids whose finalizer is gone move from the uncounted lists into
``status.succeeded`` / ``status.failed``. An in-memory set of uids whose finalizer this
process removed stands in until the pod informer catches up (Kubernetes'
finalizerExpectations), and pod-creation/deletion expectations stop a lagging cache from
causing duplicate pods.

*Failure.* A pod failure counts against ``backoffLimit`` (with ``restartPolicy: OnFailure``
the sum of container restarts of running pods counts too). Before a failed pod is replaced
the controller waits an exponential delay (setpoint's default: 1 s doubling to a 60 s cap)
measured from the last failure since the last success. ``podFailurePolicy`` rules, matched
in order on container exit codes or pod conditions, may fail the Job at once (``FailJob``),
not count the failure (``Ignore``), count it (``Count``) or fail just the pod's index
(``FailIndex``). Indexed Jobs may have a per-index budget (``backoffLimitPerIndex``,
``status.failedIndexes``, ``maxFailedIndexes``). ``activeDeadlineSeconds`` bounds the time
since ``startTime``. As in Kubernetes 1.31+, a failing Job first gets ``FailureTarget=True``,
its active pods are deleted, and once none is left terminating it gets ``Failed=True`` with
the same reason; a succeeding Job gets ``SuccessCriteriaMet=True`` and then ``Complete=True``
with ``completionTime``.

*Suspend* deletes active pods (removing their finalizer first, so they are not counted as
failures) and sets the ``Suspended`` condition; resuming resets ``startTime``.
``ttlSecondsAfterFinished`` deletes a finished Job (propagation ``Background``) once the TTL
has passed since it finished (Kubernetes does this in a separate TTL controller).

The package mirrors upstream's ``pkg/controller/job``, one module per upstream file, so the
two can be read side by side:

- :mod:`~setpoint.controllers.job.controller`: the controller and its sync
  (``job_controller.go``);
- :mod:`~setpoint.controllers.job.indexed`: completion indexes (``indexed_job_utils.go``);
- :mod:`~setpoint.controllers.job.failure_policy`: ``podFailurePolicy``
  (``pod_failure_policy.go``);
- :mod:`~setpoint.controllers.job.backoff`: the delay before replacing failed pods
  (``backoff_utils.go``);
- :mod:`~setpoint.controllers.job.tracking`: the job-tracking finalizer and its
  expectations (``tracking_utils.go``);
- :mod:`~setpoint.controllers.job.util`: finished Jobs and failed pods (``util/utils.go``);
- :mod:`~setpoint.controllers.job.ttl`: ``ttlSecondsAfterFinished``
  (``pkg/controller/ttlafterfinished``).
"""

from setpoint.controllers.job.controller import JobController
from setpoint.controllers.job.indexed import COMPLETION_INDEX
from setpoint.controllers.job.tracking import JOB_TRACKING_FINALIZER

__all__ = ["COMPLETION_INDEX", "JOB_TRACKING_FINALIZER", "JobController"]
