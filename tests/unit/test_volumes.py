"""Volumes as the kubelet lays them out: payloads, modes, downward API text, hostPath type
checks and the atomic writer, on a temporary directory."""

from __future__ import annotations

import base64
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from setpoint.agent import cgroups, volumes
from setpoint.agent.sandbox import (
    BindMount,
    container_mounts,
    mount_script,
    tmpfs_options,
    wrap_argv,
)
from setpoint.agent.supervisor import cgroup_dirs
from tests import objects

Obj = dict[str, Any]

POD = objects.pod(
    "web",
    namespace="prod",
    labels={"app": "web", "tier": 'front "end"'},
    annotations={"note": "line1\nline2"},
    metadata={"uid": "0b9f4a52-7f61-4f7e-9a1c-2d3e4f5a6b7c"},
    containers=[
        objects.container(
            "app", resources={"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}
        )
    ],
)
ALLOCATABLE = {"cpu": "2", "memory": "4Gi"}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def materialise(tmp_path: Path, volume: Obj, sources: volumes.Sources | None = None) -> Path:
    done = volumes.materialise(
        POD, volume, tmp_path, sources=sources or {}, allocatable=ALLOCATABLE
    )
    return done.path


def test_volume_directory_follows_the_kubelet_plugin_layout(tmp_path: Path) -> None:
    path = materialise(tmp_path, {"name": "scratch", "emptyDir": {}})
    assert path == tmp_path / "volumes" / "kubernetes.io~empty-dir" / "scratch"
    assert path.is_dir() and mode_of(path) == 0o777


def test_volumes_live_below_private_directories_whatever_the_umask(tmp_path: Path) -> None:
    secret = {"data": {"token": base64.b64encode(b"s3cret").decode()}}
    old_umask = os.umask(0)
    try:
        path = materialise(
            tmp_path, {"name": "s", "secret": {"secretName": "s"}}, {("secret", "s"): secret}
        )
    finally:
        os.umask(old_umask)
    assert mode_of(tmp_path / "volumes") == mode_of(path.parent) == 0o700
    assert mode_of(path) == 0o755  # the pod's user must traverse it, as AtomicWriter says
    assert mode_of((path / "token").resolve()) == 0o644


def test_only_an_empty_dir_tmpfs_is_world_writable() -> None:
    memory = {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    assert tmpfs_options(memory) == "mode=0777,size=1048576"
    assert tmpfs_options({"name": "s", "secret": {"secretName": "s"}}) == "mode=0755"
    assert tmpfs_options({"name": "p", "projected": {"sources": []}}) == "mode=0755"


def test_configmap_keys_become_files_with_default_mode_0644(tmp_path: Path) -> None:
    cm = {"data": {"a.conf": "A"}, "binaryData": {"b.bin": base64.b64encode(b"\x00\x01").decode()}}
    path = materialise(
        tmp_path, {"name": "cfg", "configMap": {"name": "c"}}, {("configMap", "c"): cm}
    )
    assert (path / "a.conf").read_text() == "A"
    assert (path / "b.bin").read_bytes() == b"\x00\x01"
    assert mode_of(path / "a.conf") == 0o644


def test_configmap_items_choose_keys_paths_and_modes(tmp_path: Path) -> None:
    cm = {"data": {"a": "A", "b": "B"}}
    volume = {
        "name": "cfg",
        "configMap": {
            "name": "c",
            "defaultMode": 0o600,
            "items": [{"key": "a", "path": "dir/a.txt", "mode": 0o400}, {"key": "b", "path": "b"}],
        },
    }
    path = materialise(tmp_path, volume, {("configMap", "c"): cm})
    assert (path / "dir" / "a.txt").read_text() == "A"
    assert mode_of(path / "dir" / "a.txt") == 0o400
    assert mode_of(path / "b") == 0o600
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith("..")) == ["b", "dir"]


def test_secret_data_is_base64_decoded(tmp_path: Path) -> None:
    secret = {"data": {"password": base64.b64encode(b"s3cret").decode()}}
    volume = {"name": "creds", "secret": {"secretName": "s"}}
    path = materialise(tmp_path, volume, {("secret", "s"): secret})
    assert (path / "password").read_bytes() == b"s3cret"
    assert mode_of(path / "password") == 0o644


def test_missing_configmap_is_the_kubelet_failed_mount_message(tmp_path: Path) -> None:
    with pytest.raises(volumes.VolumeError) as info:
        materialise(
            tmp_path, {"name": "cfg", "configMap": {"name": "nope"}}, {("configMap", "nope"): None}
        )
    assert (
        str(info.value) == 'MountVolume.SetUp failed for volume "cfg" : configmap "nope" not found'
    )


def test_missing_optional_configmap_is_an_empty_volume(tmp_path: Path) -> None:
    volume = {"name": "cfg", "configMap": {"name": "nope", "optional": True}}
    path = materialise(tmp_path, volume, {("configMap", "nope"): None})
    assert [p.name for p in path.iterdir() if not p.name.startswith("..")] == []


def test_missing_configmap_key_is_named(tmp_path: Path) -> None:
    volume = {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "x", "path": "x"}]}}
    with pytest.raises(volumes.VolumeError) as info:
        materialise(tmp_path, volume, {("configMap", "c"): {"data": {}}})
    assert info.value.reason == "configmap references non-existent config key: x"


def test_missing_secret_key_is_named(tmp_path: Path) -> None:
    volume = {"name": "s", "secret": {"secretName": "s", "items": [{"key": "x", "path": "x"}]}}
    with pytest.raises(volumes.VolumeError) as info:
        materialise(tmp_path, volume, {("secret", "s"): {"data": {}}})
    assert info.value.reason == "references non-existent secret key: x"


def test_downward_api_labels_are_sorted_go_quoted_lines() -> None:
    assert volumes.downward_field(POD, "metadata.labels") == 'app="web"\ntier="front \\"end\\""'
    assert volumes.downward_field(POD, "metadata.annotations") == 'note="line1\\nline2"'
    assert volumes.downward_field(POD, "metadata.labels['app']") == "web"
    assert volumes.downward_field(POD, "metadata.uid") == POD["metadata"]["uid"]


def test_downward_api_resource_fields_divide_and_round_up() -> None:
    ref = {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}
    assert volumes.downward_resource(POD, ref, ALLOCATABLE) == "64"
    ref = {"containerName": "app", "resource": "requests.cpu", "divisor": "1m"}
    assert volumes.downward_resource(POD, ref, ALLOCATABLE) == "250"
    ref = {"containerName": "app", "resource": "requests.cpu"}
    assert volumes.downward_resource(POD, ref, ALLOCATABLE) == "1"  # 250m rounded up
    ref = {"containerName": "app", "resource": "limits.cpu"}  # unset: node allocatable
    assert volumes.downward_resource(POD, ref, ALLOCATABLE) == "2"


def test_downward_api_volume_writes_its_items(tmp_path: Path) -> None:
    volume = {
        "name": "info",
        "downwardAPI": {
            "items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o600},
            ]
        },
    }
    path = materialise(tmp_path, volume)
    assert (path / "name").read_text() == "web"
    assert (path / "labels").read_text().startswith('app="web"')
    assert mode_of(path / "labels") == 0o600


def test_projected_volume_merges_sources_with_the_pods_token(tmp_path: Path) -> None:
    token = {"path": "token", "expirationSeconds": 3607}
    volume = {
        "name": "all",
        "projected": {
            "sources": [
                {"configMap": {"name": "c"}},
                {
                    "downwardAPI": {
                        "items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
                {"serviceAccountToken": token},
            ]
        },
    }
    sources = {
        ("configMap", "c"): {"data": {"k": "v"}},
        volumes.token_source_key(token): {"token": "jwt"},
    }
    done = volumes.materialise(POD, volume, tmp_path, sources=sources, allocatable={})
    assert (done.path / "k").read_text() == "v"
    assert (done.path / "ns").read_text() == "prod"
    assert (done.path / "token").read_text() == "jwt"
    assert not done.notes


def test_projected_token_the_api_server_refused_is_a_failed_mount(tmp_path: Path) -> None:
    token = {"path": "token", "expirationSeconds": 3607}
    volume = {"name": "t", "projected": {"sources": [{"serviceAccountToken": token}]}}
    sources = {volumes.token_source_key(token): {"error": "failed to fetch token: nope"}}
    with pytest.raises(volumes.VolumeError, match="failed to fetch token: nope"):
        volumes.materialise(POD, volume, tmp_path, sources=sources, allocatable={})


def test_atomic_writer_swaps_the_data_link_and_drops_removed_keys(tmp_path: Path) -> None:
    one = {"a": volumes.FileProjection(b"1", 0o644), "b": volumes.FileProjection(b"2", 0o644)}
    assert volumes.atomic_write(tmp_path, one)
    first = os.readlink(tmp_path / "..data")
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert not volumes.atomic_write(tmp_path, one)  # unchanged: nothing written
    assert volumes.atomic_write(tmp_path, {"a": volumes.FileProjection(b"3", 0o644)})
    second = os.readlink(tmp_path / "..data")
    assert second != first and first.startswith("..") and not (tmp_path / first).exists()
    assert (tmp_path / "a").read_text() == "3"
    assert not os.path.lexists(tmp_path / "b")


def test_atomic_writer_rejects_paths_escaping_the_volume(tmp_path: Path) -> None:
    for bad in ("../x", "/etc/x", "..data/x", "a/../../x"):
        with pytest.raises(ValueError):
            volumes.atomic_write(tmp_path, {bad: volumes.FileProjection(b"", 0o644)})


def test_host_path_directory_or_create_creates_it(tmp_path: Path) -> None:
    target = tmp_path / "made"
    volumes.check_host_path(str(target), "DirectoryOrCreate")
    assert target.is_dir()


def test_host_path_file_or_create_creates_an_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    volumes.check_host_path(str(target), "FileOrCreate")
    assert target.is_file() and target.read_bytes() == b""


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("Directory", "a directory"),
        ("Socket", "a socket file"),
        ("CharDevice", "a character device"),
        ("BlockDevice", "a block device"),
    ],
)
def test_host_path_type_mismatch_has_the_kubelet_message(
    tmp_path: Path, kind: str, what: str
) -> None:
    target = tmp_path / "plain"
    target.write_text("")
    with pytest.raises(ValueError) as info:
        volumes.check_host_path(str(target), kind)
    assert str(info.value) == f"hostPath type check failed: {target} is not {what}"


def test_host_path_file_check_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a file"):
        volumes.check_host_path(str(tmp_path), "File")


def test_host_path_socket_and_char_device_pass_their_checks(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s"))
    try:
        volumes.check_host_path(str(tmp_path / "s"), "Socket")
    finally:
        sock.close()
    volumes.check_host_path("/dev/null", "CharDevice")
    volumes.check_host_path(str(tmp_path), "")  # no type: no check


def test_host_path_unknown_type_is_invalid() -> None:
    with pytest.raises(ValueError, match="Weird is an invalid volume type"):
        volumes.check_host_path("/", "Weird")


def test_volume_sources_include_projected_ones() -> None:
    pod = {
        "spec": {
            "volumes": [
                {"name": "a", "configMap": {"name": "c1"}},
                {"name": "b", "secret": {"secretName": "s1"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "s2"}}]}},
            ]
        }
    }
    assert volumes.volume_sources(pod) == {("configMap", "c1"), ("secret", "s1"), ("secret", "s2")}


# ------------------------------------------------------------------ mounts


def test_mount_plan_orders_parents_first_and_resolves_sub_paths(tmp_path: Path) -> None:
    pod = {
        "metadata": POD["metadata"],
        "spec": {
            "volumes": [{"name": "d", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/etc"}}]
        },
    }
    container = {
        "name": "app",
        "volumeMounts": [
            {"name": "d", "mountPath": "/data/sub", "subPath": "x"},
            {"name": "h", "mountPath": "/data", "readOnly": True},
        ],
    }
    plan = container_mounts(pod, container, tmp_path)
    empty = tmp_path / "volumes" / "kubernetes.io~empty-dir" / "d"
    assert plan == [
        BindMount("/etc", "/data", read_only=True, is_file=False),
        BindMount(str(empty / "x"), "/data/sub", read_only=False, is_file=False),
    ]
    assert (empty / "x").is_dir()  # a missing subPath is created in the volume


def test_mount_script_creates_mount_points_and_remounts_read_only() -> None:
    script = mount_script([BindMount("/src dir", "/etc/f", read_only=True, is_file=True)])
    assert "[ -e /etc/f ] || { mkdir -p /etc && : > /etc/f; }" in script
    assert "mount --rbind '/src dir' /etc/f" in script
    assert "mount -o remount,bind,ro /etc/f" in script


def test_mount_script_hides_masked_paths_after_binding_the_volumes() -> None:
    plan = [BindMount("/data/pods/u/volumes/v", "/out", read_only=False, is_file=False)]
    script = mount_script(plan, masked=("/data", "/etc/token"))
    lines = script.splitlines()
    bind = lines.index("mount --rbind /data/pods/u/volumes/v /out")
    mask = next(i for i, line in enumerate(lines) if "setpoint-masked /data;" in line)
    assert bind < mask  # the volume's source is bound before it is hidden
    assert "elif [ -e /etc/token ]; then mount --bind -o ro /dev/null /etc/token; fi" in script
    assert "/proc/self/mountinfo" not in script


def test_read_only_root_remounts_all_but_the_kernels_and_the_volumes() -> None:
    plan = [BindMount("/v", "/out", read_only=False, is_file=False)]
    script = mount_script(plan, masked=("/data",), read_only_root=True)
    last = script.splitlines()[-1]
    assert last.startswith("awk '{print $5, $6}' /proc/self/mountinfo")
    assert "/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/out|/out/*|/data|/data/*) continue" in last
    assert 'mount -o "remount,bind,ro,${options#r?,}" "$point"' in last


def test_identity_prefix_comes_right_before_the_command() -> None:
    run_as = ["setpriv", "--reuid=5", "--", "env", "--"]
    argv, _ = wrap_argv(["run"], "/", [("mount", Path("/ns/app"))], [], run_as)
    assert argv == ["nsenter", "--mount=/ns/app", "--wd=/", "--", *run_as, "run"]


def test_working_dir_inside_a_volume_is_entered_after_the_namespace() -> None:
    plan = [BindMount("/v", "/work", read_only=False, is_file=False)]
    argv, cwd = wrap_argv(["run"], "/work/sub", [("mount", Path("/ns/app"))], plan)
    assert argv == ["nsenter", "--mount=/ns/app", "--", "env", "--chdir=/work/sub", "--", "run"]
    assert cwd is None
    argv, cwd = wrap_argv(["run"], "/srv", [("mount", Path("/ns/app"))], plan)
    assert argv == ["nsenter", "--mount=/ns/app", "--wd=/srv", "--", "run"] and cwd == "/srv"


# ------------------------------------------------------------------ cgroup values


def test_container_limits_use_the_kubelet_conversions() -> None:
    limits = cgroups.container_limits(
        {"resources": {"limits": {"memory": "30Mi", "cpu": "250m"}, "requests": {"cpu": "100m"}}}
    )
    assert limits == cgroups.Limits(memory_bytes=30 * 2**20, cpu_quota_us=25000, cpu_shares=102)
    assert cgroups.container_limits({}) == cgroups.Limits(None, None, 2)
    assert cgroups.container_limits({"resources": {"limits": {"cpu": "1m"}}}).cpu_quota_us == 1000
    assert cgroups.weight(1024) == 39 and cgroups.weight(2) == 1


def test_pod_limits_sum_containers_only_when_all_have_a_limit() -> None:
    pod = {
        "spec": {
            "containers": [
                {"resources": {"limits": {"memory": "10Mi", "cpu": "1"}}},
                {"resources": {"limits": {"memory": "20Mi"}, "requests": {"cpu": "500m"}}},
            ]
        }
    }
    limits = cgroups.pod_limits(pod)
    assert limits.memory_bytes == 30 * 2**20
    assert limits.cpu_quota_us is None  # the second container has no cpu limit
    assert limits.cpu_shares == 1536


def test_container_cgroup_is_where_the_supervisor_puts_the_process(tmp_path: Path) -> None:
    for controller in ("memory", "cpu", "pids", "freezer"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    host = cgroups.Host(1, {}, tmp_path)
    cid = f"{POD['metadata']['uid']}/app"
    mine = host.dirs(cgroups.pod_parent(POD["metadata"]["uid"]), cid)
    theirs = cgroup_dirs(cgroups.pod_parent(POD["metadata"]["uid"]), cid, root=tmp_path)
    # the process joins every hierarchy holding a limit, and the freezer that stops it
    assert list(mine.values()) == theirs[:3]
    assert [p.relative_to(tmp_path).parts[0] for p in theirs] == [*mine, "freezer"]


def test_limits_are_written_to_v1_files(tmp_path: Path) -> None:
    for controller in ("memory", "cpu"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    host = cgroups.Host(1, {}, tmp_path)
    limits = cgroups.Limits(memory_bytes=1024, cpu_quota_us=50000, cpu_shares=512)
    assert host.apply("setpoint/pods/u", limits, leaf="u/app") == []
    leaf = "setpoint/pods/u/u%2Fapp"
    assert (tmp_path / "memory" / leaf / "memory.limit_in_bytes").read_text() == "1024"
    assert (tmp_path / "cpu" / leaf / "cpu.cfs_quota_us").read_text() == "50000"
    assert (tmp_path / "cpu" / leaf / "cpu.shares").read_text() == "512"
