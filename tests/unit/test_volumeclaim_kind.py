"""The PersistentVolumeClaim kind: its defaults, validation (``ValidatePersistentVolumeClaim``
and ``...Update``, Kubernetes' paths and messages) and table."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from tests import kinds
from tests.objects import persistent_volume_claim

RTYPE = kinds.REGISTRY.by_kind("", "v1", "PersistentVolumeClaim")
NOW = datetime(2026, 1, 1, tzinfo=UTC)

Obj = dict[str, Any]


def stored(obj: Obj) -> Obj:
    return kinds.stored("", "PersistentVolumeClaim", obj)


def problems(obj: Obj, old: Obj | None = None) -> list[str]:
    return kinds.problems("", "PersistentVolumeClaim", obj, old)


def test_a_new_claim_is_pending_with_a_filesystem_volume_mode() -> None:
    claim = stored({**persistent_volume_claim(), "status": {"phase": "Bound"}})
    assert claim["status"] == {"phase": "Pending"}
    assert claim["spec"]["volumeMode"] == "Filesystem"


def test_a_valid_claim_has_no_problems() -> None:
    assert problems(persistent_volume_claim()) == []


def test_access_modes_are_required() -> None:
    assert problems(persistent_volume_claim(access_modes=[])) == [
        "spec.accessModes: Required value: at least 1 access mode is required"
    ]


def test_an_unknown_access_mode_is_not_supported() -> None:
    assert problems(persistent_volume_claim(access_modes=["ReadSometimes"])) == [
        'spec.accessModes: Unsupported value: "ReadSometimes": supported values: '
        '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'
    ]


def test_read_write_once_pod_stands_alone() -> None:
    claim = persistent_volume_claim(access_modes=["ReadWriteOncePod", "ReadWriteOnce"])
    assert problems(claim) == [
        "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"
    ]


def test_a_storage_request_is_required() -> None:
    assert problems(persistent_volume_claim(storage=None)) == [
        "spec.resources[storage]: Required value"
    ]


def test_a_storage_request_must_be_positive() -> None:
    assert problems(persistent_volume_claim(storage="0")) == [
        'spec.resources[storage]: Invalid value: "0": must be greater than zero'
    ]


def test_an_unknown_volume_mode_is_not_supported() -> None:
    assert problems(persistent_volume_claim(volumeMode="Tape")) == [
        'spec.volumeMode: Unsupported value: "Tape": supported values: "Block", "Filesystem"'
    ]


def test_the_spec_is_immutable_after_creation() -> None:
    old = stored(persistent_volume_claim())
    new = copy.deepcopy(old)
    new["spec"]["accessModes"] = ["ReadWriteMany"]
    assert problems(new, old) == [
        "spec: Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims"
    ]


def test_the_storage_request_may_grow() -> None:
    old = stored(persistent_volume_claim(storage="1Gi"))
    new = copy.deepcopy(old)
    new["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert problems(new, old) == []


def test_the_storage_request_may_not_shrink() -> None:
    old = stored(persistent_volume_claim(storage="2Gi"))
    new = copy.deepcopy(old)
    new["spec"]["resources"]["requests"]["storage"] = "1Gi"
    assert problems(new, old) == [
        "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
    ]


def test_a_status_update_is_not_a_spec_change() -> None:
    old = stored(persistent_volume_claim())
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Bound"}
    assert problems(new, old) == []


def _row(claim: Obj) -> list[Any]:
    assert RTYPE is not None and RTYPE.printer is not None
    return RTYPE.printer.cells(claim, NOW)


def test_a_pending_claim_shows_no_capacity_until_bound() -> None:
    claim = stored(persistent_volume_claim(storageClassName="local"))
    claim["metadata"]["creationTimestamp"] = "2025-12-31T23:59:00Z"
    assert _row(claim) == ["data", "Pending", "", "", "", "local", "<unset>", "60s", "Filesystem"]


def test_a_bound_claim_shows_its_volume_capacity_and_modes() -> None:
    claim = stored(persistent_volume_claim(volumeName="pv-1"))
    claim["status"] = {
        "phase": "Bound",
        "capacity": {"storage": "5Gi"},
        "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
    }
    assert _row(claim)[:6] == ["data", "Bound", "pv-1", "5Gi", "RWO,RWX", ""]


def test_a_claim_being_deleted_is_terminating() -> None:
    claim = stored(persistent_volume_claim())
    claim["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert _row(claim)[1] == "Terminating"
