"""A pod's resolv.conf in its containers' mount namespaces (as root): every container of the
pod sees the pod's file at /etc/resolv.conf, the node keeps its own, and a container's
namespace stays enterable after its siblings' are made (each restart enters it again)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from setpoint.agent.sandbox import (
    RESOLV_CONF,
    BindMount,
    Sandboxes,
    mount_script,
    remove_all_sandboxes,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"),
    reason="mount namespaces need root and util-linux",
)

UID = "00000000-0000-4000-8000-0000000000aa"


async def test_every_container_sees_the_pods_resolv_conf(tmp_path: Path) -> None:
    sandboxes = Sandboxes(None, None, data_dir=tmp_path)  # type: ignore[arg-type]
    resolv = sandboxes.resolv_conf_path(UID)
    resolv.parent.mkdir(parents=True)
    resolv.write_text("nameserver 10.244.0.1\n")
    plan = [BindMount(str(resolv), RESOLV_CONF, False, is_file=True)]
    host_file = Path(RESOLV_CONF).read_text()
    try:
        files = [
            await sandboxes._namespace(UID, name, mount_script(plan)) for name in ("a", "b", "c")
        ]
        for ns_file in files:
            inside = subprocess.run(
                ["nsenter", f"--mount={ns_file}", "--", "cat", RESOLV_CONF],
                capture_output=True,
                text=True,
                check=True,
            )
            assert inside.stdout == "nameserver 10.244.0.1\n"
        assert Path(RESOLV_CONF).read_text() == host_file
    finally:
        remove_all_sandboxes(tmp_path)
    assert not sandboxes.pod_dir(UID).exists()
