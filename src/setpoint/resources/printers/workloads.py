"""Tables for the workload kinds (deployments, replica sets, daemon sets, stateful sets, controller
revisions, jobs, cron jobs), the PodDisruptionBudgets that guard them, and leases.

Each printer reproduces the matching ``print*`` function of Kubernetes'
``pkg/printers/internalversion/printers.go``. Two details are easy to miss. Deployments render
their selector themselves (empty stays empty, a bad one is ``<invalid>``) while every other
kind goes through ``metav1.FormatLabelSelector`` (``<none>``, ``<error>``). And a Job's STATUS
takes the first of Complete, Failed, Terminating (being deleted), Suspended, FailureTarget and
SuccessCriteriaMet that holds, else Running.

Some column descriptions are the documentation of the deprecated ``extensions/v1beta1`` and
``batch/v1beta1`` fields, because that is what Kubernetes' column definitions reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.resources.printers.base import (
    AGE_COLUMN,
    CONTAINERS_DOC,
    IMAGES_DOC,
    NAME_COLUMN,
    Cells,
    Printer,
    age,
    age_of,
    column,
    containers_cells,
    deployment_selector,
    dig,
    format_label_selector,
    human_duration,
    items,
    name_of,
    number,
    parse_time,
    size,
    text,
    wide_containers_columns,
)

_READY_DOC = "Number of the pod with ready state"

# --- deployments ----------------------------------------------------------------------------

DEPLOYMENT_COLUMNS = [
    NAME_COLUMN,
    column("Ready", description=_READY_DOC),
    column(
        "Up-to-date",
        description="Total number of non-terminated pods targeted by this deployment that have "
        "the desired template spec.",
    ),
    column(
        "Available",
        description="Total number of available pods (ready for at least minReadySeconds) "
        "targeted by this deployment.",
    ),
    AGE_COLUMN,
    *wide_containers_columns(
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be "
        "the ones affected by this deployment."
    ),
]


def deployment_cells(deployment: Obj, now: datetime) -> list[Any]:
    """``printDeployment``: READY is ready/desired replicas."""
    desired = number(deployment, "spec", "replicas", default=1)
    ready = number(deployment, "status", "readyReplicas")
    pod_spec = dig(deployment, "spec", "template", "spec")
    return [
        name_of(deployment),
        f"{ready}/{desired}",
        number(deployment, "status", "updatedReplicas"),
        number(deployment, "status", "availableReplicas"),
        age_of(deployment, now),
        *containers_cells(pod_spec),
        deployment_selector(dig(deployment, "spec", "selector")),
    ]


# --- replica sets ---------------------------------------------------------------------------

REPLICASET_COLUMNS = [
    NAME_COLUMN,
    column(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas. This is a pointer to distinguish between "
        "explicit zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/"
        "#what-is-a-replicationcontroller",
    ),
    column(
        "Current",
        "integer",
        "Replicas is the most recently oberved number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/"
        "#what-is-a-replicationcontroller",
    ),
    column("Ready", "integer", "The number of ready replicas for this replica set."),
    AGE_COLUMN,
    *wide_containers_columns(
        "Selector is a label query over pods that should match the replica count. If the "
        "selector is empty, it is defaulted to the labels present on the pod template. Label "
        "keys and values that must match in order to be controlled by this replica set. More "
        "info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
        "#label-selectors"
    ),
]


def _replica_cells(format_selector: Callable[[Any], str]) -> Cells:
    """``printReplicaSet`` and ``printReplicationController``: desired, current and ready
    replica counts; they differ only in how the selector is written."""

    def cells(owner: Obj, now: datetime) -> list[Any]:
        return [
            name_of(owner),
            number(owner, "spec", "replicas", default=1),
            number(owner, "status", "replicas"),
            number(owner, "status", "readyReplicas"),
            age_of(owner, now),
            *containers_cells(dig(owner, "spec", "template", "spec")),
            format_selector(dig(owner, "spec", "selector")),
        ]

    return cells


replicaset_cells = _replica_cells(format_label_selector)
replication_controller_cells = _replica_cells(lambda selector: format_labels(selector))


# --- daemon sets ----------------------------------------------------------------------------

DAEMONSET_COLUMNS = [
    NAME_COLUMN,
    column(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod (including nodes "
        "correctly running the daemon pod). More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    ),
    column(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the "
        "daemon pod. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
    ),
    column(
        "Ready",
        "integer",
        "numberReady is the number of nodes that should be running the daemon pod and have one "
        "or more of the daemon pod running with a Ready Condition.",
    ),
    column(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod",
    ),
    column(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the "
        "daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    column(
        "Node Selector",
        description="NodeSelector is a selector which must be true for the pod to fit on a "
        "node. Selector which must match a node's labels for the pod to be scheduled on that "
        "node. More info: "
        "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
    ),
    AGE_COLUMN,
    *wide_containers_columns(
        "A label query over pods that are managed by the daemon set. Must match in order to be "
        "controlled. It must match the pod template's labels. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
        "#label-selectors"
    ),
]


def format_labels(labels: Mapping[str, Any] | None) -> str:
    """``labels.FormatLabels``: ``k=v`` pairs sorted by key, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def daemonset_cells(daemonset: Obj, now: datetime) -> list[Any]:
    """``printDaemonSet``: the status counts and the template's node selector."""
    pod_spec = dig(daemonset, "spec", "template", "spec")
    return [
        name_of(daemonset),
        number(daemonset, "status", "desiredNumberScheduled"),
        number(daemonset, "status", "currentNumberScheduled"),
        number(daemonset, "status", "numberReady"),
        number(daemonset, "status", "updatedNumberScheduled"),
        number(daemonset, "status", "numberAvailable"),
        format_labels(dig(pod_spec, "nodeSelector")),
        age_of(daemonset, now),
        *containers_cells(pod_spec),
        format_label_selector(dig(daemonset, "spec", "selector")),
    ]


# --- controller revisions -------------------------------------------------------------------

CONTROLLERREVISION_COLUMNS = [
    NAME_COLUMN,
    column("Controller", description="Controller of the object"),
    column(
        "Revision", description="Revision indicates the revision of the state represented by Data."
    ),
    AGE_COLUMN,
]


def controller_name(obj: Obj) -> str:
    """The CONTROLLER cell: ``<kind>.<group>/<name>`` of the controller reference (the core
    group without a dot), ``<none>`` without one (``formatResourceName`` with kind)."""
    for ref in items(obj, "metadata", "ownerReferences"):
        if isinstance(ref, Mapping) and ref.get("controller"):
            api_version = str(ref.get("apiVersion") or "")
            group = api_version.split("/")[0] if "/" in api_version else ""
            kind = str(ref.get("kind") or "").lower()
            return f"{kind}.{group}/{ref.get('name')}" if group else f"{kind}/{ref.get('name')}"
    return "<none>"


def controllerrevision_cells(revision: Obj, now: datetime) -> list[Any]:
    """``printControllerRevision``: its controller and revision number."""
    return [
        name_of(revision),
        controller_name(revision),
        number(revision, "revision"),
        age_of(revision, now),
    ]


# --- stateful sets --------------------------------------------------------------------------

STATEFULSET_COLUMNS = [
    NAME_COLUMN,
    column("Ready", description=_READY_DOC),
    AGE_COLUMN,
    column("Containers", priority=1, description=CONTAINERS_DOC),
    column("Images", priority=1, description=IMAGES_DOC),
]


def statefulset_cells(stateful_set: Obj, now: datetime) -> list[Any]:
    """``printStatefulSet``: READY is ready/desired replicas."""
    desired = number(stateful_set, "spec", "replicas", default=1)
    ready = number(stateful_set, "status", "readyReplicas")
    return [
        name_of(stateful_set),
        f"{ready}/{desired}",
        age_of(stateful_set, now),
        *containers_cells(dig(stateful_set, "spec", "template", "spec")),
    ]


# --- jobs -----------------------------------------------------------------------------------

_JOB_SELECTOR_DOC = (
    "A label query over pods that should match the pod count. Normally, the system sets this "
    "field for you. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
)

JOB_COLUMNS = [
    NAME_COLUMN,
    column("Status", description="Status of the job."),
    column(
        "Completions",
        description="The number of pods which reached phase Succeeded. The value increases "
        "monotonically for a given spec. However, it may decrease in reaction to scale down of "
        "elastic indexed jobs.",
    ),
    column("Duration", description="Time required to complete the job."),
    AGE_COLUMN,
    *wide_containers_columns(_JOB_SELECTOR_DOC),
]

# The order in which a Job's conditions decide its STATUS (deletion sits after Failed).
_JOB_STATUS_BEFORE_DELETION = ("Complete", "Failed")
_JOB_STATUS_AFTER_DELETION = ("Suspended", "FailureTarget", "SuccessCriteriaMet")


def _job_condition(job: Obj, kind: str) -> bool:
    """``hasJobCondition``: the first condition of this type is ``True``."""
    for condition in items(job, "status", "conditions"):
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def job_status(job: Obj) -> str:
    """The Job's STATUS: Complete, Failed, Terminating, Suspended, ..., or Running."""
    for kind in _JOB_STATUS_BEFORE_DELETION:
        if _job_condition(job, kind):
            return kind
    if dig(job, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    for kind in _JOB_STATUS_AFTER_DELETION:
        if _job_condition(job, kind):
            return kind
    return "Running"


def job_completions(job: Obj) -> str:
    """``1/3`` of the completions; without completions, ``0/1``, or ``0/1 of 3`` if parallel."""
    succeeded = number(job, "status", "succeeded")
    if dig(job, "spec", "completions") is not None:
        return f"{succeeded}/{number(job, 'spec', 'completions')}"
    parallelism = number(job, "spec", "parallelism")
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(job: Obj, now: datetime) -> str:
    """From start to completion, or to now while running; empty before it starts."""
    started = parse_time(text(job, "status", "startTime"))
    if started is None:
        return ""
    completed = parse_time(text(job, "status", "completionTime"))
    end = completed if completed is not None else now
    return human_duration((end - started).total_seconds())


def job_cells(job: Obj, now: datetime) -> list[Any]:
    """``printJob``: NAME STATUS COMPLETIONS DURATION AGE, then the wide columns."""
    return [
        name_of(job),
        job_status(job),
        job_completions(job),
        job_duration(job, now),
        age_of(job, now),
        *containers_cells(dig(job, "spec", "template", "spec")),
        format_label_selector(dig(job, "spec", "selector")),
    ]


# --- cron jobs ------------------------------------------------------------------------------

CRONJOB_COLUMNS = [
    NAME_COLUMN,
    column(
        "Schedule",
        description="The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    column(
        "Timezone",
        description="The time zone name for the given schedule, see "
        "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this "
        "will default to the time zone of the kube-controller-manager process. The set of valid "
        "time zone names and the time zone offset is loaded from the system-wide time zone "
        "database by the API server during CronJob validation and the controller manager during "
        "execution. If no system-wide time zone database can be found a bundled version of the "
        "database is used instead. If the time zone name becomes invalid during the lifetime of "
        "a CronJob or due to a change in host configuration, the controller will stop creating "
        "new new Jobs and will create a system event with the reason UnknownTimeZone. More "
        "information can be found in "
        "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
    ),
    column(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions, it does not apply to "
        "already started executions.  Defaults to false.",
    ),
    column("Active", "integer", "A list of pointers to currently running jobs."),
    column(
        "Last Schedule",
        description="Information when was the last time the job was successfully scheduled.",
    ),
    AGE_COLUMN,
    *wide_containers_columns(_JOB_SELECTOR_DOC),
]


def _bool_pointer(value: Any) -> str:
    """``printBoolPtr``: ``True``, ``False``, or ``<unset>``."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return "<unset>"


def cronjob_cells(cronjob: Obj, now: datetime) -> list[Any]:
    """``printCronJob``: schedule, time zone, suspend, active jobs, last schedule."""
    last_schedule = text(cronjob, "status", "lastScheduleTime")
    job_spec = dig(cronjob, "spec", "jobTemplate", "spec")
    return [
        name_of(cronjob),
        text(cronjob, "spec", "schedule"),
        _time_zone(dig(cronjob, "spec", "timeZone")),
        _bool_pointer(dig(cronjob, "spec", "suspend")),
        size(cronjob, "status", "active"),
        age(last_schedule, now) if last_schedule else "<none>",
        age_of(cronjob, now),
        *containers_cells(dig(job_spec, "template", "spec")),
        format_label_selector(dig(job_spec, "selector")),
    ]


def _time_zone(value: Any) -> str:
    """The time zone as set (even if empty), ``<none>`` when unset."""
    return value if isinstance(value, str) else "<none>"


# --- leases ---------------------------------------------------------------------------------

LEASE_COLUMNS = [
    NAME_COLUMN,
    column(
        "Holder",
        description="holderIdentity contains the identity of the holder of a current lease. If "
        "Coordinated Leader Election is used, the holder identity must be equal to the elected "
        "LeaseCandidate.metadata.name field.",
    ),
    AGE_COLUMN,
]


def lease_cells(lease: Obj, now: datetime) -> list[Any]:
    return [name_of(lease), text(lease, "spec", "holderIdentity"), age_of(lease, now)]


# --- pod disruption budgets ------------------------------------------------------------------

PDB_COLUMNS = [
    NAME_COLUMN,
    column("Min Available", description="The minimum number of pods that must be available."),
    column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
    column(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE_COLUMN,
]


def _int_or_string(value: Any) -> str:
    """``IntOrString.String()``, ``N/A`` when unset (``printPodDisruptionBudget``)."""
    if value is None:
        return "N/A"
    return str(value)


def pdb_cells(pdb: Obj, now: datetime) -> list[Any]:
    return [
        name_of(pdb),
        _int_or_string(dig(pdb, "spec", "minAvailable")),
        _int_or_string(dig(pdb, "spec", "maxUnavailable")),
        number(pdb, "status", "disruptionsAllowed"),
        age_of(pdb, now),
    ]


DEPLOYMENT_PRINTER = Printer(DEPLOYMENT_COLUMNS, deployment_cells)
REPLICASET_PRINTER = Printer(REPLICASET_COLUMNS, replicaset_cells)
REPLICATION_CONTROLLER_PRINTER = Printer(REPLICASET_COLUMNS, replication_controller_cells)
DAEMONSET_PRINTER = Printer(DAEMONSET_COLUMNS, daemonset_cells)
CONTROLLERREVISION_PRINTER = Printer(CONTROLLERREVISION_COLUMNS, controllerrevision_cells)
STATEFULSET_PRINTER = Printer(STATEFULSET_COLUMNS, statefulset_cells)
JOB_PRINTER = Printer(JOB_COLUMNS, job_cells)
CRONJOB_PRINTER = Printer(CRONJOB_COLUMNS, cronjob_cells)
LEASE_PRINTER = Printer(LEASE_COLUMNS, lease_cells)
PDB_PRINTER = Printer(PDB_COLUMNS, pdb_cells)
