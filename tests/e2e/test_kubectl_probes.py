"""Readiness and liveness probes as a user sees them: `setpoint server` with its local node
agent, and the real kubectl."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import Kubectl, Server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node")]

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 1
    livenessProbe:
      exec: {{command: ["test", "-f", "{alive}"]}}
      periodSeconds: 1
      failureThreshold: 2
"""


def restarts(kubectl: Kubectl) -> int:
    row = kubectl("get", "pod", "probed", "--no-headers").stdout.split()
    return int(row[3])  # NAME READY STATUS RESTARTS AGE


def test_liveness_failure_restarts_a_ready_pod_with_an_unhealthy_event(node_server: Server) -> None:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    Kubectl(node_server)("create", "namespace", namespace)
    kubectl = Kubectl(node_server, namespace)
    scratch = Path(tempfile.mkdtemp(prefix="sp-probe-"))
    scratch.chmod(0o755)  # the probe runs as the pod's user
    alive = scratch / "alive"
    try:
        alive.touch()
        kubectl("apply", "-f", "-", input=POD.format(alive=alive))
        kubectl("wait", "--for=condition=Ready", "pod/probed", "--timeout=60s")
        assert restarts(kubectl) == 0

        alive.unlink()
        wait_for(lambda: restarts(kubectl) >= 1, timeout=30, what="RESTARTS to grow")
        describe = kubectl("describe", "pod", "probed").stdout
        assert "Unhealthy" in describe
        assert "Liveness probe failed" in describe
        events = kubectl("events", "--for", "pod/probed").stdout
        assert "Container app failed liveness probe, will be restarted" in events
        kubectl("delete", "pod", "probed", "--wait=true", "--timeout=60s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
