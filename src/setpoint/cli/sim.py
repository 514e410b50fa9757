"""``setpoint sim``: run hollow nodes against an API server, for scale tests.

Like kubemark's hollow-node, it registers ``--nodes`` fake nodes that heartbeat and "run"
the pods bound to them without starting processes (see :mod:`setpoint.sim.hollow`). It
connects either through a kubeconfig (``--kubeconfig``, or ``$KUBECONFIG``) or through
``--server`` with ``--token-file`` and ``--ca-file``, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import click

from setpoint.cli.flags import client_config, parse_labels
from setpoint.cli.process import install_uvloop, run_until_signalled, tune_gc
from setpoint.client.api import ApiClient, ClientConfig
from setpoint.client.nodes import NODE_LEASE_DURATION_SECONDS
from setpoint.sim.hollow import HollowNodes


async def run_hollow_nodes(config: ClientConfig, make: Callable[[ApiClient], HollowNodes]) -> None:
    """Run the hollow nodes ``make`` builds until SIGTERM/SIGINT."""
    client = ApiClient(config)
    nodes = make(client)
    try:
        await run_until_signalled(nodes)
    finally:
        await client.close()


_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--nodes", "count", type=click.IntRange(0), default=1, show_default=True)
@click.option("--kubeconfig", type=_PATH, envvar="KUBECONFIG", help="Kubeconfig to connect with.")
@click.option("--server", default=None, help="API server URL (instead of a kubeconfig).")
@click.option("--token-file", type=_PATH, default=None, help="Bearer token file for --server.")
@click.option("--ca-file", type=_PATH, default=None, help="CA certificate for --server.")
@click.option("--name-prefix", default="hollow-node", show_default=True)
@click.option("--cpu", default="4", show_default=True, help="CPU capacity of each node.")
@click.option("--memory", default="16Gi", show_default=True, help="Memory of each node.")
@click.option("--max-pods", "pods", type=click.IntRange(1), default=110, show_default=True)
@click.option("--node-labels", multiple=True, help="Extra node label key=value (repeatable).")
@click.option(
    "--node-lease-duration-seconds",
    type=click.IntRange(1),
    default=NODE_LEASE_DURATION_SECONDS,
    show_default=True,
    help="Duration of each node's Lease, renewed every quarter of it.",
)
def sim(
    count: int,
    kubeconfig: Path | None,
    server: str | None,
    token_file: Path | None,
    ca_file: Path | None,
    name_prefix: str,
    cpu: str,
    memory: str,
    pods: int,
    node_labels: tuple[str, ...],
    node_lease_duration_seconds: int,
) -> None:
    """Run hollow nodes (fake kubelets that run no processes) for scale tests."""
    config = client_config(
        kubeconfig=kubeconfig,
        server=server,
        token_file=token_file,
        ca_file=ca_file,
        user_agent="setpoint-sim",
    )
    install_uvloop()
    tune_gc()
    asyncio.run(
        run_hollow_nodes(
            config,
            lambda client: HollowNodes(
                client,
                count=count,
                name_prefix=name_prefix,
                cpu=cpu,
                memory=memory,
                pods=pods,
                labels=parse_labels(node_labels),
                lease_duration_seconds=node_lease_duration_seconds,
                join=True,  # each hollow node its own system:node:<name> credential
            ),
        )
    )
