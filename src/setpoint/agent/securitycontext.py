"""A container's ``securityContext`` as the agent enforces it on a host process.

The kubelet merges the pod's ``spec.securityContext`` with the container's own, the
container winning field by field (``DetermineEffectiveSecurityContext`` in
``pkg/securitycontext/util.go``): ``runAsUser``, ``runAsGroup``, ``runAsNonRoot``,
``seLinuxOptions``, ``seccompProfile`` and ``appArmorProfile`` exist at both levels;
``capabilities``, ``privileged``, ``readOnlyRootFilesystem`` and ``allowPrivilegeEscalation``
only on the container; ``supplementalGroups`` and ``fsGroup`` only on the pod, and the
fsGroup joins the supplementary groups (``determineEffectiveSecurityContext`` in
``pkg/kubelet/kuberuntime``). :func:`effective` is that merge and :func:`resolve` turns it
into the :class:`Identity` the process gets, as the container runtime would:

- user: ``runAsUser``, else the node's default user: by default a uid of the pod's
  namespace's own (:mod:`setpoint.agent.namespaceusers`), or the agent's
  ``--default-run-as-user``: setpoint has no image whose ``USER`` could say, and a host
  process that nobody asked to be root should not be; group: ``runAsGroup``, else the
  default user's group (a namespace's user's group has its number), else the user's
  primary group in the node's ``/etc/passwd``, else 0, as containerd takes it from the
  image's ``/etc/passwd``;
- ``runAsNonRoot`` refuses a container whose user would be root, with the kubelet's
  messages (a ``CreateContainerConfigError``, :func:`verify_run_as_non_root`);
- capabilities: containerd's default set for a container (``CHOWN``, ``DAC_OVERRIDE``, ...,
  not ``SYS_ADMIN``), ``add`` and ``drop`` applied as containerd applies them (``ALL`` first,
  then the names; a drop beats an add); ``privileged``: every capability the node has. The
  set is the process's bounding set, and root's permitted and effective sets. A non-root
  user gets, in addition to what Kubernetes gives it, the capabilities it ``add``\\ s as
  *ambient* ones, so ``add: [NET_BIND_SERVICE]`` lets it bind port 80 (Kubernetes passes no
  ambient capabilities, so there only a file capability would);
- ``allowPrivilegeEscalation: false``: ``no_new_privs``.

The process is given that identity by ``setpriv`` (util-linux) between the namespaces the
agent enters and the workload (:func:`setpriv_argv`): it drops the bounding set while
still root, switches groups and user keeping the wanted capabilities, raises the ambient
ones, sets ``no_new_privs`` and execs ``env``, which execs the workload, so the pid the
supervisor watches stays the workload's. (``env`` in between, because setpriv's own exec is
made with root's effective capabilities: the workload must be looked up with its own.)
"""

from __future__ import annotations

import pwd
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

NOBODY = 65534  # the default user: see the module docstring

# Linux capability numbers are their index here (<linux/capability.h>)
CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
# containerd's (and Docker's) default capabilities of a container (pkg/oci/spec.go)
DEFAULT_CAPABILITIES = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    }
)

_BOTH_LEVELS = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seLinuxOptions",
    "seccompProfile",
    "appArmorProfile",
    "windowsOptions",
)
_CONTAINER_ONLY = (
    "capabilities",
    "privileged",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "procMount",
)


class SecurityContextError(ValueError):
    """The container must not be created as its securityContext says (the kubelet's
    ``CreateContainerConfigError``)."""


def effective(pod: Obj, container: Obj) -> Obj:
    """The container's effective security context: the pod's merged with its own."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    own = container.get("securityContext") or {}
    merged: Obj = {}
    for field in _BOTH_LEVELS:
        value = own.get(field, pod_sc.get(field))
        if value is not None:
            merged[field] = value
    for field in _CONTAINER_ONLY:
        if own.get(field) is not None:
            merged[field] = own[field]
    return merged


def pod_groups(pod: Obj) -> tuple[int, ...]:
    """The supplementary groups every container of the pod gets: ``fsGroup``, then
    ``supplementalGroups``, as the kubelet lists them."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    found: list[int] = []
    for gid in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])]:
        if isinstance(gid, int) and not isinstance(gid, bool) and gid not in found:
            found.append(gid)
    return tuple(found)


def fs_group(pod: Obj) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _pod_desc(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f'"{meta.get("name")}_{meta.get("namespace")}({meta.get("uid", "")})"'


def verify_run_as_non_root(pod: Obj, container: Obj, *, default_uid: int) -> None:
    """The kubelet's ``verifyRunAsNonRoot``: raise :class:`SecurityContextError` if the
    container has ``runAsNonRoot`` and would run as root (the node's default user being
    what the image's user is to the kubelet)."""
    sc = effective(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    where = f"(pod: {_pod_desc(pod)}, container: {container.get('name')})"
    if sc.get("runAsUser") is not None:
        if sc["runAsUser"] == 0:
            raise SecurityContextError(f"container's runAsUser breaks non-root policy {where}")
        return
    if default_uid == 0:
        raise SecurityContextError(f"container has runAsNonRoot and image will run as root {where}")


def primary_group(uid: int) -> int:
    """The user's group in the node's ``/etc/passwd``; 0 for a user it does not know, as
    containerd does for a numeric user missing from the image's."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return 0


def capability_name(name: str) -> str:
    """``NET_BIND_SERVICE`` for ``NET_BIND_SERVICE``, ``CAP_NET_BIND_SERVICE`` or lower
    case (containerd accepts both spellings)."""
    upper = str(name).upper()
    return upper[4:] if upper.startswith("CAP_") else upper


def capabilities(sc: Obj) -> tuple[frozenset[str], frozenset[str]]:
    """The container's capability set and the names it adds (``ALL`` expanded), as
    containerd computes them; raises :class:`SecurityContextError` for an unknown one."""
    caps = sc.get("capabilities") or {}
    add = [capability_name(c) for c in caps.get("add") or []]
    drop = [capability_name(c) for c in caps.get("drop") or []]
    unknown = sorted({c for c in [*add, *drop] if c != "ALL" and c not in CAPABILITIES})
    if unknown:
        raise SecurityContextError(f"unknown capability {', '.join(unknown)}")
    result = set(CAPABILITIES) if sc.get("privileged") else set(DEFAULT_CAPABILITIES)
    if "ALL" in add:
        result = set(CAPABILITIES)
    if "ALL" in drop:
        result = set()
    result |= {c for c in add if c != "ALL"}
    result -= set(drop)
    added = set(CAPABILITIES) if "ALL" in add else {c for c in add if c != "ALL"}
    return frozenset(result), frozenset(added & result)


@dataclass(frozen=True)
class Identity:
    """Who a container's processes are and what they may do."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    capabilities: frozenset[str]  # bounding set (and root's permitted/effective)
    ambient: frozenset[str]  # for a non-root user: the capabilities it added
    no_new_privs: bool = False
    read_only_root: bool = False
    privileged: bool = False


def resolve(
    pod: Obj, container: Obj, *, default_uid: int, default_gid: int | None = None
) -> Identity:
    """The identity the container gets (``default_gid``: the group of the default user,
    if not its primary group in ``/etc/passwd``); raises :class:`SecurityContextError`."""
    verify_run_as_non_root(pod, container, default_uid=default_uid)
    sc = effective(pod, container)
    uid = sc.get("runAsUser")
    by_default = uid is None
    uid = default_uid if uid is None else int(uid)
    gid = sc.get("runAsGroup")
    if gid is None:
        gid = default_gid if by_default and default_gid is not None else primary_group(uid)
    gid = int(gid)
    caps, added = capabilities(sc)
    return Identity(
        uid=uid,
        gid=gid,
        groups=pod_groups(pod),
        capabilities=caps,
        ambient=added if uid != 0 else frozenset(),
        no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        read_only_root=bool(sc.get("readOnlyRootFilesystem")),
        privileged=bool(sc.get("privileged")),
    )


def requested(pod: Obj, container: Obj) -> list[str]:
    """What the container's effective security context asks for, in words (for a Warning
    where the agent cannot enforce it)."""
    sc = effective(pod, container)
    said = [
        f"{field} {sc[field]}" for field in ("runAsUser", "runAsGroup") if sc.get(field) is not None
    ]
    groups = pod_groups(pod)
    if groups:
        said.append(f"supplementary groups {', '.join(map(str, groups))}")
    caps = sc.get("capabilities") or {}
    if caps.get("add") or caps.get("drop"):
        said.append("capabilities")
    for field in ("privileged", "readOnlyRootFilesystem"):
        if sc.get(field):
            said.append(f"{field}: true")
    return said


def node_capabilities(status: Path = Path("/proc/self/status")) -> frozenset[str]:
    """The capabilities in this process's bounding set: all a container can be given."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return frozenset(c for i, c in enumerate(CAPABILITIES) if mask >> i & 1)
    except (OSError, ValueError):
        pass
    return frozenset(CAPABILITIES)


def _caps(names: Iterable[str]) -> str:
    return ",".join(["-all", *(f"+{n.lower()}" for n in sorted(names))])


def setpriv_argv(identity: Identity, *, available: frozenset[str]) -> list[str]:
    """``setpriv ... --``, which gives the process ``identity`` and execs what follows;
    capabilities the node does not have (``available``) cannot be given and are left out."""
    caps = identity.capabilities & available
    ambient = identity.ambient & caps
    argv = [
        "setpriv",
        f"--reuid={identity.uid}",
        f"--regid={identity.gid}",
        f"--groups={','.join(map(str, identity.groups))}" if identity.groups else "--clear-groups",
        f"--inh-caps={_caps(ambient)}",
        f"--ambient-caps={_caps(ambient)}",
    ]
    if caps != available:
        argv.append(f"--bounding-set={_caps(caps)}")
    if identity.no_new_privs:
        argv.append("--no-new-privs")
    # setpriv execs with the effective capabilities it had as root, so the kernel would look
    # the workload up past permissions its user does not have; ``env`` (a harmless path)
    # runs with the container's own capabilities already and looks it up as its user
    return [*argv, "--", "env", "--"]
