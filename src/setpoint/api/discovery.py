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
    "finalize": ["update"],
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
        entries.append(entry)
    return entries


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
        self.api_versions_json = orjson.dumps(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": None}
        )
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
        self.group_list_json = orjson.dumps(
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        )
