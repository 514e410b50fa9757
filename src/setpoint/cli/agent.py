"""``setpoint agent``: make this host a node of a setpoint cluster.

Like ``k3s agent``, it connects to a server (``--server`` with ``--token-file`` and
``--ca-file``, or ``--kubeconfig``), registers the Node ``--node-name`` (the hostname by
default) and runs the pods bound to it as host processes through the per-node supervisor,
which it starts under ``--data-dir`` if none runs there yet. Stopping the agent (SIGTERM,
SIGINT) leaves the supervisor and the workloads running; a restarted agent picks them up.
With ``--shutdown-grace-period``, SIGTERM means the node is going down: the agent shuts its
pods down gracefully first, as the kubelet's GracefulNodeShutdown (see
:mod:`setpoint.agent.shutdown`), then exits.

``--server`` may name several API servers of one cluster (repeated, or separated by
commas), and the agent learns the others from the ``default/kubernetes`` Endpoints: it
talks to one at a time, starting at one picked by its node name, and moves to the next when
that one cannot be reached (see :mod:`setpoint.client.servers`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
from pathlib import Path

import click

from setpoint.agent.agent import POD_NETWORK_MODES, NodeAgent
from setpoint.agent.pods import MAX_RESTART_PERIOD_RANGE, NodeContainerSettings
from setpoint.agent.proxy.proxier import PROXY_MODES
from setpoint.agent.runtime import ensure_supervisor
from setpoint.agent.sandbox import DNSSettings
from setpoint.agent.server import DEFAULT_KUBELET_PORT, KubeletPortInUse
from setpoint.cli.flags import client_config, parse_duration
from setpoint.cli.process import (
    EXIT_CANNOT_START,
    exit_with_parent,
    install_uvloop,
    run_until_signalled,
    tune_gc,
)
from setpoint.client.api import ApiClient, ClientConfig
from setpoint.client.join import join, stored_credential
from setpoint.client.nodes import NODE_LEASE_DURATION_SECONDS
from setpoint.client.serverdiscovery import follow_endpoints
from setpoint.client.servers import ServerList
from setpoint.client.tasks import cancel_all
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
    lease_duration_seconds: int = NODE_LEASE_DURATION_SECONDS,
    container_settings: NodeContainerSettings | None = None,
    kubelet_port: int = DEFAULT_KUBELET_PORT,
    node_ip: str = "127.0.0.1",
    shutdown_grace_period: float = 0.0,
    shutdown_grace_period_critical_pods: float = 0.0,
    pod_max_pids: int = -1,
    pod_network: str = "auto",
    proxy_mode: str = "auto",
    dns: DNSSettings | None = None,
    default_run_as_user: int | None = None,
    masked_paths: tuple[Path, ...] = (),
) -> None:
    """Run the node agent until SIGTERM/SIGINT, as the node's own identity (joining with
    ``config``'s join token first if the data dir holds no credential yet)."""
    servers = ServerList(config.server_urls, key=node_name)
    config = await join(config, node_name=node_name, data_dir=data_dir, servers=servers)
    runtime = await ensure_supervisor(data_dir / "supervisor")
    client = ApiClient(config, servers=servers)
    discovery = asyncio.create_task(
        follow_endpoints(client, servers, config.server_urls), name="api-servers"
    )
    agent = NodeAgent(
        client,
        node_name=node_name,
        data_dir=data_dir,
        runtime=runtime,
        lease_duration_seconds=lease_duration_seconds,
        container_settings=container_settings,
        kubelet_port=kubelet_port,
        host_ip=node_ip,
        shutdown_grace_period=shutdown_grace_period,
        shutdown_grace_period_critical_pods=shutdown_grace_period_critical_pods,
        pod_max_pids=pod_max_pids,
        pod_network=pod_network,
        proxy_mode=proxy_mode,
        dns=dns,
        default_run_as_user=default_run_as_user,
        masked_paths=masked_paths,
    )
    try:
        await run_until_signalled(agent)
    finally:
        await cancel_all([discovery])
        await client.close()
        await runtime.close()


def _ip_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an IP address") from None


_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


def _ip_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """The kubelet's ``--cluster-dns``: IP addresses, separated by commas."""
    found = []
    for item in (v.strip() for v in value.split(",")):
        if item:
            try:
                found.append(str(ipaddress.ip_address(item)))
            except ValueError:
                raise click.BadParameter(f"{item!r} is not an IP address") from None
    return tuple(found)


def _run_as_user(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value == "namespace":
        return None
    if not value.isdigit() or int(value) > 2**31 - 1:
        raise click.BadParameter(f"{value!r} is neither 'namespace' nor a uid (0 to 2147483647)")
    return int(value)


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    return parse_duration(value)


def _restart_period(ctx: click.Context, param: click.Parameter, value: str) -> float:
    period = parse_duration(value)
    low, high = MAX_RESTART_PERIOD_RANGE
    if not low <= period <= high:
        raise click.BadParameter(f"{value!r} is not between {low:g}s and {high:g}s")
    return period


def _bytes(value: str, *, least: int) -> int:
    try:
        size = parse_quantity(value).value
    except QuantityError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from None
    if size < least:
        raise click.BadParameter(f"{value!r} is not a {'positive' if least else 'valid'} size")
    return int(size)


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    return _bytes(value, least=1)


def _rate(ctx: click.Context, param: click.Parameter, value: str) -> int:
    return _bytes(value, least=0)


@click.command()
@click.option(
    "--server",
    "servers",
    multiple=True,
    help="API server URL (instead of a kubeconfig). Repeatable, or comma-separated: several "
    "servers of one cluster, used one at a time; the agent also learns the others from the "
    "`kubernetes` Endpoints.",
)
@click.option(
    "--token-file",
    type=_PATH,
    default=None,
    help="Join token file for --server (a bootstrap token, or the server's node-token); not "
    "needed once the node has joined (its own credential is kept in --data-dir).",
)
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
    default=NODE_LEASE_DURATION_SECONDS,
    show_default=True,
    help="Duration of the node's Lease, renewed every quarter of it; keep it at most the "
    "controller manager's --node-monitor-grace-period.",
)
@click.option(
    "--crash-loop-backoff-initial",
    default="0s",
    show_default=True,
    callback=_duration,
    help="Delay before the first restart of a crashed container (Go duration).",
)
@click.option(
    "--max-container-restart-period",
    default="60s",
    show_default=True,
    callback=_restart_period,
    help="Cap of a crash-looping container's restart backoff, 1s to 300s (the kubelet's "
    "crashLoopBackOff.maxContainerRestartPeriod).",
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
    "--container-log-max-rate",
    default="32Mi",
    show_default=True,
    callback=_rate,
    help="Bytes of log a container may write a second (a second's worth at once); a faster "
    "writer is slowed down, nothing is dropped (0: no limit).",
)
@click.option(
    "--kubelet-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_KUBELET_PORT,
    show_default=True,
    help="Port of the agent's HTTPS endpoint for `kubectl logs` (0: any free port).",
)
@click.option(
    "--node-ip",
    default="127.0.0.1",
    show_default=True,
    callback=_ip_address,
    help="This node's address: reported as its InternalIP, where the API server reaches the "
    "agent's endpoint (set it when the agent runs on another machine).",
)
@click.option(
    "--shutdown-grace-period",
    default="0s",
    show_default=True,
    callback=_duration,
    help="On SIGTERM, shut the node down gracefully within this long: report it not ready "
    "and terminate its pods (Go duration; 0s: SIGTERM stops only the agent, the pods keep "
    "running).",
)
@click.option(
    "--shutdown-grace-period-critical-pods",
    default="0s",
    show_default=True,
    callback=_duration,
    help="The part of --shutdown-grace-period kept for critical pods, terminated last.",
)
@click.option(
    "--pod-max-pids",
    type=click.IntRange(-1),
    default=-1,
    show_default=True,
    help="Maximum number of processes (tasks) in one pod (-1: unlimited).",
)
@click.option(
    "--pod-network",
    type=click.Choice(POD_NETWORK_MODES),
    default="auto",
    show_default=True,
    help="auto: each pod gets a network namespace and an IP from the Node's podCIDR where the "
    "agent runs as root (else the node's network); host: every pod uses the node's network.",
)
@click.option(
    "--proxy-mode",
    type=click.Choice(PROXY_MODES),
    default="auto",
    show_default=True,
    help="The node proxy that makes Service cluster IPs and node ports reach pods: nftables "
    "(kernel rules), userspace (the agent relays TCP), auto (nftables where nft works, else "
    "userspace), none. Needs root.",
)
@click.option(
    "--cluster-domain",
    default="cluster.local",
    show_default=True,
    help="The cluster's DNS domain: pods search <namespace>.svc.DOMAIN, svc.DOMAIN and DOMAIN, "
    "and the node's DNS server answers for it.",
)
@click.option(
    "--cluster-dns",
    default="",
    callback=_ip_list,
    help="DNS server addresses (comma-separated) given to ClusterFirst pods instead of the "
    "node's own DNS server (which listens on the first address of the node's podCIDR).",
)
@click.option(
    "--resolv-conf",
    type=click.Path(path_type=Path, dir_okay=False),
    default="/etc/resolv.conf",
    show_default=True,
    help="The node's resolver configuration: upstream servers for names outside the "
    "cluster, and the base of pods' resolv.conf.",
)
@click.option(
    "--default-run-as-user",
    default="namespace",
    show_default=True,
    callback=_run_as_user,
    help="The user a container runs as when its securityContext names no runAsUser: "
    "'namespace', a uid of each namespace's own (from 2000000000 up, its group the same "
    "number), or one uid for all (0 is root; 65534 nobody). Needs the agent to run as root.",
)
@click.option(
    "--masked-path",
    "masked_paths",
    type=click.Path(path_type=Path),
    multiple=True,
    help="A path hidden from every container (an empty read-only directory, or an empty "
    "file), like the agent's own data dir and credentials always are. Repeatable.",
)
def agent(
    servers: tuple[str, ...],
    token_file: Path | None,
    ca_file: Path | None,
    kubeconfig: Path | None,
    node_name: str | None,
    data_dir: Path | None,
    node_lease_duration_seconds: int,
    crash_loop_backoff_initial: float,
    max_container_restart_period: float,
    container_log_max_size: int,
    container_log_max_files: int,
    container_log_max_rate: int,
    kubelet_port: int,
    node_ip: str,
    shutdown_grace_period: float,
    shutdown_grace_period_critical_pods: float,
    pod_max_pids: int,
    pod_network: str,
    proxy_mode: str,
    cluster_domain: str,
    cluster_dns: tuple[str, ...],
    resolv_conf: Path,
    default_run_as_user: int | None,
    masked_paths: tuple[Path, ...],
) -> None:
    """Run the node agent: register this host as a node and run the pods bound to it."""
    if shutdown_grace_period_critical_pods > shutdown_grace_period:
        raise click.BadParameter(
            "must not exceed --shutdown-grace-period",
            param_hint="--shutdown-grace-period-critical-pods",
        )
    name = (node_name or socket.gethostname()).lower()
    agent_dir = data_dir or default_agent_dir()
    stored = stored_credential(agent_dir, name)
    server = [url.strip() for value in servers for url in value.split(",") if url.strip()]
    if server and ca_file is not None and token_file is None and stored is not None:
        # joined before: the join token is no longer needed
        config = ClientConfig(
            server[0],
            stored,
            ca_file.read_bytes(),
            "setpoint-agent",
            fallback_urls=tuple(server[1:]),
        )
    else:
        config = client_config(
            kubeconfig=kubeconfig,
            server=server,
            token_file=token_file,
            ca_file=ca_file,
            user_agent="setpoint-agent",
        )
    exit_with_parent()  # when run by `setpoint server`, go when it goes
    settings = NodeContainerSettings(
        initial_backoff=crash_loop_backoff_initial,
        backoff_max=max_container_restart_period,
        max_log_bytes=container_log_max_size,
        max_log_files=container_log_max_files,
        max_log_rate=container_log_max_rate,
    )
    install_uvloop()  # the server's event loop too: a quarter less CPU for its API traffic
    tune_gc()
    agent = run_agent(
        config,
        node_name=name,
        data_dir=agent_dir,
        lease_duration_seconds=node_lease_duration_seconds,
        container_settings=settings,
        kubelet_port=kubelet_port,
        node_ip=node_ip,
        shutdown_grace_period=shutdown_grace_period,
        shutdown_grace_period_critical_pods=shutdown_grace_period_critical_pods,
        pod_max_pids=pod_max_pids,
        pod_network=pod_network,
        proxy_mode=proxy_mode,
        dns=DNSSettings(
            cluster_domain=cluster_domain.strip(".").lower(),
            cluster_dns=cluster_dns,
            resolv_conf=resolv_conf,
        ),
        default_run_as_user=default_run_as_user,
        # its credentials are the node's, never its pods'
        masked_paths=(
            *masked_paths,
            *(p for p in (token_file, kubeconfig) if p is not None),
        ),
    )
    try:
        asyncio.run(agent)
    except KubeletPortInUse as exc:
        click.echo(f"setpoint agent: cannot start: {exc}", err=True)
        sys.exit(EXIT_CANNOT_START)
