"""One local agent per node name per cluster on a machine (``cli.localnode``)."""

from __future__ import annotations

import uuid

import pytest

from setpoint.cli.localnode import NodeNameInUse, claim_node_name, lock_path


def test_a_second_claim_of_a_node_name_in_one_cluster_is_refused() -> None:
    cluster, name = uuid.uuid4().hex, "twin"
    try:
        with claim_node_name(cluster, name):
            refused = pytest.raises(NodeNameInUse, match="--node-name NAME or --disable-agent")
            with refused, claim_node_name(cluster, name):
                pass
            with claim_node_name(uuid.uuid4().hex, name):  # another cluster's node
                pass
        with claim_node_name(cluster, name):  # released when its holder is done
            pass
    finally:
        lock_path(cluster, name).unlink(missing_ok=True)
