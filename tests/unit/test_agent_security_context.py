"""The merge of a pod's and a container's securityContext, and the identity it gives."""

from __future__ import annotations

from typing import Any

import pytest

from setpoint.agent.namespaceusers import FIRST_UID, SPAN, namespace_user
from setpoint.agent.securitycontext import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    NOBODY,
    SecurityContextError,
    capabilities,
    effective,
    resolve,
    setpriv_argv,
)

Obj = dict[str, Any]


def pod(pod_sc: Obj | None = None, container_sc: Obj | None = None) -> tuple[Obj, Obj]:
    container: Obj = {"name": "app", "command": ["true"]}
    if container_sc is not None:
        container["securityContext"] = container_sc
    spec: Obj = {"containers": [container]}
    if pod_sc is not None:
        spec["securityContext"] = pod_sc
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec}, container


def test_container_fields_win_over_the_pods_field_by_field() -> None:
    p, c = pod({"runAsUser": 1000, "runAsGroup": 3000}, {"runAsUser": 1001})
    assert effective(p, c) == {"runAsUser": 1001, "runAsGroup": 3000}


def test_container_only_fields_are_not_taken_from_the_pod() -> None:
    p, c = pod({"fsGroup": 2000, "supplementalGroups": [4]}, {"privileged": True})
    assert effective(p, c) == {"privileged": True}


def test_container_false_overrides_a_pods_true() -> None:
    p, c = pod({"runAsNonRoot": True}, {"runAsNonRoot": False, "runAsUser": 0})
    assert resolve(p, c, default_uid=NOBODY).uid == 0


def test_unset_user_is_the_nodes_default_and_its_passwd_group() -> None:
    identity = resolve(*pod(), default_uid=NOBODY)
    assert (identity.uid, identity.gid, identity.groups) == (NOBODY, NOBODY, ())


def test_fs_group_comes_before_supplemental_groups() -> None:
    p, c = pod({"runAsUser": 5, "fsGroup": 2000, "supplementalGroups": [4000, 2000]})
    assert resolve(p, c, default_uid=NOBODY).groups == (2000, 4000)


def test_run_as_non_root_with_user_0_breaks_the_policy() -> None:
    with pytest.raises(SecurityContextError, match="runAsUser breaks non-root policy"):
        resolve(*pod({"runAsNonRoot": True, "runAsUser": 0}), default_uid=NOBODY)


def test_run_as_non_root_with_a_root_default_is_the_image_running_as_root() -> None:
    with pytest.raises(SecurityContextError) as info:
        resolve(*pod(None, {"runAsNonRoot": True}), default_uid=0)
    assert str(info.value) == (
        'container has runAsNonRoot and image will run as root (pod: "p_ns(u)", container: app)'
    )


def test_default_capabilities_are_containerds() -> None:
    assert capabilities({}) == (DEFAULT_CAPABILITIES, frozenset())


def test_drop_all_then_add_keeps_only_the_added() -> None:
    sc = {"capabilities": {"drop": ["ALL"], "add": ["CAP_NET_BIND_SERVICE"]}}
    assert capabilities(sc) == ({"NET_BIND_SERVICE"}, {"NET_BIND_SERVICE"})


def test_a_drop_beats_an_add_of_the_same_capability() -> None:
    caps, added = capabilities({"capabilities": {"add": ["SYS_ADMIN"], "drop": ["sys_admin"]}})
    assert "SYS_ADMIN" not in caps and not added


def test_privileged_has_every_capability() -> None:
    assert capabilities({"privileged": True})[0] == set(CAPABILITIES)


def test_unknown_capability_is_an_error() -> None:
    with pytest.raises(SecurityContextError, match="unknown capability NOPE"):
        capabilities({"capabilities": {"add": ["NOPE"]}})


def test_only_a_non_root_user_gets_ambient_capabilities() -> None:
    add = {"capabilities": {"add": ["NET_ADMIN"]}}
    assert resolve(*pod(None, {**add, "runAsUser": 7}), default_uid=NOBODY).ambient == {"NET_ADMIN"}
    assert not resolve(*pod(None, {**add, "runAsUser": 0}), default_uid=NOBODY).ambient


def test_setpriv_argv_switches_user_and_limits_the_bounding_set() -> None:
    p, c = pod(
        {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
        {
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "allowPrivilegeEscalation": False,
        },
    )
    argv = setpriv_argv(resolve(p, c, default_uid=NOBODY), available=frozenset(CAPABILITIES))
    assert argv == [
        "setpriv",
        "--reuid=1000",
        "--regid=3000",
        "--groups=2000",
        "--inh-caps=-all,+net_bind_service",
        "--ambient-caps=-all,+net_bind_service",
        "--bounding-set=-all,+net_bind_service",
        "--no-new-privs",
        "--",
        "env",
        "--",
    ]


def test_setpriv_argv_of_a_privileged_container_keeps_the_bounding_set() -> None:
    p, c = pod(None, {"privileged": True, "runAsUser": 0})
    available = frozenset(CAPABILITIES) - {"SYS_RESOURCE"}
    argv = setpriv_argv(resolve(p, c, default_uid=NOBODY), available=available)
    assert not any(a.startswith("--bounding-set") for a in argv)
    assert "--clear-groups" in argv


def test_each_namespace_has_a_user_of_its_own_the_same_everywhere() -> None:
    users = {namespace_user(n) for n in ("default", "prod", "kube-system")}
    assert len(users) == 3
    assert all(FIRST_UID <= u < FIRST_UID + SPAN for u in users)
    assert namespace_user("prod") == namespace_user("prod")
