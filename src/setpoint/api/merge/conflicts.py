"""Apply conflicts: the fields another manager owns that an apply would change.

An apply that changes a field another manager owns fails, unless it is forced, with a 409
whose message and causes ``kubectl`` prints as they are (``Apply failed with 1 conflict:
conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas``).
:class:`ManagerConflicts` is how the merge reports them (the conflicting fields per other
manager); :meth:`ManagerConflicts.error` turns that into :class:`ApplyConflict`, ordered and
worded as Kubernetes does: managers by identifier, each manager's paths in set order, the
owner described by name, subresource and (for an updater) apiVersion. It follows
``sigs.k8s.io/structured-merge-diff``'s ``merge/conflict.go`` (ConflictsFromManagers, the
message) and the apiserver's ``k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go``
(NewConflictError: the ``FieldManagerConflict`` causes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from setpoint.api.merge.fieldpath import EMPTY, FieldSet, path_string
from setpoint.api.merge.managedfields import APPLY, UPDATE, Manager, Managers
from setpoint.meta import gofmt

__all__ = [
    "ApplyConflict",
    "Conflict",
    "ManagerConflicts",
    "conflict_status_message",
]


class Conflict(NamedTuple):
    """One field another manager owns and an apply wanted to change."""

    manager: str
    """The owner's name, e.g. ``kubectl-client-side-apply``."""
    operation: str
    """``Apply`` or ``Update``."""
    api_version: str
    """The version the owner wrote with (printed for ``Update`` owners only)."""
    subresource: str
    """The subresource the owner wrote through, ``""`` for the main resource."""
    field: str
    """The field path as Kubernetes prints it, e.g. ``.spec.replicas``."""

    @property
    def described_manager(self) -> str:
        """The owner as Kubernetes names it in conflicts: ``"name" using apps/v1``."""
        text = gofmt.quote(self.manager)
        if self.subresource:
            text += f" with subresource {gofmt.quote(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


class ApplyConflict(Exception):
    """An apply would change fields other managers own (HTTP 409 Conflict).

    ``conflicts`` holds ``(manager, field)`` pairs where *manager* is already in the form
    Kubernetes prints after ``conflict with`` (``"kubectl-client-side-apply" using apps/v1``,
    or just ``"other"`` for an applier), ordered as Kubernetes orders them; ``details`` has the
    same conflicts with the owner's parts separated. ``str(error)`` is the Status message.
    """

    def __init__(self, details: Sequence[Conflict]) -> None:
        self.details: list[Conflict] = list(details)
        self.conflicts: list[tuple[str, str]] = [
            (c.described_manager, c.field) for c in self.details
        ]
        super().__init__(conflict_status_message(self.conflicts))

    @property
    def message(self) -> str:
        """The Status ``message``: ``Apply failed with 1 conflict: conflict with ...``."""
        return str(self)

    @property
    def causes(self) -> list[dict[str, str]]:
        """The Status ``details.causes`` entries Kubernetes sends, in order."""
        return [
            {"reason": "FieldManagerConflict", "message": f"conflict with {m}", "field": f}
            for m, f in self.conflicts
        ]


def conflict_status_message(conflicts: Sequence[tuple[str, str]]) -> str:
    """Kubernetes' Status message for apply conflicts given as ``(manager, field)`` pairs.

    *manager* is in printed form (see :class:`ApplyConflict`). With several conflicts they are
    grouped by manager, in the order the managers first appear.
    """
    if len(conflicts) == 1:
        manager, path = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {manager}: {path}"
    grouped: dict[str, list[str]] = {}
    for manager, path in conflicts:
        grouped.setdefault(manager, []).append(path)
    lines: list[str] = []
    for manager, paths in grouped.items():
        lines.append(f"conflicts with {manager}:")
        lines.extend(f"- {path}" for path in paths)
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


class ManagerConflicts(Exception):
    """The fields an operation changed that other managers own, per manager (``conflicts``),
    with every manager's entry (``managers``) to describe the owners by."""

    def __init__(self, conflicts: dict[Manager, FieldSet], managers: Managers) -> None:
        super().__init__("apply conflicts")
        self.conflicts = conflicts
        self.managers = managers

    def error(self, keep: FieldSet | None = None) -> ApplyConflict:
        """The conflicts as Kubernetes reports them, leaving out the paths in ``keep``."""
        details: list[Conflict] = []
        for ident in sorted(self.conflicts, key=lambda m: m.identifier):
            owned = self.managers[ident]
            for path in self.conflicts[ident]:
                if keep is not None and keep.has(path):
                    continue
                details.append(
                    Conflict(
                        ident.name,
                        APPLY if owned.applied else ident.operation,
                        owned.api_version,
                        ident.subresource,
                        path_string(path),
                    )
                )
        return ApplyConflict(details)

    def paths(self) -> FieldSet:
        """Every conflicting path, whoever owns it."""
        out = EMPTY
        for fields in self.conflicts.values():
            out = out.union(fields)
        return out
