"""The batch API group's kinds, declared whole (``KINDS``): Jobs and CronJobs.

A Job's pods must not restart forever (``restartPolicy`` OnFailure or Never). Unless
``manualSelector`` is set, the Job selects its pods by its own uid: on creation Kubernetes
labels the template with ``batch.kubernetes.io/controller-uid`` and
``batch.kubernetes.io/job-name`` (and their unprefixed legacy forms) and generates
``spec.selector``; the Job itself is labelled like its template. Once created, a Job keeps its
selector, completion mode and template, except that a suspended Job that never started may
change where its pods are scheduled, and an Indexed Job may scale completions together with
parallelism.

A CronJob's ``schedule`` is a cron expression (see :mod:`setpoint.meta.cron`), with the
time zone in ``spec.timeZone`` rather than in the schedule; its job template is validated as
a Job spec whose selector is generated later.
"""

from __future__ import annotations

import copy
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from setpoint.meta import cron, gofmt
from setpoint.meta.labels import SelectorParseError, selector_from_label_selector
from setpoint.meta.validation import dns1123_label_errors
from setpoint.resources import podspec
from setpoint.resources.checks import (
    immutable,
    kube_finalizer_errors,
    label_selector_errors,
    nonnegative,
)
from setpoint.resources.fielderrors import (
    FieldError,
    invalid_rendered,
    invalid_value,
    not_supported,
    required,
)
from setpoint.resources.printers.workloads import CRONJOB_PRINTER, JOB_PRINTER
from setpoint.resources.registry import (
    CATEGORY_ALL,
    POD_TEMPLATE,
    SPEC_AND_STATUS,
    Obj,
    ResourceType,
)

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
_MAX_INDEXED_PARALLELISM = 100_000
_TZ_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")
_CRONJOB_NAME_LIMIT = 52


# ----------------------------------------------------------------------------------- Job


def _prepare_job(job: Obj) -> None:
    """``generateSelector``: runs before defaulting here, so an absent manualSelector is false."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    meta = job["metadata"]
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, meta.get("uid", ""))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    selector.setdefault("matchLabels", {}).setdefault(CONTROLLER_UID, meta.get("uid", ""))


def _default_job(job: Obj) -> None:
    spec = job.setdefault("spec", {})
    _default_job_spec(spec)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    if template_labels and not job["metadata"].get("labels"):
        job["metadata"]["labels"] = dict(template_labels)
    spec.setdefault("manualSelector", False)


def _default_job_spec(spec: Obj) -> None:
    """``SetDefaults_Job``'s spec part (job templates of CronJobs do not get it)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        per_index = spec.get("backoffLimitPerIndex") is not None
        spec["backoffLimit"] = 2**31 - 1 if per_index else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pattern in rule.get("onPodConditions") or []:
            pattern.setdefault("status", "True")
    if spec.get("podReplacementPolicy") is None:
        failure_policy = spec.get("podFailurePolicy") is not None
        spec["podReplacementPolicy"] = "Failed" if failure_policy else "TerminatingOrFailed"
    podspec.default_template(spec)


def _validate_job(job: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateJob`` (+ ``ValidateJobSpecUpdate`` on update)."""
    spec = job.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    errors = kube_finalizer_errors(job)
    errors += _generated_selector_errors(job, _requires_prefixed_labels(old_spec, old))
    errors += _job_spec_errors(spec, "spec")
    if spec.get("selector") is None:
        errors.append(required("spec.selector"))
    else:
        errors += label_selector_errors(spec["selector"], "spec.selector")
    errors += podspec.validate_selector_matches_template(
        spec.get("selector"), spec.get("template"), "spec.template"
    )
    errors += _indexed_name_errors(job)
    if old is None:
        return errors
    return errors + _job_update_errors(spec, old_spec, old)


def _requires_prefixed_labels(old_spec: Obj, old: Obj | None) -> bool:
    if old is None:
        return True
    labels = ((old_spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return JOB_NAME in labels and CONTROLLER_UID in labels


def _generated_selector_errors(job: Obj, prefixed: bool) -> list[FieldError]:
    """``validateGeneratedSelector``: the generated labels and selector are still in place."""
    spec = job.get("spec") or {}
    if spec.get("manualSelector") or spec.get("selector") is None:
        return []
    meta = job["metadata"]
    uid, name = meta.get("uid", ""), meta.get("name", "")
    errors = [] if uid else [required("metadata.uid")]
    expected = {LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name}
    if prefixed:
        expected |= {CONTROLLER_UID: uid, JOB_NAME: name}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    for key, value in expected.items():
        path = f"spec.template.metadata.labels[{key}]"
        if key not in (labels or {}):
            errors.append(required(path, f"must be '{value}'"))
        elif labels and labels[key] != value:
            errors.append(
                invalid_rendered(path, gofmt.sharp_v_string_map(labels), f"must be '{value}'")
            )
    try:
        selected = selector_from_label_selector(spec["selector"]).matches(expected)
    except SelectorParseError:
        selected = True  # reported as an invalid selector
    if not selected:
        rendered = gofmt.sharp_v_label_selector(spec["selector"])
        errors.append(invalid_rendered("spec.selector", rendered, "`selector` not auto-generated"))
    return errors


def _job_spec_errors(spec: Obj, path: str) -> list[FieldError]:
    """``validateJobSpec``: the checks Jobs and CronJob job templates share."""
    errors: list[FieldError] = []
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        errors += nonnegative(spec.get(key), f"{path}.{key}")
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        detail = "when maxFailedIndexes is specified"
        errors.append(required(f"{path}.backoffLimitPerIndex", detail))
    errors += _completion_mode_errors(spec, path)
    errors += _pod_replacement_errors(spec, f"{path}.podReplacementPolicy")
    errors += podspec.validate_template(spec.get("template"), f"{path}.template")
    return errors + _job_restart_policy_errors(spec, f"{path}.template.spec.restartPolicy")


def _completion_mode_errors(spec: Obj, path: str) -> list[FieldError]:
    mode = spec.get("completionMode")
    errors: list[FieldError] = []
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        modes = ("NonIndexed", "Indexed")
        errors.append(not_supported(f"{path}.completionMode", mode, modes))
    if mode == "Indexed":
        completions, parallelism = spec.get("completions"), spec.get("parallelism")
        if completions is None:
            errors.append(required(f"{path}.completions", "when completion mode is Indexed"))
        if parallelism is not None and parallelism > _MAX_INDEXED_PARALLELISM:
            detail = (
                f"must be less than or equal to {_MAX_INDEXED_PARALLELISM} when completion "
                "mode is Indexed"
            )
            errors.append(invalid_value(f"{path}.parallelism", parallelism, detail))
        max_failed = spec.get("maxFailedIndexes")
        if completions is not None and max_failed is not None and max_failed > completions:
            detail = "must be less than or equal to completions"
            errors.append(invalid_value(f"{path}.maxFailedIndexes", max_failed, detail))
    else:
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                detail = "requires indexed completion mode"
                errors.append(invalid_value(f"{path}.{key}", spec[key], detail))
    return errors


def _pod_replacement_errors(spec: Obj, path: str) -> list[FieldError]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    supported = ("Failed",) if spec.get("podFailurePolicy") else ("Failed", "TerminatingOrFailed")
    return [] if policy in supported else [not_supported(path, policy, supported)]


def _job_restart_policy_errors(spec: Obj, path: str) -> list[FieldError]:
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy", "")
    if policy in ("Always", ""):
        return [required(path, 'valid values: "OnFailure", "Never"')]
    if policy not in ("OnFailure", "Never"):
        return [not_supported(path, policy, ("OnFailure", "Never"))]
    if spec.get("podFailurePolicy") is not None and policy != "Never":
        detail = 'only "Never" is supported when podFailurePolicy is specified'
        return [invalid_value(path, policy, detail)]
    return []


def _indexed_name_errors(job: Obj) -> list[FieldError]:
    """Indexed pods are named ``<job>-<index>``, which must stay a DNS label."""
    spec = job.get("spec") or {}
    completions = spec.get("completions")
    if spec.get("completionMode") != "Indexed" or not completions or completions <= 0:
        return []
    name = job["metadata"].get("name", "")
    hostname = f"{name}-{completions - 1}"
    if not dns1123_label_errors(hostname):
        return []
    detail = f"will not able to create pod with invalid DNS label: {hostname}"
    return [invalid_value("metadata.name", name, detail)]


def _job_update_errors(spec: Obj, old_spec: Obj, old: Obj) -> list[FieldError]:
    """``ValidateJobSpecUpdate``'s immutability rules."""
    errors = _completions_update_errors(spec, old_spec)
    errors += immutable(
        spec.get("selector"),
        old_spec.get("selector"),
        "spec.selector",
        gofmt.sharp_v_label_selector(spec.get("selector")),
    )
    errors += _template_update_errors(spec, old_spec, old)
    errors += immutable(
        spec.get("completionMode"), old_spec.get("completionMode"), "spec.completionMode"
    )
    for key, rendered in (
        ("podFailurePolicy", "batch.PodFailurePolicy{...}"),
        ("backoffLimitPerIndex", None),
        ("managedBy", None),
        ("successPolicy", "batch.SuccessPolicy{...}"),
    ):
        errors += immutable(spec.get(key), old_spec.get(key), f"spec.{key}", rendered)
    return errors


def _completions_update_errors(spec: Obj, old_spec: Obj) -> list[FieldError]:
    """Completions are immutable, except an Indexed Job's, changed in tandem with parallelism."""
    completions = spec.get("completions")
    if spec.get("completionMode") != "Indexed":
        return immutable(completions, old_spec.get("completions"), "spec.completions")
    if completions == old_spec.get("completions") or completions is None:
        return []
    if completions != spec.get("parallelism"):
        detail = "can only be modified in tandem with spec.parallelism"
        return [invalid_value("spec.completions", completions, detail)]
    return []


def _template_update_errors(spec: Obj, old_spec: Obj, old: Obj) -> list[FieldError]:
    """The template is immutable; a suspended Job that never started may still change where
    its pods are scheduled (node affinity, node selector, tolerations, scheduling gates) and
    its template's labels and annotations."""
    template = spec.get("template") or {}
    old_template = old_spec.get("template") or {}
    never_started = not (old.get("status") or {}).get("startTime")
    if old_spec.get("suspend") and never_started:
        old_template = _with_scheduling_directives(old_template, template)
    return immutable(template, old_template, "spec.template", "core.PodTemplateSpec{...}")


def _with_scheduling_directives(old_template: Obj, template: Obj) -> Obj:
    merged = copy.deepcopy(old_template)
    meta, new_meta = merged.setdefault("metadata", {}), template.get("metadata") or {}
    for key in ("labels", "annotations"):
        meta[key] = new_meta.get(key)
    pod_spec, new_pod_spec = merged.setdefault("spec", {}), template.get("spec") or {}
    for key in ("nodeSelector", "tolerations", "schedulingGates"):
        pod_spec[key] = new_pod_spec.get(key)
    affinity = dict(pod_spec.get("affinity") or {})
    affinity["nodeAffinity"] = (new_pod_spec.get("affinity") or {}).get("nodeAffinity")
    pod_spec["affinity"] = affinity
    return merged


def _succeeded(job: Obj) -> str:
    return str(int((job.get("status") or {}).get("succeeded") or 0))


# ------------------------------------------------------------------------------- CronJob


def _default_cron_job(cron_job: Obj) -> None:
    spec = cron_job.setdefault("spec", {})
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = (spec.get("jobTemplate") or {}).get("spec")
    if isinstance(job_spec, dict):
        podspec.default_template(job_spec)


def _validate_cron_job(cron_job: Obj, old: Obj | None) -> list[FieldError]:
    """``ValidateCronJobCreate`` / ``ValidateCronJobUpdate``."""
    spec = cron_job.get("spec") or {}
    old_spec = (old or {}).get("spec")
    errors = kube_finalizer_errors(cron_job) + _schedule_errors(spec, old_spec)
    errors += nonnegative(spec.get("startingDeadlineSeconds"), "spec.startingDeadlineSeconds")
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        errors += time_zone_errors(spec.get("timeZone"), "spec.timeZone")
    policy = spec.get("concurrencyPolicy", "")
    if not policy:
        errors.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        supported = ("Allow", "Forbid", "Replace")
        errors.append(not_supported("spec.concurrencyPolicy", policy, supported))
    errors += _job_template_errors(spec.get("jobTemplate") or {}, "spec.jobTemplate")
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errors += nonnegative(spec.get(key), f"spec.{key}")
    name = cron_job["metadata"].get("name", "")
    if old is None and len(name) > _CRONJOB_NAME_LIMIT:
        detail = f"must be no more than {_CRONJOB_NAME_LIMIT} characters"
        errors.append(invalid_value("metadata.name", name, detail))
    return errors


def _schedule_errors(spec: Obj, old_spec: Obj | None) -> list[FieldError]:
    schedule = spec.get("schedule", "")
    if not schedule:
        return [required("spec.schedule")]
    errors = []
    try:
        cron.parse(schedule)
    except cron.CronError as exc:
        errors.append(invalid_value("spec.schedule", schedule, str(exc)))
    allow_tz = old_spec is not None and "TZ" in old_spec.get("schedule", "")
    if allow_tz and "TZ" in schedule and spec.get("timeZone") is not None:
        detail = "cannot use both timeZone field and TZ or CRON_TZ in schedule"
        errors.append(invalid_value("spec.schedule", schedule, detail))
    elif not allow_tz and "TZ" in schedule:
        detail = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
        errors.append(invalid_value("spec.schedule", schedule, detail))
    return errors


def time_zone_errors(zone: str | None, path: str) -> list[FieldError]:
    """``validateTimeZone``: an IANA zone name that this machine's zone database knows."""
    if zone is None:
        return []
    if not zone:
        return [invalid_value(path, zone, "timeZone must be nil or non-empty string")]
    unknown = invalid_value(path, zone, f"unknown time zone {zone}")
    for part in zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.fullmatch(part):
            return [unknown]
    errors = []
    if zone.lower() == "local":
        detail = (
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        )
        errors.append(invalid_value(path, zone, detail))
    if zone != "Local":
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(unknown)
    return errors


def _job_template_errors(template: Obj, path: str) -> list[FieldError]:
    """``ValidateJobTemplateSpec``: a Job spec whose selector the controller will generate."""
    spec = template.get("spec") or {}
    errors = _job_spec_errors(spec, f"{path}.spec")
    if spec.get("selector") is not None:
        rendered = gofmt.sharp_v_label_selector(spec["selector"])
        detail = "`selector` will be auto-generated"
        errors.append(invalid_rendered(f"{path}.spec.selector", rendered, detail))
    if spec.get("manualSelector"):
        errors.append(not_supported(f"{path}.spec.manualSelector", True, ("nil", "false")))
    return errors


KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        group="batch",
        version="v1",
        kind="Job",
        plural="jobs",
        singular="job",
        namespaced=True,
        categories=CATEGORY_ALL,
        subresources=("status",),
        definition="io.k8s.api.batch.v1.Job",
        printer=JOB_PRINTER,
        protobuf="k8s.io.api.batch.v1.Job",
        has_status=True,
        tracks_generation=True,
        always_encoded={**SPEC_AND_STATUS, **POD_TEMPLATE},
        prepare_for_create=_prepare_job,
        defaulter=_default_job,
        validator=_validate_job,
        field_selectors={"status.successful": _succeeded},
    ),
    ResourceType(
        group="batch",
        version="v1",
        kind="CronJob",
        plural="cronjobs",
        singular="cronjob",
        namespaced=True,
        short_names=("cj",),
        categories=CATEGORY_ALL,
        subresources=("status",),
        definition="io.k8s.api.batch.v1.CronJob",
        printer=CRONJOB_PRINTER,
        protobuf="k8s.io.api.batch.v1.CronJob",
        has_status=True,
        tracks_generation=True,
        always_encoded={
            **SPEC_AND_STATUS,
            "spec.jobTemplate": {},
            "spec.jobTemplate.metadata": {},
            "spec.jobTemplate.spec": {},
            "spec.jobTemplate.spec.template": {},
            "spec.jobTemplate.spec.template.metadata": {},
        },
        defaulter=_default_cron_job,
        validator=_validate_cron_job,
    ),
)
