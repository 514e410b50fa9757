"""Tables for the RBAC kinds, as ``pkg/printers/internalversion/printers.go`` prints them.

Roles and ClusterRoles show their name and when they were made (``Created At``, a date, not an
age); bindings show the role they grant (``Role/name`` or ``ClusterRole/name``), their age and,
with ``-o wide``, the users, groups and service accounts they grant it to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from setpoint.meta.jsonvalue import Obj
from setpoint.resources.printers.base import (
    AGE_COLUMN,
    CREATION_TIMESTAMP_DOC,
    NAME_COLUMN,
    Printer,
    age_of,
    column,
    items,
    name_of,
    text,
)

ROLE_COLUMNS = [NAME_COLUMN, column("Created At", "date", CREATION_TIMESTAMP_DOC)]
BINDING_COLUMNS = [
    NAME_COLUMN,
    column("Role", description="RoleRef is the reference to the role."),
    AGE_COLUMN,
    column("Users", description="Users in the binding.", priority=1),
    column("Groups", description="Groups in the binding.", priority=1),
    column("ServiceAccounts", description="ServiceAccounts in the binding.", priority=1),
]


def role_cells(role: Obj, now: datetime) -> list[Any]:
    return [name_of(role), text(role, "metadata", "creationTimestamp")]


def binding_cells(binding: Obj, now: datetime) -> list[Any]:
    """``printRoleBinding``: the role as ``Kind/name`` and the subjects by kind."""
    role = f"{text(binding, 'roleRef', 'kind')}/{text(binding, 'roleRef', 'name')}"
    users, groups, accounts = [], [], []
    for subject in items(binding, "subjects"):
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), str(subject.get("name") or "")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            namespace = str(subject.get("namespace") or "")
            accounts.append(f"{namespace}/{name}")
    return [
        name_of(binding),
        role,
        age_of(binding, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


ROLE_PRINTER = Printer(ROLE_COLUMNS, role_cells)
BINDING_PRINTER = Printer(BINDING_COLUMNS, binding_cells)
