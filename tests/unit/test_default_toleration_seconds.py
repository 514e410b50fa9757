"""The DefaultTolerationSeconds admission: pods get bounded not-ready/unreachable
tolerations on create unless they tolerate those taints already."""

from __future__ import annotations

from setpoint.resources.catalog import default_registry
from setpoint.resources.core import DefaultTolerationSeconds
from tests import objects

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


def admitted(*tolerations: dict[str, object], seconds: int = 10) -> list[dict[str, object]]:
    pod = objects.pod("p", tolerations=list(tolerations)) if tolerations else objects.pod("p")
    DefaultTolerationSeconds(not_ready=seconds, unreachable=seconds).admit(pod)
    return list(pod["spec"].get("tolerations") or [])


def default(key: str, seconds: int = 10) -> dict[str, object]:
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}


def test_a_pod_without_tolerations_gets_both() -> None:
    assert admitted() == [default(NOT_READY), default(UNREACHABLE)]


def test_the_seconds_come_from_the_server_flags() -> None:
    assert admitted(seconds=300) == [default(NOT_READY, 300), default(UNREACHABLE, 300)]


def test_a_pod_that_tolerates_one_key_gets_only_the_other() -> None:
    own = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    assert admitted(own) == [own, default(NOT_READY)]


def test_a_toleration_of_everything_covers_both() -> None:
    everything = {"operator": "Exists"}
    assert admitted(everything) == [everything]


def test_a_noschedule_toleration_does_not_count() -> None:
    own = {"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}
    assert admitted(own) == [own, default(NOT_READY), default(UNREACHABLE)]


def test_the_registry_admits_pods_with_its_settings() -> None:
    registry = default_registry(tolerations=DefaultTolerationSeconds(not_ready=7, unreachable=8))
    pods = registry.lookup("", "v1", "pods")
    assert pods is not None
    pod = objects.pod("p")
    pods.prepare_for_create(pod)
    seconds = {t["key"]: t["tolerationSeconds"] for t in pod["spec"]["tolerations"]}
    assert seconds == {NOT_READY: 7, UNREACHABLE: 8}
