"""Several ``setpoint server`` processes on one etcd member: the harness of issue 16's benchmarks.

An etcd member (:func:`tests.etcd.running_etcd`: Debian's ``etcd-server`` on loopback ports,
its data in the benchmark's work dir) and ``count`` API servers started as
:meth:`bench.common.Context.server` starts one, each with ``--datastore-endpoint
etcd://...`` and a data dir of its own. Every server after the first must accept the same
credentials as the first (same CA, service-account signing key, node-credential key,
encryption config and tokens): they join its cluster (:func:`join_first`). All run
``--disable-agent`` (local agents would clash on node names); each still runs its
controller-manager child, and those compete for the Lease
``kube-system/setpoint-controller-manager``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence

from tests.etcd import Etcd, etcd_binary, running_etcd

from bench.common import Context, Server


def join_first(first: Server) -> list[str]:
    """The ``setpoint server`` flags with which a server joins ``first``'s cluster."""
    return ["--server", first.url, "--token-file", str(first.data_dir / "server-token")]


@contextlib.contextmanager
def etcd_member(ctx: Context, name: str) -> Iterator[Etcd]:
    """One etcd member for the benchmark ``name``, killed when the block ends."""
    if etcd_binary() is None:
        raise RuntimeError("etcd is not installed (make system-deps installs etcd-server)")
    with running_etcd(ctx.work_dir / name / "etcd") as etcd:
        ctx.say(f"etcd pid {etcd.process.pid} at {etcd.endpoint}")
        yield etcd


@contextlib.asynccontextmanager
async def servers_on_etcd(
    ctx: Context,
    name: str,
    etcd: Etcd,
    count: int,
    *,
    extra_args: Sequence[str] = (),
    verbose: bool = False,
) -> AsyncIterator[list[Server]]:
    """``count`` API servers on ``etcd``, the first bootstrapping the cluster and the others
    joining it, one after another; all stopped (the last first) when the block ends."""
    args = ["--datastore-endpoint", etcd.endpoint, *extra_args]
    async with contextlib.AsyncExitStack() as stack:
        servers: list[Server] = []
        for i in range(count):
            joining = join_first(servers[0]) if servers else []
            server = ctx.server(f"{name}/s{i}", extra_args=[*args, *joining], verbose=verbose)
            servers.append(await stack.enter_async_context(server))
        yield servers
