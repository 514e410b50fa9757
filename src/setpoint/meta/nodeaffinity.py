"""Required node affinity: does a pod's node selection admit a node?

A pod restricts the nodes it may run on in two ways that must both hold: ``nodeSelector``
(every label equal) and ``affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution``
(any of its ``nodeSelectorTerms``; a term needs all of its ``matchExpressions`` over the
node's labels and all of its ``matchFields``, of which only ``metadata.name`` exists). A
required node affinity with no terms admits no node; an empty term matches nothing.

The scheduler's NodeAffinity filter and the DaemonSet controller (which decides for itself
which nodes should run a daemon pod, then pins each pod to its node with ``matchFields
metadata.name In [node]``) read these rules the same way: ``GetRequiredNodeAffinity(pod).Match``
of ``k8s.io/component-helpers/scheduling/corev1/nodeaffinity``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME_FIELD = "metadata.name"


def requirement_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One ``NodeSelectorRequirement`` against a node's labels (or its fields)."""
    key = expr.get("key") or ""
    operator = expr.get("operator") or ""
    values = expr.get("values") or []
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def node_selector_term_matches(
    term: Mapping[str, Any], labels: Mapping[str, str], name: str
) -> bool:
    """A NodeSelectorTerm: all expressions and fields must match; an empty term matches
    nothing; ``metadata.name`` is the only field there is."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for expr in expressions:
        if not requirement_matches(expr, labels):
            return False
    for expr in fields:
        if expr.get("key") != NAME_FIELD:
            return False
        if not requirement_matches(expr, {NAME_FIELD: name}):
            return False
    return True


def required_node_terms(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The required node affinity's terms, or None when the pod has none at all."""
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return list(required.get("nodeSelectorTerms") or [])


def pod_matches_node(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """``GetRequiredNodeAffinity(pod).Match(node)``: the node selector and the required
    node affinity both admit ``node``."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    terms = required_node_terms(pod_spec)
    if terms is None:
        return True
    name = str(meta.get("name") or "")
    return any(node_selector_term_matches(term, labels, name) for term in terms)
