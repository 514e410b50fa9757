"""A pod's ``/etc/hosts``, as the kubelet manages it (``managedHostsFileContent`` in
``pkg/kubelet/kubelet_pods.go``), for pods in a network namespace of their own.

The loopback and IPv6 lines, then the pod's own address with its hostname (``spec.hostname``,
else the pod's name, at most 63 characters) and, when the pod names a ``subdomain``, its
fully qualified name ``<hostname>.<subdomain>.<ns>.svc.<domain>`` first; then the pod's
``hostAliases``. A ``hostNetwork`` pod keeps the node's file (the kubelet adds its aliases
to a copy of it; setpoint leaves such pods the node's file as it is).
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

HEADER = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""
MAX_HOSTNAME = 63


def pod_hostname(pod: Obj) -> str:
    spec = pod.get("spec") or {}
    return str(spec.get("hostname") or pod["metadata"]["name"])[:MAX_HOSTNAME].rstrip("-.")


def hosts_file(pod: Obj, pod_ip: str, *, cluster_domain: str) -> str:
    spec = pod.get("spec") or {}
    hostname = pod_hostname(pod)
    text = HEADER
    subdomain = spec.get("subdomain")
    if subdomain:
        namespace = pod["metadata"].get("namespace") or "default"
        fqdn = f"{hostname}.{subdomain}.{namespace}.svc.{cluster_domain}"
        text += f"{pod_ip}\t{fqdn}\t{hostname}\n"
    else:
        text += f"{pod_ip}\t{hostname}\n"
    aliases = spec.get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        for alias in aliases:
            text += f"{alias.get('ip')}\t" + "\t".join(alias.get("hostnames") or []) + "\n"
    return text
