"""The resource types setpoint serves: every kind each API group module declares.

A kind has one home: its group module (``core``, ``apps``, ``authentication``,
``authorization``, ``batch``, ``coordination``, ``discovery``, ``events``, ``networking``,
``policy``, ``rbac``, and ``quota`` for the core group's ResourceQuota and LimitRange) declares
it whole — identity and scope as Kubernetes' discovery names them, its schema definition, and
its behaviour (defaults, validation, field selectors) — and this module only collects them.
"""

from __future__ import annotations

from setpoint.resources import (
    apps,
    authentication,
    authorization,
    batch,
    coordination,
    core,
    discovery,
    events,
    networking,
    policy,
    quota,
    rbac,
)
from setpoint.resources.registry import Registry, ResourceType

_BEYOND_CORE: tuple[ResourceType, ...] = (
    *apps.KINDS,
    *authentication.KINDS,
    *batch.KINDS,
    *coordination.KINDS,
    *discovery.KINDS,
    *events.KINDS,
    *networking.KINDS,
    *policy.KINDS,
    *rbac.KINDS,
    *authorization.KINDS,
)
KINDS: tuple[ResourceType, ...] = (*core.KINDS, *quota.KINDS, *_BEYOND_CORE)


def default_registry(
    *, tolerations: core.DefaultTolerationSeconds = core.DEFAULT_TOLERATION_SECONDS
) -> Registry:
    """A registry of every built-in kind; pods are admitted with ``tolerations``."""
    return Registry((*core.kinds(tolerations), *quota.KINDS, *_BEYOND_CORE))
