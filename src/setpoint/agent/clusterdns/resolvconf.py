"""A pod's ``/etc/resolv.conf``, built as the kubelet builds it (``pkg/kubelet/network/dns``).

The base is the node's own resolver configuration (the host's ``/etc/resolv.conf``, the
kubelet's ``--resolv-conf``), then by the pod's ``dnsPolicy``:

- ``ClusterFirst`` (the default): the cluster DNS server is the only nameserver, the search
  path is ``<ns>.svc.<domain> svc.<domain> <domain>`` followed by the node's search
  domains, ``options ndots:5``. A ``hostNetwork`` pod with ``ClusterFirst`` gets
  ``Default`` instead; ``ClusterFirstWithHostNet`` is ``ClusterFirst`` for it too. Without a
  cluster DNS address the kubelet falls back to ``Default`` with a ``MissingClusterDNS``
  Warning, and so does this.
- ``Default``: the node's configuration as it is.
- ``None``: nothing but the pod's ``dnsConfig``.

``dnsConfig`` is then merged in: its nameservers and searches appended with duplicates
dropped, its options overriding options of the same name. The result is cut to the
resolver's limits (3 nameservers; 32 search domains of at most 253 characters, 2048 in
all), each cut a ``DNSConfigForming`` Warning with the kubelet's words. The file is written
as containerd writes a sandbox's: ``search``, ``nameserver`` lines, ``options``.

One difference: the kubelet merges options through a Go map, so their order is random;
here they keep their order (the node's or the default first, then the pod's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DEFAULT_OPTIONS = ("ndots:5",)
MAX_NAMESERVERS = 3  # validation.MaxDNSNameservers
MAX_SEARCH_PATHS = 32  # validation.MaxDNSSearchPathsExpanded
MAX_SEARCH_CHARS = 2048  # validation.MaxDNSSearchListCharsExpanded
MAX_SEARCH_LENGTH = 253  # a DNS-1123 subdomain
MAX_FILE_BYTES = 10 << 20  # the kubelet reads at most 10 MB of the node's file


@dataclass(frozen=True)
class DNSConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodDNS:
    config: DNSConfig
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)


def parse_resolv_conf(text: str) -> DNSConfig:
    """The kubelet's ``parseResolvConf``: nameservers accumulate, the last ``search`` and
    ``options`` lines win, search domains lose a trailing dot."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text[:MAX_FILE_BYTES].splitlines():
        fields = line.strip().split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            nameservers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:]]
        elif fields[0] == "options":
            options = fields[1:]
    return DNSConfig(tuple(nameservers), tuple(searches), tuple(options))


def dns_policy(pod: Obj) -> str:
    """``ClusterFirst``, ``Default`` or ``None``: what the pod's resolver is based on."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet":
        return "ClusterFirst"
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        return "Default"
    return policy if policy in ("Default", "None") else "ClusterFirst"


def pod_dns(pod: Obj, *, host: DNSConfig, cluster_dns: list[str], cluster_domain: str) -> PodDNS:
    """The kubelet's ``GetPodDNS``: the pod's resolver configuration, and the Warnings
    (reason, message) its forming gave."""
    warnings: list[tuple[str, str]] = []
    policy = dns_policy(pod)
    config = host
    if policy == "None":
        config = DNSConfig()
    elif policy == "ClusterFirst" and cluster_dns:
        namespace = pod["metadata"].get("namespace") or "default"
        searches = list(host.searches)
        if cluster_domain:
            cluster = [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
            searches = _unique(cluster + searches)
        config = DNSConfig(tuple(cluster_dns), tuple(searches), DEFAULT_OPTIONS)
    elif policy == "ClusterFirst":
        message = (
            'kubelet does not have ClusterDNS IP configured and cannot create Pod using "'
            'ClusterFirst" policy. Falling back to "Default" policy.'
        )
        name = f"{pod['metadata'].get('name')}_{pod['metadata'].get('namespace')}"
        warnings.append(
            ("MissingClusterDNS", f'pod: "{name}({pod["metadata"].get("uid")})". {message}')
        )
    extra = (pod.get("spec") or {}).get("dnsConfig")
    if extra:
        config = DNSConfig(
            tuple(_unique([*config.nameservers, *(extra.get("nameservers") or [])])),
            tuple(_unique([*config.searches, *(extra.get("searches") or [])])),
            merge_options(config.options, extra.get("options") or []),
        )
    return _fit_limits(config, warnings)


def merge_options(existing: tuple[str, ...], given: list[Obj]) -> tuple[str, ...]:
    """``mergeDNSOptions``: an option of the pod's replaces one of the same name."""
    merged: dict[str, str] = {}
    for option in existing:
        name, _, value = option.partition(":")
        merged[name] = value
    for item in given:
        merged[str(item.get("name") or "")] = str(item.get("value") or "")
    return tuple(f"{name}:{value}" if value else name for name, value in merged.items())


def _fit_limits(config: DNSConfig, warnings: list[tuple[str, str]]) -> PodDNS:
    nameservers = list(config.nameservers)
    if len(nameservers) > MAX_NAMESERVERS:
        nameservers = nameservers[:MAX_NAMESERVERS]
        message = (
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
            f"nameserver line is: {' '.join(nameservers)}"
        )
        warnings.append(("DNSConfigForming", message))
    searches = list(config.searches)
    cut = len(searches) > MAX_SEARCH_PATHS
    searches = [s for s in searches[:MAX_SEARCH_PATHS] if len(s) <= MAX_SEARCH_LENGTH]
    cut = cut or len(searches) < min(len(config.searches), MAX_SEARCH_PATHS)
    while len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
        cut = True
    if cut:
        message = (
            "Search Line limits were exceeded, some search paths have been omitted, the "
            f"applied search line is: {' '.join(searches)}"
        )
        warnings.append(("DNSConfigForming", message))
    return PodDNS(DNSConfig(tuple(nameservers), tuple(searches), config.options), warnings)


def render(config: DNSConfig) -> str:
    """The file, as containerd writes it for a sandbox."""
    lines = []
    if config.searches:
        lines.append("search " + " ".join(config.searches))
    lines += [f"nameserver {server}" for server in config.nameservers]
    if config.options:
        lines.append("options " + " ".join(config.options))
    return "".join(line + "\n" for line in lines)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
