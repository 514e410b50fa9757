"""Kind-specific behaviour for the coordination.k8s.io group."""

from __future__ import annotations

from typing import Any

HOOKS: dict[tuple[str, str], dict[str, Any]] = {}
