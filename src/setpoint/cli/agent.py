"""``setpoint agent``: make this host a node of a setpoint cluster.

Like ``k3s agent``, it connects to a server (``--server`` with ``--token-file`` and
``--ca-file``, or ``--kubeconfig``), registers the Node ``--node-name`` (the hostname by
default) and runs the pods bound to it as host processes through the per-node supervisor,
which it starts under ``--data-dir`` if none runs there yet. Stopping the agent (SIGTERM,
SIGINT) leaves the supervisor and the workloads running; a restarted agent picks them up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import click

from setpoint.agent.agent import NodeAgent
from setpoint.agent.runtime import ensure_supervisor
from setpoint.cli.sim import client_config
from setpoint.client.api import ApiClient, ClientConfig


def default_agent_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/setpoint/agent")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "setpoint" / "agent"


async def run_agent(config: ClientConfig, *, node_name: str, data_dir: Path) -> None:
    """Run the node agent until SIGTERM/SIGINT."""
    runtime = await ensure_supervisor(data_dir / "supervisor")
    client = ApiClient(config)
    agent = NodeAgent(client, node_name=node_name, data_dir=data_dir, runtime=runtime)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(agent.stop()))
    try:
        await agent.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await client.close()
        await runtime.close()


_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--server", default=None, help="API server URL (instead of a kubeconfig).")
@click.option("--token-file", type=_PATH, default=None, help="Bearer token file for --server.")
@click.option("--ca-file", type=_PATH, default=None, help="CA certificate for --server.")
@click.option("--kubeconfig", type=_PATH, envvar="KUBECONFIG", help="Kubeconfig to connect with.")
@click.option("--node-name", default=None, help="Name of this node [default: the hostname].")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Agent state, supervisor and pod logs [default: <setpoint data dir>/agent].",
)
def agent(
    server: str | None,
    token_file: Path | None,
    ca_file: Path | None,
    kubeconfig: Path | None,
    node_name: str | None,
    data_dir: Path | None,
) -> None:
    """Run the node agent: register this host as a node and run the pods bound to it."""
    config = client_config(
        kubeconfig=kubeconfig, server=server, token_file=token_file, ca_file=ca_file
    )
    name = (node_name or socket.gethostname()).lower()
    from setpoint.cli.server import exit_with_parent

    exit_with_parent()  # when run by `setpoint server`, go when it goes
    asyncio.run(run_agent(config, node_name=name, data_dir=(data_dir or default_agent_dir())))
