"""What a StatefulSet pod is: its ordinal, its identity, its claims, its health, and the status
counts. Follows ``pkg/controller/statefulset/stateful_set_utils.go``.

A StatefulSet's pods are named ``<set>-<ordinal>``; the ordinals run from ``spec.ordinals.start``
(0 by default) for ``spec.replicas`` pods. A pod's *identity* is that name, the labels
``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``, and its DNS name
``<pod>.<serviceName>`` (``hostname`` and ``subdomain``). Its *storage* is one claim per
``volumeClaimTemplates`` entry, ``<template>-<set>-<ordinal>``, mounted as the volume of the
template's name (replacing a template volume of that name). The revision a pod was made from
is its ``controller-revision-hash`` label, which for a StatefulSet holds the whole revision
name (``web-7d4b9c``), not only the hash.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any

from setpoint.client.api import Obj
from setpoint.controllers.util import ownerrefs
from setpoint.controllers.util import pods as podutil
from setpoint.controllers.util.history import HASH_LABEL

KIND = "StatefulSet"
API_VERSION = "apps/v1"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# ------------------------------------------------------------------------ the set


def start_ordinal(sts: Obj) -> int:
    """``getStartOrdinal``: ``spec.ordinals.start``, 0 without one."""
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def replicas(sts: Obj) -> int:
    return int((sts.get("spec") or {}).get("replicas", 1))


def is_monotonic(sts: Obj) -> bool:
    """``OrderedReady`` pod management: one pod at a time, in order."""
    return (sts.get("spec") or {}).get("podManagementPolicy") != "Parallel"


def update_strategy(sts: Obj) -> str:
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    return str(strategy.get("type") or "RollingUpdate")


def partition(sts: Obj) -> int | None:
    """``rollingUpdate.partition``; None when there is no ``rollingUpdate``."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    return None if rolling is None else int(rolling.get("partition") or 0)


def retention(sts: Obj, when: str) -> str:
    """``whenDeleted`` or ``whenScaled`` of the claim retention policy (``Retain``)."""
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get(when) or "Retain")


# ------------------------------------------------------------------------ the pod


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """``getParentNameAndOrdinal``: ("", -1) when the name has no ``-<ordinal>``."""
    match = _ORDINAL.match(str(pod["metadata"].get("name", "")))
    if match is None:
        return "", -1
    return match.group(1), int(match.group(2))


def ordinal(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def is_member_of(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod)[0] == sts["metadata"]["name"]


def pod_name(sts: Obj, index: int) -> str:
    return f"{sts['metadata']['name']}-{index}"


def claim_name(sts: Obj, template_name: str, index: int) -> str:
    """``getPersistentVolumeClaimName``: ``<template>-<set>-<ordinal>``."""
    return f"{template_name}-{sts['metadata']['name']}-{index}"


def pod_revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(HASH_LABEL, ""))


def identity_matches(sts: Obj, pod: Obj) -> bool:
    """``identityMatches``: name, namespace and the identity labels are the set's."""
    parent, index = parent_and_ordinal(pod)
    labels = pod["metadata"].get("labels") or {}
    name = pod["metadata"].get("name")
    return (
        index >= 0
        and parent == sts["metadata"]["name"]
        and pod["metadata"].get("namespace") == sts["metadata"]["namespace"]
        and labels.get(POD_NAME_LABEL) == name
        and labels.get(POD_INDEX_LABEL) == str(index)
    )


def identity_patch(pod: Obj) -> Obj:
    """The labels ``updateIdentity`` would set on an existing pod (hostname and subdomain
    are immutable in a pod's spec, so only the labels can be mended)."""
    index = ordinal(pod)
    name = pod["metadata"]["name"]
    return {"metadata": {"labels": {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(index)}}}


def claims_for(sts: Obj, index: int) -> dict[str, Obj]:
    """``getPersistentVolumeClaims``: template name -> the claim pod ``index`` mounts,
    labelled with the template's labels and the set's ``matchLabels``."""
    spec = sts.get("spec") or {}
    match_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    claims: dict[str, Obj] = {}
    for template in spec.get("volumeClaimTemplates") or []:
        meta = template.get("metadata") or {}
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                **{k: copy.deepcopy(v) for k, v in meta.items() if k in ("annotations",)},
                "name": claim_name(sts, str(meta.get("name", "")), index),
                "namespace": sts["metadata"]["namespace"],
                "labels": {**(meta.get("labels") or {}), **match_labels},
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        claims[str(meta.get("name", ""))] = claim
    return claims


def storage_matches(sts: Obj, pod: Obj) -> bool:
    """``storageMatches``: every claim template is mounted from the pod's own claim."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for name, claim in claims_for(sts, ordinal(pod)).items():
        source = (volumes.get(name) or {}).get("persistentVolumeClaim") or {}
        if source.get("claimName") != claim["metadata"]["name"]:
            return False
    return True


def new_pod(sts: Obj, template: Obj, index: int, revision_name: str) -> Obj:
    """``newVersionedStatefulSetPod``: the pod of ordinal ``index`` from ``template`` (the
    pod template of the revision it belongs to), with its identity and storage."""
    ref = ownerrefs.new_controller_ref(sts, API_VERSION, KIND)
    pod = podutil.pod_from_template(template, sts, ref)
    meta = pod["metadata"]
    del meta["generateName"]
    name = pod_name(sts, index)
    meta["name"] = name
    meta["labels"] = {
        **(meta.get("labels") or {}),
        POD_NAME_LABEL: name,
        POD_INDEX_LABEL: str(index),
        HASH_LABEL: revision_name,
    }
    spec = pod["spec"]
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    claims = claims_for(sts, index)
    volumes = [
        {"name": volume, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
        for volume, claim in claims.items()
    ]
    volumes += [v for v in spec.get("volumes") or [] if v.get("name") not in claims]
    if volumes:
        spec["volumes"] = volumes
    return pod


# ------------------------------------------------------------------------ health


def is_created(pod: Obj | None) -> bool:
    """``isCreated``: the pod exists (the API server gives every pod a phase)."""
    return pod is not None and bool((pod.get("status") or {}).get("phase"))


def is_finished(pod: Obj) -> bool:
    """``isFailed`` or ``isSucceeded``: it will not run again, so it is replaced."""
    return podutil.pod_phase(pod) in ("Failed", "Succeeded")


def is_running_and_ready(pod: Obj) -> bool:
    return podutil.pod_phase(pod) == "Running" and podutil.is_pod_ready(pod)


def is_running_and_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    return podutil.pod_phase(pod) == "Running" and podutil.is_pod_available(
        pod, min_ready_seconds, now
    )


def is_healthy(pod: Obj) -> bool:
    """``isHealthy``: running, ready and not being deleted."""
    return is_running_and_ready(pod) and not podutil.is_terminating(pod)


# ------------------------------------------------------------------------ status


def compute_status(
    sts: Obj, pods: list[Obj], current_revision: str, update_revision: str, now: datetime
) -> dict[str, Any]:
    """``computeReplicaStatus`` over the set's pods, then ``completeRollingUpdate``: once
    every pod is updated and ready, the update revision becomes the current one."""
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    counts = dict.fromkeys(
        ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"),
        0,
    )
    for pod in pods:
        if is_created(pod):
            counts["replicas"] += 1
        if is_running_and_ready(pod):
            counts["readyReplicas"] += 1
            if is_running_and_available(pod, min_ready, now):
                counts["availableReplicas"] += 1
        if is_created(pod) and not podutil.is_terminating(pod):
            revision = pod_revision(pod)
            counts["currentReplicas"] += revision == current_revision
            counts["updatedReplicas"] += revision == update_revision
    status: dict[str, Any] = {
        **counts,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
    }
    if (
        update_strategy(sts) == "RollingUpdate"
        and counts["updatedReplicas"] == counts["replicas"]
        and counts["readyReplicas"] == counts["replicas"]
    ):
        status["currentReplicas"] = counts["updatedReplicas"]
        status["currentRevision"] = update_revision
    return status
