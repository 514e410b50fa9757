"""Kind-specific behaviour for the batch API group: defaults, validation and field selectors."""

from __future__ import annotations

from typing import Any

HOOKS: dict[tuple[str, str], dict[str, Any]] = {}
