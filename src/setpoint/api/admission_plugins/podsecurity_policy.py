"""The Pod Security Standards as checks: what the ``baseline`` and ``restricted`` levels forbid
in a pod (``staging/src/k8s.io/pod-security-admission/policy``), pure functions of a pod's
metadata and spec.

Each check has an ID, a level and a function that returns a :class:`CheckResult`: allowed, or
a reason and a detail worded as upstream's (``allowPrivilegeEscalation != false`` /
``container "c" must set securityContext.allowPrivilegeEscalation=false``), since users and
tools match on them. Evaluating a level runs the baseline checks, then either the three
baseline checks a restricted one replaces (capabilities, hostPath volumes, seccomp) or the
restricted checks, each group sorted by check ID as upstream's registry sorts them, so
messages list violations in the same order as kube-apiserver's.

The checks are those of the newest policy version (v1.35): setpoint evaluates every version
label (``v1.25``, ``latest``) with them; the version only shows in the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

PRIVILEGED = "privileged"
BASELINE = "baseline"
RESTRICTED = "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LATEST = "latest"
_VERSION = re.compile(r"v1\.(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    reason: str = ""
    detail: str = ""


ALLOWED = CheckResult(True)
CheckFn = Callable[[Obj, Obj], CheckResult]


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: str = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


def parse_level(text: str) -> str:
    """``api.ParseLevel``; raises ValueError with upstream's message."""
    if text in LEVELS:
        return text
    raise ValueError("must be one of privileged, baseline, restricted")


def parse_version(text: str) -> str:
    """``api.ParseVersion``: ``latest`` or ``v1.<minor>``."""
    if text == LATEST or _VERSION.fullmatch(text):
        return text
    raise ValueError('must be "latest" or "v1.x"')


# ------------------------------------------------------------------------------ helpers


def _pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items: list[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _containers(spec: Obj) -> Iterator[Obj]:
    """``visitContainers``: init containers, containers, ephemeral containers."""
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            if isinstance(container, dict):
                yield container


def _context(container: Obj) -> Obj:
    return container.get("securityContext") or {}


def _setters(pod_bad: bool, containers: list[str]) -> str:
    """``pod``, ``container "a"``, ``pod and containers "a", "b"``."""
    setters = ["pod"] if pod_bad else []
    if containers:
        noun = _pluralize("container", "containers", len(containers))
        setters.append(f"{noun} {_join_quote(containers)}")
    return " and ".join(setters)


def _user_namespaced(spec: Obj) -> bool:
    """``relaxPolicyForUserNamespacePod``: a pod in its own user namespace."""
    return spec.get("hostUsers") is False


# ----------------------------------------------------------------------- baseline checks


def app_armor_profile(meta: Obj, spec: Obj) -> CheckResult:
    """AppArmor may not be turned off: profile types other than ``RuntimeDefault`` and
    ``Localhost`` in the pod's or a container's ``securityContext.appArmorProfile``, and the
    deprecated per-container annotations other than ``runtime/default`` and ``localhost/*``."""
    bad_values: set[str] = set()

    def bad(context: Obj) -> bool:
        profile = context.get("appArmorProfile")
        if isinstance(profile, dict) and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            bad_values.add(str(profile.get("type", "")))
            return True
        return False

    pod_bad = bad(spec.get("securityContext") or {})
    containers = [str(c.get("name")) for c in _containers(spec) if bad(_context(c))]
    setters = [_setters(pod_bad, containers)] if pod_bad or containers else []
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    annotations = sorted(
        f'{key}="{value}"'
        for key, value in (meta.get("annotations") or {}).items()
        if key.startswith(prefix) and not _allowed_app_armor(str(value))
    )
    values = sorted(bad_values) + annotations
    if annotations:
        setters.append(_pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return ALLOWED
    reason = _pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values))
    detail = f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}"
    return CheckResult(False, reason, detail)


def _allowed_app_armor(profile: str) -> bool:
    return not profile or profile == "runtime/default" or profile.startswith("localhost/")


def host_namespaces(meta: Obj, spec: Obj) -> CheckResult:
    found = sorted(name for name in ("hostIPC", "hostNetwork", "hostPID") if spec.get(name))
    if not found:
        return ALLOWED
    return CheckResult(False, "host namespaces", ", ".join(f"{name}=true" for name in found))


def host_path_volumes(meta: Obj, spec: Obj) -> CheckResult:
    names = [str(v.get("name")) for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    if not names:
        return ALLOWED
    noun = _pluralize("volume", "volumes", len(names))
    return CheckResult(False, "hostPath volumes", f"{noun} {_join_quote(names)}")


def host_ports(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    ports: set[str] = set()
    for container in _containers(spec):
        used = [str(p.get("hostPort")) for p in container.get("ports") or [] if p.get("hostPort")]
        if used:
            bad.append(str(container.get("name")))
            ports.update(used)
    if not bad:
        return ALLOWED
    detail = " ".join(
        (
            _pluralize("container", "containers", len(bad)),
            _join_quote(bad),
            _pluralize("uses", "use", len(bad)),
            _pluralize("hostPort", "hostPorts", len(ports)),
            ", ".join(sorted(ports)),
        )
    )
    return CheckResult(False, "hostPort", detail)


def host_probes_and_lifecycle(meta: Obj, spec: Obj) -> CheckResult:
    bad: set[str] = set()
    hosts: set[str] = set()
    for container in _containers(spec):
        handlers = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += list((container.get("lifecycle") or {}).values())
        for handler in handlers:
            if not isinstance(handler, dict):
                continue
            for action in ("httpGet", "tcpSocket"):
                host = (handler.get(action) or {}).get("host")
                if host:
                    bad.add(str(container.get("name")))
                    hosts.add(str(host))
    if not bad:
        return ALLOWED
    detail = " ".join(
        (
            _pluralize("container", "containers", len(bad)),
            _join_quote(sorted(bad)),
            _pluralize("uses", "use", len(bad)),
            _pluralize("probe or lifecycle host", "probe or lifecycle hosts", len(hosts)),
            _join_quote(sorted(hosts)),
        )
    )
    return CheckResult(False, "probe or lifecycle host", detail)


def privileged(meta: Obj, spec: Obj) -> CheckResult:
    bad = [str(c.get("name")) for c in _containers(spec) if _context(c).get("privileged")]
    if not bad:
        return ALLOWED
    noun = _pluralize("container", "containers", len(bad))
    return CheckResult(
        False,
        "privileged",
        f"{noun} {_join_quote(bad)} must not set securityContext.privileged=true",
    )


def proc_mount(meta: Obj, spec: Obj) -> CheckResult:
    if _user_namespaced(spec):
        return ALLOWED
    bad: list[str] = []
    types: set[str] = set()
    for container in _containers(spec):
        value = _context(container).get("procMount")
        if value is not None and value != "Default":
            bad.append(str(container.get("name")))
            types.add(str(value))
    if not bad:
        return ALLOWED
    noun = _pluralize("container", "containers", len(bad))
    detail = (
        f"{noun} {_join_quote(bad)} must not set securityContext.procMount to "
        f"{_join_quote(sorted(types))}"
    )
    return CheckResult(False, "procMount", detail)


_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")


def se_linux_options(meta: Obj, spec: Obj) -> CheckResult:
    bad_types: set[str] = set()
    set_user = set_role = False

    def valid(options: Any) -> bool:
        nonlocal set_user, set_role
        if not isinstance(options, dict):
            return True
        ok = True
        if options.get("type", "") not in _SELINUX_TYPES:
            ok = False
            bad_types.add(str(options.get("type")))
        if options.get("user"):
            ok, set_user = False, True
        if options.get("role"):
            ok, set_role = False, True
        return ok

    pod_bad = not valid((spec.get("securityContext") or {}).get("seLinuxOptions"))
    bad = [
        str(c.get("name"))
        for c in _containers(spec)
        if not valid(_context(c).get("seLinuxOptions"))
    ]
    if not pod_bad and not bad:
        return ALLOWED
    data = []
    if bad_types:
        noun = _pluralize("type", "types", len(bad_types))
        data.append(f"{noun} {_join_quote(sorted(bad_types))}")
    if set_user:
        data.append("user may not be set")
    if set_role:
        data.append("role may not be set")
    detail = (
        f"{_setters(pod_bad, bad)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}"
    )
    return CheckResult(False, "seLinuxOptions", detail)


def seccomp_profile_baseline(meta: Obj, spec: Obj) -> CheckResult:
    def unconfined(context: Obj) -> bool:
        return (context.get("seccompProfile") or {}).get("type") == "Unconfined"

    pod_bad = unconfined(spec.get("securityContext") or {})
    bad = [str(c.get("name")) for c in _containers(spec) if unconfined(_context(c))]
    if not pod_bad and not bad:
        return ALLOWED
    detail = (
        f'{_setters(pod_bad, bad)} must not set securityContext.seccompProfile.type to "Unconfined"'
    )
    return CheckResult(False, "seccompProfile", detail)


_SAFE_SYSCTLS = frozenset(
    (
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    )
)


def sysctls(meta: Obj, spec: Obj) -> CheckResult:
    bad = [
        str(s.get("name"))
        for s in (spec.get("securityContext") or {}).get("sysctls") or []
        if s.get("name") not in _SAFE_SYSCTLS
    ]
    if not bad:
        return ALLOWED
    return CheckResult(False, "forbidden sysctls", ", ".join(bad))


def windows_host_process(meta: Obj, spec: Obj) -> CheckResult:
    def host_process(context: Obj) -> bool:
        return bool((context.get("windowsOptions") or {}).get("hostProcess"))

    pod_bad = host_process(spec.get("securityContext") or {})
    bad = [str(c.get("name")) for c in _containers(spec) if host_process(_context(c))]
    if not pod_bad and not bad:
        return ALLOWED
    detail = (
        f"{_setters(pod_bad, bad)} must not set securityContext.windowsOptions.hostProcess=true"
    )
    return CheckResult(False, "hostProcess", detail)


_DEFAULT_CAPABILITIES = frozenset(
    (
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    )
)


def capabilities_baseline(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    caps: set[str] = set()
    for container in _containers(spec):
        added = [str(c) for c in (_context(container).get("capabilities") or {}).get("add") or []]
        extra = [c for c in added if c not in _DEFAULT_CAPABILITIES]
        if extra:
            bad.append(str(container.get("name")))
            caps.update(extra)
    if not bad:
        return ALLOWED
    noun = _pluralize("container", "containers", len(bad))
    detail = (
        f"{noun} {_join_quote(bad)} must not include {_join_quote(sorted(caps))} in "
        "securityContext.capabilities.add"
    )
    return CheckResult(False, "non-default capabilities", detail)


# --------------------------------------------------------------------- restricted checks


def allow_privilege_escalation(meta: Obj, spec: Obj) -> CheckResult:
    bad = [
        str(c.get("name"))
        for c in _containers(spec)
        if _context(c).get("allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return ALLOWED
    noun = _pluralize("container", "containers", len(bad))
    detail = f"{noun} {_join_quote(bad)} must set securityContext.allowPrivilegeEscalation=false"
    return CheckResult(False, "allowPrivilegeEscalation != false", detail)


def capabilities_restricted(meta: Obj, spec: Obj) -> CheckResult:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for container in _containers(spec):
        capabilities = _context(container).get("capabilities")
        name = str(container.get("name"))
        if not isinstance(capabilities, dict):
            missing_drop.append(name)
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(name)
        extra = [str(c) for c in capabilities.get("add") or [] if c != "NET_BIND_SERVICE"]
        if extra:
            adding.append(name)
            caps.update(extra)
    details = []
    if missing_drop:
        noun = _pluralize("container", "containers", len(missing_drop))
        details.append(
            f'{noun} {_join_quote(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        noun = _pluralize("container", "containers", len(adding))
        details.append(
            f"{noun} {_join_quote(adding)} must not include {_join_quote(sorted(caps))} in "
            "securityContext.capabilities.add"
        )
    if not details:
        return ALLOWED
    return CheckResult(False, "unrestricted capabilities", "; ".join(details))


_ALLOWED_VOLUMES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
)
_RESTRICTED_VOLUMES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)


def restricted_volumes(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    types: set[str] = set()
    for volume in spec.get("volumes") or []:
        if any(volume.get(source) is not None for source in _ALLOWED_VOLUMES):
            continue
        bad.append(str(volume.get("name")))
        types.add(next((t for t in _RESTRICTED_VOLUMES if volume.get(t) is not None), "unknown"))
    if not bad:
        return ALLOWED
    detail = " ".join(
        (
            _pluralize("volume", "volumes", len(bad)),
            _join_quote(bad),
            _pluralize("uses", "use", len(bad)),
            _pluralize("restricted volume type", "restricted volume types", len(types)),
            _join_quote(sorted(types)),
        )
    )
    return CheckResult(False, "restricted volume types", detail)


def run_as_non_root(meta: Obj, spec: Obj) -> CheckResult:
    if _user_namespaced(spec):
        return ALLOWED
    pod_value = (spec.get("securityContext") or {}).get("runAsNonRoot")
    pod_bad, pod_ok = pod_value is False, pod_value is True
    explicit: list[str] = []
    implicit: list[str] = []
    for container in _containers(spec):
        value = _context(container).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(str(container.get("name")))
        elif not pod_ok:
            implicit.append(str(container.get("name")))
    if pod_bad or explicit:
        detail = f"{_setters(pod_bad, explicit)} must not set securityContext.runAsNonRoot=false"
        return CheckResult(False, "runAsNonRoot != true", detail)
    if implicit:
        noun = _pluralize("container", "containers", len(implicit))
        detail = f"pod or {noun} {_join_quote(implicit)} must set securityContext.runAsNonRoot=true"
        return CheckResult(False, "runAsNonRoot != true", detail)
    return ALLOWED


def run_as_user(meta: Obj, spec: Obj) -> CheckResult:
    if _user_namespaced(spec):
        return ALLOWED
    pod_bad = (spec.get("securityContext") or {}).get("runAsUser") == 0
    bad = [str(c.get("name")) for c in _containers(spec) if _context(c).get("runAsUser") == 0]
    if not pod_bad and not bad:
        return ALLOWED
    return CheckResult(False, "runAsUser=0", f"{_setters(pod_bad, bad)} must not set runAsUser=0")


def _valid_seccomp(kind: Any) -> bool:
    return kind in ("RuntimeDefault", "Localhost")


def seccomp_profile_restricted(meta: Obj, spec: Obj) -> CheckResult:
    bad_values: set[str] = set()
    pod_bad = pod_set = False
    pod_profile = (spec.get("securityContext") or {}).get("seccompProfile")
    if isinstance(pod_profile, dict):
        if _valid_seccomp(pod_profile.get("type")):
            pod_set = True
        else:
            pod_bad = True
            bad_values.add(str(pod_profile.get("type", "")))
    explicit: list[str] = []
    implicit: list[str] = []
    for container in _containers(spec):
        profile = _context(container).get("seccompProfile")
        if isinstance(profile, dict):
            if not _valid_seccomp(profile.get("type")):
                explicit.append(str(container.get("name")))
                bad_values.add(str(profile.get("type", "")))
        elif not pod_set:
            implicit.append(str(container.get("name")))
    if pod_bad or explicit:
        detail = (
            f"{_setters(pod_bad, explicit)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(bad_values))}"
        )
        return CheckResult(False, "seccompProfile", detail)
    if implicit:
        noun = _pluralize("container", "containers", len(implicit))
        detail = (
            f"pod or {noun} {_join_quote(implicit)} must set securityContext.seccompProfile.type "
            'to "RuntimeDefault" or "Localhost"'
        )
        return CheckResult(False, "seccompProfile", detail)
    return ALLOWED


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    fn: CheckFn
    overlap: bool = False  # a baseline check a restricted one replaces


# sorted by ID (Go's byte order: ``seLinuxOptions`` before ``seccompProfile_*``)
CHECKS: tuple[Check, ...] = (
    Check("allowPrivilegeEscalation", RESTRICTED, allow_privilege_escalation),
    Check("appArmorProfile", BASELINE, app_armor_profile),
    Check("capabilities_baseline", BASELINE, capabilities_baseline, overlap=True),
    Check("capabilities_restricted", RESTRICTED, capabilities_restricted),
    Check("hostNamespaces", BASELINE, host_namespaces),
    Check("hostPathVolumes", BASELINE, host_path_volumes, overlap=True),
    Check("hostPorts", BASELINE, host_ports),
    Check("hostProbesAndHostLifecycle", BASELINE, host_probes_and_lifecycle),
    Check("privileged", BASELINE, privileged),
    Check("procMount", BASELINE, proc_mount),
    Check("restrictedVolumes", RESTRICTED, restricted_volumes),
    Check("runAsNonRoot", RESTRICTED, run_as_non_root),
    Check("runAsUser", RESTRICTED, run_as_user),
    Check("seLinuxOptions", BASELINE, se_linux_options),
    Check("seccompProfile_baseline", BASELINE, seccomp_profile_baseline, overlap=True),
    Check("seccompProfile_restricted", RESTRICTED, seccomp_profile_restricted),
    Check("sysctls", BASELINE, sysctls),
    Check("windowsHostProcess", BASELINE, windows_host_process),
)
CHECKS_BY_ID = {check.id: check for check in CHECKS}


def evaluate(level: str, meta: Obj, spec: Obj) -> list[tuple[str, CheckResult]]:
    """``checkRegistry.EvaluatePod``: the failed checks of ``level`` as (id, result): the
    baseline checks by ID, then (restricted) the restricted ones by ID, which replace the
    baseline checks they override."""
    if level == PRIVILEGED:
        return []
    baseline = sorted((c for c in CHECKS if c.level == BASELINE), key=lambda c: c.id)
    if level == BASELINE:
        checks = baseline
    else:
        restricted = sorted((c for c in CHECKS if c.level == RESTRICTED), key=lambda c: c.id)
        checks = [c for c in baseline if not c.overlap] + restricted
    failed = []
    for check in checks:
        result = check.fn(meta, spec)
        if not result.allowed:
            failed.append((check.id, result))
    return failed


def forbidden_reason(failed: list[tuple[str, CheckResult]]) -> str:
    """``AggregateCheckResult.ForbiddenReason``: ``reason (detail), ...``."""
    return ", ".join(
        f"{result.reason} ({result.detail})" if result.detail else result.reason
        for _, result in failed
    )
