"""Pod volumes materialised on the node, the way the kubelet's volume plugins lay them out.

Every volume of a pod gets a directory ``<data-dir>/pods/<pod-uid>/volumes/<plugin>/<name>``
(the layout of ``/var/lib/kubelet/pods``), with the kubelet's plugin names
(``kubernetes.io~empty-dir``, ``kubernetes.io~configmap``, ...); a ``hostPath`` volume is the
host path itself, checked against its ``type`` with the kubelet's messages
(``pkg/volume/hostpath``). This module only writes files; mounting them where containers see
them (and the tmpfs of ``medium: Memory``) is :mod:`setpoint.agent.sandbox`'s business.

ConfigMap, Secret, downward API and projected volumes are written like the kubelet's
``AtomicWriter`` (``pkg/volume/util/atomic_writer.go``): the files live in a hidden timestamped
directory ``..2006_01_02_15_04_05.NNNN``, ``..data`` is a symlink to it, and each visible
top-level name is a symlink into ``..data``. An update writes a new timestamped directory
and renames a new ``..data`` link over the old one, so a reader sees either the old or the
new set of files, never a mix; an unchanged payload writes nothing. Modes are the item's
``mode``, else the volume's ``defaultMode``, else 0644 (``ConfigMapVolumeSourceDefaultMode``
and ``SecretVolumeSourceDefaultMode`` are both 0644), in directories 0755. What keeps other
local users out is the pod's own directories above, ``<pod-uid>``, ``volumes`` and
``<plugin>``, which are private (0700, see :mod:`setpoint.meta.privatefiles`).

A problem the user can fix (a missing ConfigMap, a missing key, a hostPath of the wrong type)
is a :class:`VolumeError`, whose text is the kubelet's ``FailedMount`` event message:
``MountVolume.SetUp failed for volume "x" : configmap "y" not found``.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from setpoint.agent.pressure import meminfo_bytes
from setpoint.meta import gofmt
from setpoint.meta.privatefiles import private_dir
from setpoint.meta.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

PLUGINS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
    "persistentVolumeClaim": "kubernetes.io~local-claim",
}
SUPPORTED = (*PLUGINS, "hostPath")
CLAIMS_DIR = "claims"  # under the data dir: one directory per claim uid
CLAIM_MODE = 0o777  # as the local-path provisioner makes its directories
DEFAULT_MODE = 0o644
EMPTY_DIR_MODE = 0o777  # the kubelet makes emptyDir world-writable, whatever the umask
# the directories of configMap, secret, downwardAPI and projected volumes: the pod's user
# (root today, runAsUser later) must be able to traverse them, as AtomicWriter says
PROJECTED_DIR_MODE = 0o755
DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
MAX_FILE_NAME = 255
MAX_PATH = 4096

# ConfigMaps, Secrets and claims the volumes read, keyed by ("configMap"|"secret"|
# "persistentVolumeClaim", name): the whole object (None: not found).
Sources = Mapping[tuple[str, str], Obj | None]


class VolumeError(Exception):
    """A volume cannot be set up; ``str()`` is the kubelet's FailedMount message."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume
        self.reason = message


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


def volume_kind(volume: Obj) -> str:
    """The volume's source type (``emptyDir``, ``configMap``, ...; "" if none we know)."""
    return next((kind for kind in SUPPORTED if kind in volume), "")


def volume_dir(pod_dir: Path, volume: Obj) -> Path:
    """Where a (non-hostPath) volume lives under the pod's directory."""
    return pod_dir / "volumes" / PLUGINS[volume_kind(volume)] / volume["name"]


def make_volume_dir(pod_dir: Path, volume: Obj) -> Path:
    """Create the volume's directory (if missing) below private ones: ``volumes/<plugin>``
    is 0700 like the pod directory, so the volume's own, more open mode lets no other
    user in."""
    target = volume_dir(pod_dir, volume)
    private_dir(target.parent)
    with contextlib.suppress(FileExistsError):
        target.mkdir()
    return target


def volume_sources(pod: Obj) -> set[tuple[str, str]]:
    """The ConfigMaps and Secrets the pod's volumes read (projected ones included), and the
    PersistentVolumeClaims they mount."""
    wanted: set[tuple[str, str]] = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            wanted.add(("persistentVolumeClaim", str(claim)))
        projections = [volume, *list((volume.get("projected") or {}).get("sources") or [])]
        for source in projections:
            for kind, field in (("configMap", "name"), ("secret", "secretName")):
                if kind in source:
                    ref = source[kind] or {}
                    name = ref.get(field) if source is volume else ref.get("name")
                    if name:
                        wanted.add((kind, str(name)))
    return wanted


# ------------------------------------------------------------------ payloads


def configmap_payload(
    ref: Obj, configmap: Obj | None, default_mode: int
) -> dict[str, FileProjection]:
    """The files of a configMap volume or projection (``configmap.MakePayload``)."""
    name = ref.get("name", "")
    if configmap is None:
        if ref.get("optional"):
            return {}
        raise ValueError(f'configmap "{name}" not found')
    data = {k: str(v).encode() for k, v in (configmap.get("data") or {}).items()}
    for key, value in (configmap.get("binaryData") or {}).items():
        data[key] = base64.b64decode(value)
    return _payload(data, ref, default_mode, "configmap references non-existent config key: ")


def secret_payload(
    ref: Obj, secret: Obj | None, default_mode: int, name: str
) -> dict[str, FileProjection]:
    """The files of a secret volume or projection; the values are base64-decoded."""
    if secret is None:
        if ref.get("optional"):
            return {}
        raise ValueError(f'secret "{name}" not found')
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    for key, value in (secret.get("stringData") or {}).items():
        data.setdefault(key, str(value).encode())
    return _payload(data, ref, default_mode, "references non-existent secret key: ")


def _payload(
    data: Mapping[str, bytes], ref: Obj, default_mode: int, missing: str
) -> dict[str, FileProjection]:
    mode = _mode(ref.get("defaultMode"), default_mode)
    items = ref.get("items") or []
    if not items:
        return {key: FileProjection(value, mode) for key, value in data.items()}
    payload = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if ref.get("optional"):
                continue
            raise ValueError(missing + key)
        payload[item.get("path") or key] = FileProjection(data[key], _mode(item.get("mode"), mode))
    return payload


def _mode(value: object, default: int) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def downward_payload(
    pod: Obj, ref: Obj, default_mode: int, allocatable: Mapping[str, str]
) -> dict[str, FileProjection]:
    """The files of a downwardAPI volume or projection (``downwardapi.CollectData``)."""
    mode = _mode(ref.get("defaultMode"), default_mode)
    payload = {}
    for item in ref.get("items") or []:
        if "fieldRef" in item:
            text = downward_field(pod, (item["fieldRef"] or {}).get("fieldPath", ""))
        elif "resourceFieldRef" in item:
            text = downward_resource(pod, item["resourceFieldRef"] or {}, allocatable)
        else:
            raise ValueError(
                f"downwardAPI item {item.get('path')!r} has no fieldRef or resourceFieldRef"
            )
        payload[item.get("path", "")] = FileProjection(text.encode(), _mode(item.get("mode"), mode))
    return payload


_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.+)'\]$")


def downward_field(pod: Obj, field_path: str) -> str:
    """``fieldpath.ExtractFieldPathAsString`` for what a volume may project."""
    meta = pod.get("metadata") or {}
    match = _SUBSCRIPT.match(field_path)
    if match:
        which = match.group(1).partition(".")[2]
        return str((meta.get(which) or {}).get(match.group(2), ""))
    if field_path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(field_path.partition(".")[2]) or {})
    if field_path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(field_path.partition(".")[2], ""))
    raise ValueError(f"unsupported fieldPath: {field_path}")


def format_map(values: Mapping[str, str]) -> str:
    """``fieldpath.FormatMap``: ``key="value"`` lines in key order, Go-quoted values."""
    return "\n".join(f"{key}={gofmt.quote(str(values[key]))}" for key in sorted(values))


def host_allocatable() -> dict[str, str]:
    """What a limit the container does not set defaults to (the node's allocatable)."""
    memory = meminfo_bytes("MemTotal") or 0
    return {"cpu": str(os.cpu_count() or 1), "memory": str(memory)}


def downward_resource(pod: Obj, ref: Obj, allocatable: Mapping[str, str]) -> str:
    """``resource.ExtractContainerResourceValue``: a container's request or limit divided by
    ``divisor`` and rounded up; a limit that is not set is the node's allocatable."""
    name = ref.get("containerName", "")
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    container = next((c for c in containers if c.get("name") == name), None)
    if container is None:
        raise ValueError(f"container {name!r} not found in pod for resourceFieldRef")
    resource = ref.get("resource", "")
    kind, _, resource_name = resource.partition(".")
    if kind not in ("limits", "requests") or not (
        resource_name in ("cpu", "memory", "ephemeral-storage")
        or resource_name.startswith("hugepages-")
    ):
        raise ValueError(f"unsupported container resource : {resource}")
    resources = container.get("resources") or {}
    text = (resources.get(kind) or {}).get(resource_name)
    if text is None and kind == "limits":
        text = allocatable.get(resource_name)
    try:
        value = parse_quantity(str(text)).value if text is not None else Fraction(0)
        divisor = parse_quantity(str(ref.get("divisor") or "1")).value
    except QuantityError as exc:
        raise ValueError(f"resourceFieldRef {resource}: {exc}") from None
    if divisor <= 0:
        raise ValueError(f"resourceFieldRef {resource}: divisor must be positive")
    if resource_name == "cpu":  # convertResourceCPUToString works in millicores
        return str(math.ceil(math.ceil(value * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(value / divisor))


def projected_payload(
    pod: Obj, ref: Obj, sources: Sources, allocatable: Mapping[str, str]
) -> tuple[dict[str, FileProjection], list[str]]:
    """The files of a projected volume, and the projections skipped (as messages)."""
    mode = _mode(ref.get("defaultMode"), DEFAULT_MODE)
    payload: dict[str, FileProjection] = {}
    skipped = []
    for source in ref.get("sources") or []:
        if "configMap" in source:
            cm = source["configMap"] or {}
            payload.update(
                configmap_payload(cm, sources.get(("configMap", cm.get("name", ""))), mode)
            )
        elif "secret" in source:
            sec = source["secret"] or {}
            name = sec.get("name", "")
            payload.update(secret_payload(sec, sources.get(("secret", name)), mode, name))
        elif "downwardAPI" in source:
            payload.update(downward_payload(pod, source["downwardAPI"] or {}, mode, allocatable))
        elif "serviceAccountToken" in source:
            payload.update(token_payload(source["serviceAccountToken"] or {}, sources, mode))
        else:
            kinds = ", ".join(sorted(source)) or "an empty source"
            skipped.append(f"{kinds} is not projected by the setpoint agent")
    return payload, skipped


def token_source_key(ref: Obj) -> tuple[str, str]:
    """Where :data:`Sources` holds the token a ``serviceAccountToken`` projection asks for
    (fetched by the agent's token manager: :mod:`setpoint.agent.tokens`)."""
    return ("serviceAccountToken", f"{ref.get('audience') or ''}|{ref.get('expirationSeconds')}")


def token_payload(ref: Obj, sources: Sources, default_mode: int) -> dict[str, FileProjection]:
    """The file of a ``serviceAccountToken`` projection: the token, at ``path``."""
    fetched = sources.get(token_source_key(ref))
    if fetched is None or not fetched.get("token"):
        raise ValueError(str((fetched or {}).get("error") or "no service account token"))
    return {
        str(ref.get("path") or "token"): FileProjection(fetched["token"].encode(), default_mode)
    }


# ------------------------------------------------------------------ the atomic writer


def validate_path(path: str) -> None:
    """``AtomicWriter``'s rules: relative, no ``..`` element, no leading ``..``."""
    if not path:
        raise ValueError(f'invalid path: must not be empty: "{path}"')
    if path.startswith("/"):
        raise ValueError(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH:
        raise ValueError(f"invalid path: must be less than or equal to {MAX_PATH} characters")
    items = path.split("/")
    for item in items:
        if item == "..":
            raise ValueError(f"invalid path: must not contain '..': {path}")
        if len(item) > MAX_FILE_NAME:
            raise ValueError(
                f"invalid path: filenames must be less than or equal to {MAX_FILE_NAME} characters"
            )
    if items[0].startswith("..") and len(items[0]) > 2:
        raise ValueError(f"invalid path: must not start with '..': {path}")


def atomic_write(target: Path, payload: Mapping[str, FileProjection]) -> bool:
    """Project ``payload`` into ``target`` atomically; False if nothing had to change."""
    clean = {os.path.normpath(path): content for path, content in payload.items()}
    for path in payload:
        validate_path(path)
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / DATA_DIR
    try:
        old = os.readlink(data_link)
    except FileNotFoundError:
        old = ""
    old_dir = target / old if old else None
    remove: set[str] = set()
    if old_dir is not None:
        remove = _paths_to_remove(clean, old_dir)
        if not remove and not _should_write(clean, old_dir):
            return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    os.chmod(new_dir, 0o755)  # group and other must be able to traverse it
    try:
        for path, content in clean.items():
            full = new_dir / path
            full.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, content.mode)
            try:
                os.write(fd, content.data)
            finally:
                os.close(fd)
            os.chmod(full, content.mode)  # the umask must not decide the mode
        for top in {path.split("/")[0] for path in clean}:
            visible = target / top
            if not visible.is_symlink():
                os.symlink(f"{DATA_DIR}/{top}", visible)
        tmp_link = target / NEW_DATA_DIR
        if tmp_link.is_symlink():
            tmp_link.unlink()
        os.symlink(new_dir.name, tmp_link)
        os.rename(tmp_link, data_link)
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    for path in remove:
        if "/" not in path:  # only the visible top-level links; the rest went with old_dir
            (target / path).unlink(missing_ok=True)
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True


def _paths_to_remove(payload: Mapping[str, FileProjection], old_dir: Path) -> set[str]:
    current = set()
    for root, dirs, files in os.walk(old_dir):
        for name in dirs + files:
            current.add(os.path.relpath(os.path.join(root, name), old_dir))
    wanted = set()
    for path in payload:
        while path:
            wanted.add(path)
            path = os.path.dirname(path)
    return current - wanted


def _should_write(payload: Mapping[str, FileProjection], old_dir: Path) -> bool:
    for path, content in payload.items():
        old = old_dir / path
        try:
            if old.read_bytes() != content.data or stat.S_IMODE(old.stat().st_mode) != content.mode:
                return True
        except OSError:
            return True
    return False


# ------------------------------------------------------------------ hostPath


def check_host_path(path: str, path_type: str | None) -> None:
    """``hostpath.checkType``: create or check ``path`` as ``type`` says; raises ValueError
    with the kubelet's message."""
    if not path_type:
        return
    if path_type == "DirectoryOrCreate":
        if not os.path.exists(path):
            os.makedirs(path, 0o755, exist_ok=True)
            return
        path_type = "Directory"
    elif path_type == "FileOrCreate":
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            return
        path_type = "File"
    checks = {
        "Directory": (stat.S_ISDIR, "a directory"),
        "File": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket file"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if path_type not in checks:
        raise ValueError(f"{path_type} is an invalid volume type")
    test, what = checks[path_type]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if not test(mode):
        raise ValueError(f"hostPath type check failed: {path} is not {what}")


# ------------------------------------------------------------------ one volume


@dataclass(frozen=True)
class Materialised:
    """A volume set up on the host: where it is, and what was not done (as messages)."""

    name: str
    path: Path
    notes: tuple[str, ...] = ()


def materialise(
    pod: Obj,
    volume: Obj,
    pod_dir: Path,
    *,
    sources: Sources,
    allocatable: Mapping[str, str],
) -> Materialised:
    """Create or refresh one volume under ``pod_dir`` (a hostPath: check it). Raises
    :class:`VolumeError`. Does not mount anything (see the sandbox for tmpfs)."""
    name = str(volume.get("name", ""))
    kind = volume_kind(volume)
    try:
        if not kind:
            kinds = ", ".join(sorted(k for k in volume if k != "name")) or "no source"
            raise ValueError(f"volume type {kinds} is not supported by the setpoint agent")
        if kind == "hostPath":
            source = volume["hostPath"] or {}
            path = str(source.get("path", ""))
            check_host_path(path, source.get("type"))
            return Materialised(name, Path(path))
        if kind == "persistentVolumeClaim":
            return Materialised(name, claim_volume(pod_dir, volume, sources))
        target = make_volume_dir(pod_dir, volume)
        notes: list[str] = []
        ref = volume[kind] or {}
        if kind == "emptyDir":
            os.chmod(target, EMPTY_DIR_MODE)
            return Materialised(name, target)
        if kind == "configMap":
            data = sources.get(("configMap", str(ref.get("name", ""))))
            payload = configmap_payload(ref, data, DEFAULT_MODE)
        elif kind == "secret":
            secret_name = str(ref.get("secretName", ""))
            payload = secret_payload(
                ref, sources.get(("secret", secret_name)), DEFAULT_MODE, secret_name
            )
        elif kind == "downwardAPI":
            payload = downward_payload(pod, ref, DEFAULT_MODE, allocatable)
        else:
            payload, skipped = projected_payload(pod, ref, sources, allocatable)
            notes += skipped
        atomic_write(target, payload)
        os.chmod(target, PROJECTED_DIR_MODE)  # the umask must not decide it
        return Materialised(name, target, tuple(notes))
    except (ValueError, OSError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else f"{exc.strerror}: {exc.filename}"
        raise VolumeError(name, message) from None


# ------------------------------------------------------------------ claims


def claim_volume(pod_dir: Path, volume: Obj, sources: Sources) -> Path:
    """A ``persistentVolumeClaim`` volume: the node-local directory of the claim,
    ``<data-dir>/claims/<claim-uid>`` (made on first use and kept when the pod goes, so a
    pod that mounts the same claim on this node again finds its data), linked from the
    pod's volume directory. There is no PersistentVolume binder: the claim itself, found by
    name in the pod's namespace, is the storage, as with the local-path provisioner."""
    claim_name = str((volume.get("persistentVolumeClaim") or {}).get("claimName") or "")
    claim = sources.get(("persistentVolumeClaim", claim_name))
    if not claim_name or claim is None:
        raise ValueError(f'persistentvolumeclaim "{claim_name}" not found')
    uid = str((claim.get("metadata") or {}).get("uid") or "")
    if not re.fullmatch(r"[0-9a-zA-Z-]+", uid):
        raise ValueError(f'persistentvolumeclaim "{claim_name}" has no uid')
    claims = pod_dir.parent.parent / CLAIMS_DIR
    private_dir(claims)
    data = claims / uid
    with contextlib.suppress(FileExistsError):
        data.mkdir()
        os.chmod(data, CLAIM_MODE)
    link = volume_dir(pod_dir, volume)
    private_dir(link.parent)
    if not link.is_symlink() or os.readlink(link) != str(data):
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(data)
    return data


def pod_volumes(pod: Obj) -> list[Obj]:
    return list((pod.get("spec") or {}).get("volumes") or [])


def mounted_volume_names(containers: Iterable[Obj]) -> set[str]:
    return {str(m.get("name")) for c in containers for m in c.get("volumeMounts") or []}


# ------------------------------------------------------------------ fsGroup

OWNED_BY_FS_GROUP = ("emptyDir", "configMap", "secret", "downwardAPI", "projected")
RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110


def set_volume_ownership(path: Path, gid: int, *, read_only: bool) -> None:
    """The kubelet's ``SetVolumeOwnership`` for a pod's ``fsGroup``: every file and
    directory of the volume group-owned by ``gid`` and group-readable (and group-writable,
    unless the volume is read-only: configMap, secret, downwardAPI, projected), each
    directory group-searchable and setgid, so files made later get the group too.
    Symbolic links are re-owned, not followed.

    An emptyDir whose root already has the group is left alone (the kubelet's
    ``OnRootMismatch``): its files are the pod's own, made under the setgid directory."""
    if not read_only:
        with contextlib.suppress(OSError):
            if os.stat(path).st_gid == gid:
                _own(path, gid, read_only=False)  # (its mode, reset by materialise)
                return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            _own(Path(root) / name, gid, read_only=read_only)
    _own(path, gid, read_only=read_only)


def _own(path: Path, gid: int, *, read_only: bool) -> None:
    info = os.lstat(path)
    os.lchown(path, -1, gid)
    if stat.S_ISLNK(info.st_mode):
        return
    mask = RO_MASK if read_only else RW_MASK
    if stat.S_ISDIR(info.st_mode):
        mask |= stat.S_ISGID | EXEC_MASK
    os.chmod(path, stat.S_IMODE(info.st_mode) | mask)
