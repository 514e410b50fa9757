"""The ``setpoint`` command: ``server``, ``agent``, ``controller-manager``, ``sim``,
``killall`` and ``datastore``.

Flags follow k3s and Kubernetes where they have one (``--data-dir``, ``--bind-address``,
``--https-listen-port``, ``--disable-agent``, ``--node-name``), so Kubernetes users feel at
home. This is the only package that wires the parts together.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from setpoint.agent.proxy.proxier import PROXY_MODES
from setpoint.api.auth.tokens import DEFAULT_ISSUER
from setpoint.api.inflight import InflightLimits
from setpoint.api.services import ServiceNetwork
from setpoint.api.services.identity import DEFAULT_DURATION_SECONDS as IDENTITY_LEASE_SECONDS
from setpoint.api.services.ranges import (
    DEFAULT_SERVICE_CLUSTER_IP_RANGE,
    DEFAULT_SERVICE_NODE_PORT_RANGE,
    RangeError,
    parse_ip_range,
    parse_port_range,
)
from setpoint.api.serving import ServingLimits
from setpoint.cli.agent import agent
from setpoint.cli.clusterjoin import JoinSettings
from setpoint.cli.controllermanager import (
    node_ipam_config,
    node_lifecycle_config,
    node_lifecycle_options,
)
from setpoint.cli.datastore import datastore
from setpoint.cli.flags import (
    datastore_endpoint_option,
    datastore_tls_options,
    default_data_dir,
    parse_duration,
)
from setpoint.cli.kubeconfig import kubeconfig
from setpoint.cli.process import EXIT_CANNOT_START, exit_with_parent, install_uvloop, tune_gc
from setpoint.cli.security import SecurityConfig, security_options
from setpoint.cli.server import CannotStart, ServerConfig, run_server
from setpoint.cli.sim import sim
from setpoint.cli.token import token
from setpoint.resources.core import DEFAULT_TOLERATION_SECONDS, DefaultTolerationSeconds
from setpoint.store.endpoint import EtcdTLS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """setpoint: declarative, self-healing workloads, driven through the Kubernetes API."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Before anything imports grpc (the etcd store does, lazily): gRPC's fork handlers serve
    # processes that use gRPC in a forked child, which no setpoint process does (its
    # children exec at once); left on, every child a server spawns printed "Other threads
    # are currently calling into gRPC, skipping fork() handlers" on its stderr.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where state, certificates, tokens and the kubeconfig live.",
)
@click.option(
    "--bind-address",
    default="127.0.0.1",
    show_default=True,
    help="Address the API server listens on (0.0.0.0 for other machines' agents).",
)
@click.option(
    "--https-listen-port",
    type=click.IntRange(0, 65535),
    default=6443,
    show_default=True,
    help="HTTPS port; 0 picks a free one.",
)
@click.option("--disable-agent", is_flag=True, help="Do not run a node agent for this machine.")
@click.option("--node-name", default=None, help="Name of this machine's node.")
@click.option("--tls-san", multiple=True, help="Extra host name or IP for the serving cert.")
@click.option(
    "--disable-controller-manager",
    is_flag=True,
    help="Do not run the controllers (ReplicaSet, Deployment, Job, ...).",
)
@click.option("--disable-scheduler", is_flag=True, help="Do not run the scheduler.")
@click.option(
    "--event-ttl",
    default="1h",
    show_default=True,
    help="How long Events are kept after their last update (Go duration: 1h, 90s).",
)
@click.option(
    "--kubelet-arg",
    multiple=True,
    metavar="FLAG=VALUE",
    help="A flag for the local node agent, e.g. max-container-restart-period=30s "
    "(see setpoint agent -h).",
)
@click.option(
    "--proxy-mode",
    type=click.Choice(PROXY_MODES),
    default="auto",
    show_default=True,
    help="The local agent's node proxy: nftables, userspace, auto or none (see setpoint agent -h).",
)
@click.option(
    "--cluster-domain",
    default=None,
    help="The cluster's DNS domain, for the local node agent (default cluster.local).",
)
@click.option(
    "--cluster-dns",
    default=None,
    help="DNS server addresses (comma-separated) the local node agent gives ClusterFirst "
    "pods instead of its own DNS server.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=ServingLimits.max_connections,
    show_default=True,
    help="Client connections served at once; more are closed as they arrive (and logged).",
)
@click.option(
    "--tls-handshake-timeout",
    default="10s",
    show_default=True,
    help="How long a client may take to finish its TLS handshake.",
)
@click.option(
    "--request-header-timeout",
    default="32s",
    show_default=True,
    help="How long a request line and headers may take to arrive (kube-apiserver: 32s).",
)
@click.option(
    "--idle-connection-timeout",
    default="90s",
    show_default=True,
    help="How long a kept-alive connection may wait for its next request.",
)
@click.option(
    "--max-requests-inflight",
    type=click.IntRange(1),
    default=InflightLimits.max_requests_inflight,
    show_default=True,
    help="Read-only requests served at once per priority level; more get 429.",
)
@click.option(
    "--max-mutating-requests-inflight",
    type=click.IntRange(1),
    default=InflightLimits.max_mutating_requests_inflight,
    show_default=True,
    help="Mutating requests served at once per priority level; more get 429.",
)
@click.option(
    "--request-timeout",
    default="1m0s",
    show_default=True,
    help="How long a request (not a watch or a log stream) may take before it gets 504.",
)
@datastore_endpoint_option
@datastore_tls_options
@click.option(
    "--cluster-reset",
    is_flag=True,
    help="If the database is missing, empty or corrupt, start over with an empty one "
    "(a corrupt one is moved aside); revisions continue above every one handed out before. "
    "A healthy database is kept.",
)
@click.option(
    "--default-not-ready-toleration-seconds",
    type=click.IntRange(0),
    default=DEFAULT_TOLERATION_SECONDS.not_ready,
    show_default=True,
    help="tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute toleration every "
    "pod without one gets (Kubernetes: 300).",
)
@click.option(
    "--default-unreachable-toleration-seconds",
    type=click.IntRange(0),
    default=DEFAULT_TOLERATION_SECONDS.unreachable,
    show_default=True,
    help="The same for node.kubernetes.io/unreachable:NoExecute (Kubernetes: 300).",
)
@click.option(
    "--service-cluster-ip-range",
    default=DEFAULT_SERVICE_CLUSTER_IP_RANGE,
    show_default=True,
    help="CIDR Services' cluster IPs come from; its first address is the kubernetes "
    "Service's (kubeadm: 10.96.0.0/12).",
)
@click.option(
    "--service-node-port-range",
    default=DEFAULT_SERVICE_NODE_PORT_RANGE,
    show_default=True,
    help="Ports NodePort Services get, both ends included.",
)
@click.option(
    "--advertise-address",
    default=None,
    help="Address the kubernetes Service's endpoints name for this server (default: "
    "--bind-address, or this machine's primary address when that is 0.0.0.0).",
)
@click.option(
    "--identity-lease-duration-seconds",
    type=click.IntRange(1),
    default=IDENTITY_LEASE_SECONDS,
    show_default=True,
    help="Duration of this server's identity Lease (kube-system/apiserver-...), renewed "
    "every third of it: a server that died leaves the kubernetes Endpoints this long after.",
)
@click.option(
    "--token-auth-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='More users, as kube-apiserver\'s flag: a CSV of token,user,uid[,"group1,group2"]; '
    "RBAC decides what they may do.",
)
@click.option(
    "--service-account-issuer",
    default=DEFAULT_ISSUER,
    show_default=True,
    help="The iss claim of ServiceAccount tokens, and the API server's audience.",
)
@click.option(
    "--server",
    "join_server",
    default=None,
    metavar="URL",
    help="Join the cluster of the server at URL (https://host:port): fetch its shared "
    "secrets with --token-file, then serve from the same --datastore-endpoint (etcd).",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The cluster's server token (a server's <data-dir>/server-token), to join it; "
    "on a first server, the secret its server token is made with.",
)
@node_lifecycle_options
@security_options
def server(
    data_dir: Path | None,
    bind_address: str,
    https_listen_port: int,
    disable_agent: bool,
    node_name: str | None,
    tls_san: tuple[str, ...],
    disable_controller_manager: bool,
    disable_scheduler: bool,
    event_ttl: str,
    kubelet_arg: tuple[str, ...],
    proxy_mode: str,
    cluster_domain: str | None,
    cluster_dns: str | None,
    max_connections: int,
    tls_handshake_timeout: str,
    request_header_timeout: str,
    idle_connection_timeout: str,
    max_requests_inflight: int,
    max_mutating_requests_inflight: int,
    request_timeout: str,
    datastore_endpoint: str | None,
    datastore_tls: EtcdTLS,
    cluster_reset: bool,
    default_not_ready_toleration_seconds: int,
    default_unreachable_toleration_seconds: int,
    service_cluster_ip_range: str,
    service_node_port_range: str,
    advertise_address: str | None,
    identity_lease_duration_seconds: int,
    token_auth_file: Path | None,
    service_account_issuer: str,
    join_server: str | None,
    token_file: Path | None,
    security: SecurityConfig,
    **node_lifecycle: Any,
) -> None:
    """Run the control plane (API server on the embedded store) on this machine.

    Exits with status 3 and one line on stderr if it cannot start."""
    if bad := [a for a in kubelet_arg if "=" not in a]:
        raise click.BadParameter(f"{bad[0]!r} is not FLAG=VALUE", param_hint="--kubelet-arg")
    # k3s's --cluster-domain and --cluster-dns: flags of the server passed to its agent
    if cluster_domain is not None:
        kubelet_arg += (f"cluster-domain={cluster_domain}",)
    if cluster_dns is not None:
        kubelet_arg += (f"cluster-dns={cluster_dns}",)
    node_ipam = node_ipam_config(node_lifecycle)
    try:
        services = ServiceNetwork(
            cluster_ips=parse_ip_range(service_cluster_ip_range),
            node_ports=parse_port_range(service_node_port_range),
        )
        if node_ipam is not None and services.cluster_ips.network.overlaps(
            ipaddress.ip_network(node_ipam.cluster_cidr, strict=False)
        ):
            raise RangeError(
                f"--cluster-cidr {node_ipam.cluster_cidr} overlaps --service-cluster-ip-range "
                f"{service_cluster_ip_range}: pods and Services need addresses of their own"
            )
    except RangeError as exc:
        click.echo(f"setpoint server: cannot start: {exc}", err=True)
        sys.exit(EXIT_CANNOT_START)
    lifecycle, terminated_threshold = node_lifecycle_config(node_lifecycle)
    config = ServerConfig(
        data_dir=(data_dir or default_data_dir()).resolve(),
        bind_address=bind_address,
        port=https_listen_port,
        disable_agent=disable_agent,
        node_name=node_name,
        tls_sans=tls_san,
        run_controllers=not disable_controller_manager,
        run_scheduler=not disable_scheduler,
        event_ttl=parse_duration(event_ttl),
        kubelet_args=kubelet_arg,
        serving=ServingLimits(
            max_connections=max_connections,
            tls_handshake_timeout=parse_duration(tls_handshake_timeout),
            read_header_timeout=parse_duration(request_header_timeout),
            idle_timeout=parse_duration(idle_connection_timeout),
        ),
        inflight=InflightLimits(
            max_requests_inflight=max_requests_inflight,
            max_mutating_requests_inflight=max_mutating_requests_inflight,
            request_timeout=parse_duration(request_timeout),
        ),
        cluster_reset=cluster_reset,
        datastore_endpoint=datastore_endpoint,
        datastore_tls=datastore_tls,
        tolerations=DefaultTolerationSeconds(
            not_ready=default_not_ready_toleration_seconds,
            unreachable=default_unreachable_toleration_seconds,
        ),
        node_lifecycle=lifecycle,
        terminated_pod_gc_threshold=terminated_threshold,
        node_ipam=node_ipam,
        services=services,
        advertise_address=advertise_address,
        identity_lease_duration_seconds=identity_lease_duration_seconds,
        proxy_mode=proxy_mode,
        token_auth_file=token_auth_file,
        service_account_issuer=service_account_issuer,
        security=security,
        join=JoinSettings(server=join_server, token_file=token_file),
    )
    install_uvloop()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_server(config))
    except CannotStart as exc:
        click.echo(f"setpoint server: cannot start: {exc}", err=True)
        sys.exit(EXIT_CANNOT_START)


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="A `setpoint server` data dir (its local agent) or a `setpoint agent` data dir "
    "[default: the server's default data dir].",
)
def killall(data_dir: Path | None) -> None:
    """Stop every workload of this node: the supervisor, its containers' processes, their
    mounts and cgroups (stopping the server or agent leaves workloads running on purpose)."""
    from setpoint.agent.killall import kill_node

    directory = (data_dir or default_data_dir()).resolve()
    agent_dir = directory / "agent" if (directory / "agent" / "supervisor").is_dir() else directory
    if not (agent_dir / "supervisor").is_dir():
        raise click.ClickException(f"no node agent state under {directory}")
    killed = kill_node(agent_dir)
    click.echo(f"killed {len(killed)} container process(es) of {agent_dir}")


cli.add_command(sim)
cli.add_command(agent)
cli.add_command(datastore)
cli.add_command(token)
cli.add_command(kubeconfig)


@cli.command("controller-manager")
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, exists=True),
    required=True,
    help="Kubeconfig of the API server to reconcile against.",
)
@click.option(
    "--scheduler-kubeconfig",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Kubeconfig the scheduler binds and writes pod status with (its own identity, "
    "system:kube-scheduler); default: --kubeconfig.",
)
@click.option("--disable-controllers", is_flag=True, help="Run only the scheduler.")
@click.option("--disable-scheduler", is_flag=True, help="Run only the controllers.")
@node_lifecycle_options
def controller_manager(
    kubeconfig: Path,
    scheduler_kubeconfig: Path | None,
    disable_controllers: bool,
    disable_scheduler: bool,
    **node_lifecycle: Any,
) -> None:
    """Run the controllers and the scheduler (leader-elected) against an API server."""
    from setpoint.cli.controllermanager import ManagerConfig
    from setpoint.cli.server import run_controller_manager

    node_ipam = node_ipam_config(node_lifecycle)
    lifecycle, terminated_threshold = node_lifecycle_config(node_lifecycle)
    exit_with_parent()
    install_uvloop()
    tune_gc()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_controller_manager(
                kubeconfig,
                ManagerConfig(
                    run_controllers=not disable_controllers,
                    run_scheduler=not disable_scheduler,
                    node_lifecycle=lifecycle,
                    terminated_pod_gc_threshold=terminated_threshold,
                    node_ipam=node_ipam,
                ),
                scheduler_kubeconfig=scheduler_kubeconfig,
            )
        )


def main() -> None:
    cli(prog_name="setpoint")


if __name__ == "__main__":  # pragma: no cover
    main()
