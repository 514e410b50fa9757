"""The pod sandbox: what a pod's containers share on the node (CRI's RunPodSandbox).

:class:`Sandboxes` prepares, for each pod bound to the node, before its first container
starts (:meth:`~Sandboxes.ensure`):

- the pod directory ``<data-dir>/pods/<uid>`` (private, 0700, as are ``volumes`` and its
  plugin directories below it: :mod:`setpoint.meta.privatefiles`) and its volumes
  (:mod:`setpoint.agent.volumes`); ConfigMap and Secret contents are fetched again every
  ``RESYNC_SECONDS`` (the kubelet re-syncs its volumes about every minute) and rewritten
  atomically when they changed;
- a tmpfs for ``emptyDir`` with ``medium: Memory`` (``size`` = ``sizeLimit``, mode 0777), and
  for ``secret`` and ``projected`` volumes (mode 0755), as the kubelet keeps secrets off the
  disk;
- the pod's cgroup ``setpoint/pods/<uid>`` with the pod's totals (:mod:`setpoint.agent.cgroups`);
- its network namespace, veth and IP (:mod:`setpoint.agent.network`), unless the pod has
  ``hostNetwork: true`` or the agent has no pod network (not root, or the Node has no
  ``spec.podCIDR``): then it runs in the node's network, and its TCP ``containerPorts`` get
  node ports of its own, passed in its env (``PORT``, ``PORT_8080``:
  :mod:`setpoint.agent.dynports`), with a ``ContainerPortsAssigned`` event; a
  ``ContainerPortsNotIsolated`` Warning names the UDP and SCTP ones, which it shares with
  every other pod there.
  A failed setup is a ``FailedCreatePodSandBox`` Warning and retried; other pods go on.
  Its ``hostPort`` ports are forwarded to it by the agent (:mod:`setpoint.agent.hostports`).

- the pod's ``/etc/resolv.conf`` (``<pod dir>/etc/resolv.conf``), built by its
  ``dnsPolicy`` and ``dnsConfig`` as the kubelet builds it
  (:mod:`setpoint.agent.clusterdns.resolvconf`), naming the node's DNS server: for every pod
  in a network namespace of its own, and for a pod in the node's network only when its
  policy makes its file differ from the node's and mount namespaces can be made; beside it,
  for a pod with its own network, the kubelet-managed ``/etc/hosts``
  (:mod:`setpoint.agent.clusterdns.hostsfile`).

Then, for each container (:meth:`~Sandboxes.prepare_container`): its leaf cgroup with its
limits, written before the supervisor spawns the process and moves it in; a mount
namespace of its own in which the volumes are bind-mounted at their ``mountPath``
(``subPath`` and ``readOnly`` honoured) and the pod's resolv.conf and hosts at
``/etc/resolv.conf`` and ``/etc/hosts``, invisible to the host, after which the node's own
files are hidden (the agent's data dir, its credentials and each ``--masked-path``, such as
the server's data dir, under an empty read-only tmpfs) and, for ``readOnlyRootFilesystem``,
every other mount is made read-only; and its identity from its ``securityContext``
(user, groups, capabilities, ``no_new_privs``: :mod:`setpoint.agent.securitycontext`),
given by a ``setpriv`` prefix, with a uid of its namespace's own when it names none
(:mod:`setpoint.agent.namespaceusers`). (A container whose command is nowhere on the node, and
which mounts no volume that might hold it, is started as it is, so the supervisor reports
its ``StartError`` rather than nsenter's exit 127: it runs nothing.) What cannot be
enforced on the node (not root, no mount namespaces) is a ``SecurityContextNotEnforced``
Warning.

Why one mount namespace per container, not per pod: in Kubernetes every container has its
own mount namespace, and two containers of a pod may mount different volumes, or the same
volume read-only and read-write, at one path. Such a namespace outlives the processes in it
by being bound to a file, like ``ip netns``: ``unshare --mount=<pod dir>/ns/<container>
--propagation private`` runs one small shell script that creates the mount points and does
the bind mounts inside the new namespace, and the bound file keeps the namespace when the
script ends. The directory holding those files is bind-mounted onto itself and made private
first (the kernel refuses to bind a namespace file under a shared mount). The container's
argv becomes ``nsenter --mount=<file> -- argv`` (``env --chdir`` in front when its
``workingDir`` lies inside a mounted volume, since entering a mount namespace resets the
working directory); nsenter execs the workload, so its pid and start time stay those the
supervisor saw, and it costs ~0.5 ms per (re)start here (``bench/clusterdns.py``); making
the namespace, once per container, ~20-35 ms on a loaded 2-core machine. The supervisor is
left as it is: a ``preexec_fn`` would cost it the fast vfork path for every container.

A mount point that does not exist must be created, and the namespace shares the host's
filesystem, so an empty directory (or empty file, for a file ``subPath``) appears on the host
at each new ``mountPath``; it is left in place when the pod goes, because removing a
directory that is a mount point in another pod's namespace would detach that pod's mount.

Where the agent is not root or cannot create mount namespaces, volumes are still
materialised under the data dir, containers run without a namespace, and the pod gets a
``VolumesNotMounted`` Warning saying so; limits that cannot be enforced (not root, no cgroup
controller) are named in a ``ResourceLimitsNotEnforced`` Warning: never silently.

:meth:`~Sandboxes.teardown` (StopPodSandbox, after the containers are gone) unmounts what
was mounted under the pod directory (namespace files included), removes it and the pod's
cgroups, and removes the pod's log directory (``<data-dir>/pods/<namespace>_<name>_<uid>``,
the CRI sandbox's ``LogDirectory``), as the kubelet removes a deleted pod's logs.
Everything is idempotent and kept on disk, so an agent restart re-runs ``ensure`` as a
no-op (apart from refreshing ConfigMap and Secret contents), and orphan cleanup finds the
sandboxes and log directories of pods that no longer exist by scanning
``<data-dir>/pods/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from setpoint.agent import cgroups, dynports, namespaceusers, network, securitycontext, volumes
from setpoint.agent.clusterdns import hostsfile, resolvconf
from setpoint.agent.hostports import HostPorts
from setpoint.agent.pods import container_id
from setpoint.agent.runtime import ContainerSpec
from setpoint.agent.supervisor import cgroup_dirs
from setpoint.agent.tokens import TokenManager, token_key, token_sources
from setpoint.client.api import (
    CONFIGMAPS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    SECRETS,
    ApiClient,
    ApiError,
    Obj,
)
from setpoint.client.events import EventRecorder
from setpoint.meta import assignedports
from setpoint.meta.privatefiles import private_dir

log = logging.getLogger(__name__)

RESYNC_SECONDS = 60.0
RETRY_SECONDS = 10.0
NOT_ROOT = "the setpoint agent is not running as root"
_UID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# <sys/mount.h>
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
MNT_DETACH = 2
MASK_OPTIONS = "ro,nosuid,nodev,noexec,size=4k,mode=0755"


@dataclass(frozen=True)
class Setup:
    """The outcome of :meth:`Sandboxes.ensure`: may containers start, and when to look again."""

    ready: bool
    recheck_after: float | None = None


@dataclass(frozen=True)
class BindMount:
    source: str
    target: str
    read_only: bool
    is_file: bool


@dataclass(frozen=True)
class DNSSettings:
    """What a pod's ``/etc/resolv.conf`` is made of (the kubelet's ``--cluster-domain``,
    ``--cluster-dns`` and ``--resolv-conf``)."""

    cluster_domain: str = "cluster.local"
    cluster_dns: tuple[str, ...] = ()  # given to pods instead of the node's DNS server
    resolv_conf: Path = Path("/etc/resolv.conf")  # the node's own


RESOLV_CONF = "/etc/resolv.conf"
ETC_HOSTS = "/etc/hosts"


class MountError(Exception):
    """A container's volumes cannot be mounted; the text is a FailedMount message."""


# ------------------------------------------------------------------ mounts (pure parts)


def container_mounts(pod: Obj, container: Obj, pod_dir: Path) -> list[BindMount]:
    """The bind mounts of one container, parents before children. Creates a missing
    ``subPath`` inside its volume as a directory, as the kubelet does."""
    by_name = {str(v.get("name")): v for v in volumes.pod_volumes(pod)}
    plan = []
    for mount in container.get("volumeMounts") or []:
        name = str(mount.get("name", ""))
        volume = by_name.get(name)
        if volume is None:
            raise MountError(f'volume "{name}" of container "{container["name"]}" not found')
        target = str(mount.get("mountPath", ""))
        if not target.startswith("/"):
            raise MountError(f'volume "{name}": mountPath {target!r} must be absolute')
        if "hostPath" in volume:
            source = Path(str((volume["hostPath"] or {}).get("path", "")))
        else:
            source = volumes.volume_dir(pod_dir, volume)
        sub = str(mount.get("subPath") or "")
        if mount.get("subPathExpr"):
            raise MountError(f'volume "{name}": subPathExpr is not supported by the setpoint agent')
        if sub:
            if sub.startswith("/") or ".." in sub.split("/"):
                raise MountError(f'volume "{name}": invalid subPath {sub!r}')
            source = source / sub
            if not os.path.lexists(source):
                source.mkdir(parents=True, exist_ok=True)
        plan.append(
            BindMount(
                source=str(source),
                target=os.path.normpath(target),
                read_only=bool(mount.get("readOnly")),
                is_file=source.is_file(),
            )
        )
    return sorted(plan, key=lambda m: m.target.count("/"))


def mount_script(
    plan: list[BindMount], *, masked: tuple[str, ...] = (), read_only_root: bool = False
) -> str:
    """The shell script run inside a new mount namespace to set up ``plan``, then hide the
    ``masked`` paths (a directory under an empty read-only tmpfs, a file under
    ``/dev/null``) and, for ``read_only_root``, make every other mount read-only except
    the kernel's (``/proc``, ``/sys``, ``/dev``) and the container's own volumes."""
    lines = ["set -e"]
    for m in plan:
        src, dst = shlex.quote(m.source), shlex.quote(m.target)
        if m.is_file:
            parent = shlex.quote(os.path.dirname(m.target) or "/")
            lines.append(f"[ -e {dst} ] || {{ mkdir -p {parent} && : > {dst}; }}")
        else:
            lines.append(f"[ -e {dst} ] || mkdir -p {dst}")
        lines.append(f"mount --rbind {src} {dst}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    for path in masked:  # (one inside another masked one is hidden already: skipped)
        p = shlex.quote(path)
        lines.append(
            f"if [ -d {p} ]; then mount -t tmpfs -o {MASK_OPTIONS} setpoint-masked {p}; "
            f"elif [ -e {p} ]; then mount --bind -o ro /dev/null {p}; fi"
        )
    if read_only_root:
        keep = [shlex.quote(p) for p in [*(m.target for m in plan), *masked]]
        skip = "|".join(["/proc", "/proc/*", "/sys", "/sys/*", "/dev", "/dev/*"])
        skip += "".join(f"|{k}|{k}/*" for k in keep)
        lines.append(
            "awk '{print $5, $6}' /proc/self/mountinfo | while read -r point options; do "
            f"case $point in {skip}) continue;; esac; "
            'mount -o "remount,bind,ro,${options#r?,}" "$point" 2>/dev/null || true; done'
        )
    return "\n".join(lines) + "\n"


# A namespace a container's processes live in, as nsenter names it: (``mount`` | ``net`` |
# ..., the file that holds it). Entering more of them (the pod's network namespace) is one
# more entry in :meth:`Sandboxes.namespaces`.
Namespace = tuple[str, Path]


def nsenter_argv(namespaces: list[Namespace]) -> list[str]:
    return ["nsenter", *(f"--{kind}={path}" for kind, path in namespaces)]


def wrap_argv(
    argv: list[str],
    cwd: str | None,
    namespaces: list[Namespace],
    plan: list[BindMount],
    run_as: list[str] | None = None,
) -> tuple[list[str], str | None]:
    """The argv (and host cwd) that runs ``argv`` in ``cwd`` inside ``namespaces`` (which
    include the container's mount namespace, holding the mounts of ``plan``), as the
    identity ``run_as`` (a ``setpriv ... --`` prefix, see :mod:`.securitycontext`) gives."""
    prefix = nsenter_argv(namespaces)
    run_as = run_as or []
    if cwd is None:
        return [*prefix, "--", *run_as, *argv], None
    inside = any(cwd == m.target or cwd.startswith(m.target.rstrip("/") + "/") for m in plan)
    if inside:  # the directory exists only in the namespace
        return [*prefix, "--", "env", f"--chdir={cwd}", "--", *run_as, *argv], None
    # nsenter opens --wd before entering, which is right for a host directory; the host cwd
    # keeps the supervisor's StartError for a working directory that does not exist
    return [*prefix, f"--wd={cwd}", "--", *run_as, *argv], cwd


# ------------------------------------------------------------------ host mounts


_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    rc = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode()
    )
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), target)


def umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), target)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` in our mount namespace, deepest first."""
    prefix = str(directory).rstrip("/")
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def tmpfs_options(volume: Obj) -> str:
    """The mode of an emptyDir is 0777, as the kubelet makes it; a secret or projected
    volume's tmpfs is 0755: its files keep their own modes and nobody writes there."""
    mode = volumes.EMPTY_DIR_MODE if "emptyDir" in volume else volumes.PROJECTED_DIR_MODE
    options = [f"mode={mode:04o}"]
    limit = cgroups.memory_bytes((volume.get("emptyDir") or {}).get("sizeLimit"))
    if limit:
        options.append(f"size={limit}")
    return ",".join(options)


# ------------------------------------------------------------------ the sandboxes


class Sandboxes:
    """The sandboxes of one node's pods, kept under ``<data_dir>/pods/<uid>``."""

    def __init__(
        self,
        client: ApiClient,
        recorder: EventRecorder,
        *,
        data_dir: Path,
        cgroup_host: cgroups.Host | None = None,
        resync_seconds: float = RESYNC_SECONDS,
        pod_max_pids: int = -1,
        pod_network: network.PodNetwork | None = None,
        no_pod_network: str = "",
        dns: DNSSettings | None = None,
        host_ip: str = "127.0.0.1",
        default_run_as_user: int | None = None,
        masked_paths: tuple[Path, ...] = (),
    ) -> None:
        self.client = client
        self.tokens = TokenManager(client)
        self.dns = dns or DNSSettings()
        self.network = pod_network
        self.no_pod_network = no_pod_network  # why there is no pod network, if none
        self.recorder = recorder
        self.root = data_dir.absolute() / "pods"
        self.cgroups = cgroup_host if cgroup_host is not None else cgroups.Host.detect()
        self.is_root = os.geteuid() == 0
        # the user of a container that names none (None: a user of its namespace's own); an
        # agent that is not root cannot switch users, so its containers run as itself
        self.default_run_as_user = default_run_as_user if self.is_root else os.geteuid()
        # hidden from every container (its own data dir always): see prepare_container
        paths = [data_dir.absolute(), *(p.absolute() for p in masked_paths)]
        self.masked_paths = tuple(dict.fromkeys(os.path.normpath(p) for p in paths))
        self.node_capabilities = securitycontext.node_capabilities()
        self.resync_seconds = resync_seconds
        self.pod_max_pids = pod_max_pids  # the kubelet's podPidsLimit; -1: unlimited
        self._ready: set[str] = set()  # pods whose volumes and pod cgroup are set up
        self._refresh_due: dict[str, float] = {}  # pod uid -> next ConfigMap/Secret re-sync
        self._noted: set[tuple[str, str]] = set()  # (uid, reason) warned about once
        # a pod's namespace directory is made, bound and removed by one task at a time;
        # pods never wait for one another (100 pods started at once made their mount
        # namespaces one after another behind a single lock: seconds, not milliseconds)
        self._ns_locks: dict[str, asyncio.Lock] = {}
        self._can_unshare: str | None = None  # "" if we can; else why not
        self._addresses: dict[str, network.PodAddress] = {}  # pod uid -> its network
        self.host_ports = HostPorts()
        self.ports = dynports.PortAssignments(self.root, host=host_ip)

    def pod_dir(self, uid: str) -> Path:
        return self.root / uid

    def on_disk(self) -> set[str]:
        """The pod uids that have a sandbox directory, a log directory or a network."""
        found = self.network.on_disk() if self.network is not None else set()
        with contextlib.suppress(FileNotFoundError):
            found |= {uid for p in self.root.iterdir() if (uid := _pod_uid(p.name))}
        return found

    def pod_ip(self, pod: Obj) -> str | None:
        """The pod's own IP, None if it runs in the node's network."""
        uid = pod["metadata"]["uid"]
        address = self._addresses.get(uid)
        if address is None and self.network is not None and not host_network(pod):
            address = self.network.attached(uid)  # set up by the agent before this one
        return address.ip if address is not None else None

    # ------------------------------------------------------------- RunPodSandbox

    async def ensure(self, pod: Obj) -> Setup:
        """Set the pod's sandbox up, or refresh its ConfigMap/Secret volumes when due; a
        volume that cannot be set up is a FailedMount Warning and ``ready=False``."""
        uid = pod["metadata"]["uid"]
        now = time.monotonic()
        wanted = volumes.volume_sources(pod)
        tokens = token_sources(pod)
        refreshed = bool(wanted or tokens)
        if uid in self._ready and (not refreshed or now < self._refresh_due.get(uid, 0.0)):
            return Setup(True)
        if not await self._ensure_network(pod):
            return Setup(False, RETRY_SECONDS)
        pod_dir = self.pod_dir(uid)
        await asyncio.to_thread(private_dir, pod_dir)
        sources = await self._fetch(pod["metadata"].get("namespace", ""), wanted)
        for source in tokens:
            try:
                token = await self.tokens.get(token_key(pod, source))
                sources[volumes.token_source_key(source)] = {"token": token}
            except ApiError as exc:
                message = (exc.status or {}).get("message") or str(exc)
                sources[volumes.token_source_key(source)] = {
                    "error": f"failed to fetch token: {message}"
                }
        try:
            for volume in volumes.pod_volumes(pod):
                self._mount_tmpfs(pod, volume, pod_dir)
                done = volumes.materialise(
                    pod, volume, pod_dir, sources=sources, allocatable=volumes.host_allocatable()
                )
                await self._set_ownership(pod, volume, done.path)
                for note in done.notes:
                    await self._note(pod, "Warning", "FailedMount", f"volume {done.name!r}: {note}")
        except volumes.VolumeError as exc:
            self._ready.discard(uid)
            await self.recorder.record(pod, "Warning", "FailedMount", str(exc))
            return Setup(False, RETRY_SECONDS)
        if uid not in self._ready:
            await self._setup_pod_cgroup(pod)
            await self._write_resolv_conf(pod)
            self._ready.add(uid)
        if not refreshed:
            return Setup(True)
        self._refresh_due[uid] = now + self.resync_seconds
        return Setup(True, self.resync_seconds)

    async def _set_ownership(self, pod: Obj, volume: Obj, path: Path) -> None:
        """A volume of a pod with an ``fsGroup``, group-owned by it (see
        :func:`setpoint.agent.volumes.set_volume_ownership`); only root can give files away."""
        gid = securitycontext.fs_group(pod)
        kind = volumes.volume_kind(volume)
        if gid is None or not self.is_root or kind not in volumes.OWNED_BY_FS_GROUP:
            return
        try:
            await asyncio.to_thread(
                volumes.set_volume_ownership, path, gid, read_only=kind != "emptyDir"
            )
        except OSError as exc:
            message = f"fsGroup {gid} not applied: {exc}"
            raise volumes.VolumeError(str(volume.get("name")), message) from None

    async def _ensure_network(self, pod: Obj) -> bool:
        """The pod's network namespace and IP, or the node's network (see the module doc).
        False: setup failed (a FailedCreatePodSandBox Warning), retry later."""
        uid = pod["metadata"]["uid"]
        if uid in self._addresses or host_network(pod):
            return True
        if self.network is None or self.network.subnet is None:
            return await self._assign_ports(pod)
        try:
            address = await self.network.setup(uid)
        except network.NetworkError as exc:
            message = f"Failed to create pod sandbox: pod network: {exc}"
            await self.recorder.record(pod, "Warning", "FailedCreatePodSandBox", message)
            return False
        self._addresses[uid] = address
        problems = await self.host_ports.open(pod, address.ip)
        if problems:
            message = "hostPort not mapped: " + "; ".join(problems)
            await self._note(pod, "Warning", "HostPortNotMapped", message)
        return True

    async def _assign_ports(self, pod: Obj) -> bool:
        """A pod in the node's network for want of a pod network: its TCP containerPorts get
        node ports of their own (:mod:`setpoint.agent.dynports`), said in a Normal event and
        written on the pod for its Services; the rest stay shared, said in a Warning."""
        uid = pod["metadata"]["uid"]
        why = self.no_pod_network or "the node has no spec.podCIDR"
        declared = dynports.declared_ports(pod)
        if not declared:
            return True
        await asyncio.to_thread(private_dir, self.pod_dir(uid))
        try:
            assigned = await asyncio.to_thread(self.ports.assign, uid, declared)
        except OSError as exc:
            message = f"Failed to create pod sandbox: assigning containerPorts: {exc}"
            await self.recorder.record(pod, "Warning", "FailedCreatePodSandBox", message)
            return False
        annotated = assignedports.assigned_ports(pod) == assigned
        if assigned and not annotated and not await self._annotate_ports(pod, assigned):
            return False
        mapped = [p for p in declared if p.key in assigned]
        if mapped:
            said = [
                f"containerPort {p.key} is node port {assigned[p.key]} "
                f"(env {', '.join(dynports.env_names(p, first=i == 0))})"
                for i, p in enumerate(mapped)
            ]
            message = (
                f"the pod runs in the node's network namespace ({why}): "
                + "; ".join(said)
                + "; the app must listen on the assigned port"
            )
            await self._note(pod, "Normal", "ContainerPortsAssigned", message)
        shared = [p.key for p in declared if p.key not in assigned]
        if shared:
            message = (
                f"the pod runs in the node's network namespace ({why}): its containerPorts "
                f"{', '.join(shared)} are bound on the node and shared with every pod there"
            )
            await self._note(pod, "Warning", "ContainerPortsNotIsolated", message)
        return True

    async def _annotate_ports(self, pod: Obj, assigned: dict[str, int]) -> bool:
        """Write the pod's assigned ports on it (a merge patch of one annotation)."""
        meta = pod["metadata"]
        patch = {
            "metadata": {"annotations": {assignedports.ANNOTATION: assignedports.encode(assigned)}}
        }
        try:
            await self.client.patch(PODS, meta["name"], patch, meta.get("namespace"))
        except ApiError as exc:
            if exc.is_not_found:
                return False
            log.warning("pod %s: cannot annotate its assigned ports: %s", meta["name"], exc)
            return False
        return True

    def assigned_ports(self, pod: Obj) -> dict[str, int]:
        """The node ports the pod's containerPorts were given (``{"8080/TCP": 34567}``)."""
        return self.ports.get(pod["metadata"]["uid"])

    def port_env(self, pod: Obj) -> dict[str, str]:
        """``PORT`` and ``PORT_<n>`` for the pod's containers, if it has assigned ports."""
        assigned = self.ports.get(pod["metadata"]["uid"])
        return dynports.port_env(dynports.declared_ports(pod), assigned) if assigned else {}

    def cluster_dns(self) -> list[str]:
        """The nameserver ``ClusterFirst`` pods get: ``--cluster-dns``, else the node's own
        DNS server on its bridge address (none without a pod network)."""
        if self.dns.cluster_dns:
            return list(self.dns.cluster_dns)
        if self.network is not None and self.network.subnet is not None:
            return [str(network.gateway(self.network.subnet))]
        return []

    def resolv_conf_path(self, uid: str) -> Path:
        return self.pod_dir(uid) / "etc" / "resolv.conf"

    def hosts_path(self, uid: str) -> Path:
        return self.pod_dir(uid) / "etc" / "hosts"

    async def _write_resolv_conf(self, pod: Obj) -> None:
        """The pod's own ``/etc/resolv.conf`` (see the module doc): every pod in a network
        namespace of its own gets one; a pod in the node's network only when its dnsPolicy
        and dnsConfig make it differ from the node's file, and a mount namespace can be made
        (so a ClusterFirst pod of an agent without a pod network, which has no cluster DNS
        to name, keeps the node's file with no MissingClusterDNS Warning)."""
        uid = pod["metadata"]["uid"]
        address = self._addresses.get(uid)
        if address is not None:  # and a kubelet-managed /etc/hosts naming the pod
            hosts = hostsfile.hosts_file(pod, address.ip, cluster_domain=self.dns.cluster_domain)
            await asyncio.to_thread(_write_file, self.hosts_path(uid), hosts)
        try:
            host_text = await asyncio.to_thread(self.dns.resolv_conf.read_text, errors="replace")
        except OSError as exc:
            log.warning("pod DNS: cannot read %s: %s", self.dns.resolv_conf, exc)
            host_text = ""
        host = resolvconf.parse_resolv_conf(host_text)
        formed = resolvconf.pod_dns(
            pod, host=host, cluster_dns=self.cluster_dns(), cluster_domain=self.dns.cluster_domain
        )
        in_node_network = uid not in self._addresses
        if in_node_network and (
            formed.config == host or await self._mount_namespaces_unavailable()
        ):
            return
        for reason, message in formed.warnings:
            await self._note(pod, "Warning", reason, message)
        path = self.resolv_conf_path(uid)
        await asyncio.to_thread(_write_file, path, resolvconf.render(formed.config))

    async def close(self) -> None:
        """Stop what lives in the agent (the hostPort listeners); pods keep running."""
        await self.host_ports.close_all()

    async def _fetch(
        self, namespace: str, wanted: set[tuple[str, str]]
    ) -> dict[tuple[str, str], Obj | None]:
        sources: dict[tuple[str, str], Obj | None] = {}
        resources = {"configMap": CONFIGMAPS, "persistentVolumeClaim": PERSISTENTVOLUMECLAIMS}
        for kind, name in sorted(wanted):
            try:
                sources[(kind, name)] = await self.client.get(
                    resources.get(kind, SECRETS), name, namespace
                )
            except ApiError as exc:
                if not exc.is_not_found:
                    raise
                sources[(kind, name)] = None
        return sources

    def _mount_tmpfs(self, pod: Obj, volume: Obj, pod_dir: Path) -> None:
        """Memory-backed volumes: emptyDir ``medium: Memory``, and secrets (and projected
        volumes, which may hold them) as the kubelet keeps them off the disk."""
        kind = volumes.volume_kind(volume)
        memory = kind == "emptyDir" and (volume["emptyDir"] or {}).get("medium") == "Memory"
        if not (memory or kind in ("secret", "projected")) or not self.is_root:
            return
        target = volumes.make_volume_dir(pod_dir, volume)
        if os.path.ismount(target):  # (materialise sets the mode of one mounted before)
            return
        try:
            mount("tmpfs", str(target), "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_options(volume))
        except OSError as exc:
            raise volumes.VolumeError(str(volume.get("name")), f"mount tmpfs: {exc}") from None

    async def _note(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        """An event said once per pod and reason (per agent run)."""
        key = (pod["metadata"]["uid"], reason + message)
        if key not in self._noted:
            self._noted.add(key)
            await self.recorder.record(pod, kind, reason, message)

    async def _setup_pod_cgroup(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        if not self.is_root:
            for volume in volumes.pod_volumes(pod):
                if (volume.get("emptyDir") or {}).get("medium") == "Memory":
                    message = (
                        f"emptyDir volume {volume.get('name')!r} with medium Memory is a "
                        f"directory on disk, not a tmpfs: {NOT_ROOT}"
                    )
                    await self._note(pod, "Warning", "VolumesNotMounted", message)
        # cgroup and directory work goes to a thread: under I/O load (the API server's
        # fsyncs share the disk) one mkdir can block for milliseconds, and the event loop
        # runs every other pod meanwhile
        limits = cgroups.pod_limits(pod, pids_max=self.pod_max_pids)
        problems = await asyncio.to_thread(self.cgroups.apply, cgroups.pod_parent(uid), limits)
        unenforced = []
        for c in containers:
            for limit in cgroups.wanted(c):
                why = self.cgroups.missing.get(limit.split()[0])
                if why:
                    unenforced.append(f"{limit} ({why})")
        if limits.pids_max and "pids" in self.cgroups.missing:
            why = self.cgroups.missing["pids"]
            unenforced.append(f"pod pid limit {limits.pids_max} of the node ({why})")
        if unenforced or problems:
            message = "resource limits not enforced: " + "; ".join(unenforced + problems)
            await self._note(pod, "Warning", "ResourceLimitsNotEnforced", message)
        if not self.cgroups.version:
            why = self.cgroups.missing.get("memory", "no cgroups")
            message = (
                f"containers are not placed in cgroups ({why}): each is stopped by its "
                "process group, so a process that starts a session of its own (setsid) "
                "can outlive its container"
            )
            await self._note(pod, "Warning", "ContainersNotContained", message)

    # ------------------------------------------------------------- containers

    def identity(self, pod: Obj, container: Obj) -> securitycontext.Identity:
        """Who the container's processes are (:mod:`setpoint.agent.securitycontext`);
        raises :class:`~setpoint.agent.securitycontext.SecurityContextError`, e.g. for
        ``runAsNonRoot`` and a root user."""
        if self.default_run_as_user is not None:
            uid, gid = self.default_run_as_user, None
        else:
            uid = gid = namespaceusers.namespace_user(str(pod["metadata"].get("namespace", "")))
        return securitycontext.resolve(pod, container, default_uid=uid, default_gid=gid)

    def run_as(self, identity: securitycontext.Identity) -> list[str]:
        """The ``setpriv ... --`` prefix that gives a process ``identity`` (an agent that is
        not root can give it no other user, only ``no_new_privs``)."""
        if self.is_root:
            return securitycontext.setpriv_argv(identity, available=self.node_capabilities)
        return ["setpriv", "--no-new-privs", "--"] if identity.no_new_privs else []

    async def _note_unenforced(
        self, pod: Obj, container: Obj, identity: securitycontext.Identity, why_no_mounts: str
    ) -> None:
        """A Warning naming what of the container's securityContext, and of the node's
        isolation of its data dirs, this agent cannot enforce."""
        name = container["name"]
        if not self.is_root:
            wanted = securitycontext.requested(pod, container)
            if wanted:
                message = (
                    f"container {name!r}: securityContext not enforced ({'; '.join(wanted)}): "
                    f"{NOT_ROOT}, so the container runs as uid {os.geteuid()} with the "
                    "agent's own privileges"
                )
                await self._note(pod, "Warning", "SecurityContextNotEnforced", message)
            return
        missing = sorted(identity.capabilities - self.node_capabilities)
        if missing and not identity.privileged:
            message = (
                f"container {name!r}: capabilities {', '.join(missing)} not given: the "
                "node's agent does not have them"
            )
            await self._note(pod, "Warning", "SecurityContextNotEnforced", message)
        if why_no_mounts:
            unenforced = ["the node's data dirs are not hidden from it"]
            if identity.read_only_root:
                unenforced.insert(0, "readOnlyRootFilesystem is not enforced")
            message = f"container {name!r}: {' and '.join(unenforced)}: {why_no_mounts}"
            await self._note(pod, "Warning", "SecurityContextNotEnforced", message)

    async def prepare_container(
        self, pod: Obj, container: Obj, spec: ContainerSpec
    ) -> ContainerSpec | None:
        """``spec`` placed in the sandbox: its cgroup (limits written), its mount namespace
        (its volumes, the pod's resolv.conf, the node's data dirs hidden, the root read-only
        if asked) and its identity. None: a FailedMount was reported, retry later. Raises
        :class:`~setpoint.agent.securitycontext.SecurityContextError`."""
        uid = pod["metadata"]["uid"]
        identity = self.identity(pod, container)
        changes: dict[str, object] = {}
        if self.cgroups.version:
            parent = cgroups.pod_parent(uid)
            problems = await asyncio.to_thread(
                self.cgroups.apply, parent, cgroups.container_limits(container), leaf=spec.id
            )
            if problems:
                message = "resource limits not enforced: " + "; ".join(problems)
                await self._note(pod, "Warning", "ResourceLimitsNotEnforced", message)
            changes["cgroup_parent"] = parent
        address = self._addresses.get(uid)
        if address is not None:
            changes["netns"] = address.netns
        # a command that is nowhere on the node is started as it is, so the supervisor
        # reports its StartError (inside the namespace only volumes add files)
        if not (
            command_exists(spec.argv[0], spec.env.get("PATH")) or container.get("volumeMounts")
        ):
            return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
        run_as = self.run_as(identity)
        why_not = await self._mount_namespaces_unavailable()
        await self._note_unenforced(pod, container, identity, why_not)
        if why_not:
            if container.get("volumeMounts"):
                message = (
                    f"volumes are materialised under {self.pod_dir(uid)}/volumes but not "
                    f"mounted at their mountPath: {why_not}"
                )
                await self._note(pod, "Warning", "VolumesNotMounted", message)
            changes["argv"] = [*run_as, *spec.argv]
            return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
        resolv = self.resolv_conf_path(uid)
        try:
            plan = container_mounts(pod, container, self.pod_dir(uid))
            if resolv.is_file():  # (under any volume mounted at /etc)
                etc = [BindMount(str(resolv), RESOLV_CONF, False, is_file=True)]
                hosts = self.hosts_path(uid)
                if hosts.is_file():
                    etc.append(BindMount(str(hosts), ETC_HOSTS, False, is_file=True))
                plan = sorted([*plan, *etc], key=lambda m: m.target.count("/"))
            script = mount_script(
                plan, masked=self.masked_paths, read_only_root=identity.read_only_root
            )
            ns_file = await self._namespace(uid, container["name"], script)
        except (MountError, OSError) as exc:
            text = f"MountVolume.SetUp failed for container {container['name']!r}: {exc}"
            await self.recorder.record(pod, "Warning", "FailedMount", text)
            return None
        changes["argv"], changes["cwd"] = wrap_argv(
            spec.argv, spec.cwd, [("mount", ns_file)], plan, run_as
        )
        return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]

    def enter(
        self, pod: Obj, container: Obj, argv: list[str], cwd: str | None
    ) -> tuple[list[str], str | None]:
        """``argv`` (and cwd) made to run inside the container's namespaces and as its user,
        as its exec probes, hooks and ``kubectl exec`` must (they read the container's
        volumes where the container does, with its rights)."""
        try:
            run_as = self.run_as(self.identity(pod, container))
        except securitycontext.SecurityContextError:
            run_as = []  # (such a container never started: nothing to join)
        namespaces = self.namespaces(pod, container)
        if not namespaces:
            return [*run_as, *argv], cwd
        plan: list[BindMount] = []
        if any(kind == "mount" for kind, _ in namespaces):
            with contextlib.suppress(MountError):  # cannot fail once its namespace exists
                plan = container_mounts(pod, container, self.pod_dir(pod["metadata"]["uid"]))
        return wrap_argv(argv, cwd, namespaces, plan, run_as)

    def namespaces(self, pod: Obj, container: Obj) -> list[Namespace]:
        """The namespaces of its own that a process joining the container enters (as
        ``nsenter`` would): the pod's network namespace, when it has one, and the
        container's mount namespace, when it has one."""
        uid = pod["metadata"]["uid"]
        netns = self.network_namespace(pod)
        found: list[Namespace] = [("net", netns)] if netns is not None else []
        ns_file = self.pod_dir(uid) / "ns" / container["name"]
        if os.path.ismount(ns_file):
            found.append(("mount", ns_file))
        return found

    def network_namespace(self, pod: Obj) -> Path | None:
        """The pod's network namespace (None: the pod uses the node's network)."""
        address = self._addresses.get(pod["metadata"]["uid"])
        return Path(address.netns) if address is not None else None

    def container_cgroups(self, pod: Obj, container: Obj) -> list[Path]:
        """The container's cgroup directories (one per hierarchy) that exist: where a
        process joining the container goes, so the container's limits apply to it."""
        if not self.cgroups.version:
            return []
        uid = pod["metadata"]["uid"]
        cid = container_id(uid, container["name"])
        return [d for d in cgroup_dirs(cgroups.pod_parent(uid), cid) if d.is_dir()]

    async def _mount_namespaces_unavailable(self) -> str:
        """Why this agent cannot make mount namespaces ("" if it can); probed once."""
        if self._can_unshare is None:
            if not self.is_root:
                self._can_unshare = NOT_ROOT
            elif not (shutil.which("unshare") and shutil.which("nsenter")):
                self._can_unshare = "unshare and nsenter (util-linux) are not installed"
            else:
                proc = await asyncio.create_subprocess_exec(
                    "unshare",
                    "--mount",
                    "true",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                _, err = await proc.communicate()
                self._can_unshare = "" if proc.returncode == 0 else err.decode().strip()
        return self._can_unshare

    async def _namespace(self, uid: str, name: str, script: str) -> Path:
        """The container's mount namespace file, set up by ``script`` if it does
        not exist yet (an existing one, e.g. after an agent restart, is kept as it is)."""
        ns_dir = self.pod_dir(uid) / "ns"
        ns_file = ns_dir / name
        async with self._ns_locks.setdefault(uid, asyncio.Lock()):
            if os.path.ismount(ns_file):
                return ns_file
            private_dir(ns_dir)
            # (not os.path.ismount: a bind mount of the same filesystem looks like none to
            # it, and binding the directory again would hide the namespace files made before)
            if str(ns_dir) not in mounts_under(ns_dir):
                mount(str(ns_dir), str(ns_dir), None, MS_BIND)
                mount("none", str(ns_dir), None, MS_PRIVATE)
            os.close(os.open(ns_file, os.O_WRONLY | os.O_CREAT, 0o600))
            # in a thread, where subprocess spawns with vfork: an asyncio subprocess forks
            # the whole agent under uvloop, on the event loop (ms of its time per container)
            argv = ["unshare", f"--mount={ns_file}", "--propagation", "private", "--"]
            done = await asyncio.to_thread(
                subprocess.run,
                [*argv, "sh", "-ec", script],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
            if done.returncode != 0:
                if os.path.ismount(ns_file):
                    umount(str(ns_file))
                detail = done.stderr.decode().strip()
                raise MountError(detail or f"unshare exited {done.returncode}")
        return ns_file

    # ------------------------------------------------------------- StopPodSandbox

    async def teardown(self, uid: str) -> None:
        """Unmount and remove the pod's directory and cgroups (its containers are gone)."""
        self._ready.discard(uid)
        self._refresh_due.pop(uid, None)
        self.tokens.forget(uid)
        self._noted = {k for k in self._noted if k[0] != uid}
        async with self._ns_locks.setdefault(uid, asyncio.Lock()):
            remove_sandbox(self.pod_dir(uid), self.cgroups)
        self._ns_locks.pop(uid, None)
        await asyncio.to_thread(remove_log_dirs, self.root, uid)
        self._addresses.pop(uid, None)
        await self.host_ports.close(uid)
        self.ports.release(uid)
        if self.network is not None:
            await self.network.teardown(uid)


def command_exists(name: str, path: str | None) -> bool:
    """Whether ``name`` is on the node (a relative path, to the working directory, is
    taken as there)."""
    if name.startswith("/"):
        return os.path.exists(name)
    if "/" in name:
        return True
    return shutil.which(name, path=path or os.defpath) is not None


def _write_file(path: Path, text: str) -> None:
    private_dir(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.chmod(0o644)  # the container's processes read it, whoever they run as
    os.replace(temporary, path)


def host_network(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("hostNetwork"))


def _pod_uid(name: str) -> str | None:
    """The pod uid a directory under ``<data_dir>/pods`` belongs to: a sandbox is named by
    the uid, a log directory ``<namespace>_<name>_<uid>`` (``setpoint.agent.pods``)."""
    uid = name.rpartition("_")[2]
    return uid if _UID.match(uid) else None


def remove_log_dirs(root: Path, uid: str) -> None:
    """Remove the pod's log directory, as the kubelet's container GC removes the
    ``/var/log/pods`` directory of a pod that is gone (``evictPodLogsDirectories``)."""
    for log_dir in root.glob(f"*_{uid}"):
        shutil.rmtree(log_dir, ignore_errors=True)


def remove_sandbox(pod_dir: Path, host: cgroups.Host) -> None:
    """Unmount everything under ``pod_dir``, remove it and the pod's cgroups."""
    for point in mounts_under(pod_dir):
        try:
            umount(point)
        except OSError as exc:
            log.warning("pod %s: cannot unmount %s: %s", pod_dir.name, point, exc)
    if not mounts_under(pod_dir):  # never delete through a mount that stayed
        shutil.rmtree(pod_dir, ignore_errors=True)
    host.remove(cgroups.pod_parent(pod_dir.name))


def remove_all_sandboxes(data_dir: Path) -> None:
    """Remove every sandbox under ``data_dir`` (their containers must be gone already): for
    a node that is being wiped, e.g. at the end of a test."""
    root = data_dir.absolute() / "pods"
    host = cgroups.Host.detect()
    with contextlib.suppress(FileNotFoundError):
        for pod_dir in root.iterdir():
            if _UID.match(pod_dir.name):
                remove_sandbox(pod_dir, host)
            elif uid := _pod_uid(pod_dir.name):
                remove_log_dirs(root, uid)
