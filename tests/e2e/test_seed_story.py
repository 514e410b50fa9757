"""The seed story as an acceptance test (see :mod:`tests.seedstory`): a 3-replica web server
with probes on four real nodes survives a killed process, a hung process, a deleted pod and
a dead node, each time back to 3 answering replicas, never fewer than 2 meanwhile."""

from __future__ import annotations

import pytest

from tests.cluster import (
    FAST_NODE_LOSS_AGENT,
    FAST_NODE_LOSS_SERVER,
    can_make_network_namespaces,
    running_cluster,
)
from tests.seedstory import REPLICAS, run_seed_story
from tests.support import create_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cluster")]


@pytest.mark.skipif(
    not can_make_network_namespaces(),
    reason="one replica per node on port 8080 needs each node in a network namespace (root)",
)
def test_seed_story() -> None:
    with running_cluster(
        REPLICAS + 1,
        server_flags=FAST_NODE_LOSS_SERVER,
        agent_flags=FAST_NODE_LOSS_AGENT,
    ) as cluster:
        outages = run_seed_story(cluster, create_namespace(cluster.server, "seed"))
        for outage in outages:
            print(outage)
        assert [o.fault for o in outages] == [
            "process killed",
            "process hung (liveness)",
            "pod deleted",
            "node killed",
        ]
        assert all(o.fewest_healthy >= REPLICAS - 1 for o in outages), outages
        assert not cluster.tracebacks(), cluster.tracebacks()
