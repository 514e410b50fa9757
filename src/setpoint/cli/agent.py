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
import socket
from pathlib import Path

import click

from setpoint.agent.agent import NodeAgent
from setpoint.agent.pods import NodeContainerSettings
from setpoint.agent.runtime import ensure_supervisor
from setpoint.agent.server import DEFAULT_KUBELET_PORT
from setpoint.cli.flags import client_config, parse_duration
from setpoint.cli.process import exit_with_parent, install_uvloop, run_until_signalled, tune_gc
from setpoint.client.api import ApiClient, ClientConfig
from setpoint.meta.quantity import QuantityError, parse_quantity


def default_agent_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/setpoint/agent")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "setpoint" / "agent"


async def run_agent(
    config: ClientConfig,
    *,
    node_name: str,
    data_dir: Path,
    lease_duration_seconds: int = 40,
    container_settings: NodeContainerSettings | None = None,
    kubelet_port: int = DEFAULT_KUBELET_PORT,
    pod_max_pids: int = -1,
) -> None:
    """Run the node agent until SIGTERM/SIGINT."""
    runtime = await ensure_supervisor(data_dir / "supervisor")
    client = ApiClient(config)
    agent = NodeAgent(
        client,
        node_name=node_name,
        data_dir=data_dir,
        runtime=runtime,
        lease_duration_seconds=lease_duration_seconds,
        container_settings=container_settings,
        kubelet_port=kubelet_port,
        pod_max_pids=pod_max_pids,
    )
    try:
        await run_until_signalled(agent)
    finally:
        await client.close()
        await runtime.close()


_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    return parse_duration(value)


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        size = parse_quantity(value).value
    except QuantityError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None
    if size < 1:
        raise click.BadParameter(f"{value!r} is not a positive size")
    return int(size)


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
@click.option(
    "--node-lease-duration-seconds",
    type=click.IntRange(1),
    default=40,
    show_default=True,
    help="Duration of the node's Lease (renewed every 10 s).",
)
@click.option(
    "--crash-loop-backoff-initial",
    default="0s",
    show_default=True,
    callback=_duration,
    help="Delay before the first restart of a crashed container (Go duration).",
)
@click.option(
    "--crash-loop-backoff-max",
    default="5m",
    show_default=True,
    callback=_duration,
    help="Cap of a crash-looping container's restart backoff (Go duration).",
)
@click.option(
    "--container-log-max-size",
    default="10Mi",
    show_default=True,
    callback=_size,
    help="Size at which a container's log file is rotated (quantity: 10Mi).",
)
@click.option(
    "--container-log-max-files",
    type=click.IntRange(2),
    default=5,
    show_default=True,
    help="Log files kept per container, the current one included.",
)
@click.option(
    "--kubelet-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_KUBELET_PORT,
    show_default=True,
    help="Port of the agent's HTTPS endpoint for `kubectl logs` (0: any free port).",
)
@click.option(
    "--pod-max-pids",
    type=click.IntRange(-1),
    default=-1,
    show_default=True,
    help="Maximum number of processes (tasks) in one pod (-1: unlimited).",
)
def agent(
    server: str | None,
    token_file: Path | None,
    ca_file: Path | None,
    kubeconfig: Path | None,
    node_name: str | None,
    data_dir: Path | None,
    node_lease_duration_seconds: int,
    crash_loop_backoff_initial: float,
    crash_loop_backoff_max: float,
    container_log_max_size: int,
    container_log_max_files: int,
    kubelet_port: int,
    pod_max_pids: int,
) -> None:
    """Run the node agent: register this host as a node and run the pods bound to it."""
    config = client_config(
        kubeconfig=kubeconfig,
        server=server,
        token_file=token_file,
        ca_file=ca_file,
        user_agent="setpoint-agent",
    )
    name = (node_name or socket.gethostname()).lower()
    exit_with_parent()  # when run by `setpoint server`, go when it goes
    settings = NodeContainerSettings(
        initial_backoff=crash_loop_backoff_initial,
        backoff_max=crash_loop_backoff_max,
        max_log_bytes=container_log_max_size,
        max_log_files=container_log_max_files,
    )
    install_uvloop()  # the server's event loop too: a quarter less CPU for its API traffic
    tune_gc()
    asyncio.run(
        run_agent(
            config,
            node_name=name,
            data_dir=(data_dir or default_agent_dir()),
            lease_duration_seconds=node_lease_duration_seconds,
            container_settings=settings,
            kubelet_port=kubelet_port,
            pod_max_pids=pod_max_pids,
        )
    )
