"""Zones: how much of each failure domain is down, and how fast its nodes may be evicted.

Evicting a lost node's pods is the right answer when *that node* fails, and the wrong one
when the control plane merely lost its network: then every node looks lost at once, and
evicting everything would turn a network blip into an outage. Upstream's node lifecycle
controller guards against that per zone (a node's ``topology.kubernetes.io/region`` and
``.../zone``, :func:`zone_key`; nodes without them share the zone ``""``):

- :func:`compute_zone_state` (``ComputeZoneState``): a zone with no Ready node is in
  ``FullDisruption``; one with more than two not-Ready nodes making at least
  ``unhealthy_zone_threshold`` of it is in ``PartialDisruption``; otherwise ``Normal``.
- :func:`zone_eviction_rate` (``setLimiterInZone``): ``Normal`` and ``FullDisruption`` zones taint
  at ``--node-eviction-rate`` nodes per second; a ``PartialDisruption`` zone at
  ``--secondary-node-eviction-rate`` if it has more than ``--large-cluster-size-threshold``
  nodes, and not at all if smaller. When *every* zone is in ``FullDisruption``, no node is
  tainted ``NoExecute`` and the taints already there are removed (the controller's job).
- :class:`ZoneTainter` (``RateLimitedTimedQueue``): the nodes of one zone waiting for their
  ``NoExecute`` taint, released one token at a time (burst 1, as upstream's
  ``EvictionRateLimiterBurst``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from enum import StrEnum

from setpoint.client.api import Obj
from setpoint.client.workqueue import TokenBucket

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
_BETA_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
_BETA_REGION_LABEL = "failure-domain.beta.kubernetes.io/region"
# nodes labelled so count in no zone's health (upstream's labelNodeDisruptionExclusion)
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
EVICTION_BURST = 1


class ZoneState(StrEnum):
    INITIAL = "Initial"
    NORMAL = "Normal"
    PARTIAL_DISRUPTION = "PartialDisruption"
    FULL_DISRUPTION = "FullDisruption"


def zone_key(node: Obj) -> str:
    """``GetZoneKey``: region and zone (stable labels, else the beta ones); "" without both."""
    labels = node["metadata"].get("labels") or {}
    region = labels.get(REGION_LABEL) or labels.get(_BETA_REGION_LABEL) or ""
    zone = labels.get(ZONE_LABEL) or labels.get(_BETA_ZONE_LABEL) or ""
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


def excluded_from_disruption(node: Obj) -> bool:
    return EXCLUDE_DISRUPTION_LABEL in (node["metadata"].get("labels") or {})


def compute_zone_state(ready: Iterable[str | None], threshold: float) -> tuple[int, ZoneState]:
    """How many nodes of a zone are not Ready (given each one's Ready status), and the zone's
    state."""
    statuses = list(ready)
    not_ready = sum(1 for s in statuses if s != "True")
    ready_count = len(statuses) - not_ready
    if ready_count == 0 and not_ready > 0:
        return not_ready, ZoneState.FULL_DISRUPTION
    if not_ready > 2 and not_ready / len(statuses) >= threshold:
        return not_ready, ZoneState.PARTIAL_DISRUPTION
    return not_ready, ZoneState.NORMAL


def zone_eviction_rate(
    state: ZoneState,
    zone_size: int,
    *,
    rate: float,
    secondary_rate: float,
    large_cluster_threshold: int,
) -> float:
    """Nodes per second a zone in ``state`` may have tainted ``NoExecute``."""
    if state == ZoneState.PARTIAL_DISRUPTION:
        return secondary_rate if zone_size > large_cluster_threshold else 0.0
    return rate


class ZoneTainter:
    """The nodes of one zone waiting to be tainted ``NoExecute``, in arrival order, let
    through at ``rate`` per second (0: none)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting: dict[str, None] = {}  # ordered set
        self._bucket: TokenBucket | None = None
        self.swap_rate(rate)

    def swap_rate(self, rate: float) -> None:
        """``SwapLimiter``: a new bucket (full: one node may go at once), or none for 0."""
        self.rate = rate
        self._bucket = TokenBucket(rate, EVICTION_BURST, clock=self._clock) if rate > 0 else None

    def add(self, name: str) -> None:
        self._waiting.setdefault(name, None)

    def remove(self, name: str) -> None:
        self._waiting.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def take(self) -> list[str]:
        """The nodes whose turn it is now (each leaves the queue; put one back with
        :meth:`add` if tainting it failed)."""
        taken = []
        while self._waiting and self._bucket is not None and self._bucket.try_accept():
            name = next(iter(self._waiting))
            del self._waiting[name]
            taken.append(name)
        return taken
