"""API discovery documents: ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``.

kubectl learns from these which resources exist, their short names (``po``, ``deploy``),
verbs, whether they are namespaced, their categories (``kubectl get all``) and their
subresources. The documents are built once from the registry and served as bytes.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from setpoint.resources.registry import Registry, ResourceType

KUBERNETES_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0+setpoint"}

_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "token": ["create"],
    "finalize": ["update"],
    "ephemeralcontainers": ["get", "patch", "update"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
}
# the options kind that connect subresources name in discovery, as kube-apiserver lists them
_CONNECT_KINDS = {
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
}


def _storage_hash(rtype: ResourceType) -> str:
    digest = hashlib.sha256(f"{rtype.group}/{rtype.version}/{rtype.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _resource_entries(rtype: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(rtype.verbs),
        "storageVersionHash": _storage_hash(rtype),
    }
    if rtype.short_names:
        main["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        main["categories"] = list(rtype.categories)
    entries = [main]
    for sub in rtype.subresources:
        entry: dict[str, Any] = {
            "name": f"{rtype.plural}/{sub}",
            "singularName": "",
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
        }
        if sub == "scale":
            entry.update(group="autoscaling", version="v1", kind="Scale")
        elif sub == "binding":
            entry["kind"] = "Binding"
        elif sub == "eviction":
            # kubectl drain evicts only where discovery names pods/eviction's group version
            entry.update(group="policy", version="v1", kind="Eviction")
        elif sub == "token":
            entry.update(group="authentication.k8s.io", version="v1", kind="TokenRequest")
        elif sub in _CONNECT_KINDS:
            entry["kind"] = _CONNECT_KINDS[sub]
        entries.append(entry)
    return entries


AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _aggregated_resource(rtype: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": rtype.plural,
        "responseKind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
        "scope": "Namespaced" if rtype.namespaced else "Cluster",
        "singularResource": rtype.singular,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        entry["categories"] = list(rtype.categories)
    subresources = []
    for sub in rtype.subresources:
        kind = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        if sub == "scale":
            kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        elif sub == "binding":
            kind = {"group": "", "version": "v1", "kind": "Binding"}
        elif sub == "eviction":
            kind = {"group": "policy", "version": "v1", "kind": "Eviction"}
        elif sub == "token":
            kind = {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}
        elif sub in _CONNECT_KINDS:
            kind = {"group": "", "version": "v1", "kind": _CONNECT_KINDS[sub]}
        subresources.append(
            {
                "subresource": sub,
                "responseKind": kind,
                "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def _aggregated(registry: Registry, groups: list[str]) -> bytes:
    items = []
    for group in groups:
        versions = registry.group_versions()[group]
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": version,
                        "resources": [
                            _aggregated_resource(t)
                            for t in registry.in_group_version(group, version)
                        ],
                        "freshness": "Current",
                    }
                    for version in versions
                ],
            }
        )
    return orjson.dumps(
        {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }
    )


class Discovery:
    """Precomputed discovery responses."""

    def __init__(self, registry: Registry, *, platform: str) -> None:
        self.version_json = orjson.dumps(
            {
                **KUBERNETES_VERSION,
                "gitCommit": "",
                "gitTreeState": "clean",
                "buildDate": "2026-11-25T00:00:00Z",
                "goVersion": "cpython3.11",
                "compiler": "cpython",
                "platform": platform,
            }
        )
        self._api_versions: dict[str, bytes] = {}
        groups = []
        self.groups: dict[str, bytes] = {}
        self.resource_lists: dict[tuple[str, str], bytes] = {}
        for group, versions in registry.group_versions().items():
            for version in versions:
                resources: list[dict[str, Any]] = []
                for rtype in registry.in_group_version(group, version):
                    resources += _resource_entries(rtype)
                gv = f"{group}/{version}" if group else version
                self.resource_lists[(group, version)] = orjson.dumps(
                    {
                        "kind": "APIResourceList",
                        "apiVersion": "v1",
                        "groupVersion": gv,
                        "resources": resources,
                    }
                )
            if not group:
                continue
            entry = {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {
                    "groupVersion": f"{group}/{versions[0]}",
                    "version": versions[0],
                },
            }
            groups.append(entry)
            self.groups[group] = orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **entry})
        all_groups = list(registry.group_versions())
        self.aggregated_api_json = _aggregated(registry, [g for g in all_groups if not g])
        self.aggregated_apis_json = _aggregated(registry, [g for g in all_groups if g])
        self.group_list_json = orjson.dumps(
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        )

    def api_versions_json(self, server_address: str) -> bytes:
        """``GET /api``. Kubernetes always lists where clients reach the server (its
        advertise address, for every client network); setpoint names the address the
        client's own connection came in on, which is one the client can reach."""
        cached = self._api_versions.get(server_address)
        if cached is None:
            cached = orjson.dumps(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
                    ],
                }
            )
            if len(self._api_versions) < 64:  # a server has few addresses
                self._api_versions[server_address] = cached
        return cached
