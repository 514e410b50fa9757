"""A ``persistentVolumeClaim`` volume on the node: the claim's own directory under the agent's
data dir, by claim uid, kept across pods (setpoint's stand-in for a local-path volume)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent import volumes
from setpoint.agent.sandbox import container_mounts

Obj = dict[str, Any]
POD: Obj = {"metadata": {"name": "web-0", "namespace": "default", "uid": "pod-1"}, "spec": {}}
VOLUME: Obj = {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}
CLAIM_UID = "0b5e8a5c-1111-4000-8000-000000000001"
SOURCES: volumes.Sources = {
    ("persistentVolumeClaim", "data-web-0"): {"metadata": {"name": "data-web-0", "uid": CLAIM_UID}}
}


def materialise(data_dir: Path, pod_uid: str, sources: volumes.Sources = SOURCES) -> Path:
    pod_dir = data_dir / "pods" / pod_uid
    pod_dir.mkdir(parents=True, exist_ok=True)
    return volumes.materialise(POD, VOLUME, pod_dir, sources=sources, allocatable={}).path


def test_a_pod_reads_the_claims_it_mounts() -> None:
    pod = {**POD, "spec": {"volumes": [VOLUME]}}
    assert volumes.volume_sources(pod) == {("persistentVolumeClaim", "data-web-0")}


def test_a_claim_is_a_directory_of_its_own_under_the_data_dir(tmp_path: Path) -> None:
    path = materialise(tmp_path, "pod-1")
    assert path == tmp_path / "claims" / CLAIM_UID
    assert path.is_dir() and stat.S_IMODE(path.stat().st_mode) == 0o777
    assert stat.S_IMODE((tmp_path / "claims").stat().st_mode) == 0o700
    link = volumes.volume_dir(tmp_path / "pods" / "pod-1", VOLUME)
    assert link.is_symlink() and link.resolve() == path


def test_a_new_pod_with_the_same_claim_finds_the_data(tmp_path: Path) -> None:
    (materialise(tmp_path, "pod-1") / "db").write_text("rows")
    assert (materialise(tmp_path, "pod-2") / "db").read_text() == "rows"


def test_a_missing_claim_is_a_failed_mount(tmp_path: Path) -> None:
    with pytest.raises(volumes.VolumeError) as failed:
        materialise(tmp_path, "pod-1", {("persistentVolumeClaim", "data-web-0"): None})
    assert str(failed.value) == (
        'MountVolume.SetUp failed for volume "data" : persistentvolumeclaim "data-web-0" not found'
    )


def test_containers_mount_the_claim_directory(tmp_path: Path) -> None:
    path = materialise(tmp_path, "pod-1")
    pod = {**POD, "spec": {"volumes": [VOLUME]}}
    container = {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/var/lib/db"}]}
    (mount,) = container_mounts(pod, container, tmp_path / "pods" / "pod-1")
    assert Path(mount.source).resolve() == path and mount.target == "/var/lib/db"
