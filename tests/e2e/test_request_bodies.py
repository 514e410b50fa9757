"""The real kubectl over TLS with bodies of every size: each one arrives whole.

A body reaches the server in pieces (TLS records, TCP segments); these fail whenever the
server acts on the part it has instead of reading to the end of the body, which the real
kubectl shows as "truncated protobuf data" or "unexpected end of stream".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests import objects
from tests.support import Kubectl

pytestmark = pytest.mark.e2e

# ConfigMap data may hold at most 1 MiB (Kubernetes' MaxSecretSize); the file name counts too
CONFIGMAP_LIMIT = 1024 * 1024


def _payload(size: int) -> str:
    """``size`` bytes of text that does not compress into anything small."""
    line = "".join(chr(ord("a") + (i * 7) % 26) for i in range(99)) + "\n"
    return (line * (size // len(line) + 1))[:size]


def _big_deployment(name: str, size: int) -> str:
    """A Deployment manifest of about ``size`` bytes (its env carries the bulk)."""
    env = [{"name": f"VAR_{i}", "value": "x" * 80} for i in range(size // 122)]
    containers = [objects.container("c", "busybox", env=env)]
    return yaml.safe_dump(objects.deployment(name, containers=containers, replicas=0))


def test_applying_a_31_kb_manifest_succeeds_every_time(kubectl: Kubectl) -> None:
    text = _big_deployment("big", 31_000)
    assert 30_000 < len(text) < 33_000
    for attempt in range(20):
        kubectl("apply", "-f", "-", input=text.replace("VAR_0", f"VAR_0_{attempt}"))
    got = kubectl("get", "deployment", "big", "-o", "json").json()
    names = [e["name"] for e in got["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names[0] == "VAR_0_19"


def test_server_side_apply_of_a_31_kb_manifest_succeeds_every_time(kubectl: Kubectl) -> None:
    text = _big_deployment("big-ssa", 31_000)
    for attempt in range(10):
        kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            input=text.replace("VAR_1", f"VAR_1_{attempt}"),
        )
    got = kubectl("get", "deployment", "big-ssa", "-o", "json").json()
    names = [e["name"] for e in got["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names[1] == "VAR_1_9"


@pytest.mark.parametrize(
    "size",
    [1024, 64 * 1024, 900 * 1024, CONFIGMAP_LIMIT - len("data.txt") - 16],
    ids=["1KiB", "64KiB", "900KiB", "just-under-the-limit"],
)
def test_configmap_from_file_of_any_size_arrives_whole(
    kubectl: Kubectl, tmp_path: Path, size: int
) -> None:
    source = tmp_path / "data.txt"
    content = _payload(size)
    source.write_text(content)
    for n in range(10):
        kubectl("create", "configmap", f"cm-{n}", f"--from-file={source}")
    for n in (0, 9):
        got = kubectl("get", "configmap", f"cm-{n}", "-o", "json").json()
        assert got["data"]["data.txt"] == content
