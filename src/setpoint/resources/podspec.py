"""Pod specs and pod templates: the defaults and checks shared by every kind that runs pods.

Pods, Deployments, ReplicaSets, Jobs and CronJobs all carry a ``PodSpec``, and Kubernetes
defaults and validates it the same way wherever it appears (``SetDefaults_PodSpec`` and the
generated container/volume/probe defaulters; ``ValidatePodSpec``). A few rules apply to real
Pods only, not to templates: ``enableServiceLinks``, requests copied from limits, host ports
following container ports under ``hostNetwork``, and the update restrictions of a running pod.

Container resources are canonicalized as Kubernetes stores them (``0.5`` -> ``500m``,
rounded up to milli units), which is also what the QoS class is computed from. The checks of
individual containers and volumes live in :mod:`setpoint.resources.containers`.
"""

from __future__ import annotations

import ipaddress
import json
from fractions import Fraction
from typing import Any

from setpoint.meta import gofmt
from setpoint.meta.labels import SelectorParseError, selector_from_label_selector
from setpoint.meta.quantity import QuantityError, parse_quantity_or_none, stored_resource_text
from setpoint.meta.validation import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
)
from setpoint.resources.checks import label_errors
from setpoint.resources.containers import (
    PROBES,
    QOS_RESOURCES,
    VOLUME_SOURCES,
    name_errors,
    one_of,
    validate_containers,
    validate_ephemeral_containers,
    validate_init_containers,
    validate_volumes,
)
from setpoint.resources.fielderrors import (
    FieldError,
    forbidden,
    invalid_rendered,
    invalid_value,
    not_supported,
    required,
)
from setpoint.resources.meta import validate_annotations
from setpoint.resources.registry import Obj

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
# the resolver's limits (validation.MaxDNSNameservers, MaxDNSSearchPaths, MaxDNSSearchListChars)
MAX_DNS_NAMESERVERS, MAX_DNS_SEARCH_PATHS, MAX_DNS_SEARCH_LIST_CHARS = 3, 32, 2048
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
DEFAULT_FILE_MODE = 0o644
_MAX_INT32 = 2**31 - 1
UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)"
)


# ------------------------------------------------------------------------------ defaults


def default_pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` and the generated defaults of everything inside a PodSpec."""
    for key, value in (
        ("dnsPolicy", "ClusterFirst"),
        ("restartPolicy", "Always"),
        ("schedulerName", "default-scheduler"),
    ):
        if not spec.get(key):
            spec[key] = value
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    _alias_service_account(spec)
    for container in _all_containers(spec):
        _default_container(container)
    for volume in spec.get("volumes") or []:
        _default_volume(volume)
    if spec.get("resources"):
        _canonicalize_resources(spec["resources"])


def _alias_service_account(spec: Obj) -> None:
    """``serviceAccount`` is the deprecated alias of ``serviceAccountName``: read when the
    name is empty, and always written back equal to it (as Kubernetes' v1 conversion does)."""
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if account:
        spec["serviceAccountName"] = spec["serviceAccount"] = account
    else:
        spec.pop("serviceAccount", None)


def default_template(owner_spec: Obj) -> None:
    """Defaults of the pod template inside a workload's spec (``spec.template``)."""
    template = owner_spec.get("template")
    if isinstance(template, dict):
        default_pod_spec(template.setdefault("spec", {}))


def default_pod(pod: Obj) -> None:
    """A Pod's defaults: its spec's, plus the ones Kubernetes applies to real pods only."""
    spec = pod.setdefault("spec", {})
    default_pod_spec(spec)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = container.get("resources") or {}
        if resources.get("limits"):
            requests = resources.setdefault("requests", {})
            for name, value in resources["limits"].items():
                requests.setdefault(name, value)
        if spec.get("hostNetwork"):
            for port in container.get("ports") or []:
                if not port.get("hostPort"):
                    port["hostPort"] = port.get("containerPort", 0)


def _all_containers(spec: Obj) -> list[Obj]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def _default_container(container: Obj) -> None:
    if not container.get("imagePullPolicy"):
        latest = _image_tag(container.get("image", "")) == "latest"
        container["imagePullPolicy"] = "Always" if latest else "IfNotPresent"
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    container.setdefault("resources", {})
    _canonicalize_resources(container["resources"])
    for port in container.get("ports") or []:
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for var in container.get("env") or []:
        _default_field_ref((var.get("valueFrom") or {}).get("fieldRef"))
    for kind in PROBES:
        if isinstance(container.get(kind), dict):
            _default_probe(container[kind])
    for hook in (container.get("lifecycle") or {}).values():
        if isinstance(hook, dict):
            _default_http_get(hook.get("httpGet"))


def _image_tag(image: str) -> str:
    """The tag Kubernetes' ``ParseImageName`` finds: ``latest`` when there is none (and no
    digest), ``""`` for a digest-only or unparseable reference."""
    name, at, _ = image.partition("@")
    if not name or name != name.strip() or any(c.isupper() for c in name.split("/")[-1]):
        return ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return "" if at else "latest"


def _default_probe(probe: Obj) -> None:
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))
    if isinstance(probe.get("grpc"), dict):
        probe["grpc"].setdefault("service", "")


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        if not action.get("path"):
            action["path"] = "/"
        if not action.get("scheme"):
            action["scheme"] = "HTTP"


def _default_field_ref(ref: Any) -> None:
    if isinstance(ref, dict) and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def _default_volume(volume: Obj) -> None:
    if not any(key in volume for key in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(volume.get(key), dict):
            volume[key].setdefault("defaultMode", DEFAULT_FILE_MODE)
    if isinstance(volume.get("hostPath"), dict):
        volume["hostPath"].setdefault("type", "")
    for item in (volume.get("downwardAPI") or {}).get("items") or []:
        _default_field_ref(item.get("fieldRef"))
    for source in (volume.get("projected") or {}).get("sources") or []:
        for item in (source.get("downwardAPI") or {}).get("items") or []:
            _default_field_ref(item.get("fieldRef"))
        if isinstance(source.get("serviceAccountToken"), dict):
            source["serviceAccountToken"].setdefault("expirationSeconds", 3600)


def _canonicalize_resources(resources: Obj) -> None:
    """Requests and limits as Kubernetes stores them: rounded up to 1m, canonical text."""
    for kind in ("limits", "requests"):
        quantities = resources.get(kind)
        if not isinstance(quantities, dict):
            continue
        for name, text in quantities.items():
            try:
                quantities[name] = stored_resource_text(str(text))
            except QuantityError:
                pass  # reported by validation


# ----------------------------------------------------------------------------------- QoS


def qos_class(spec: Obj) -> str:
    """Kubernetes' ``ComputePodQOS`` (pod-level resources, when set, stand for the containers)."""
    sources = (
        [spec["resources"]]
        if spec.get("resources")
        else [
            c.get("resources") or {}
            for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        ]
    )
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for resources in sources:
        _add_positive(requests, resources.get("requests"))
        found = _add_positive(limits, resources.get("limits"))
        if not set(QOS_RESOURCES) <= found:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    guaranteed = guaranteed and requests.keys() == limits.keys()
    guaranteed = guaranteed and all(limits[name] == value for name, value in requests.items())
    return "Guaranteed" if guaranteed else "Burstable"


def _add_positive(totals: dict[str, Fraction], quantities: Any) -> set[str]:
    found = set()
    for name, text in (quantities or {}).items():
        quantity = parse_quantity_or_none(text)
        if name in QOS_RESOURCES and quantity is not None and quantity.value > 0:
            totals[name] = totals.get(name, Fraction(0)) + quantity.value
            found.add(name)
    return found


# ---------------------------------------------------------------------- template checks


def validate_template(template: Obj | None, path: str) -> list[FieldError]:
    """``ValidatePodTemplateSpec``: template labels/annotations, then the pod spec."""
    template = template or {}
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    errors = label_errors(meta.get("labels"), f"{path}.labels")
    errors += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    errors += validate_pod_spec(spec, f"{path}.spec", pod=False)
    if spec.get("ephemeralContainers"):
        errors.append(
            forbidden(
                f"{path}.spec.ephemeralContainers",
                "ephemeral containers not allowed in pod template",
            )
        )
    return errors


def validate_selector_matches_template(
    selector: Obj | None, template: Obj | None, template_path: str
) -> list[FieldError]:
    """The selector must select the pods the template makes (an empty selector matches all)."""
    try:
        parsed = selector_from_label_selector(selector)
    except SelectorParseError:
        return []  # the caller reports the selector itself
    labels = ((template or {}).get("metadata") or {}).get("labels")
    if parsed.is_empty() or parsed.matches(labels or {}):
        return []
    return [
        invalid_rendered(
            f"{template_path}.metadata.labels",
            gofmt.sharp_v_string_map(labels),
            "`selector` does not match template `labels`",
        )
    ]


def selector_is_parseable(selector: Obj | None, path: str, detail: str) -> list[FieldError]:
    """``LabelSelectorAsSelector`` must succeed (Deployment and ReplicaSet say so)."""
    try:
        selector_from_label_selector(selector)
    except SelectorParseError:
        return [invalid_rendered(path, gofmt.sharp_v_label_selector(selector), detail)]
    return []


# --------------------------------------------------------------------------- spec checks


def validate_pod_spec(spec: Obj, path: str, *, pod: bool) -> list[FieldError]:
    """``ValidatePodSpec`` (the parts setpoint enforces), in Kubernetes' order."""
    errors: list[FieldError] = []
    if spec.get("terminationGracePeriodSeconds") is None:
        errors.append(required(f"{path}.terminationGracePeriodSeconds"))
    volumes, volume_errors = validate_volumes(spec.get("volumes") or [], f"{path}.volumes")
    errors += volume_errors
    errors += validate_containers(spec, volumes, path)
    errors += validate_init_containers(spec, volumes, path)
    errors += validate_ephemeral_containers(spec, volumes, path)
    errors += _validate_host_network_ports(spec, path, pod=pod)
    errors += one_of(spec.get("restartPolicy", ""), f"{path}.restartPolicy", RESTART_POLICIES)
    errors += one_of(spec.get("dnsPolicy", ""), f"{path}.dnsPolicy", DNS_POLICIES)
    errors += validate_dns_config(spec.get("dnsConfig"), spec.get("dnsPolicy"), f"{path}.dnsConfig")
    errors += label_errors(spec.get("nodeSelector"), f"{path}.nodeSelector")
    for key in ("serviceAccountName", "nodeName"):
        errors += name_errors(spec.get(key), f"{path}.{key}", dns1123_subdomain_errors)
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= _MAX_INT32:
        errors.append(
            invalid_value(
                f"{path}.activeDeadlineSeconds",
                deadline,
                f"must be between 1 and {_MAX_INT32}, inclusive",
            )
        )
    for key in ("hostname", "subdomain"):
        errors += name_errors(spec.get(key), f"{path}.{key}", dns1123_label_errors)
    errors += validate_tolerations(spec.get("tolerations") or [], f"{path}.tolerations")
    errors += name_errors(
        spec.get("priorityClassName"), f"{path}.priorityClassName", dns1123_subdomain_errors
    )
    return errors


def validate_dns_config(config: Obj | None, policy: str | None, path: str) -> list[FieldError]:
    """``validatePodDNSConfig``: ``None`` needs a nameserver; the resolver's limits."""
    if policy == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.get("nameservers"):
            detail = "must provide at least one DNS nameserver when `dnsPolicy` is None"
            return [required(f"{path}.nameservers", detail)]
    if config is None:
        return []
    errors: list[FieldError] = []
    nameservers = [str(n) for n in config.get("nameservers") or []]
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        detail = f"must not have more than {MAX_DNS_NAMESERVERS} nameservers"
        rendered = gofmt.sharp_v_string_slice(nameservers)
        errors.append(invalid_rendered(f"{path}.nameservers", rendered, detail))
    for i, nameserver in enumerate(nameservers):
        try:
            ipaddress.ip_address(nameserver)
        except ValueError:
            detail = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            errors.append(invalid_value(f"{path}.nameservers[{i}]", nameserver, detail))
    searches = [str(s) for s in config.get("searches") or []]
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        detail = f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths"
        rendered = gofmt.sharp_v_string_slice(searches)
        errors.append(invalid_rendered(f"{path}.searches", rendered, detail))
    if len(" ".join(searches)) > MAX_DNS_SEARCH_LIST_CHARS:
        detail = (
            f"must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including "
            "spaces) in the search list"
        )
        rendered = gofmt.sharp_v_string_slice(searches)
        errors.append(invalid_rendered(f"{path}.searches", rendered, detail))
    for i, search in enumerate(searches):
        if i == 0 and search == ".":  # the resolver's "no search" (allowed first)
            continue
        search = search.removesuffix(".")  # a trailing dot is fine
        errors += [
            invalid_value(f"{path}.searches[{i}]", search, m)
            for m in dns1123_subdomain_errors(search)
        ]
    for i, option in enumerate(config.get("options") or []):
        if not option.get("name"):
            errors.append(required(f"{path}.options[{i}]", "must not be empty"))
    return errors


def _validate_host_network_ports(spec: Obj, path: str, *, pod: bool) -> list[FieldError]:
    if not spec.get("hostNetwork"):
        return []
    errors = []
    for i, container in enumerate(spec.get("containers") or []):
        for j, port in enumerate(container.get("ports") or []):
            host, target = port.get("hostPort", 0), port.get("containerPort", 0)
            if (pod or host) and host != target:
                detail = "must match `containerPort` when `hostNetwork` is true"
                item = f"{path}.containers[{i}].ports[{j}].hostPort"
                errors.append(invalid_value(item, host, detail))
    return errors


def validate_tolerations(tolerations: list[Obj], path: str) -> list[FieldError]:
    """``ValidateTolerations``."""
    errors: list[FieldError] = []
    for i, toleration in enumerate(tolerations):
        item = f"{path}[{i}]"
        key, operator = toleration.get("key", ""), toleration.get("operator", "")
        value, effect = toleration.get("value", ""), toleration.get("effect", "")
        errors += [invalid_value(f"{item}.key", key, m) for m in label_key_errors(key) if key]
        if not key and operator != "Exists":
            detail = (
                'operator must be Exists when `key` is empty, which means "match all values '
                'and all keys"'
            )
            errors.append(invalid_value(f"{item}.operator", operator, detail))
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            detail = "effect must be 'NoExecute' when `tolerationSeconds` is set"
            errors.append(invalid_value(f"{item}.effect", effect, detail))
        if operator in ("Equal", ""):
            messages = label_value_errors(value)
            if messages:
                errors.append(invalid_value(f"{item}.operator", value, ";".join(messages)))
        elif operator == "Exists":
            if value:
                detail = "value must be empty when `operator` is 'Exists'"
                errors.append(invalid_value(f"{item}.operator", value, detail))
        else:
            errors.append(not_supported(f"{item}.operator", operator, ("Equal", "Exists")))
        if effect and effect not in TAINT_EFFECTS:
            errors.append(not_supported(f"{item}.effect", effect, TAINT_EFFECTS))
    return errors


# ---------------------------------------------------------------------------- pod update


def validate_pod_update(new: Obj, old: Obj) -> list[FieldError]:
    """``ValidatePodUpdate``: a running pod's spec only changes in a few places.

    ``spec.nodeName`` may also go from empty to set, since setpoint binds pods with an update.
    """
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    for kind in ("containers", "initContainers"):
        if len(spec.get(kind) or []) != len(old_spec.get(kind) or []):
            detail = "pod updates may not add or remove containers"
            return [forbidden(f"spec.{kind}", detail)]
    errors = _deadline_update_errors(
        spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    )
    errors += _toleration_update_errors(
        spec.get("tolerations") or [], old_spec.get("tolerations") or []
    )
    if _munged(spec, old_spec) != _munged(old_spec, old_spec):
        detail = f"pod updates may not change fields other than {UPDATABLE_POD_FIELDS}"
        errors.append(forbidden("spec", detail))
    return errors


def ephemeral_containers_update_errors(new: Obj, old: Obj) -> list[FieldError]:
    """The second half of ``ValidatePodEphemeralContainersUpdate``: ephemeral containers
    may only be added; each one the pod had must still be there, unchanged (compared by
    name, since a patch does not keep their order)."""
    path = "spec.ephemeralContainers"
    given = {c.get("name"): c for c in (new.get("spec") or {}).get("ephemeralContainers") or []}
    errors = []
    for container in (old.get("spec") or {}).get("ephemeralContainers") or []:
        name = container.get("name", "")
        now = given.get(name)
        if now is None:
            detail = f"existing ephemeral containers {gofmt.quote(name)} may not be removed\n"
            errors.append(forbidden(path, detail))
        elif now != container:
            detail = (
                f"existing ephemeral containers {gofmt.quote(name)} may not be changed\n"
                + _field_diff(container, now)
            )
            errors.append(forbidden(path, detail))
    return errors


def _field_diff(old: Obj, new: Obj) -> str:
    """What changed between two versions of a container, a line per field (where
    Kubernetes prints ``cmp.Diff`` of its Go structs)."""
    lines = []
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            if key in old:
                lines.append(f"-\t{key}: {json.dumps(old[key], sort_keys=True)}")
            if key in new:
                lines.append(f"+\t{key}: {json.dumps(new[key], sort_keys=True)}")
    return "\n".join(lines)


def _container_image_errors(spec: Obj) -> list[FieldError]:
    errors: list[FieldError] = []
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for i, container in enumerate(spec.get(kind) or []):
            image = container.get("image", "")
            if not image:
                errors.append(required(f"spec.{kind}[{i}].image"))
            elif image != image.strip():
                detail = "must not have leading or trailing whitespace"
                errors.append(invalid_value(f"spec.{kind}[{i}].image", image, detail))
    return errors


def validate_pod_images(spec: Obj) -> list[FieldError]:
    """Pods (not templates) may not have images with surrounding whitespace."""
    return [e for e in _container_image_errors(spec) if e.type != "FieldValueRequired"]


def _deadline_update_errors(new: Any, old: Any) -> list[FieldError]:
    path = "spec.activeDeadlineSeconds"
    if new is None:
        if old is not None:
            return [
                invalid_value(path, None, "must not update from a positive integer to nil value")
            ]
        return []
    if not 0 <= new <= _MAX_INT32:
        return [invalid_value(path, new, f"must be between 0 and {_MAX_INT32}, inclusive")]
    if old is not None and old < new:
        return [invalid_value(path, new, "must be less than or equal to previous value")]
    return []


def _toleration_update_errors(new: list[Obj], old: list[Obj]) -> list[FieldError]:
    def without_seconds(toleration: Obj) -> Obj:
        return {k: v for k, v in toleration.items() if k != "tolerationSeconds"}

    kept = [without_seconds(t) for t in new]
    if any(without_seconds(t) not in kept for t in old):
        detail = "existing toleration can not be modified except its tolerationSeconds"
        return [forbidden("spec.tolerations", detail)]
    return []


def _munged(spec: Obj, old_spec: Obj) -> Obj:
    """The spec with the updatable fields replaced by the old pod's values."""
    munged = {k: v for k, v in spec.items() if v not in (None, [], {})}
    for kind in ("containers", "initContainers"):
        old_containers = old_spec.get(kind) or []
        munged[kind] = [
            {**c, "image": old_containers[i].get("image")}
            for i, c in enumerate(spec.get(kind) or [])
        ]
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged[key] = old_spec.get(key)
    if not old_spec.get("nodeName"):
        munged["nodeName"] = None
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if (
        isinstance(old_grace, int)
        and old_grace < 0
        and spec.get("terminationGracePeriodSeconds") == 1
    ):
        munged["terminationGracePeriodSeconds"] = old_grace
    return {k: v for k, v in munged.items() if v not in (None, [], {})}
