"""Several ``setpoint server`` processes of one cluster on one etcd, for tests.

A second server needs the first's CA, signing keys, encryption config and tokens. Until
``setpoint server --server URL --token-file ...`` fetches them itself, :func:`start_joined_server`
copies them into its data dir before starting it (:func:`copy_shared_files`, also used by
``bench agentfailover``): the one place to switch over. On one
machine the servers run without their local agents (each would register the hostname as
its node); tests start agents themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support import Server, start_server

# what every server of a cluster shares (paths under a data dir)
SHARED_FILES = (
    "tls/ca.crt",
    "tls/ca.key",
    "tls/sa.key",
    "tls/node-credential.key",
    "encryption-config.yaml",
    "token",
    "node-token",
    "controller-token",
)


def copy_shared_files(first_data_dir: Path, data_dir: Path) -> None:
    """Give the server of ``data_dir`` what it shares with the server of ``first_data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in SHARED_FILES:
        source = first_data_dir / name
        if source.exists():
            target = data_dir / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(source, target)


def start_joined_server(
    first: Server, data_dir: Path, *, extra: list[str], controllers: bool = False
) -> Server:
    """Start another server of ``first``'s cluster, on the same address (``extra`` must
    name the same ``--datastore-endpoint``)."""
    copy_shared_files(first.data_dir, data_dir)
    return start_server(data_dir, extra=extra, controllers=controllers, bind_address=first.host)
