"""The ``setpoint.io/assigned-ports`` pod annotation: where a pod without a network of its
own really listens.

A pod the agent runs in the node's network because it has no pod network (not root,
``--pod-network=host``, no ``spec.podCIDR``) cannot have its ``containerPorts``: two
replicas would collide on the node. The agent gives each TCP containerPort a free node port
instead (:mod:`setpoint.agent.dynports`) and writes the mapping on the pod, as
``{"8080/TCP": 34567}``, so the EndpointSlice and Endpoints controllers send a Service's
traffic to the assigned port (:func:`setpoint.controllers.util.endpoints.find_port`).

In Kubernetes the kubelet writes only a pod's status; this annotation is a setpoint
difference, written by the agent before the pod's first container starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ANNOTATION = "setpoint.io/assigned-ports"


def port_key(port: int, protocol: str = "TCP") -> str:
    """A containerPort as the annotation names it: ``8080/TCP``."""
    return f"{port}/{protocol}"


def encode(assigned: Mapping[str, int]) -> str:
    return json.dumps(dict(assigned), sort_keys=True, separators=(",", ":"))


def assigned_ports(pod: Mapping[str, Any]) -> dict[str, int]:
    """The pod's annotation read; ``{}`` when absent or malformed (a hand-written value that
    does not parse is ignored, not an error: the containerPorts then stand as declared)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(ANNOTATION)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(k): v
        for k, v in value.items()
        if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536
    }
