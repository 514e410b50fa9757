"""One local agent per node name per cluster on a machine.

Every ``setpoint server`` also starts a node agent, named after the hostname unless
``--node-name`` says otherwise. Two servers of one cluster on one machine (a test of high
availability, or a migration) would then run two agents as the same Node: both would run
that node's pods. So a server that runs a local agent holds an ``flock`` on a file named
after its cluster (the CA hash) and the node name (in ``/run/setpoint`` when it runs as root,
where no other user can take the lock first; else in the temporary directory) for as long as
it runs, and a second one refuses to start, saying which flag fixes it. The lock
goes with the process, however it ends; servers of different clusters never clash (their
nodes are different Nodes, whatever their names).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from setpoint.meta.privatefiles import PRIVATE_FILE_MODE

log = logging.getLogger(__name__)


class NodeNameInUse(Exception):
    """Another server of this cluster on this machine runs an agent of the same name."""


RUN_DIR = Path("/run/setpoint")


def lock_dir() -> Path:
    """Where the locks live: ``/run/setpoint`` (0700) for root, so that no other user can
    hold a lock and keep a server from starting; else the temporary directory."""
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            RUN_DIR.mkdir(mode=0o700, exist_ok=True)
            if RUN_DIR.stat().st_uid == 0:
                return RUN_DIR
    return Path(tempfile.gettempdir())


def lock_path(cluster_hash: str, node_name: str) -> Path:
    return lock_dir() / f"setpoint-node-{cluster_hash[:16]}-{node_name}.lock"


@contextlib.contextmanager
def claim_node_name(cluster_hash: str, node_name: str) -> Iterator[None]:
    """Hold the machine-wide lock of ``node_name`` in the cluster whose CA hash is
    ``cluster_hash`` (NodeNameInUse if another process holds it)."""
    path = lock_path(cluster_hash, node_name)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except OSError as exc:  # another user's file: this machine cannot be checked
        log.warning("cannot check that node name %s is free on this machine: %s", node_name, exc)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").strip()
            raise NodeNameInUse(
                f"another server of this cluster on this machine ({holder or 'a process'}) runs "
                f"a node agent named {node_name!r}: give this one --node-name NAME or "
                "--disable-agent"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
